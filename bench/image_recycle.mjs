// 1080p JPEG to patches, outputs kept until V8 collects them vs handed back with recycleOutput
// after use, interleaved in one process (rounds of 10 calls each way, one macrotask between calls
// as a server has between requests). Prints each way's median and minimum, and how many full
// (mark-compact) collections each way's calls triggered, with the machine's steal time over the
// run: on a shared VM the job's time moves with the host, so compare the two columns, not runs.
// Run: npm run build:ts && node bench/image_recycle.mjs [rounds=10]
import { readFileSync } from 'node:fs';
import { PerformanceObserver } from 'node:perf_hooks';
import sharp from 'sharp';
import { imageToPatches } from '../dist/codecs/image/patches.js';
import { recycleOutput } from '../dist/codecs/recycle.js';

const rounds = Number(process.argv[2] ?? 10);
// The same photo-like JPEG as bench/vision.bench.ts: noise over gradients, quality 90.
const noise = await sharp({ create: { width: 1920, height: 1080, channels: 3, background: '#000', noise: { type: 'gaussian', mean: 128, sigma: 40 } } })
  .blur(1.5)
  .png()
  .toBuffer();
const jpeg = await sharp(noise).jpeg({ quality: 90 }).toBuffer();
const tick = () => new Promise((resolve) => setImmediate(resolve));
const stealAndTotal = () => {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  return [f[7] ?? 0, f.reduce((a, b) => a + b, 0)];
};

let fullCollections = 0;
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) if (e.detail?.kind === 4) fullCollections++; // NODE_PERFORMANCE_GC_MAJOR
}).observe({ entryTypes: ['gc'] });

for (let i = 0; i < 10; i++) {
  recycleOutput((await imageToPatches(jpeg)).pixelValues);
  await tick();
}
const ways = { kept: { ms: [], gcs: 0 }, recycled: { ms: [], gcs: 0 } };
const [steal0, total0] = stealAndTotal();
for (let r = 0; r < rounds; r++) {
  for (const [name, way] of Object.entries(ways)) {
    const before = fullCollections;
    for (let i = 0; i < 10; i++) {
      const t0 = performance.now();
      const p = await imageToPatches(jpeg);
      way.ms.push(performance.now() - t0);
      if (name === 'recycled') recycleOutput(p.pixelValues);
      await tick();
    }
    way.gcs += fullCollections - before;
  }
}
const [steal1, total1] = stealAndTotal();
const median = (a) => [...a].sort((x, y) => x - y)[a.length >> 1];
for (const [name, way] of Object.entries(ways)) {
  console.log(
    `1920x1080 JPEG -> patches, ${name.padEnd(8)}: median ${median(way.ms).toFixed(2)} ms, min ${Math.min(...way.ms).toFixed(2)} ms, ` +
      `${way.gcs} full collections in ${way.ms.length} calls`,
  );
}
console.log(`steal time during the run: ${((100 * (steal1 - steal0)) / Math.max(1, total1 - total0)).toFixed(1)}%`);
