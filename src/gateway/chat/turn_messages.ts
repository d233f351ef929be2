// Chat completions messages as whole-turn messages for engines that take media rather than
// features (vLLM-Omni): the same checks as the token path (messages.ts), audio normalised to a
// 16 kHz PCM16 WAV, images checked and sent as JPEG or PNG, tool calls and tool results in the
// OpenAI shape the engine's template renders.
import type { TurnMessage, TurnPart } from '../../runtime/contract.js';
import { audioTurnPart, imageTurnPart, mediaBytes } from './media.js';
import { assistantText, checkMessages, firstFailure, joinText, needs, refuseVideoFile, type MessageContext } from './messages.js';
import type { AssistantMessage, MessageRole, SystemMessage, ToolMessage, UserMessage, UserPart } from './schema.js';

async function userParts(part: UserPart, param: string, ctx: MessageContext): Promise<TurnPart[]> {
  const caps = ctx.capabilities;
  switch (part.type) {
    case 'text':
      return [{ type: 'text', text: part.text }];
    case 'image_url': {
      const url = typeof part.image_url === 'string' ? part.image_url : part.image_url.url;
      const field = typeof part.image_url === 'string' ? `${param}.image_url` : `${param}.image_url.url`;
      needs(caps.imageIn, 'image', param);
      return [await imageTurnPart(mediaBytes(url, field, { allowBareBase64: false }), field)];
    }
    case 'input_audio': {
      const field = `${param}.input_audio.data`;
      needs(caps.audioIn, 'audio', param);
      return [await audioTurnPart(mediaBytes(part.input_audio.data, field, { allowBareBase64: true }), field, ctx.signal)];
    }
    case 'audio_url': {
      const field = `${param}.audio_url.url`;
      needs(caps.audioIn, 'audio', param);
      return [await audioTurnPart(mediaBytes(part.audio_url.url, field, { allowBareBase64: false }), field, ctx.signal)];
    }
    case 'video_url':
      return refuseVideoFile(part, param);
    case 'video':
      needs(caps.imageIn, 'video', param);
      return Promise.all(part.video.map((frame, k) => imageTurnPart(mediaBytes(frame, `${param}.video[${k}]`, { allowBareBase64: false }), `${param}.video[${k}]`)));
  }
}

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
        const parts = await Promise.all(m.content.map((part, j) => userParts(part as UserPart, `${param}.content[${j}]`, ctx)));
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
