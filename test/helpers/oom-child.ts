// Child process of test/reliability.test.ts: provokes a genuine GPU out-of-memory error and prints
// one JSON line with what happened. It lowers its own address-space limit (RLIMIT_AS, through
// `prlimit`) to a little above what it uses, so the driver's next large allocation fails at once:
// nothing near the host's RAM is ever touched.
//   node --import tsx test/helpers/oom-child.ts ops|train BACKEND [OUTDIR]
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { dawnGpu } from '../../src/engine/runtime/dawn';
import { type Backend, Linear, Sequential, type Tensor, manualSeed, randn, setDefaultGpu } from '../../src/engine/index';
import { loadLatestCheckpoint } from '../../src/train/checkpoint';
import { trainLoop } from '../../src/train/loop';

const [mode, backend, outDir] = process.argv.slice(2) as ['ops' | 'train', Backend, string];
const MiB = 2 ** 20;

const virtualBytes = () => Number(/VmSize:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))![1]) * 1024;
/** Limit this process's address space to its current size plus `margin` bytes (soft limit only). */
const limitMemory = (margin: number) => execFileSync('prlimit', ['--pid', String(process.pid), `--as=${virtualBytes() + margin}:`]);
const unlimitMemory = () => execFileSync('prlimit', ['--pid', String(process.pid), '--as=unlimited:']);

const report = (r: Record<string, unknown>) => console.log(`RESULT ${JSON.stringify(r)}`);
const describeError = (e: unknown) => ({ name: (e as Error)?.name, message: (e as Error)?.message ?? String(e) });

const gpu = await dawnGpu({ backend });
setDefaultGpu(gpu);

if (mode === 'ops') {
  // a 64 MiB matmul output, compiled and run once with memory to spare, then again with 32 MiB to spare
  const a = randn([4096, 8]);
  const b = randn([8, 4096]);
  const warm = a.matmul(b);
  await warm.sum().item();
  warm.dispose();
  gpu.trimPool();
  limitMemory(32 * MiB);
  try {
    const c = a.matmul(b);
    const s = await c.sum().item();
    unlimitMemory();
    report({ error: null, value: s });
  } catch (e) {
    unlimitMemory();
    // the failed buffer is not pooled: with memory to spare again, the same device computes the product
    const again = await a.matmul(b).sum().item();
    const expected = await a.sum(0).mul(b.sum(1)).sum().item();
    report({ error: describeError(e), again, expected });
  }
} else {
  // train a small MLP at batch 8; at step 12 (after the checkpoint of step 10) the batch becomes
  // 2^18 rows with 48 MiB to spare: its activations (32-64 MiB each) cannot be allocated
  const big = 2 ** 18;
  const createModel = () => new Sequential(new Linear(32, 64), (x: Tensor) => x.silu(), new Linear(64, 32));
  const lossOf = (m: Sequential, x: Tensor) => m.forward(x).sub(x.mul(0.5)).square().mean();
  manualSeed(1);
  let before: Record<string, string> = {};
  const hashes = () =>
    Object.fromEntries(readdirSync(outDir).filter((f) => f.startsWith('ckpt-')).map((f) => [f, createHash('sha256').update(readFileSync(join(outDir, f))).digest('hex')]));
  try {
    await trainLoop({
      kind: 'oom-test', outDir, config: { oomTest: 1 }, createModel, quiet: true, logEvery: 5, checkpointEvery: 10,
      optim: { steps: 30, lr: 1e-3, warmupSteps: 5, weightDecay: 0, maxGradNorm: 1, emaDecay: 0.99, emaWarmup: 5 },
      loss: (model, step) => {
        if (step === 12) {
          before = hashes();
          limitMemory(48 * MiB);
        }
        return lossOf(model, randn([step === 12 ? big : 8, 32]));
      },
    });
    unlimitMemory();
    report({ error: null });
  } catch (e) {
    unlimitMemory();
    const latest = loadLatestCheckpoint(outDir);
    report({ error: describeError(e), before, after: hashes(), latestStep: latest?.ckpt.step ?? null });
  }
}
gpu.destroy();
