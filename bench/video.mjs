// Video files to Qwen3-Omni patches: time for a 10 s 720p H.264 clip (target under 1 s), where that
// time goes (probe, first step, the rest), the floor set by ffprobe and ffmpeg alone on the same
// selection, event-loop delay meanwhile, and peak memory of `omni-gateway preprocess` on a 5 min
// 1080p clip (target under 300 MB: frames and patch steps stream, the whole video is never in memory).
// Run: npm run build:ts && node bench/video.mjs [--short]   (clips are generated once into
// bench-results/; --short measures the 10 s clip only). Timings depend on the machine's load: the
// load average is printed before and after.
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { locateFfmpeg } from '../dist/codecs/audio/ffmpeg.js';
import { selectFilter } from '../dist/codecs/video/decode.js';
import { ffprobePath } from '../dist/codecs/video/probe.js';
import { planVideo, videoPatchSteps } from '../dist/codecs/video/patches.js';

const root = join(import.meta.dirname, '..');
const out = join(root, 'bench-results');
mkdirSync(out, { recursive: true });

function clip(name, size, seconds, fps) {
  const path = join(out, name);
  if (!existsSync(path)) {
    console.log(`generating ${name} (${size}, ${seconds} s at ${fps} fps, H.264 + AAC)...`);
    execFileSync('ffmpeg', [
      '-v', 'error', '-y',
      '-f', 'lavfi', '-i', `testsrc2=size=${size}:rate=${fps}`,
      '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=44100',
      '-t', String(seconds), '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-shortest', path,
    ]);
  }
  return path;
}

const load = () => loadavg().map((l) => l.toFixed(2)).join(' ');
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const short = clip('clip_720p_10s.mp4', '1280x720', 10, 30);
console.log(`load average before: ${load()}`);
const runs = [];
for (let i = 0; i < 6; i++) {
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  const t0 = performance.now();
  const plan = await planVideo(short);
  const planMs = performance.now() - t0;
  let steps = 0;
  let firstMs;
  for await (const _ of videoPatchSteps(plan)) {
    firstMs ??= performance.now() - t0;
    steps++;
  }
  const ms = performance.now() - t0;
  h.disable();
  // The first run also pays for locating ffmpeg (`ffmpeg -version`): a warm-up, not counted.
  if (i > 0) runs.push({ ms, planMs, firstMs, steps, plan, p99: h.percentile(99) / 1e6, max: h.max / 1e6 });
}
runs.sort((a, b) => a.ms - b.ms);
const med = runs[Math.floor(runs.length / 2)];
console.log(`10 s 720p H.264 -> patches (probe, decode 20 sampled frames of 300, resize, patchify; grid ${med.plan.grid.join('x')}):`);
console.log(`  median ${med.ms.toFixed(0)} ms (min ${runs[0].ms.toFixed(0)}, max ${runs[runs.length - 1].ms.toFixed(0)}) over ${runs.length} runs; event-loop delay p99 ${med.p99.toFixed(2)} ms, max ${med.max.toFixed(2)} ms`);
console.log(`  stages (medians): plan (ffprobe; ffmpeg starts meanwhile) ${median(runs.map((r) => r.planMs)).toFixed(0)} ms, first step at ${median(runs.map((r) => r.firstMs)).toFixed(0)} ms`);

// The floor: the same ffprobe, and ffmpeg decoding the same selection with no output (-f null).
const binary = await locateFfmpeg();
const timed = (cmd, args) => new Promise((resolve, reject) => {
  const t0 = performance.now();
  execFile(cmd, args, (err) => (err ? reject(err) : resolve(performance.now() - t0)));
});
const probeMs = [];
const decodeMs = [];
for (let i = 0; i < 5; i++) {
  probeMs.push(await timed(ffprobePath(binary), ['-v', 'error', '-of', 'json', '-show_entries', 'stream=codec_type,codec_name,width,height,avg_frame_rate,r_frame_rate,nb_frames,duration:stream_tags=rotate:stream_side_data=rotation:format=format_name,duration', '--', short]));
  decodeMs.push(await timed(binary.path, ['-v', 'error', '-nostdin', '-i', short, '-map', '0:v:0', '-vf', selectFilter(med.plan.indices), '-f', 'null', '-']));
}
console.log(`  floor (medians of 5): ffprobe alone ${median(probeMs).toFixed(0)} ms; ffmpeg decoding the same selection to -f null ${median(decodeMs).toFixed(0)} ms (process start included); one after the other ${(median(probeMs) + median(decodeMs)).toFixed(0)} ms`);
console.log(`load average after: ${load()}`);
if (process.argv.includes('--short')) process.exit(0);

const long = clip('clip_1080p_5min.mp4', '1920x1080', 300, 25);
const conv = join(out, 'long_video_conversation.json');
writeFileSync(conv, JSON.stringify([{ role: 'user', content: [{ type: 'video', path: 'clip_1080p_5min.mp4' }, { type: 'text', text: 'Summarise.' }] }]));
const peakRss = (args) => {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, ['--import', pathToFileURL(join(root, 'bench', 'peak_rss.mjs')).href, ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
  const peak = /PEAK_RSS_KB (\d+)/.exec(r.stderr)?.[1];
  return { status: r.status, seconds: (performance.now() - t0) / 1000, peakMb: peak ? Number(peak) / 1024 : NaN, stdout: r.stdout.trim(), stderr: r.stderr };
};
// 1. The video pipeline alone (what a runtime consuming steps holds).
const stream = peakRss([join(root, 'bench', 'video_stream.mjs'), long]);
console.log(`5 min 1080p (25 fps, 7500 frames) -> streamed temporal steps: exit ${stream.status}, ${stream.seconds.toFixed(1)} s, peak RSS ${stream.peakMb.toFixed(0)} MB (${stream.stdout})`);
// 2. The whole preprocess command, which also loads the Qwen3 tokenizer (~150 MB by itself).
for (const extra of [[], ['--use-audio-in-video']]) {
  const r = peakRss([join(root, 'bin', 'omni-gateway.js'), 'preprocess', '--input', conv, '--out', join(out, 'long_video.safetensors'), ...extra]);
  console.log(`omni-gateway preprocess ${extra.join(' ') || '(video only)'}: exit ${r.status}, ${r.seconds.toFixed(1)} s, peak RSS ${r.peakMb.toFixed(0)} MB`);
  if (r.status !== 0) console.log(r.stderr.trim().split('\n').slice(-3).join('\n'));
}
