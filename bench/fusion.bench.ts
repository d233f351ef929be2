// Fusion cost beyond the codecs: a 10-turn conversation with two 1280x720 images and 60 s of audio
// (media given as the codec outputs: grids and mel frame counts) to input ids and TMRoPE positions.
// Compares building the whole prompt at once with what a live session does per turn: appending
// only the new turn to an incremental builder. Run: npm run bench
import { bench, describe } from 'vitest';
import { QwenTokenizer } from '../src/codecs/text/tokenizer.js';
import { SequenceBuilder, buildSequence } from '../src/fusion/sequence.js';
import { layout, tokenizeLayout, type ChatMessage } from '../src/fusion/template.js';

const tokenizer = QwenTokenizer.load();
const encode = (texts: readonly string[]) => tokenizer.encodeBatch(texts);

const image = { type: 'image' as const, grid: [1, 46, 80] as const }; // 1280x720 -> 736x1280
const audio = { type: 'audio' as const, frames: 6000 }; // 60 s
const sentence = 'Could you look at this and tell me what you think about the details in the corner? ';

const messages: ChatMessage[] = [{ role: 'system', content: 'You are a helpful voice assistant for a hardware store.' }];
for (let turn = 0; turn < 5; turn++) {
  const parts: ChatMessage['content'] = [
    { type: 'text', text: sentence.repeat(3) },
    ...(turn === 1 ? [image] : []),
    ...(turn === 3 ? [image, audio] : []),
  ];
  messages.push({ role: 'user', content: parts });
  messages.push({ role: 'assistant', content: `Sure. ${sentence.repeat(4)}` });
}
const lastTurn = messages.slice(-2);

const prefixSegments = await tokenizeLayout(layout(messages, { addGenerationPrompt: true }), encode);

describe('fusion: 10-turn conversation, 2 images, 60 s of audio', () => {
  bench('whole prompt: layout + tokenize + ids and positions', async () => {
    const segments = await tokenizeLayout(layout(messages, { addGenerationPrompt: true }), encode);
    buildSequence(segments);
  });
  bench('ids and positions only (text already tokenized)', () => {
    buildSequence(prefixSegments);
  });
  bench('live session, newest turn: layout + tokenize + its ids', async () => {
    const segments = await tokenizeLayout(layout(lastTurn, { addGenerationPrompt: true }), encode);
    const builder = new SequenceBuilder();
    for (const s of segments) builder.appendSegment(s);
  });
});
