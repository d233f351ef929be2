// One model reply as the protocols need it: token ids become text deltas (reasoning kept apart
// from the answer), Qwen3 `<tool_call>{json}</tool_call>` blocks become function calls, and speech
// chunks say how much of the text they cover, so a barge-in can cut the text at what was heard.
// Shared by the realtime session and the chat completions API.
import { THINKING_STOP_TEXT, type ThinkingSettings } from '../fusion/budget.js';
import { TOOL_IDS } from '../fusion/tool_format.js';
import type { QwenTokenizer } from '../codecs/text/tokenizer.js';
import type { SpeechRequest } from '../runtime/contract.js';
import type { SamplingParams } from '../runtime/sampling.js';
import type { Usage } from '../runtime/generation.js';
import type { EngineContext } from './engine_context.js';

export interface ReplyRequest {
  maxTokens: number;
  sampling?: SamplingParams;
  thinking?: ThinkingSettings;
  speech?: SpeechRequest;
}

export type ReplyEvent =
  | { type: 'text'; delta: string }
  | { type: 'reasoning'; delta: string }
  /** A complete tool call parsed from the reply; `arguments` is a JSON string. */
  | { type: 'tool_call'; name: string; arguments: string }
  /** Speech; `textEnd` is the answer text length (UTF-16 units) spoken once this chunk has played. */
  | { type: 'audio'; samples: Float32Array; sampleOffset: number; textEnd: number }
  | { type: 'done'; reason: 'stop' | 'length' | 'cancelled'; usage: Usage };

/** A tool call block that is not `{"name": ..., "arguments": ...}` JSON stays text. */
function parseToolCall(body: string): { name: string; arguments: string } | undefined {
  try {
    const v = JSON.parse(body) as { name?: unknown; arguments?: unknown };
    if (typeof v !== 'object' || v === null || typeof v.name !== 'string') return undefined;
    const args = typeof v.arguments === 'string' ? v.arguments : JSON.stringify(v.arguments ?? {});
    return { name: v.name, arguments: args };
  } catch {
    return undefined;
  }
}

/**
 * Runs one reply on a synced context, recording generated tokens into it. Cancel through the
 * context's session; the stream then ends with a `done` of reason `cancelled`.
 */
export async function* streamReply(ctx: EngineContext, tokenizer: QwenTokenizer, request: ReplyRequest): AsyncGenerator<ReplyEvent> {
  const detok = tokenizer.detokenizer({ skipSpecial: true });
  const stopThinkingIds = request.thinking?.enabled && request.thinking.budgetTokens !== null ? await tokenizer.encode(THINKING_STOP_TEXT) : undefined;
  /** Answer text length after each reply token (for audio spans). */
  const textAfter: number[] = [];
  let text = 0;
  let toolBody: string | undefined;
  for await (const e of ctx.session.generate({
    maxTokens: request.maxTokens,
    ...(request.sampling ? { sampling: request.sampling } : {}),
    ...(request.thinking ? { thinking: request.thinking } : {}),
    ...(stopThinkingIds ? { stopThinkingIds } : {}),
    ...(request.speech ? { speech: request.speech } : {}),
  })) {
    if (e.type === 'done') {
      const rest = detok.flush();
      if (rest && toolBody === undefined) yield { type: 'text', delta: rest };
      if (toolBody !== undefined && toolBody.trim()) yield { type: 'text', delta: `<tool_call>${toolBody}` };
      yield { type: 'done', reason: e.reason, usage: e.usage };
      return;
    }
    if (e.type === 'audio') {
      yield { type: 'audio', samples: e.samples, sampleOffset: e.sampleOffset, textEnd: textAfter[e.tokenEnd - 1] ?? text };
      continue;
    }
    ctx.noteGenerated(e.id);
    if (e.id === TOOL_IDS.toolCall && !e.thinking) {
      toolBody = '';
    } else if (e.id === TOOL_IDS.toolCallEnd && toolBody !== undefined) {
      const call = parseToolCall(toolBody + detok.flush());
      if (call) yield { type: 'tool_call', ...call };
      else yield { type: 'text', delta: `<tool_call>${toolBody}</tool_call>` };
      toolBody = undefined;
    } else {
      const delta = detok.push(e.id);
      if (delta) {
        if (e.thinking) yield { type: 'reasoning', delta };
        else if (toolBody !== undefined) toolBody += delta;
        else {
          text += delta.length;
          yield { type: 'text', delta };
        }
      }
    }
    textAfter.push(text);
  }
}
