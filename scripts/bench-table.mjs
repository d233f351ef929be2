// Turn vitest's benchmark JSON into the Markdown table BENCHMARKS.md records: one row per group,
// our implementation (the bench named "native") against the group's baseline, mean time and ratio.
import { readFileSync } from 'node:fs';

const path = process.argv[2] ?? 'bench-results/latest.json';
const report = JSON.parse(readFileSync(path, 'utf8'));
const fmt = (ms) => (ms < 0.01 ? `${(ms * 1000).toFixed(2)} µs` : `${ms.toFixed(3)} ms`);
console.log('| operation | ours (mean) | baseline | baseline (mean) | speed-up |');
console.log('|---|---|---|---|---|');
for (const file of report.files) {
  for (const group of file.groups) {
    const ours = group.benchmarks.find((b) => b.name === 'native');
    for (const base of group.benchmarks.filter((b) => b !== ours)) {
      if (!ours) continue;
      const name = group.fullName.split(' > ').pop();
      console.log(`| ${name} | ${fmt(ours.mean)} | ${base.name} | ${fmt(base.mean)} | ${(base.mean / ours.mean).toFixed(2)}x |`);
    }
  }
}
