import { defineConfig } from 'vitest/config';

// Dawn must run in forked processes (worker threads crash in its HandleScope: node-webgpu #13).
export default defineConfig({
  test: {
    pool: 'forks',
    testTimeout: 120_000,
    hookTimeout: 120_000,
    include: ['test/**/*.test.ts'],
  },
});
