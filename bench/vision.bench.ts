// Qwen3-Omni image input (decode + smart_resize + bicubic antialias resize + normalise + patchify):
// our path (JPEG fast lane: libjpeg-turbo decode fused with the native kernel on the libuv pool) against @huggingface/transformers'
// (transformers.js) Qwen2VLImageProcessor configured with the same Qwen3-Omni values, on the same
// JPEGs in one run; plus the kernel alone on already decoded pixels. Run: npm run bench
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Qwen2VLImageProcessor, RawImage } from '@huggingface/transformers';
import sharp from 'sharp';
import { bench, describe } from 'vitest';
import { decodeImage } from '../src/codecs/image/decode.js';
import { imageToPatches, rgbToPatches } from '../src/codecs/image/patches.js';
import { recycleOutput } from '../src/codecs/recycle.js';

const processor = new Qwen2VLImageProcessor({
  do_resize: true,
  resample: 3, // bicubic
  do_rescale: true,
  rescale_factor: 1 / 255,
  do_normalize: true,
  image_mean: [0.5, 0.5, 0.5],
  image_std: [0.5, 0.5, 0.5],
  do_convert_rgb: true,
  patch_size: 16,
  temporal_patch_size: 2,
  merge_size: 2,
  min_pixels: 3136,
  max_pixels: 12_845_056,
});

// One macrotask per iteration, as a server would between requests: V8 then hands collected output
// buffers back for reuse.
const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

// Every task starts from a collected heap, so it does not pay for the garbage the task before it
// left: transformers.js leaves hundreds of MB of typed arrays, whose collection otherwise lands
// in the next native task's timings (and ours in its). `gc` is exposed at run time for this.
v8.setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;
const fromCleanHeap = {
  setup: async () => {
    collectGarbage();
    await tick(); // let finalizers hand pooled buffers back
  },
};
// Ours takes milliseconds: enough samples for a stable median on a shared 2-vCPU machine.
const ours = { ...fromCleanHeap, time: 3000, iterations: 100, warmupIterations: 10 };

// Photo-like content (noise over gradients) so JPEG decoding does real work.
async function testJpeg(width: number, height: number): Promise<Buffer> {
  const noise = await sharp({ create: { width, height, channels: 3, background: '#000', noise: { type: 'gaussian', mean: 128, sigma: 40 } } })
    .blur(1.5)
    .png()
    .toBuffer();
  return sharp(noise).jpeg({ quality: 90 }).toBuffer();
}

for (const [width, height] of [[1280, 720], [1920, 1080]] as const) {
  const jpeg = await testJpeg(width, height);
  const decoded = await decodeImage(jpeg);
  const raw = await RawImage.fromBlob(new Blob([jpeg]));

  describe(`image patches, ${width}x${height} JPEG (decode included)`, () => {
    bench('native imageToPatches (libjpeg-turbo decode + resize/patchify in one native job)', async () => {
      await imageToPatches(jpeg);
      await tick();
    }, ours);
    // The same, with the owner handing the patches back once used (as chat completions do after the
    // prefill, and the video pipeline after each copied step): V8 then needs no collection for them.
    bench('native imageToPatches, patches recycled after use', async () => {
      recycleOutput((await imageToPatches(jpeg)).pixelValues);
      await tick();
    }, ours);
    // What every JPEG took before the fast lane, and what the others (PNG, WebP, ICC-tagged...) take.
    bench('general path: sharp decode, then rgbToPatches', async () => {
      const d = await decodeImage(jpeg);
      await rgbToPatches(d.rgb, d.width, d.height);
      await tick();
    }, ours);
    bench('transformers.js RawImage.fromBlob + Qwen2VLImageProcessor', async () => {
      await processor(await RawImage.fromBlob(new Blob([jpeg])));
      await tick();
    }, fromCleanHeap);
  });

  describe(`image patches, ${width}x${height} decoded RGB (resize + normalise + patchify only)`, () => {
    bench('native rgbToPatches', async () => {
      await rgbToPatches(decoded.rgb, decoded.width, decoded.height);
      await tick();
    }, ours);
    bench('transformers.js Qwen2VLImageProcessor', async () => {
      await processor(raw);
      await tick();
    }, fromCleanHeap);
  });
}
