// Preload (node --import ./bench/peak_rss.mjs ...) that prints the process's peak resident memory
// at exit, from the kernel's own high-water mark (VmHWM), as `PEAK_RSS_KB <n>` on stderr.
import { readFileSync } from 'node:fs';

process.on('exit', () => {
  const hwm = /VmHWM:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'));
  process.stderr.write(`PEAK_RSS_KB ${hwm ? hwm[1] : '?'}\n`);
});
