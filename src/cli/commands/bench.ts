// distillkac bench: our kernels against TensorFlow.js and jax-js. The runner and the peers are dev
// tooling (bench/, tinybench, the peer packages), so they load only here, from a path computed at
// run time that tsc and bundlers do not follow; where they are missing, this says what to install.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { commonFlags } from '../common';
import { UsageError, command } from '../flags';

export const BENCH_ENGINES = ['ours', 'tfjs', 'jax-js'] as const;
export type EngineName = (typeof BENCH_ENGINES)[number];

/** npm packages each engine needs beyond ours; tinybench times them all. */
const PEER_PACKAGES: Record<EngineName, string[]> = {
  ours: [],
  tfjs: ['@tensorflow/tfjs-core', '@tensorflow/tfjs-backend-webgpu'],
  'jax-js': ['@jax-js/jax'],
};

/** Whether `pkg` is installed in a node_modules folder at or above `dir` (how Node resolves it). */
function installed(pkg: string, dir: string): boolean {
  for (let d = dir; ; d = dirname(d)) {
    if (existsSync(join(d, 'node_modules', pkg, 'package.json'))) return true;
    if (dirname(d) === d) return false;
  }
}

/** What is missing to run the benchmarks of `engines` from `benchDir`, said as what to install; null
 *  when nothing is. */
export function benchPrerequisites(benchDir: string, engines: readonly EngineName[]): string | null {
  const runner = join(benchDir, 'run.ts');
  if (!existsSync(runner)) {
    return `the benchmarks are not part of the installed package (${runner} is missing): clone the repository and run \`npm install\` and \`npm run bench\` there`;
  }
  const missing = ['tinybench', ...engines.flatMap((e) => PEER_PACKAGES[e])].filter((p) => !installed(p, benchDir));
  if (!missing.length) return null;
  return `the benchmarks need ${missing.join(', ')}: run \`npm install --save-dev ${missing.join(' ')}\` (or \`npm install\` in the repository, which installs the dev dependencies)${engines.length > 1 ? ', or time fewer engines with --engines ours' : ''}`;
}

export const bench = command({
  summary: 'Benchmark our kernels and a whole training step against TensorFlow.js (WebGPU) and jax-js on the same adapter.',
  flags: {
    quick: { type: 'bool', default: false, help: 'fewer and smaller cases (training step at batch 8), fewer samples' },
    json: { type: 'path', help: 'write the results as JSON' },
    md: { type: 'path', help: 'write the results as markdown tables (with the command line)' },
    engines: { type: 'list', choices: BENCH_ENGINES, help: 'engines to time (default: all three)' },
    cases: { type: 'list', help: 'only cases whose name or shape contains one of these (e.g. matmul,reduction,"train step")' },
    'tune-cache': { type: 'path', help: 'load tuned GEMM/conv kernel choices from and save them to this file (training uses it through env DISTILLKAC_GEMM_CACHE)' },
    ...commonFlags,
  },
  async run(f) {
    const benchDir = fileURLToPath(new URL('../../../bench/', import.meta.url));
    const missing = benchPrerequisites(benchDir, f.engines ?? [...BENCH_ENGINES]);
    if (missing) throw new UsageError(missing);
    const runner = join(benchDir, 'run.ts');
    const { runBench } = await import(pathToFileURL(runner).href);
    await runBench({ quick: f.quick, json: f.json, md: f.md, engines: f.engines, cases: f.cases, backend: f.backend, tuneCache: f['tune-cache'] });
  },
});
