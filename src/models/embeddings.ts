// Sinusoidal embedding of the raw time t, computed on the GPU from engine ops.
//
//   emb(t) = [ sin(s t w_0), ..., sin(s t w_{h-1}), cos(s t w_0), ..., cos(s t w_{h-1}) ],
//   w_i = exp(-ln(maxPeriod) * i / h),   h = dim / 2,   i = 0 .. h-1
//
// These are the frequencies of the Transformer / ADM ("guided diffusion") timestep embedding: from 1
// down to (almost) 1/maxPeriod, log-spaced, as `timestep_embedding` in ADM and torchcfm computes them
// (DDPM's TensorFlow code divides by h - 1 instead of h). Sines come first, as in DDPM; ADM puts the
// cosines first, which only permutes the inputs of the next linear layer.
//
// The flow's t lives in [0, T] (T = 1 by default), whereas DDPM fed integer steps 0..999. With the
// raw t the highest frequency would turn by only one radian over the whole time range and most
// features would be constant, so the time is multiplied by `scale` first: default 1000, which
// spreads the frequencies over the same range as DDPM's integer steps.
import { type Gpu, Tensor, concat, keep, tensor } from '../engine/index';

export const DEFAULT_TIME_SCALE = 1000;
export const DEFAULT_MAX_PERIOD = 10_000;

export interface TimeEmbeddingOptions {
  /** multiply t by this before embedding (default 1000) */
  scale?: number;
  /** longest period of the sinusoids, in units of scale * t (default 10000) */
  maxPeriod?: number;
}

/** Sinusoidal embedding of t (float32 [B]) into [B, dim] (dim even). Differentiable in t. */
export function timestepEmbedding(t: Tensor, dim: number, opts: TimeEmbeddingOptions = {}): Tensor {
  if (t.ndim !== 1 || t.dtype !== 'f32') {
    throw new Error(`timestepEmbedding: expects float32 times of shape [B], got ${t.dtype} [${t.shape.join(', ')}]`);
  }
  if (!Number.isInteger(dim) || dim < 2 || dim % 2 !== 0) throw new Error(`timestepEmbedding: dim must be an even integer >= 2, got ${dim}`);
  const scale = opts.scale ?? DEFAULT_TIME_SCALE;
  const maxPeriod = opts.maxPeriod ?? DEFAULT_MAX_PERIOD;
  const freqs = frequencies(t.gpu, dim / 2, scale, maxPeriod); // [1, h]
  const args = t.reshape([-1, 1]).mul(freqs); // [B, h]
  return concat([args.sin(), args.cos()], 1);
}

// The constants s w_i are computed once per device in float64 and rounded to float32 once (the GPU's
// exp() may be off by several ulp, which at s t w ~ 1000 would shift the phase by ~1e-3).
const FREQUENCIES = new WeakMap<Gpu, Map<string, Tensor>>();

function frequencies(gpu: Gpu, half: number, scale: number, maxPeriod: number): Tensor {
  let perGpu = FREQUENCIES.get(gpu);
  if (!perGpu) FREQUENCIES.set(gpu, (perGpu = new Map()));
  const key = `${half}/${scale}/${maxPeriod}`;
  let f = perGpu.get(key);
  if (!f || f.disposed) {
    const host = Float32Array.from({ length: half }, (_, i) => scale * Math.exp((-Math.log(maxPeriod) * i) / half));
    f = keep(tensor(host, [1, half], { gpu }));
    perGpu.set(key, f);
  }
  return f;
}

/** The same formula in float64 on the host (the reference the GPU version is tested against). */
export function timestepEmbeddingReference(t: ArrayLike<number>, dim: number, opts: TimeEmbeddingOptions = {}): Float64Array {
  const scale = opts.scale ?? DEFAULT_TIME_SCALE;
  const maxPeriod = opts.maxPeriod ?? DEFAULT_MAX_PERIOD;
  const half = dim / 2;
  const out = new Float64Array(t.length * dim);
  for (let b = 0; b < t.length; b++) {
    for (let i = 0; i < half; i++) {
      const a = scale * t[b] * Math.exp((-Math.log(maxPeriod) * i) / half);
      out[b * dim + i] = Math.sin(a);
      out[b * dim + half + i] = Math.cos(a);
    }
  }
  return out;
}
