// Turn vitest's benchmark JSON into the Markdown table BENCHMARKS.md records: per group, each of
// our implementations (benches whose name starts with "native") against each baseline, with mean
// time and ratio.
import { readFileSync } from 'node:fs';

const path = process.argv[2] ?? 'bench-results/latest.json';
const report = JSON.parse(readFileSync(path, 'utf8'));
const fmt = (ms) => (ms < 0.01 ? `${(ms * 1000).toFixed(2)} µs` : `${ms.toFixed(3)} ms`);
console.log('| operation | ours (mean) | baseline | baseline (mean) | speed-up |');
console.log('|---|---|---|---|---|');
for (const file of report.files) {
  for (const group of file.groups) {
    const name = group.fullName.split(' > ').pop();
    const ours = group.benchmarks.filter((b) => b.name.startsWith('native'));
    const baselines = group.benchmarks.filter((b) => !b.name.startsWith('native'));
    for (const base of baselines) {
      for (const o of ours) {
        const label = ours.length > 1 ? `${name}: ${o.name}` : name;
        console.log(`| ${label} | ${fmt(o.mean)} | ${base.name} | ${fmt(base.mean)} | ${(base.mean / o.mean).toFixed(2)}x |`);
      }
    }
  }
}
