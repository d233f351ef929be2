// One chat completion on a whole-turn engine (vLLM-Omni): the request's messages, media normalised
// by our codecs, go to the engine as one turn; its text, speech and tool calls come back as the
// same CompletionEvents as the token-level path (completion.ts), with stop sequences applied here.
// The turn is started (and its first event awaited) before the HTTP response begins, so an engine
// that refuses the request gets a JSON error, not a broken stream. Cancel aborts the engine's
// stream (vLLM-Omni stops the request when its HTTP stream closes).
import type { RuntimeBackend, TurnEvent, TurnMessage } from '../../runtime/contract.js';
import { AnswerShaper, DEFAULT_MAX_TOKENS, type ChatRun, type CompletionEvent } from './completion.js';
import { toChatError } from './errors.js';
import type { ChatOptions } from './options.js';

export class TurnCompletionRun implements ChatRun {
  private done = false;

  private constructor(
    private readonly turn: AsyncGenerator<TurnEvent>,
    private readonly first: IteratorResult<TurnEvent>,
    private readonly abort: AbortController,
    private readonly options: ChatOptions,
  ) {}

  /** Sends the turn and waits for the engine's first event. Rejects with a ChatError. */
  static async start(runtime: RuntimeBackend, messages: TurnMessage[], options: ChatOptions, signal?: AbortSignal): Promise<TurnCompletionRun> {
    if (!runtime.turn) throw new Error('the runtime takes no whole turns');
    const abort = new AbortController();
    const onGone = () => abort.abort();
    signal?.addEventListener('abort', onGone, { once: true });
    const turn = runtime.turn({
      messages,
      ...(options.tools ? { tools: options.tools.map((t) => ({ ...t })) } : {}),
      maxTokens: options.maxTokens ?? DEFAULT_MAX_TOKENS,
      sampling: options.sampling,
      ...(options.speech ? { speech: options.speech.voice ? { voice: options.speech.voice } : {} } : {}),
      signal: abort.signal,
    });
    try {
      const first = await turn.next();
      return new TurnCompletionRun(turn, first, abort, options);
    } catch (err) {
      abort.abort();
      throw toChatError(err);
    } finally {
      signal?.removeEventListener('abort', onGone);
    }
  }

  cancel(): void {
    if (!this.done) this.abort.abort();
  }

  close(): void {
    this.done = true;
    this.abort.abort();
    void this.turn.return(undefined).catch(() => undefined);
  }

  async *events(): AsyncGenerator<CompletionEvent> {
    const shaper = new AnswerShaper(this.options, () => this.abort.abort());
    try {
      for (let r = this.first; !r.done; r = await this.turn.next()) {
        const e = r.value;
        if (e.type === 'done') {
          this.done = true;
          yield* shaper.finish(e.reason === 'length', { promptTokens: e.usage.promptTokens, completionTokens: e.usage.outputTokens, reasoningTokens: 0 });
          return;
        }
        yield* shaper.shape(e);
      }
    } finally {
      if (!this.done) this.abort.abort();
      this.done = true;
    }
  }
}
