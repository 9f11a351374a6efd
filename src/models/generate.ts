// Many samples in batches, as `distillkac sample` makes them: each batch draws its own prior from a
// seed derived from the run's seed and the batch's first index (so a sample's random stream depends on
// the seed and the batch size), and the results are clamped to the image range [-1, 1]. Pure (engine and
// models only): the CLI and the browser page call this same function, so a seed gives the same digits.
import { noGrad } from '../engine/index';
import type { KacConfig } from './kac';
import { type Guidance, type Solver, type VelocityMaxima, type VelocityModel, mergeVelocityMaxima, sample } from './sampling';

export interface GenerateOptions {
  model: VelocityModel;
  /** one label per sample */
  labels: Int32Array;
  /** shape of one sample, e.g. [1, 28, 28] */
  sampleShape: number[];
  steps: number;
  solver: Solver;
  kac: KacConfig;
  seed: number;
  /** end time of the integration (default 1e-5) */
  tMin?: number;
  guidance?: Guidance;
  /** samples per GPU batch (default 250) */
  batchSize?: number;
  /** called after each batch with the number of samples done */
  onBatch?: (done: number) => void;
  /** measure the largest |u| per sampling step over all samples (`velocityMax`) */
  stats?: boolean;
}

export const DEFAULT_SAMPLE_BATCH = 250;

/** Seeds derived from (seed, index) as seed * SEED_STRIDE + index: distinct for indices below it. */
export const SEED_STRIDE = 1_000_003;

/** The prior seed of the batch starting at sample `first`. */
export const batchSeed = (seed: number, first: number) => seed * SEED_STRIDE + first;

/** The largest seed whose batch seeds stay exact (safe integers, as Philox requires) for `count` samples. */
export const maxSeed = (count: number) => Math.floor((Number.MAX_SAFE_INTEGER - Math.max(0, count - 1)) / SEED_STRIDE);

/** Throws unless `seed` is an integer in 0..maxSeed(count) (checked before any GPU work). */
export function checkSeed(seed: number, count: number): void {
  if (!Number.isInteger(seed) || seed < 0 || seed > maxSeed(count)) throw new RangeError(`seed must be an integer in 0..${maxSeed(count)}, got ${seed}`);
}

/** Samples [K, ...sampleShape] in [-1, 1] on the host, and the NFE per sample. */
export async function generateSamples(opts: GenerateOptions): Promise<{ samples: Float32Array; nfe: number; velocityMax?: VelocityMaxima }> {
  const count = opts.labels.length;
  checkSeed(opts.seed, count);
  const per = opts.sampleShape.reduce((a, b) => a * b, 1);
  const batch = opts.batchSize ?? DEFAULT_SAMPLE_BATCH;
  const all = new Float32Array(count * per);
  let nfe = 0;
  let velocityMax: VelocityMaxima | undefined;
  await noGrad(async () => {
    for (let i = 0; i < count; i += batch) {
      const part = opts.labels.subarray(i, Math.min(count, i + batch));
      const res = await sample({ model: opts.model, labels: part, sampleShape: opts.sampleShape, steps: opts.steps, solver: opts.solver, kac: opts.kac, tMin: opts.tMin, seed: batchSeed(opts.seed, i), guidance: opts.guidance, stats: opts.stats });
      if (res.velocityMax) velocityMax = mergeVelocityMaxima(velocityMax, res.velocityMax);
      all.set((await res.samples.toArray()) as Float32Array, i * per);
      res.samples.dispose();
      for (let j = i * per; j < (i + part.length) * per; j++) all[j] = Math.min(1, Math.max(-1, all[j])); // images live in [-1, 1]
      nfe = res.nfe;
      opts.onBatch?.(i + part.length);
    }
  });
  return { samples: all, nfe, ...(velocityMax ? { velocityMax } : {}) };
}
