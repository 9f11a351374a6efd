// Seeded random tensors from the counter-based Philox generator: the same seed gives the same
// uniform bits on every adapter. Without an explicit seed, each call draws the next stream of the
// global generator (manualSeed; getRandomState/setRandomState save and restore it). Checkpoints do
// not store it: parameter init uses it, and training draws its randomness from Philox(seed, step).
import { randomKernel } from '../../kernels/random';
import { philoxKey } from '../philox';
import { Tensor, checkShape, getDefaultGpu } from '../tensor';
import type { Gpu } from '../runtime/gpu';

export interface RandomState {
  seed: number;
  stream: number;
}

const global: RandomState = { seed: 0, stream: 0 };

/** Seed the global generator (stream count restarts). */
export function manualSeed(seed: number): void {
  philoxKey(seed); // validates
  global.seed = seed;
  global.stream = 0;
}

export function getRandomState(): RandomState {
  return { ...global };
}

export function setRandomState(state: RandomState): void {
  manualSeed(state.seed);
  global.stream = state.stream;
}

export interface RandomOptions {
  /** explicit seed (stream 0 of that seed); default: the next stream of the global generator */
  seed?: number;
  gpu?: Gpu;
}

function random(shape: readonly number[], dist: 'uniform' | 'normal', a: number, b: number, opts: RandomOptions): Tensor {
  const s = checkShape(shape, dist === 'uniform' ? 'rand' : 'randn');
  const [seed, stream] = opts.seed !== undefined ? [opts.seed, 0] : [global.seed, global.stream++];
  const out = Tensor.empty(s, 'f32', opts.gpu ?? getDefaultGpu());
  if (out.size > 0) out.gpu.dispatch(randomKernel(out.size, dist, a, b, philoxKey(seed), stream), [out.binding]);
  return out;
}

/** Uniform in [lo, hi). */
export function rand(shape: readonly number[], opts: RandomOptions & { lo?: number; hi?: number } = {}): Tensor {
  return random(shape, 'uniform', opts.lo ?? 0, opts.hi ?? 1, opts);
}

/** Normal with the given mean and standard deviation (Box-Muller on two Philox words). */
export function randn(shape: readonly number[], opts: RandomOptions & { mean?: number; std?: number } = {}): Tensor {
  return random(shape, 'normal', opts.mean ?? 0, opts.std ?? 1, opts);
}
