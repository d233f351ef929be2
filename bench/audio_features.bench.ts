// Qwen3-Omni audio features: our native log-mel against @huggingface/transformers' (transformers.js)
// WhisperFeatureExtractor, configured like the model's (128 bins, n_fft 400, hop 160, no padding to
// 30 s), on the same clips in one run. Also the work left at a turn end when the features were
// streamed while the user spoke. Run: npm run bench
import { WhisperFeatureExtractor } from '@huggingface/transformers';
import { bench, describe } from 'vitest';
import { MelStream, logMelFeatures } from '../src/codecs/audio/mel.js';
import { nativeAddon } from '../src/native/addon.js';
import { testSignal } from '../test/helpers/mel-reference.js';

const extractor = new WhisperFeatureExtractor({
  feature_size: 128,
  sampling_rate: 16_000,
  hop_length: 160,
  n_fft: 400,
  chunk_length: 600,
  n_samples: 16_000 * 600,
  nb_max_frames: 60_000,
  padding_value: 0,
});

// Every contender yields one macrotask per iteration, as a server would between requests: that is
// when V8 hands collected output buffers back for reuse.
const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

for (const seconds of [1, 10, 60]) {
  const clip = testSignal(16_000 * seconds, seconds);
  describe(`exact log-mel, ${seconds} s clip`, () => {
    bench('native (1 thread, sync)', async () => {
      nativeAddon().logMelSync(clip, 1);
      await tick();
    });
    bench('native (logMelFeatures, libuv pool)', async () => {
      await logMelFeatures(clip);
      await tick();
    });
    bench('transformers.js WhisperFeatureExtractor', async () => {
      await extractor(clip, { max_length: clip.length });
      await tick();
    });
  });
}

// At a turn end the streamed features only need their last frames and the clip floor.
const turn = testSignal(16_000 * 10, 99);
const streamed = new MelStream();
for (let p = 0; p < turn.length; p += 320) streamed.push(turn.subarray(p, p + 320));

describe('turn end after 10 s of streamed speech', () => {
  bench('native (MelStream.finish after streaming)', async () => {
    streamed.finish();
    await tick();
  });
  bench('native exact over the whole turn (no streaming)', async () => {
    nativeAddon().logMelSync(turn, 1);
    await tick();
  });
  bench('transformers.js over the whole turn', async () => {
    await extractor(turn, { max_length: turn.length });
    await tick();
  });
});
