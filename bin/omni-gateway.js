#!/usr/bin/env node
// Thin launcher: the CLI lives in dist/cli/main.js (compiled from src/ by `npm install`).
import { existsSync } from 'node:fs';

const entry = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write('omni-gateway: dist/ is missing; run `npm install` (or `npm run build`) first\n');
  process.exit(1);
}
const { main } = await import(entry.href);
const code = await main(process.argv.slice(2), process.env);
// stdout/stderr to a pipe are asynchronous: let them flush before exiting.
process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
