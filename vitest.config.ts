import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // Dawn must run in forked processes (worker threads crash in its HandleScope: node-webgpu #13).
    pool: 'forks',
    // One fork per core: the suite is bound by shader compilation on the software GPUs, which is
    // single-threaded, so vitest's default of cores - 1 (one fork on a 2-core machine) leaves a core idle.
    maxWorkers: availableParallelism(),
    testTimeout: 120_000,
    hookTimeout: 120_000,
    include: ['test/**/*.test.ts'],
  },
});
