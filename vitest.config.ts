import { defineConfig } from 'vitest/config';

// Integration and end-to-end tests measure throughput on a 2-core machine: files run one at a
// time so that one test's traffic never skews another's measurement.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 180_000,
    reporters: ['default'],
  },
});
