// Streams one video file through the codec pipeline (plan, decode the sampled frames, temporal
// patch steps) and drops each step, as a consumer that forwards steps would; prints the count.
// Run by bench/video.mjs under bench/peak_rss.mjs to measure the pipeline's own peak memory.
import { planVideo, videoPatchSteps } from '../dist/codecs/video/patches.js';

const plan = await planVideo(process.argv[2]);
let steps = 0;
let bytes = 0;
for await (const s of videoPatchSteps(plan)) {
  steps++;
  bytes += s.pixelValues.byteLength;
}
console.log(JSON.stringify({ steps, grid: plan.grid, gigabytes: (bytes / 1e9).toFixed(2) }));
