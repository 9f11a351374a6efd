// Soak: train the tiny teacher on built-in MNIST for many steps through the real training loop and
// sample the GPU buffer pool and the process RSS as it goes; after warm-up both must stay flat.
// `bench/soak.ts` runs it long (10,000 steps); `test/soak.test.ts` runs the same code for 500 steps.
import { mkdtempSync, rmSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Gpu, manualSeed } from '../engine/index';
import { defaultKacConfig } from '../models/kac';
import { UNet, unetPresets } from '../models/unet';
import { loadBuiltinMnist } from '../data/index';
import { trainLoop } from './loop';
import { teacherBatch, teacherLoss } from './teacher';

export interface SoakOptions {
  gpu: Gpu;
  steps: number;
  /** sample every this many steps (a multiple of the loop's log interval, 10, so no loss is pending) */
  every: number;
  /** one batch shape throughout (a new shape compiles new kernels: minutes on a software GPU) */
  batch: number;
  /** samples before this step are warm-up (kernels compile, the pool fills, V8 and the driver settle) */
  warmupSteps: number;
  preset?: keyof typeof unetPresets;
  /** called with each sample as it is taken */
  onSample?: (s: SoakSample) => void;
}

export interface SoakSample {
  step: number;
  liveBytes: number;
  pooledBytes: number;
  buffersCreated: number;
  /** after a full garbage collection (taken after the GPU counters, see collectGarbage) */
  rssBytes: number;
  heapUsedBytes: number;
  /** V8's committed heap */
  heapTotalBytes: number;
  elapsedSec: number;
}

/** A full garbage collection: without it RSS follows the V8 heap's sawtooth (tens of MiB with no
 *  trend, bench/RESULTS.md), which would hide or fake a leak. */
function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

export interface SoakResult {
  samples: SoakSample[];
  /** the samples at or after warmupSteps */
  steady: SoakSample[];
  /** live bytes identical, pooled bytes and buffers created never above their first steady value */
  poolFlat: boolean;
  /** largest live-bytes difference from the first steady sample (0 when flat) */
  liveDriftBytes: number;
  /** pooled bytes, last steady minus first steady */
  pooledGrowthBytes: number;
  buffersCreatedGrowth: number;
  /** RSS growth: the floor (minimum) of the second half of the steady samples minus the floor of
   *  the first half. Even after a full collection, native memory jumps between two levels ~15 MiB
   *  apart from sample to sample; a leak raises the floor. */
  rssGrowthBytes: number;
  /** the same for the V8 heap in use after a full collection (JS objects kept alive) */
  heapGrowthBytes: number;
  /** RSS, last steady sample minus first (noisy; reported for reference) */
  rssFirstToLastBytes: number;
  /** RSS range (max - min) over the steady samples: the noise the growth is judged against */
  rssRangeBytes: number;
  /** least-squares slope of RSS over the steady samples, bytes per 1,000 steps */
  rssSlopePerKStep: number;
  /** RSS growth within the bound */
  rssFlat: boolean;
  secPerStep: number;
  /** one line saying whether both are flat, with the measured growth */
  verdict: string;
}

const MiB = 2 ** 20;
const fmtMiB = (b: number) => `${b >= 0 ? '+' : ''}${(b / MiB).toFixed(2)} MiB`;

/** Minimum of the second half of `v` minus the minimum of the first half. */
const floorGrowth = (v: number[]) => {
  const half = Math.floor(v.length / 2);
  return Math.min(...v.slice(v.length - half)) - Math.min(...v.slice(0, half));
};

/** Least-squares slope of y over x. */
function slope(xs: number[], ys: number[]): number {
  const n = xs.length;
  if (n < 2) return 0;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i] - mx) * (ys[i] - my);
    den += (xs[i] - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

/** Judge a series of samples (exported for tests of the verdict itself). `rssBoundBytes`: the RSS
 *  growth (floor of the second half of the steady samples minus the floor of the first) at or above
 *  which RSS counts as growing. */
export function judgeSoak(samples: SoakSample[], warmupSteps: number, rssBoundBytes: number): Omit<SoakResult, 'secPerStep'> {
  const steady = samples.filter((s) => s.step >= warmupSteps);
  if (steady.length < 4) throw new Error(`soak: fewer than 4 samples after warm-up step ${warmupSteps} (${samples.length} samples in all)`);
  const [first, last] = [steady[0], steady[steady.length - 1]];
  const liveDriftBytes = Math.max(...steady.map((s) => Math.abs(s.liveBytes - first.liveBytes)));
  const pooledGrowthBytes = last.pooledBytes - first.pooledBytes;
  const buffersCreatedGrowth = last.buffersCreated - first.buffersCreated;
  const poolFlat =
    liveDriftBytes === 0 &&
    steady.every((s) => s.pooledBytes <= first.pooledBytes && s.buffersCreated === first.buffersCreated);
  const rss = steady.map((s) => s.rssBytes);
  const rssGrowthBytes = floorGrowth(rss);
  const heapGrowthBytes = floorGrowth(steady.map((s) => s.heapUsedBytes));
  const rssFirstToLastBytes = last.rssBytes - first.rssBytes;
  const rssRangeBytes = Math.max(...rss) - Math.min(...rss);
  const rssSlopePerKStep = slope(steady.map((s) => s.step), steady.map((s) => s.rssBytes)) * 1000;
  const rssFlat = rssGrowthBytes < rssBoundBytes;
  const span = `steps ${first.step}-${last.step}`;
  const verdict =
    `${poolFlat && rssFlat ? 'FLAT' : 'GROWING'}: ` +
    `GPU pool ${poolFlat ? 'flat' : 'NOT flat'} over ${span} (live ${(first.liveBytes / MiB).toFixed(2)} MiB, drift ${liveDriftBytes} B; ` +
    `pooled ${fmtMiB(pooledGrowthBytes)}; ${buffersCreatedGrowth} new buffers); ` +
    `RSS ${rssFlat ? 'flat' : 'GROWING'}: floor of the second half minus the first ${fmtMiB(rssGrowthBytes)} ` +
    `(bound ${(rssBoundBytes / MiB).toFixed(0)} MiB; samples range ${(Math.min(...rss) / MiB).toFixed(1)}-${(Math.max(...rss) / MiB).toFixed(1)} MiB, ` +
    `first to last ${fmtMiB(rssFirstToLastBytes)}, trend ${fmtMiB(rssSlopePerKStep)} per 1,000 steps); ` +
    `V8 heap in use ${fmtMiB(heapGrowthBytes)}`;
  return {
    samples, steady, poolFlat, liveDriftBytes, pooledGrowthBytes, buffersCreatedGrowth,
    rssGrowthBytes, heapGrowthBytes, rssFirstToLastBytes, rssRangeBytes, rssSlopePerKStep, rssFlat, verdict,
  };
}

/** Train the tiny teacher for `steps` steps and sample memory every `every` steps. */
export async function soak(opts: SoakOptions & { rssBoundBytes: number }): Promise<SoakResult> {
  const { gpu, steps, every, batch } = opts;
  if (every % 10 !== 0) throw new Error(`soak: --every must be a multiple of 10 (got ${every})`);
  manualSeed(0);
  const data = loadBuiltinMnist({ split: 'train' });
  const samples: SoakSample[] = [];
  const outDir = mkdtempSync(join(tmpdir(), 'dk-soak-'));
  const started = performance.now();
  try {
    await trainLoop({
      kind: 'soak',
      outDir,
      config: { soak: true, batch },
      optim: { steps, lr: 1e-3, warmupSteps: 50, weightDecay: 0, maxGradNorm: 1, emaDecay: 0.999, emaWarmup: 10 },
      createModel: () => new UNet(unetPresets[opts.preset ?? 'tiny']),
      checkpointEvery: steps,
      logEvery: 10,
      quiet: true,
      loss: (model, step) => {
        // at the start of a step, after the previous step's loss was read: what remains is the
        // model, optimizer and EMA state, and the pool
        if (step % every === 0) {
          // the GPU counters first: the collection may run finalizers that return forgotten tensors
          // to the pool, and a leak that only the collector cleans up must show as drift
          const { liveBytes, pooledBytes, buffersCreated } = gpu.memory;
          collectGarbage();
          const mem = process.memoryUsage();
          const s: SoakSample = {
            step,
            liveBytes,
            pooledBytes,
            buffersCreated,
            rssBytes: mem.rss,
            heapUsedBytes: mem.heapUsed,
            heapTotalBytes: mem.heapTotal,
            elapsedSec: (performance.now() - started) / 1000,
          };
          samples.push(s);
          opts.onSample?.(s);
        }
        return teacherLoss(model, teacherBatch(data, batch, step, 0, defaultKacConfig, 0.1), [1, 28, 28]);
      },
    });
  } finally {
    rmSync(outDir, { recursive: true, force: true });
  }
  const secPerStep = (performance.now() - started) / 1000 / steps;
  return { ...judgeSoak(samples, opts.warmupSteps, opts.rssBoundBytes), secPerStep };
}
