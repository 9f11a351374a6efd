import { availableParallelism } from 'node:os';
import { BaseSequencer, type TestSpecification } from 'vitest/node';
import { defineConfig } from 'vitest/config';

/** Files that start first: unet.test.ts compiles the tiny UNet's training kernels (batch 4), which the
 *  CLI, soak and PyTorch-twin tests then find in Mesa's shader cache instead of compiling them again in
 *  parallel; gemm and ops are the longest files. The rest in vitest's order (longest or largest first). */
const FIRST = ['test/unet.test.ts', 'test/gemm.test.ts', 'test/ops.test.ts'];

class CompileSharingSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const rank = (f: TestSpecification) => {
      const i = FIRST.findIndex((name) => f.moduleId.endsWith(name));
      return i < 0 ? FIRST.length : i;
    };
    return (await super.sort(files)).map((f, i) => ({ f, i })).sort((a, b) => rank(a.f) - rank(b.f) || a.i - b.i).map(({ f }) => f);
  }
}

export default defineConfig({
  test: {
    // Dawn must run in forked processes (worker threads crash in its HandleScope: node-webgpu #13).
    pool: 'forks',
    // One fork per core: the suite is bound by shader compilation on the software GPUs, which is
    // single-threaded, so vitest's default of cores - 1 (one fork on a 2-core machine) leaves a core idle.
    maxWorkers: availableParallelism(),
    sequence: { sequencer: CompileSharingSequencer },
    testTimeout: 120_000,
    hookTimeout: 120_000,
    include: ['test/**/*.test.ts'],
  },
});
