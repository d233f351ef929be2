// The non-streamed `chat.completion` object: the reply's events gathered into one assistant
// message. With speech, OpenAI's shape: `content` null and the text as `audio.transcript`, the
// audio as base64 WAV (24 kHz mono PCM16) or headerless PCM16, per `audio.format`.
import { encodeAudioOutput, MODEL_OUTPUT_SAMPLE_RATE } from '../../codecs/audio/output_encoder.js';
import { encodeWav } from '../../codecs/audio/wav.js';
import type { CompletionEvent, CompletionUsage, FinishReason } from './completion.js';
import type { SpeechFormat } from './options.js';
import { usageBody, type UsageBody } from './stream.js';

export interface AssistantMessageBody {
  role: 'assistant';
  content: string | null;
  refusal: null;
  reasoning_content?: string;
  tool_calls?: { id: string; type: 'function'; function: { name: string; arguments: string } }[];
  audio?: { id: string; data: string; expires_at: number; transcript: string };
}

export interface CompletionBody {
  id: string;
  object: 'chat.completion';
  created: number;
  model: string;
  choices: [{ index: 0; message: AssistantMessageBody; logprobs: null; finish_reason: FinishReason }];
  usage: UsageBody;
}

export interface CollectedReply {
  text: string;
  reasoning: string;
  toolCalls: NonNullable<AssistantMessageBody['tool_calls']>;
  samples: Float32Array;
  finishReason: FinishReason;
  usage: CompletionUsage;
}

/** Gathers a reply; resolves once its `done` event has come. */
export async function collectReply(events: AsyncIterable<CompletionEvent>): Promise<CollectedReply> {
  let text = '';
  let reasoning = '';
  const toolCalls: CollectedReply['toolCalls'] = [];
  const audio: Float32Array[] = [];
  for await (const e of events) {
    if (e.type === 'text') text += e.delta;
    else if (e.type === 'reasoning') reasoning += e.delta;
    else if (e.type === 'tool_call') toolCalls.push({ id: e.id, type: 'function', function: { name: e.name, arguments: e.arguments } });
    else if (e.type === 'audio') audio.push(e.samples);
    else {
      const samples = new Float32Array(audio.reduce((n, a) => n + a.length, 0));
      let at = 0;
      for (const a of audio) {
        samples.set(a, at);
        at += a.length;
      }
      return { text, reasoning, toolCalls, samples, finishReason: e.finishReason, usage: e.usage };
    }
  }
  throw new Error('the reply ended without a done event');
}

export interface CompletionBodyOptions {
  id: string;
  created: number;
  model: string;
  /** Present when speech was asked for. */
  audio?: { id: string; format: SpeechFormat; expiresAt: number };
}

export function completionBody(reply: CollectedReply, o: CompletionBodyOptions): CompletionBody {
  const message: AssistantMessageBody = { role: 'assistant', content: o.audio ? null : reply.text, refusal: null };
  if (reply.reasoning) message.reasoning_content = reply.reasoning;
  if (reply.toolCalls.length > 0) message.tool_calls = reply.toolCalls;
  if (o.audio) {
    const bytes = o.audio.format === 'wav' ? encodeWav(reply.samples, MODEL_OUTPUT_SAMPLE_RATE) : encodeAudioOutput(reply.samples, 'pcm16');
    message.audio = { id: o.audio.id, data: bytes.toString('base64'), expires_at: o.audio.expiresAt, transcript: reply.text };
  }
  return {
    id: o.id,
    object: 'chat.completion',
    created: o.created,
    model: o.model,
    choices: [{ index: 0, message, logprobs: null, finish_reason: reply.finishReason }],
    usage: usageBody(reply.usage),
  };
}
