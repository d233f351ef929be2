// Browser voice agent for Omni Gateway over WebRTC (no build step, no dependencies).
// Flow (realtime-protocol.md §1.4): microphone (+ optional camera) tracks and the `oai-events`
// data channel go into an offer; POST /v1/realtime/calls (multipart: sdp + session) answers 201
// with the SDP answer and the call's Location; model speech plays from the remote track, events
// (transcripts, playback state) arrive on the data channel. Interrupt = response.cancel +
// output_audio_buffer.clear. Test hooks: `window.omniDemo` holds the state; `?autostart=1`
// calls on load, `?key=...`, `?camera=1`, `?max_tokens=N`, `?transcribe=1` preset the form.
/* global document, window, RTCPeerConnection, MediaStream */

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(window.location.search);

/** Everything a test (or a curious developer) may want to look at. */
const state = {
  status: 'idle',
  callId: null,
  pc: null,
  dc: null,
  media: null,
  /** Every server event received, in order. */
  events: [],
  /** Client events sent. */
  sent: [],
  error: null,
  assistantSpeaking: false,
  /** Energy of the audio received on the remote track (from getStats). */
  async inboundAudio() {
    if (!state.pc) return null;
    const stats = await state.pc.getStats();
    for (const s of stats.values()) {
      if (s.type === 'inbound-rtp' && s.kind === 'audio') {
        return { totalAudioEnergy: s.totalAudioEnergy ?? 0, audioLevel: s.audioLevel ?? 0, packetsReceived: s.packetsReceived ?? 0, totalSamplesReceived: s.totalSamplesReceived ?? 0 };
      }
    }
    return null;
  },
  connect,
  hangup,
  interrupt,
};
window.omniDemo = state;

function setStatus(text, kind = text) {
  state.status = text;
  $('status').textContent = text;
  $('status').dataset.state = kind;
}

function log(line) {
  const el = $('log');
  const div = document.createElement('div');
  div.textContent = `${new Date().toISOString().slice(11, 23)} ${line}`;
  el.appendChild(div);
  while (el.childElementCount > 200) el.firstChild.remove();
  el.scrollTop = el.scrollHeight;
}

// ---- transcript ------------------------------------------------------------------------------

const turns = new Map();

function turn(itemId, who) {
  let t = turns.get(itemId);
  if (!t) {
    const div = document.createElement('div');
    div.className = `turn ${who}`;
    const name = document.createElement('span');
    name.className = 'who';
    name.textContent = who === 'user' ? 'You' : 'Assistant';
    const text = document.createElement('span');
    div.append(name, text);
    $('transcript').appendChild(div);
    t = { div, text, value: '' };
    turns.set(itemId, t);
  }
  return t;
}

/** Text shown until the real transcript arrives. */
function placeholder(t, value) {
  setText(t, value);
  t.placeholder = true;
}

function setText(t, value) {
  t.placeholder = false;
  t.value = value;
  t.text.textContent = value;
  $('transcript').scrollTop = $('transcript').scrollHeight;
}

function onEvent(e) {
  state.events.push(e);
  if (e.type !== 'response.output_audio_transcript.delta' && e.type !== 'response.output_text.delta') log(e.type + (e.error ? `: ${e.error.message}` : ''));
  switch (e.type) {
    case 'input_audio_buffer.speech_started':
      placeholder(turn(e.item_id, 'user'), '…');
      break;
    case 'input_audio_buffer.committed': {
      const t = turn(e.item_id, 'user');
      if (t.placeholder) placeholder(t, '(speech)');
      break;
    }
    case 'conversation.item.input_audio_transcription.delta': {
      const t = turn(e.item_id, 'user');
      setText(t, (t.placeholder ? '' : t.value) + e.delta);
      break;
    }
    case 'conversation.item.input_audio_transcription.completed':
      setText(turn(e.item_id, 'user'), e.transcript);
      break;
    case 'response.output_audio_transcript.delta':
    case 'response.output_text.delta': {
      const t = turn(e.item_id, 'assistant');
      setText(t, t.value + e.delta);
      break;
    }
    case 'response.done':
      if (e.response.status !== 'completed') {
        for (const item of e.response.output ?? []) turns.get(item.id)?.div.classList.add('incomplete');
      }
      break;
    case 'output_audio_buffer.started':
      state.assistantSpeaking = true;
      $('speaking').textContent = 'assistant speaking';
      break;
    case 'output_audio_buffer.stopped':
    case 'output_audio_buffer.cleared':
      state.assistantSpeaking = false;
      $('speaking').textContent = '';
      break;
    case 'omni.turn.latency': {
      // Gateway extension: the turn's split from its end (VAD stop or commit) to the first audio sent.
      state.lastLatency = e;
      const parts = Object.entries(e.stages).map(([stage, ms]) => `${stage} ${ms.toFixed(1)} ms`);
      $('latency').textContent = `${e.first_audio_ms !== null ? `first audio after ${e.first_audio_ms.toFixed(0)} ms` : `done after ${e.total_ms.toFixed(0)} ms`}: ${parts.join(', ')}`;
      break;
    }
    case 'error':
      state.error = e.error;
      break;
  }
}

function send(event) {
  if (state.dc?.readyState !== 'open') return;
  state.sent.push(event);
  state.dc.send(JSON.stringify(event));
}

// ---- call ------------------------------------------------------------------------------------

function iceGathered(pc, timeoutMs) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const timer = window.setTimeout(resolve, timeoutMs);
    pc.addEventListener('icegatheringstatechange', () => {
      if (pc.iceGatheringState === 'complete') {
        window.clearTimeout(timer);
        resolve();
      }
    });
  });
}

function sessionConfig() {
  const session = { type: 'realtime', model: $('model').value.trim() || 'qwen3-omni' };
  const max = Number($('max-tokens').value);
  if (Number.isInteger(max) && max > 0) session.max_output_tokens = max;
  const instructions = $('instructions').value.trim();
  if (instructions) session.instructions = instructions;
  if ($('transcribe').checked) session.audio = { input: { transcription: { model: session.model } } };
  return session;
}

async function connect() {
  if (state.pc) return;
  const key = $('key').value.trim();
  localStorage.setItem('omni-demo-key', key);
  $('connect').disabled = true;
  state.error = null;
  try {
    setStatus('asking for the microphone', 'connecting');
    const media = await navigator.mediaDevices.getUserMedia({ audio: true, video: $('camera').checked });
    state.media = media;
    if (media.getVideoTracks().length > 0) {
      $('camera-preview').srcObject = media;
      $('camera-preview').style.display = 'block';
    }
    const pc = new RTCPeerConnection();
    state.pc = pc;
    for (const track of media.getTracks()) pc.addTrack(track, media);
    pc.ontrack = (e) => {
      $('remote-audio').srcObject = e.streams[0] ?? new MediaStream([e.track]);
    };
    pc.onconnectionstatechange = () => {
      log(`peer connection ${pc.connectionState}`);
      if (pc.connectionState === 'connected' && state.dc?.readyState === 'open') setStatus('connected');
      if (pc.connectionState === 'failed' || pc.connectionState === 'closed') teardown(`connection ${pc.connectionState}`);
    };
    // The events channel is created before the offer so it is part of it.
    const dc = pc.createDataChannel('oai-events');
    state.dc = dc;
    dc.onopen = () => {
      log('events channel open');
      if (pc.connectionState === 'connected') setStatus('connected');
      $('interrupt').disabled = false;
    };
    dc.onmessage = (m) => onEvent(JSON.parse(m.data));
    dc.onclose = () => teardown('events channel closed');

    setStatus('calling', 'connecting');
    await pc.setLocalDescription(await pc.createOffer());
    await iceGathered(pc, 2000);
    const form = new FormData();
    form.append('sdp', pc.localDescription.sdp);
    form.append('session', JSON.stringify(sessionConfig()));
    const res = await fetch('/v1/realtime/calls', { method: 'POST', headers: key ? { Authorization: `Bearer ${key}` } : {}, body: form });
    if (res.status !== 201) {
      const body = await res.json().catch(() => null);
      throw new Error(body?.error?.message ?? `the gateway answered ${res.status}`);
    }
    state.callId = (res.headers.get('location') ?? '').split('/').pop();
    log(`call ${state.callId}`);
    await pc.setRemoteDescription({ type: 'answer', sdp: await res.text() });
    $('hangup').disabled = false;
  } catch (err) {
    setStatus(`error: ${err.message}`, 'error');
    state.error = { message: err.message };
    log(`error: ${err.message}`);
    teardown(null);
  }
}

function interrupt() {
  send({ type: 'response.cancel' });
  send({ type: 'output_audio_buffer.clear' });
}

async function hangup() {
  const id = state.callId;
  const key = $('key').value.trim();
  if (id) {
    await fetch(`/v1/realtime/calls/${encodeURIComponent(id)}/hangup`, { method: 'POST', headers: key ? { Authorization: `Bearer ${key}` } : {} }).catch(() => undefined);
  }
  teardown('hung up');
}

function teardown(reason) {
  if (state.dc) state.dc.onclose = null;
  if (state.pc) {
    state.pc.onconnectionstatechange = null;
    state.pc.close();
    state.pc = null;
  }
  state.dc = null;
  state.callId = null;
  for (const track of state.media?.getTracks() ?? []) track.stop();
  state.media = null;
  $('camera-preview').style.display = 'none';
  $('connect').disabled = false;
  $('interrupt').disabled = true;
  $('hangup').disabled = true;
  if (reason) setStatus(reason, 'idle');
}

// ---- page ------------------------------------------------------------------------------------

$('key').value = params.get('key') ?? localStorage.getItem('omni-demo-key') ?? '';
if (params.get('camera') === '1') $('camera').checked = true;
if (params.get('transcribe') === '1') $('transcribe').checked = true;
if (params.get('max_tokens')) $('max-tokens').value = params.get('max_tokens');
$('connect').addEventListener('click', () => void connect());
$('interrupt').addEventListener('click', interrupt);
$('hangup').addEventListener('click', () => void hangup());
if (params.get('autostart') === '1') void connect();
