/**
 * Independent float64 reference implementation of every tensor op the GPU
 * engine offers, plus a central finite-difference gradient checker.
 *
 * This is the ground truth for the engine's tests, so everything here is
 * written as plain loops over row-major contiguous Float64Arrays, with no
 * cleverness and no sharing of code with src/.
 */

// ---------------------------------------------------------------------------
// NDArray
// ---------------------------------------------------------------------------

function checkShape(shape: readonly number[]): void {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) {
      throw new Error(`invalid shape [${shape.join(', ')}]`);
    }
  }
}

export function shapeSize(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Row-major strides of a contiguous array of the given shape. */
export function stridesOf(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i];
  }
  return strides;
}

/** Multi-index of flat offset `flat` in a contiguous array of `shape`. */
export function unravel(flat: number, shape: readonly number[]): number[] {
  const idx = new Array<number>(shape.length);
  for (let i = shape.length - 1; i >= 0; i--) {
    idx[i] = flat % shape[i];
    flat = Math.floor(flat / shape[i]);
  }
  return idx;
}

/** Flat offset of multi-index `idx` in a contiguous array of `shape`. */
export function ravel(idx: readonly number[], shape: readonly number[]): number {
  let flat = 0;
  for (let i = 0; i < shape.length; i++) flat = flat * shape[i] + idx[i];
  return flat;
}

function shapeStr(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

export class NDArray {
  readonly shape: number[];
  readonly data: Float64Array;

  constructor(shape: number[], data?: Float64Array | number[]) {
    checkShape(shape);
    this.shape = shape.slice();
    const n = shapeSize(shape);
    if (data === undefined) {
      this.data = new Float64Array(n);
    } else {
      if (data.length !== n) {
        throw new Error(`data length ${data.length} does not match shape ${shapeStr(shape)} (size ${n})`);
      }
      this.data = data instanceof Float64Array ? data : Float64Array.from(data);
    }
  }

  get size(): number {
    return this.data.length;
  }

  get ndim(): number {
    return this.shape.length;
  }

  private offset(idx: readonly number[]): number {
    if (idx.length !== this.shape.length) {
      throw new Error(`index rank ${idx.length} does not match array rank ${this.shape.length}`);
    }
    for (let i = 0; i < idx.length; i++) {
      if (!Number.isInteger(idx[i]) || idx[i] < 0 || idx[i] >= this.shape[i]) {
        throw new Error(`index [${idx.join(', ')}] out of bounds for shape ${shapeStr(this.shape)}`);
      }
    }
    return ravel(idx, this.shape);
  }

  get(idx: number[]): number {
    return this.data[this.offset(idx)];
  }

  set(idx: number[], v: number): void {
    this.data[this.offset(idx)] = v;
  }

  clone(): NDArray {
    return new NDArray(this.shape, this.data.slice());
  }

  /** Uniform random values in [lo, hi). */
  static rand(shape: number[], rng: () => number, lo = -1, hi = 1): NDArray {
    const a = new NDArray(shape);
    for (let i = 0; i < a.size; i++) a.data[i] = lo + (hi - lo) * rng();
    return a;
  }

  static full(shape: number[], value: number): NDArray {
    const a = new NDArray(shape);
    a.data.fill(value);
    return a;
  }

  static scalar(value: number): NDArray {
    return new NDArray([], [value]);
  }
}

/** Seeded RNG (mulberry32) returning floats in [0, 1). */
export function makeRng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---------------------------------------------------------------------------
// Elementwise unary
// ---------------------------------------------------------------------------

function unary(a: NDArray, f: (x: number) => number): NDArray {
  const out = new NDArray(a.shape);
  for (let i = 0; i < a.size; i++) out.data[i] = f(a.data[i]);
  return out;
}

function sigmoidScalar(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

const GELU_C = Math.sqrt(2 / Math.PI);

export const neg = (a: NDArray): NDArray => unary(a, (x) => -x);
export const exp = (a: NDArray): NDArray => unary(a, (x) => Math.exp(x));
export const log = (a: NDArray): NDArray => unary(a, (x) => Math.log(x));
export const sqrt = (a: NDArray): NDArray => unary(a, (x) => Math.sqrt(x));
export const rsqrt = (a: NDArray): NDArray => unary(a, (x) => 1 / Math.sqrt(x));
export const abs = (a: NDArray): NDArray => unary(a, (x) => Math.abs(x));
export const square = (a: NDArray): NDArray => unary(a, (x) => x * x);
export const sin = (a: NDArray): NDArray => unary(a, (x) => Math.sin(x));
export const cos = (a: NDArray): NDArray => unary(a, (x) => Math.cos(x));
export const tanh = (a: NDArray): NDArray => unary(a, (x) => Math.tanh(x));
export const sigmoid = (a: NDArray): NDArray => unary(a, sigmoidScalar);
export const relu = (a: NDArray): NDArray => unary(a, (x) => (x > 0 ? x : 0));
export const silu = (a: NDArray): NDArray => unary(a, (x) => x * sigmoidScalar(x));
/** tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
export const gelu = (a: NDArray): NDArray =>
  unary(a, (x) => 0.5 * x * (1 + Math.tanh(GELU_C * (x + 0.044715 * x * x * x))));

// ---------------------------------------------------------------------------
// Broadcasting binary / ternary
// ---------------------------------------------------------------------------

/** NumPy broadcast of any number of shapes; throws on mismatch. */
export function broadcastShapes(...shapes: (readonly number[])[]): number[] {
  let rank = 0;
  for (const s of shapes) rank = Math.max(rank, s.length);
  const out = new Array<number>(rank).fill(1);
  for (const s of shapes) {
    for (let i = 0; i < s.length; i++) {
      const o = rank - s.length + i;
      const d = s[i];
      if (d === out[o]) continue;
      if (out[o] === 1) out[o] = d;
      else if (d !== 1) {
        throw new Error(`cannot broadcast shapes ${shapes.map(shapeStr).join(' and ')}`);
      }
    }
  }
  return out;
}

/** Flat offset into an array of shape `inShape` for output index `outIdx`, under broadcasting. */
function broadcastOffset(outIdx: readonly number[], inShape: readonly number[]): number {
  const lead = outIdx.length - inShape.length;
  let flat = 0;
  for (let i = 0; i < inShape.length; i++) {
    const j = inShape[i] === 1 ? 0 : outIdx[lead + i];
    flat = flat * inShape[i] + j;
  }
  return flat;
}

function binary(a: NDArray, b: NDArray, f: (x: number, y: number) => number): NDArray {
  const shape = broadcastShapes(a.shape, b.shape);
  const out = new NDArray(shape);
  for (let i = 0; i < out.size; i++) {
    const idx = unravel(i, shape);
    out.data[i] = f(a.data[broadcastOffset(idx, a.shape)], b.data[broadcastOffset(idx, b.shape)]);
  }
  return out;
}

export const add = (a: NDArray, b: NDArray): NDArray => binary(a, b, (x, y) => x + y);
export const sub = (a: NDArray, b: NDArray): NDArray => binary(a, b, (x, y) => x - y);
export const mul = (a: NDArray, b: NDArray): NDArray => binary(a, b, (x, y) => x * y);
export const div = (a: NDArray, b: NDArray): NDArray => binary(a, b, (x, y) => x / y);
export const pow = (a: NDArray, b: NDArray): NDArray => binary(a, b, (x, y) => Math.pow(x, y));
export const maximum = (a: NDArray, b: NDArray): NDArray => binary(a, b, (x, y) => Math.max(x, y));
export const minimum = (a: NDArray, b: NDArray): NDArray => binary(a, b, (x, y) => Math.min(x, y));

export const eq = (a: NDArray, b: NDArray): NDArray => binary(a, b, (x, y) => (x === y ? 1 : 0));
export const ne = (a: NDArray, b: NDArray): NDArray => binary(a, b, (x, y) => (x !== y ? 1 : 0));
export const lt = (a: NDArray, b: NDArray): NDArray => binary(a, b, (x, y) => (x < y ? 1 : 0));
export const le = (a: NDArray, b: NDArray): NDArray => binary(a, b, (x, y) => (x <= y ? 1 : 0));
export const gt = (a: NDArray, b: NDArray): NDArray => binary(a, b, (x, y) => (x > y ? 1 : 0));
export const ge = (a: NDArray, b: NDArray): NDArray => binary(a, b, (x, y) => (x >= y ? 1 : 0));

/** Elementwise cond != 0 ? a : b, broadcasting all three. */
export function where(cond: NDArray, a: NDArray, b: NDArray): NDArray {
  const shape = broadcastShapes(cond.shape, a.shape, b.shape);
  const out = new NDArray(shape);
  for (let i = 0; i < out.size; i++) {
    const idx = unravel(i, shape);
    const c = cond.data[broadcastOffset(idx, cond.shape)];
    out.data[i] = c !== 0 ? a.data[broadcastOffset(idx, a.shape)] : b.data[broadcastOffset(idx, b.shape)];
  }
  return out;
}

// ---------------------------------------------------------------------------
// Reductions
// ---------------------------------------------------------------------------

function normAxis(axis: number, rank: number): number {
  const ax = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(ax) || ax < 0 || ax >= rank) {
    throw new Error(`axis ${axis} out of range for rank ${rank}`);
  }
  return ax;
}

function normAxes(axes: number | number[] | undefined, rank: number): boolean[] {
  const reduced = new Array<boolean>(rank).fill(false);
  if (axes === undefined) return reduced.fill(true);
  const list = typeof axes === 'number' ? [axes] : axes;
  for (const a of list) {
    const ax = normAxis(a, rank);
    if (reduced[ax]) throw new Error(`duplicate axis ${a}`);
    reduced[ax] = true;
  }
  return reduced;
}

/**
 * Generic reduction: calls `combine(acc, x)` for every element of each group,
 * starting from `init`, then `finish(acc, count)`.
 */
function reduce(
  a: NDArray,
  axes: number | number[] | undefined,
  keepdims: boolean,
  init: number,
  combine: (acc: number, x: number) => number,
  finish: (acc: number, count: number) => number,
): NDArray {
  const reduced = normAxes(axes, a.ndim);
  const keepShape = a.shape.map((d, i) => (reduced[i] ? 1 : d));
  const outShape = keepdims ? keepShape : a.shape.filter((_, i) => !reduced[i]);
  const acc = new Float64Array(shapeSize(keepShape)).fill(init);
  for (let i = 0; i < a.size; i++) {
    const idx = unravel(i, a.shape);
    const o = ravel(idx.map((j, k) => (reduced[k] ? 0 : j)), keepShape);
    acc[o] = combine(acc[o], a.data[i]);
  }
  let count = 1;
  for (let k = 0; k < a.ndim; k++) if (reduced[k]) count *= a.shape[k];
  const out = new NDArray(outShape);
  for (let o = 0; o < acc.length; o++) out.data[o] = finish(acc[o], count);
  return out;
}

export function sum(a: NDArray, axes?: number | number[], keepdims = false): NDArray {
  return reduce(a, axes, keepdims, 0, (s, x) => s + x, (s) => s);
}

export function mean(a: NDArray, axes?: number | number[], keepdims = false): NDArray {
  return reduce(a, axes, keepdims, 0, (s, x) => s + x, (s, n) => s / n);
}

export function max(a: NDArray, axes?: number | number[], keepdims = false): NDArray {
  return reduce(a, axes, keepdims, -Infinity, (m, x) => (x > m || Number.isNaN(x) ? x : m), (m) => m);
}

export function min(a: NDArray, axes?: number | number[], keepdims = false): NDArray {
  return reduce(a, axes, keepdims, Infinity, (m, x) => (x < m || Number.isNaN(x) ? x : m), (m) => m);
}

/** Population variance (correction 0). Exported as `var` as well. */
export function variance(a: NDArray, axes?: number | number[], keepdims = false): NDArray {
  const mu = mean(a, axes, true);
  const d = sub(a, mu);
  return mean(mul(d, d), axes, keepdims);
}

export { variance as var };

// ---------------------------------------------------------------------------
// Matmul
// ---------------------------------------------------------------------------

/** Batched matmul: a [..., M, K] x b [..., K, N] with broadcast batch dims. */
export function matmul(a: NDArray, b: NDArray): NDArray {
  if (a.ndim < 2 || b.ndim < 2) {
    throw new Error(`matmul needs rank >= 2 inputs, got ${shapeStr(a.shape)} and ${shapeStr(b.shape)}`);
  }
  const M = a.shape[a.ndim - 2];
  const K = a.shape[a.ndim - 1];
  const K2 = b.shape[b.ndim - 2];
  const N = b.shape[b.ndim - 1];
  if (K !== K2) {
    throw new Error(`matmul inner dims differ: ${shapeStr(a.shape)} x ${shapeStr(b.shape)}`);
  }
  const aBatch = a.shape.slice(0, -2);
  const bBatch = b.shape.slice(0, -2);
  const batch = broadcastShapes(aBatch, bBatch);
  const nBatch = shapeSize(batch);
  const out = new NDArray([...batch, M, N]);
  for (let bi = 0; bi < nBatch; bi++) {
    const bIdx = unravel(bi, batch);
    const aBase = broadcastOffset(bIdx, aBatch) * M * K;
    const bBase = broadcastOffset(bIdx, bBatch) * K * N;
    const oBase = bi * M * N;
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += a.data[aBase + m * K + k] * b.data[bBase + k * N + n];
        out.data[oBase + m * N + n] = s;
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// Views / copies
// ---------------------------------------------------------------------------

/** Reshape (copy); one -1 allowed. */
export function reshape(a: NDArray, shape: number[]): NDArray {
  const neg1 = shape.filter((d) => d === -1).length;
  if (neg1 > 1) throw new Error(`reshape: more than one -1 in ${shapeStr(shape)}`);
  let known = 1;
  for (const d of shape) {
    if (d === -1) continue;
    if (!Number.isInteger(d) || d < 0) throw new Error(`reshape: invalid dim in ${shapeStr(shape)}`);
    known *= d;
  }
  let resolved = shape.slice();
  if (neg1 === 1) {
    if (known === 0 || a.size % known !== 0) {
      throw new Error(`reshape: cannot infer -1 reshaping ${shapeStr(a.shape)} to ${shapeStr(shape)}`);
    }
    resolved = shape.map((d) => (d === -1 ? a.size / known : d));
  }
  if (shapeSize(resolved) !== a.size) {
    throw new Error(`reshape: size mismatch ${shapeStr(a.shape)} -> ${shapeStr(shape)}`);
  }
  return new NDArray(resolved, a.data.slice());
}

/** out[idx] = a[idx permuted back]; out.shape[i] = a.shape[perm[i]]. Negative entries allowed. */
export function permute(a: NDArray, perm: number[]): NDArray {
  if (perm.length !== a.ndim) throw new Error(`permute: perm ${shapeStr(perm)} for rank ${a.ndim}`);
  const p = perm.map((x) => normAxis(x, a.ndim));
  if (new Set(p).size !== p.length) throw new Error(`permute: ${shapeStr(perm)} is not a permutation`);
  const outShape = p.map((ax) => a.shape[ax]);
  const out = new NDArray(outShape);
  for (let i = 0; i < out.size; i++) {
    const oIdx = unravel(i, outShape);
    const aIdx = new Array<number>(a.ndim);
    for (let k = 0; k < a.ndim; k++) aIdx[p[k]] = oIdx[k];
    out.data[i] = a.data[ravel(aIdx, a.shape)];
  }
  return out;
}

/** Swap the last two axes. */
export function transpose(a: NDArray): NDArray {
  if (a.ndim < 2) throw new Error(`transpose needs rank >= 2, got ${shapeStr(a.shape)}`);
  const perm = a.shape.map((_, i) => i);
  perm[a.ndim - 2] = a.ndim - 1;
  perm[a.ndim - 1] = a.ndim - 2;
  return permute(a, perm);
}

/** Broadcast `a` to `shape` (NumPy broadcast_to semantics). */
export function expand(a: NDArray, shape: number[]): NDArray {
  checkShape(shape);
  if (a.ndim > shape.length) throw new Error(`expand: cannot expand ${shapeStr(a.shape)} to ${shapeStr(shape)}`);
  const lead = shape.length - a.ndim;
  for (let i = 0; i < a.ndim; i++) {
    if (a.shape[i] !== 1 && a.shape[i] !== shape[lead + i]) {
      throw new Error(`expand: cannot expand ${shapeStr(a.shape)} to ${shapeStr(shape)}`);
    }
  }
  const out = new NDArray(shape);
  for (let i = 0; i < out.size; i++) out.data[i] = a.data[broadcastOffset(unravel(i, shape), a.shape)];
  return out;
}

/** Per-axis slice [starts[i], ends[i]) with step 1; starts/ends must cover every axis. */
export function slice(a: NDArray, starts: number[], ends: number[]): NDArray {
  if (starts.length !== a.ndim || ends.length !== a.ndim) {
    throw new Error(`slice: starts/ends must have length ${a.ndim}`);
  }
  for (let i = 0; i < a.ndim; i++) {
    if (!(Number.isInteger(starts[i]) && Number.isInteger(ends[i]) && 0 <= starts[i] && starts[i] <= ends[i] && ends[i] <= a.shape[i])) {
      throw new Error(`slice: bad range [${starts[i]}, ${ends[i]}) on axis ${i} of ${shapeStr(a.shape)}`);
    }
  }
  const outShape = starts.map((s, i) => ends[i] - s);
  const out = new NDArray(outShape);
  for (let i = 0; i < out.size; i++) {
    const idx = unravel(i, outShape);
    out.data[i] = a.data[ravel(idx.map((j, k) => j + starts[k]), a.shape)];
  }
  return out;
}

/** Concatenate along `axis` (negative allowed); other dims must match. */
export function concat(arrays: NDArray[], axis: number): NDArray {
  if (arrays.length === 0) throw new Error('concat: no arrays');
  const rank = arrays[0].ndim;
  const ax = normAxis(axis, rank);
  let total = 0;
  for (const arr of arrays) {
    if (arr.ndim !== rank) throw new Error('concat: rank mismatch');
    for (let k = 0; k < rank; k++) {
      if (k !== ax && arr.shape[k] !== arrays[0].shape[k]) {
        throw new Error(`concat: shape mismatch ${arrays.map((x) => shapeStr(x.shape)).join(', ')} on axis ${axis}`);
      }
    }
    total += arr.shape[ax];
  }
  const outShape = arrays[0].shape.slice();
  outShape[ax] = total;
  const out = new NDArray(outShape);
  let offset = 0;
  for (const arr of arrays) {
    for (let i = 0; i < arr.size; i++) {
      const idx = unravel(i, arr.shape);
      idx[ax] += offset;
      out.data[ravel(idx, outShape)] = arr.data[i];
    }
    offset += arr.shape[ax];
  }
  return out;
}

/** Constant pad; pads[i] = [before, after] for axis i, non-negative. */
export function pad(a: NDArray, pads: [number, number][], value = 0): NDArray {
  if (pads.length !== a.ndim) throw new Error(`pad: need ${a.ndim} [before, after] pairs`);
  for (const [b, e] of pads) {
    if (!Number.isInteger(b) || !Number.isInteger(e) || b < 0 || e < 0) throw new Error('pad: pads must be non-negative integers');
  }
  const outShape = a.shape.map((d, i) => d + pads[i][0] + pads[i][1]);
  const out = NDArray.full(outShape, value);
  for (let i = 0; i < a.size; i++) {
    const idx = unravel(i, a.shape);
    out.data[ravel(idx.map((j, k) => j + pads[k][0]), outShape)] = a.data[i];
  }
  return out;
}

// ---------------------------------------------------------------------------
// Softmax family
// ---------------------------------------------------------------------------

export function softmax(a: NDArray, axis: number): NDArray {
  const m = max(a, axis, true);
  const e = exp(sub(a, m));
  return div(e, sum(e, axis, true));
}

export function logSoftmax(a: NDArray, axis: number): NDArray {
  const m = max(a, axis, true);
  const shifted = sub(a, m);
  const lse = log(sum(exp(shifted), axis, true));
  return sub(shifted, lse);
}

/** Mean over rows of -log softmax(logits)[label]; logits [N, C], returns shape []. */
export function crossEntropy(logits: NDArray, labels: Int32Array): NDArray {
  if (logits.ndim !== 2) throw new Error(`crossEntropy: logits must be [N, C], got ${shapeStr(logits.shape)}`);
  const [N, C] = logits.shape;
  if (labels.length !== N) throw new Error(`crossEntropy: ${labels.length} labels for ${N} rows`);
  const lsm = logSoftmax(logits, 1);
  let total = 0;
  for (let n = 0; n < N; n++) {
    const y = labels[n];
    if (y < 0 || y >= C) throw new Error(`crossEntropy: label ${y} out of range [0, ${C})`);
    total += -lsm.data[n * C + y];
  }
  return NDArray.scalar(total / N);
}

// ---------------------------------------------------------------------------
// Convolution and resampling
// ---------------------------------------------------------------------------

export interface Conv2dOptions {
  stride?: number | [number, number];
  padding?: number | [number, number];
  groups?: number;
}

function pair(v: number | [number, number] | undefined, dflt: number): [number, number] {
  if (v === undefined) return [dflt, dflt];
  return typeof v === 'number' ? [v, v] : [v[0], v[1]];
}

/** PyTorch conv2d (cross-correlation), zero padding. */
export function conv2d(x: NDArray, w: NDArray, bias: NDArray | null, opts: Conv2dOptions = {}): NDArray {
  const [sh, sw] = pair(opts.stride, 1);
  const [ph, pw] = pair(opts.padding, 0);
  const groups = opts.groups ?? 1;
  if (x.ndim !== 4 || w.ndim !== 4) throw new Error('conv2d: x and w must be rank 4');
  const [N, Cin, H, W] = x.shape;
  const [Cout, CinG, kh, kw] = w.shape;
  if (Cin % groups !== 0 || Cout % groups !== 0) throw new Error('conv2d: channels not divisible by groups');
  if (CinG !== Cin / groups) throw new Error(`conv2d: weight has ${CinG} input channels, expected ${Cin / groups}`);
  if (bias !== null && (bias.ndim !== 1 || bias.shape[0] !== Cout)) throw new Error('conv2d: bias must be [Cout]');
  const Ho = Math.floor((H + 2 * ph - kh) / sh) + 1;
  const Wo = Math.floor((W + 2 * pw - kw) / sw) + 1;
  if (Ho <= 0 || Wo <= 0) throw new Error('conv2d: empty output');
  const CoutG = Cout / groups;
  const out = new NDArray([N, Cout, Ho, Wo]);
  for (let n = 0; n < N; n++) {
    for (let co = 0; co < Cout; co++) {
      const g = Math.floor(co / CoutG);
      for (let oy = 0; oy < Ho; oy++) {
        for (let ox = 0; ox < Wo; ox++) {
          let s = bias === null ? 0 : bias.data[co];
          for (let cg = 0; cg < CinG; cg++) {
            const ci = g * CinG + cg;
            for (let ky = 0; ky < kh; ky++) {
              const iy = oy * sh - ph + ky;
              if (iy < 0 || iy >= H) continue;
              for (let kx = 0; kx < kw; kx++) {
                const ix = ox * sw - pw + kx;
                if (ix < 0 || ix >= W) continue;
                s += x.data[((n * Cin + ci) * H + iy) * W + ix] * w.data[((co * CinG + cg) * kh + ky) * kw + kx];
              }
            }
          }
          out.data[((n * Cout + co) * Ho + oy) * Wo + ox] = s;
        }
      }
    }
  }
  return out;
}

/** Nearest-neighbour 2x upsample: [N,C,H,W] -> [N,C,2H,2W]. */
export function upsample2x(x: NDArray): NDArray {
  if (x.ndim !== 4) throw new Error('upsample2x: x must be [N,C,H,W]');
  const [N, C, H, W] = x.shape;
  const out = new NDArray([N, C, 2 * H, 2 * W]);
  for (let n = 0; n < N; n++)
    for (let c = 0; c < C; c++)
      for (let y = 0; y < 2 * H; y++)
        for (let xx = 0; xx < 2 * W; xx++)
          out.set([n, c, y, xx], x.get([n, c, Math.floor(y / 2), Math.floor(xx / 2)]));
  return out;
}

/** 2x2 mean pool, stride 2: [N,C,H,W] -> [N,C,H/2,W/2] (H, W even). */
export function avgPool2x(x: NDArray): NDArray {
  if (x.ndim !== 4) throw new Error('avgPool2x: x must be [N,C,H,W]');
  const [N, C, H, W] = x.shape;
  if (H % 2 !== 0 || W % 2 !== 0) throw new Error('avgPool2x: H and W must be even');
  const out = new NDArray([N, C, H / 2, W / 2]);
  for (let n = 0; n < N; n++)
    for (let c = 0; c < C; c++)
      for (let y = 0; y < H / 2; y++)
        for (let xx = 0; xx < W / 2; xx++) {
          const s =
            x.get([n, c, 2 * y, 2 * xx]) +
            x.get([n, c, 2 * y, 2 * xx + 1]) +
            x.get([n, c, 2 * y + 1, 2 * xx]) +
            x.get([n, c, 2 * y + 1, 2 * xx + 1]);
          out.set([n, c, y, xx], s / 4);
        }
  return out;
}

// ---------------------------------------------------------------------------
// Normalisation
// ---------------------------------------------------------------------------

/** PyTorch GroupNorm: x [N, C, ...spatial], gamma/beta [C], population variance. */
export function groupNorm(x: NDArray, groups: number, gamma: NDArray, beta: NDArray, eps: number): NDArray {
  if (x.ndim < 2) throw new Error('groupNorm: x must be [N, C, ...]');
  const N = x.shape[0];
  const C = x.shape[1];
  if (C % groups !== 0) throw new Error(`groupNorm: ${C} channels not divisible by ${groups} groups`);
  if (gamma.size !== C || beta.size !== C) throw new Error('groupNorm: gamma/beta must be [C]');
  const S = shapeSize(x.shape.slice(2));
  const Cg = C / groups;
  const count = Cg * S;
  const out = new NDArray(x.shape);
  for (let n = 0; n < N; n++) {
    for (let g = 0; g < groups; g++) {
      const base = (n * C + g * Cg) * S; // group's elements are contiguous
      let s = 0;
      for (let i = 0; i < count; i++) s += x.data[base + i];
      const mu = s / count;
      let v = 0;
      for (let i = 0; i < count; i++) v += (x.data[base + i] - mu) ** 2;
      v /= count;
      const inv = 1 / Math.sqrt(v + eps);
      for (let i = 0; i < count; i++) {
        const c = g * Cg + Math.floor(i / S);
        out.data[base + i] = (x.data[base + i] - mu) * inv * gamma.data[c] + beta.data[c];
      }
    }
  }
  return out;
}

/** LayerNorm over the last dim D; gamma/beta [D], population variance. */
export function layerNorm(x: NDArray, gamma: NDArray, beta: NDArray, eps: number): NDArray {
  if (x.ndim < 1) throw new Error('layerNorm: x must have rank >= 1');
  const D = x.shape[x.ndim - 1];
  if (gamma.size !== D || beta.size !== D) throw new Error('layerNorm: gamma/beta must be [D]');
  const rows = D === 0 ? 0 : x.size / D;
  const out = new NDArray(x.shape);
  for (let r = 0; r < rows; r++) {
    const base = r * D;
    let s = 0;
    for (let d = 0; d < D; d++) s += x.data[base + d];
    const mu = s / D;
    let v = 0;
    for (let d = 0; d < D; d++) v += (x.data[base + d] - mu) ** 2;
    v /= D;
    const inv = 1 / Math.sqrt(v + eps);
    for (let d = 0; d < D; d++) out.data[base + d] = (x.data[base + d] - mu) * inv * gamma.data[d] + beta.data[d];
  }
  return out;
}

// ---------------------------------------------------------------------------
// Embedding
// ---------------------------------------------------------------------------

/** Row lookup: table [V, D], indices of shape indexShape -> [...indexShape, D]. */
export function embedding(table: NDArray, indices: Int32Array, indexShape: number[]): NDArray {
  if (table.ndim !== 2) throw new Error('embedding: table must be [V, D]');
  const [V, D] = table.shape;
  if (shapeSize(indexShape) !== indices.length) {
    throw new Error(`embedding: ${indices.length} indices for index shape ${shapeStr(indexShape)}`);
  }
  const out = new NDArray([...indexShape, D]);
  for (let i = 0; i < indices.length; i++) {
    const row = indices[i];
    if (row < 0 || row >= V) throw new Error(`embedding: index ${row} out of range [0, ${V})`);
    for (let d = 0; d < D; d++) out.data[i * D + d] = table.data[row * D + d];
  }
  return out;
}

// ---------------------------------------------------------------------------
// Finite differences and comparison
// ---------------------------------------------------------------------------

/**
 * Gradient of sum(f(inputs) * seed) with respect to each input, by central
 * differences, element by element. `seed` must have exactly f's output shape.
 * Inputs are not modified (f receives perturbed copies).
 */
export function finiteDiff(
  f: (inputs: NDArray[]) => NDArray,
  inputs: NDArray[],
  seed: NDArray,
  h = 1e-6,
): NDArray[] {
  const work = inputs.map((x) => x.clone());
  const objective = (): number => {
    const y = f(work);
    if (y.ndim !== seed.ndim || y.shape.some((d, i) => d !== seed.shape[i])) {
      throw new Error(`finiteDiff: seed shape ${shapeStr(seed.shape)} does not match output shape ${shapeStr(y.shape)}`);
    }
    let s = 0;
    for (let i = 0; i < y.size; i++) s += y.data[i] * seed.data[i];
    return s;
  };
  const grads: NDArray[] = [];
  for (const x of work) {
    const g = new NDArray(x.shape);
    for (let i = 0; i < x.size; i++) {
      const orig = x.data[i];
      x.data[i] = orig + h;
      const fp = objective();
      x.data[i] = orig - h;
      const fm = objective();
      x.data[i] = orig;
      g.data[i] = (fp - fm) / (2 * h);
    }
    grads.push(g);
  }
  return grads;
}

export interface Tolerance {
  rtol: number;
  atol: number;
}

/**
 * Throws unless |actual[i] - expected[i]| <= atol + rtol * |expected[i]| for
 * every i (equal infinities pass; NaN only matches NaN). The message names the
 * label, the worst index, both values, and the tolerance.
 */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tol: Tolerance,
  label: string,
): void {
  const { rtol, atol } = tol;
  if (actual.length !== expected.length) {
    throw new Error(`${label}: length mismatch, actual ${actual.length} vs expected ${expected.length}`);
  }
  let worst = -1;
  let worstExcess = 0;
  let failures = 0;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i];
    const e = expected[i];
    if (a === e) continue;
    if (Number.isNaN(a) && Number.isNaN(e)) continue;
    const err = Math.abs(a - e);
    const allowed = atol + rtol * Math.abs(e);
    // err is NaN (a or e NaN, or Infinity - Infinity) -> always a failure, and the worst.
    const excess = Number.isNaN(err) ? Infinity : err / (allowed > 0 ? allowed : Number.MIN_VALUE);
    if (Number.isNaN(err) || err > allowed) {
      failures++;
      if (worst < 0 || excess > worstExcess) {
        worst = i;
        worstExcess = excess;
      }
    }
  }
  if (failures > 0) {
    const a = actual[worst];
    const e = expected[worst];
    throw new Error(
      `${label}: ${failures}/${actual.length} elements out of tolerance; worst at index ${worst}: ` +
        `actual ${a}, expected ${e}, |diff| ${Math.abs(a - e)} > atol ${atol} + rtol ${rtol} * |expected| = ` +
        `${atol + rtol * Math.abs(e)}`,
    );
  }
}
