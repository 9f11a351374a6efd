// The 2-D 3x3 near-Dirac Gaussian mixture of the 2-D experiment: samples, and its exact log
// density (for NLL).
import { Philox } from '../engine/philox';
import { type Dataset } from './dataset';

/** Standard deviation of each mixture component. */
export const MIXTURE2D_STD = 1e-4;

/** Component means, index k = 3 * row + col: (col - 1, row - 1), i.e. all of {-1, 0, 1}^2. */
export const MIXTURE2D_MEANS: ReadonlyArray<readonly [number, number]> = Array.from({ length: 9 }, (_, k) => [(k % 3) - 1, Math.floor(k / 3) - 1] as const);

export interface Mixture2dOptions {
  /** Component standard deviation; default `MIXTURE2D_STD` (1e-4). */
  std?: number;
}

/**
 * n samples of the equal-weight mixture of 9 isotropic Gaussians with means {-1, 0, 1}^2 and
 * std 1e-4, from a Philox stream seeded with `seed` (component: floor(9 u), then two Box-Muller
 * normals). Returned as a Dataset of shape [n, 2, 1, 1] (so `images` is the n x 2 point array;
 * values are within a few std of {-1, 0, 1}, so may exceed [-1, 1] by ~1e-4), with the component
 * index as label.
 */
export function mixture2d(n: number, seed: number, opts: Mixture2dOptions = {}): Dataset {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`mixture2d: n must be a non-negative integer (got ${n})`);
  const std = opts.std ?? MIXTURE2D_STD;
  if (!(std > 0) || !Number.isFinite(std)) throw new RangeError(`mixture2d: std must be positive (got ${std})`);
  const rng = new Philox(seed);
  const images = new Float32Array(2 * n);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const k = Math.min(8, Math.floor(rng.uniform() * 9));
    const m = MIXTURE2D_MEANS[k]!;
    images[2 * i] = m[0] + std * rng.normal();
    images[2 * i + 1] = m[1] + std * rng.normal();
    labels[i] = k;
  }
  return { images, labels, n, channels: 2, height: 1, width: 1, numClasses: 9, name: 'mixture2d' };
}

/**
 * Exact log density of the mixture at (x, y):
 * log( (1/9) sum_k N((x, y); mu_k, std^2 I) ), by log-sum-exp, finite for any finite input.
 */
export function mixture2dLogDensity(x: number, y: number, std: number = MIXTURE2D_STD): number {
  // NaN fails every comparison below, so without this a NaN point would score -Infinity (NLL +Infinity)
  if (Number.isNaN(x) || Number.isNaN(y)) return NaN;
  const inv2var = 1 / (2 * std * std);
  let max = -Infinity;
  const terms = new Float64Array(9);
  for (let k = 0; k < 9; k++) {
    const m = MIXTURE2D_MEANS[k]!;
    const dx = x - m[0];
    const dy = y - m[1];
    const t = -(dx * dx + dy * dy) * inv2var;
    terms[k] = t;
    if (t > max) max = t;
  }
  if (max === -Infinity) return -Infinity;
  let s = 0;
  for (let k = 0; k < 9; k++) s += Math.exp(terms[k]! - max);
  return max + Math.log(s) - Math.log(9) - Math.log(2 * Math.PI * std * std);
}

/** Mean negative log density of n x 2 points under the mixture (the NLL metric). */
export function mixture2dNll(points: Float32Array | Float64Array, std: number = MIXTURE2D_STD): number {
  const n = points.length >> 1;
  if (n === 0) return NaN;
  let s = 0;
  for (let i = 0; i < n; i++) s -= mixture2dLogDensity(points[2 * i]!, points[2 * i + 1]!, std);
  return s / n;
}
