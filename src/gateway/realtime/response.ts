// One response of a realtime session, from `response.created` to exactly one `response.done`:
// builds the model input, syncs the engine context, streams the reply as protocol events in the
// documented order (item -> content part -> deltas -> part done -> item done), paces speech through
// the playback clock, and on cancel, length or failure still closes every open part and item
// before `response.done`. After a cancel the assistant item keeps only the text that was heard.
import { AudioOutputEncoder } from '../../codecs/audio/output_encoder.js';
import type { QwenTokenizer } from '../../codecs/text/tokenizer.js';
import { buildModelInput, type InputMessage, type ModelInputPlan } from '../../fusion/model_input.js';
import type { TemplateOptions, ToolDefinition } from '../../fusion/template.js';
import type { TurnEvent, TurnMessage, TurnRequest } from '../../runtime/contract.js';
import type { SamplingParams } from '../../runtime/sampling.js';
import type { EngineContext } from '../engine_context.js';
import { streamReply, type ReplyEvent } from '../reply.js';
import { newId } from './ids.js';
import type { ConversationItem, FunctionTool, ResponseState, ResponseUsage, ServerEvent, ThinkingConfig, ToolChoice } from './model.js';
import { PlaybackClock } from './playback.js';
import type { TurnTrace } from '../turn_trace.js';

/** Cap for `max_output_tokens: "inf"`: a reply longer than this is cut (status incomplete). */
export const DEFAULT_MAX_OUTPUT_TOKENS = 4096;

export type CancelReason = 'turn_detected' | 'client_cancelled';

export interface ResponsePlan {
  state: ResponseState;
  /** The model's view of the input (conversation or the response's own input). */
  messages: () => Promise<InputMessage[]>;
  /** The same input as whole-turn messages, for engines that take media (vLLM-Omni). */
  turnMessages: () => TurnMessage[];
  tools: FunctionTool[];
  toolChoice: ToolChoice;
  thinking: ThinkingConfig | null;
  /** Voice name the runtime knows. */
  voice: string;
}

export interface ResponseHooks {
  emit: (event: ServerEvent) => void;
  /** Adds an output item to the conversation; returns the previous item id, or undefined when out of band. */
  addItem: (item: ConversationItem) => { previousItemId: string | null } | undefined;
  /** The engine context to run on (waits for the runtime). */
  context: () => Promise<EngineContext>;
  /** Set when the runtime takes whole turns instead of token-level sessions. */
  turn?: (request: TurnRequest) => AsyncGenerator<TurnEvent>;
  tokenizer: QwenTokenizer;
  /** Audio lead over real time, ms. */
  playbackLeadMs: number;
  /** Records an assistant item's spoken audio (for retrieve and truncate). */
  keepAudio: (itemId: string, clock: PlaybackClock) => void;
  /** Where this turn's latency goes (finished at the first audio sent, or at the end). */
  trace?: TurnTrace;
}

interface OpenMessage {
  item: ConversationItem & { type: 'message' };
  outputIndex: number;
  /** The item before it in the conversation; undefined when out of band. */
  previous: string | null | undefined;
  audio: boolean;
  text: string;
  encoder?: AudioOutputEncoder;
  clock?: PlaybackClock;
}

// Parameters are JSON Schema objects the dialect validated as JSON.
const toolDefinitions = (tools: readonly FunctionTool[]): ToolDefinition[] =>
  tools.map((t) => ({
    type: 'function',
    function: { name: t.name, ...(t.description ? { description: t.description } : {}), parameters: (t.parameters ?? {}) as ToolDefinition },
  }));

type PromptSettings = Pick<ResponsePlan, 'tools' | 'toolChoice' | 'thinking'>;

/** The tools a prompt offers the model: none when tool_choice is "none". */
const offeredTools = (p: PromptSettings): { tools?: ToolDefinition[] } =>
  p.tools.length > 0 && p.toolChoice !== 'none' ? { tools: toolDefinitions(p.tools) } : {};

/** The chat template's options for a response with these tools, tool choice and thinking. */
export const templateOptions = (p: PromptSettings): TemplateOptions => ({ ...offeredTools(p), enableThinking: p.thinking?.enabled ?? false });

function samplingOf(s: ResponseState['sampling']): SamplingParams {
  return {
    ...(s.temperature !== undefined ? { temperature: s.temperature } : {}),
    ...(s.topP !== undefined ? { topP: s.topP } : {}),
    ...(s.topK !== undefined ? { topK: s.topK } : {}),
    ...(s.repetitionPenalty !== undefined ? { repetitionPenalty: s.repetitionPenalty } : {}),
    ...(s.seed !== undefined ? { seed: s.seed } : {}),
  };
}

function countTokens(plan: ModelInputPlan): { audio: number; image: number } {
  let audio = 0;
  let image = 0;
  for (const m of plan.media) {
    if (m.media.type === 'audio') audio += m.end - m.start;
    else image += m.end - m.start;
  }
  return { audio, image };
}

export class ResponseRun {
  private cancelReason: CancelReason | undefined;
  /** Aborts a whole-turn request (closes its HTTP stream). */
  private readonly abort = new AbortController();
  private context: EngineContext | undefined;
  private message: OpenMessage | undefined;
  private outputIndex = 0;
  private readonly done: Promise<void>;
  /** Set once the gateway decided to cancel: when it happened, for stop-latency measurements. */
  cancelledAt: number | undefined;
  /** When the last audio byte of this response was handed to the transport. */
  lastAudioAt: number | undefined;

  constructor(
    readonly plan: ResponsePlan,
    private readonly hooks: ResponseHooks,
  ) {
    this.done = this.run();
  }

  get id(): string {
    return this.plan.state.id;
  }

  get outOfBand(): boolean {
    return this.plan.state.conversationId === null;
  }

  /** Resolves after `response.done` was emitted. */
  finished(): Promise<void> {
    return this.done;
  }

  /** Stops the reply now: no audio leaves after this call; the closing cascade follows. */
  cancel(reason: CancelReason): void {
    if (this.cancelReason) return;
    this.cancelReason = reason;
    this.cancelledAt = performance.now();
    this.message?.clock?.stop();
    this.context?.session.cancel();
    this.abort.abort();
  }

  /** Stops the audio still queued for the client (output_audio_buffer.clear), keeping the text. */
  clearAudio(): void {
    this.message?.clock?.stop();
  }

  private emit(event: ServerEvent): void {
    this.hooks.emit(event);
  }

  private async run(): Promise<void> {
    const state = this.plan.state;
    this.emit({ type: 'response.created', response: { ...state, output: [] } });
    let usage: ResponseUsage | null = null;
    let finish: 'stop' | 'length' | 'cancelled' | undefined;
    const trace = this.hooks.trace;
    try {
      const speak = state.outputModalities.includes('audio');
      const maxTokens = state.maxOutputTokens ?? DEFAULT_MAX_OUTPUT_TOKENS;
      let replies: AsyncGenerator<ReplyEvent>;
      let inputUsage: ResponseUsage['input'] | undefined;
      if (this.hooks.turn) {
        const messages = this.plan.turnMessages();
        trace?.mark('features');
        replies = turnReplies(
          this.hooks.turn({
            messages,
            ...offeredTools(this.plan),
            maxTokens,
            sampling: samplingOf(state.sampling),
            ...(speak ? { speech: { voice: this.plan.voice } } : {}),
            signal: this.abort.signal,
          }),
        );
      } else {
        const messages = await this.plan.messages();
        trace?.mark('features');
        const built = await buildModelInput(messages, templateOptions(this.plan));
        trace?.mark('fusion');
        if (this.cancelReason) throw new Cancelled();
        this.context = await this.hooks.context();
        trace?.mark('queue');
        if (this.cancelReason) throw new Cancelled();
        const synced = await this.context.sync(built);
        trace?.mark('prefill');
        if (this.cancelReason) throw new Cancelled();
        const media = countTokens(built);
        inputUsage = { text: built.length - media.audio - media.image, audio: media.audio, image: media.image, cached: synced.reused };
        replies = streamReply(this.context, this.hooks.tokenizer, {
          maxTokens,
          sampling: samplingOf(state.sampling),
          thinking: this.plan.thinking ?? { enabled: false, budgetTokens: null },
          ...(speak ? { speech: { voice: this.plan.voice } } : {}),
        });
      }
      let audioMs = 0;
      for await (const e of replies) {
        if (e.type !== 'done') trace?.mark('first_token');
        if (e.type === 'text') {
          const m = this.openMessage(speak);
          m.text += e.delta;
          this.emit({
            type: speak ? 'response.output_audio_transcript.delta' : 'response.output_text.delta',
            ...this.loc(m),
            delta: e.delta,
          });
        } else if (e.type === 'audio') {
          if (this.cancelReason) continue;
          trace?.mark('first_audio_chunk');
          const m = this.openMessage(speak);
          const samples = e.samples;
          audioMs += (samples.length / 24_000) * 1000;
          // Encoded when the clock sends it: audio a barge-in stops is never encoded.
          const encode = () => {
            const bytes = m.encoder!.push(samples);
            trace?.mark('encode');
            return bytes;
          };
          m.clock!.push({ encode, ms: (samples.length / 24_000) * 1000, textEnd: e.textEnd, samples });
        } else if (e.type === 'tool_call') {
          this.closeMessage('completed');
          this.emitToolCall(e.name, e.arguments);
        } else if (e.type === 'done') {
          finish = e.reason;
          usage = {
            inputTokens: e.usage.promptTokens,
            outputTokens: e.usage.outputTokens,
            totalTokens: e.usage.promptTokens + e.usage.outputTokens,
            input: inputUsage ?? { text: e.usage.promptTokens, audio: 0, image: 0, cached: 0 },
            output: { text: e.usage.outputTokens, audio: Math.round(audioMs / 80) },
          };
        }
      }
      // Speech still queued leaves at playback pace; the response ends when it has all been sent.
      const m = this.message;
      if (m?.encoder && m.clock && !this.cancelReason) {
        const encoder = m.encoder;
        m.clock.push({ encode: () => encoder.end(), ms: 0, textEnd: m.text.length, samples: new Float32Array(0) });
        await m.clock.drained();
      }
      if (this.cancelReason || finish === 'cancelled') throw new Cancelled();
      const status = finish === 'length' ? 'incomplete' : 'completed';
      this.closeMessage(status);
      this.finish(status === 'completed' ? { status: 'completed', statusDetails: null } : { status: 'incomplete', statusDetails: { type: 'incomplete', reason: 'max_output_tokens' } }, usage);
    } catch (err) {
      if (err instanceof Cancelled || this.cancelReason) {
        this.closeMessage('incomplete');
        this.finish({ status: 'cancelled', statusDetails: { type: 'cancelled', reason: this.cancelReason ?? 'client_cancelled' } }, usage);
        return;
      }
      const e = err as Error & { code?: string | null; errorType?: string };
      this.closeMessage('incomplete');
      const type = e.errorType ?? 'server_error';
      this.finish(
        {
          status: 'failed',
          statusDetails: { type: 'failed', error: { type, code: e.code ?? 'server_error', message: e.message } },
        },
        usage,
      );
    }
  }

  private loc(m: OpenMessage): { response_id: string; item_id: string; output_index: number; content_index: number } {
    return { response_id: this.id, item_id: m.item.id, output_index: m.outputIndex, content_index: 0 };
  }

  /** Opens the assistant message and its one content part on the first text or audio. */
  private openMessage(audio: boolean): OpenMessage {
    if (this.message) return this.message;
    const item: ConversationItem & { type: 'message' } = { id: newId('item'), type: 'message', role: 'assistant', status: 'in_progress', content: [] };
    const m: OpenMessage = { item, outputIndex: this.outputIndex++, previous: undefined, audio, text: '' };
    this.message = m;
    m.previous = this.announce(item, m.outputIndex);
    this.emit({ type: 'response.content_part.added', ...this.loc(m), part: audio ? { type: 'audio', transcript: '' } : { type: 'text', text: '' } });
    if (audio) {
      const f = this.plan.state.outputFormat;
      m.encoder = new AudioOutputEncoder({ format: f.encoding, sampleRate: f.rate, alignBase64: true });
      m.clock = new PlaybackClock({
        leadMs: this.hooks.playbackLeadMs,
        send: (chunk) => {
          if (chunk.bytes.length === 0) return;
          this.lastAudioAt = performance.now();
          this.emit({ type: 'response.output_audio.delta', ...this.loc(m), audio: chunk.bytes });
          if (this.hooks.trace) {
            this.hooks.trace.mark('send');
            this.hooks.trace.finish();
          }
        },
      });
      this.hooks.keepAudio(item.id, m.clock);
    }
    return m;
  }

  /** output_item.added, then the conversation's added event; returns the previous item id (undefined out of band). */
  private announce(item: ConversationItem, outputIndex: number): string | null | undefined {
    this.plan.state.output.push(item);
    this.emit({ type: 'response.output_item.added', response_id: this.id, output_index: outputIndex, item: { ...item } });
    const added = this.outOfBand ? undefined : this.hooks.addItem(item);
    if (added) this.emit({ type: 'conversation.item.added', item: { ...item }, previous_item_id: added.previousItemId });
    return added?.previousItemId;
  }

  /** Closes the open message (if any) with its done events; after a cancel the text is what was heard. */
  private closeMessage(status: 'completed' | 'incomplete'): void {
    const m = this.message;
    if (!m) return;
    this.message = undefined;
    if (m.clock && this.cancelReason) {
      // Only what reached the client was heard: cut the transcript there.
      m.text = m.text.slice(0, m.clock.textHeard());
    }
    const loc = this.loc(m);
    if (m.audio) {
      this.emit({ type: 'response.output_audio.done', ...loc });
      this.emit({ type: 'response.output_audio_transcript.done', ...loc, transcript: m.text });
      m.item.content = [{ type: 'output_audio', transcript: m.text }];
      this.emit({ type: 'response.content_part.done', ...loc, part: { type: 'audio', transcript: m.text } });
    } else {
      this.emit({ type: 'response.output_text.done', ...loc, text: m.text });
      m.item.content = [{ type: 'output_text', text: m.text }];
      this.emit({ type: 'response.content_part.done', ...loc, part: { type: 'text', text: m.text } });
    }
    m.item.status = status;
    if (m.previous !== undefined) this.emit({ type: 'conversation.item.done', item: { ...m.item }, previous_item_id: m.previous });
    this.emit({ type: 'response.output_item.done', response_id: this.id, output_index: m.outputIndex, item: { ...m.item } });
  }

  private emitToolCall(name: string, args: string): void {
    const item: ConversationItem & { type: 'function_call' } = { id: newId('item'), type: 'function_call', status: 'in_progress', callId: newId('call'), name, arguments: '' };
    const outputIndex = this.outputIndex++;
    const previous = this.announce(item, outputIndex);
    const base = { response_id: this.id, item_id: item.id, output_index: outputIndex, call_id: item.callId };
    this.emit({ type: 'response.function_call_arguments.delta', ...base, delta: args });
    this.emit({ type: 'response.function_call_arguments.done', ...base, name, arguments: args });
    item.arguments = args;
    item.status = 'completed';
    if (previous !== undefined) this.emit({ type: 'conversation.item.done', item: { ...item }, previous_item_id: previous });
    this.emit({ type: 'response.output_item.done', response_id: this.id, output_index: outputIndex, item: { ...item } });
  }

  private finish(result: Pick<ResponseState, 'status' | 'statusDetails'>, usage: ResponseUsage | null): void {
    this.hooks.trace?.finish();
    const state = this.plan.state;
    state.status = result.status;
    state.statusDetails = result.statusDetails;
    state.usage = usage;
    this.emit({ type: 'response.done', response: { ...state, output: state.output.map((i) => ({ ...i })) } });
  }
}

class Cancelled extends Error {}

/** A whole-turn engine's events as reply events (text length so far marks what audio covers). */
async function* turnReplies(events: AsyncGenerator<TurnEvent>): AsyncGenerator<ReplyEvent> {
  let text = 0;
  for await (const e of events) {
    if (e.type === 'text') {
      text += e.delta.length;
      yield e;
    } else if (e.type === 'audio') {
      yield { type: 'audio', samples: e.samples, sampleOffset: e.sampleOffset, textEnd: text };
    } else if (e.type === 'tool_call') {
      yield e;
    } else {
      yield { type: 'done', reason: e.reason === 'tool_calls' ? 'stop' : e.reason, usage: { promptTokens: e.usage.promptTokens, outputTokens: e.usage.outputTokens, thinkingTokens: 0 } };
    }
  }
}
