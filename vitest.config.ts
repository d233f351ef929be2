import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 20_000,
    hookTimeout: 20_000,
    // Tests that spawn the CLI use dist/, which `npm test` builds first.
    pool: 'forks',
    // In CI also write a machine-readable report; scripts/test-summary.mjs prints its totals.
    reporters: process.env.CI ? ['default', ['json', { outputFile: 'test-results/vitest.json' }]] : ['default'],
    benchmark: { include: ['bench/**/*.bench.ts'] },
  },
});
