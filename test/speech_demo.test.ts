// The demo runtime (what `npm start` serves with no --model) speaks: its checkpoint carries a
// talker, code predictor and code-to-wave, so a reply with `speech` streams audio events with its
// tokens through the runtime contract, off the event loop.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROLE_IDS, SPECIAL_IDS } from '../src/codecs/text/special_tokens.js';
import type { RuntimeEvent } from '../src/runtime/contract.js';
import { demoModelDir, NativeRuntime } from '../src/runtime/native.js';

const cache = mkdtempSync(join(tmpdir(), 'omni-demo-speech-'));
const runtime = new NativeRuntime({ model: '', modelCache: cache, threads: 2 });
afterAll(() => runtime.close());

const prompt = [SPECIAL_IDS.imStart, ROLE_IDS.user, ROLE_IDS.newline, 9707, 11, 1246, 525, 498, 30, SPECIAL_IDS.imEnd, ROLE_IDS.newline, SPECIAL_IDS.imStart, ROLE_IDS.assistant, ROLE_IDS.newline];

describe('demo runtime speech', () => {
  it('the demo checkpoint is v2 (with speech stages) and reports speech output with the three voices', async () => {
    expect(demoModelDir(cache)).toMatch(/demo-qwen3-omni-tiny-seed0-v2$/);
    const caps = await runtime.capabilities();
    expect(caps.speechOut).toBe(true);
    expect(caps.voices).toEqual(['ethan', 'chelsie', 'aiden']);
  });

  it('streams audio events with the reply tokens; samples contiguous, spans within the reply, done last', async () => {
    const s = await runtime.open({ maxLength: 128 });
    const ids = Int32Array.from(prompt);
    const positions = new Float32Array(3 * ids.length);
    for (let r = 0; r < 3; r++) for (let i = 0; i < ids.length; i++) positions[r * ids.length + i] = i;
    await s.append({ ids, positions });
    const events: RuntimeEvent[] = [];
    const stream = s.generate({ maxTokens: 6, speech: { voice: 'Aiden' } });
    // Off the event loop: the first step is pending when generate returns control.
    const first = stream.next();
    const pending = Symbol('pending');
    expect(await Promise.race([first.then(() => 'done'), Promise.resolve(pending)])).toBe(pending);
    const head = await first;
    if (!head.done) events.push(head.value);
    for await (const e of stream) events.push(e);
    s.close();
    const tokens = events.filter((e) => e.type === 'token');
    const audio = events.filter((e): e is Extract<RuntimeEvent, { type: 'audio' }> => e.type === 'audio');
    expect(tokens.length).toBeGreaterThan(0);
    expect(audio.length).toBeGreaterThan(1);
    let offset = 0;
    for (const a of audio) {
      expect(a.sampleOffset).toBe(offset);
      offset += a.samples.length;
      expect(a.tokenEnd).toBeLessThanOrEqual(tokens.length);
      for (const v of a.samples) expect(Math.abs(v)).toBeLessThanOrEqual(1);
    }
    expect((offset + 555) % 1920).toBe(0);
    expect(audio[audio.length - 1]!.tokenEnd).toBe(tokens.length);
    expect(events[events.length - 1]!.type).toBe('done');
  });
});
