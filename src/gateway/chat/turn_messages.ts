// Chat completions messages as whole-turn messages for engines that take media rather than
// features (vLLM-Omni): the same checks as the token path (messages.ts), audio normalised to a
// 16 kHz PCM16 WAV, images checked and sent as JPEG or PNG, tool calls and tool results in the
// OpenAI shape the engine's template renders.
import type { TurnMessage, TurnPart } from '../../runtime/contract.js';
import { audioTurnPart, imageTurnPart } from './media.js';
import { assistantText, checkMessages, firstFailure, joinText, userPart, type MessageContext, type PartDecoders } from './messages.js';
import type { AssistantMessage, MessageRole, SystemMessage, ToolMessage, UserMessage, UserPart } from './schema.js';

/** Whole-turn engines: audio as a 16 kHz WAV, images as JPEG/PNG files, frame lists as images. */
const FILES: PartDecoders<TurnPart> = {
  text: (text) => ({ type: 'text', text }),
  image: imageTurnPart,
  audio: audioTurnPart,
  framesAccepted: (caps) => caps.imageIn,
};

/** Checks and converts the messages for a whole-turn engine, normalising every media part. */
export async function toTurnMessages(messages: readonly unknown[], ctx: MessageContext): Promise<TurnMessage[]> {
  checkMessages(messages);
  const pending = messages.map(async (raw, i): Promise<TurnMessage> => {
    const param = `messages[${i}]`;
    const role = (raw as { role: MessageRole }).role;
    switch (role) {
      case 'system':
      case 'developer':
        return { role: 'system', content: joinText((raw as SystemMessage).content) };
      case 'user': {
        const m = raw as UserMessage;
        if (typeof m.content === 'string') return { role: 'user', content: m.content };
        const parts = await Promise.all(m.content.map((part, j) => userPart(part as UserPart, `${param}.content[${j}]`, ctx, FILES)));
        return { role: 'user', content: parts.flat() };
      }
      case 'assistant': {
        const m = raw as AssistantMessage;
        const toolCalls = m.tool_calls?.map((c) => ({ id: c.id, name: c.function.name, arguments: c.function.arguments }));
        return { role: 'assistant', content: assistantText(m, param, ctx), ...(toolCalls && toolCalls.length > 0 ? { toolCalls } : {}) };
      }
      case 'tool': {
        const m = raw as ToolMessage;
        return { role: 'tool', content: joinText(m.content), toolCallId: m.tool_call_id };
      }
    }
  });
  return firstFailure(pending);
}
