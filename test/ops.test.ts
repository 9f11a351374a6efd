// Every engine op against the float64 reference (test/reference.ts), on every WebGPU backend present:
// the forward pass elementwise, and the gradient (backward with a random seed) against central finite
// differences of the reference on small shapes, or against the reference's own analytic adjoint on
// shapes too large for finite differences (odd sizes, more than one workgroup, the chunked reduction).
import { expect, it } from 'vitest';
import {
  type Gpu,
  type Tensor,
  arange,
  binary,
  concat,
  full,
  ones,
  rand,
  scope,
  tensor,
  unary,
  zeros,
  UNARY,
  BINARY,
} from '../src/engine/index';
import * as R from './reference';
import { NDArray, type Tolerance, finiteDiff, makeRng } from './reference';
import { download, expectTensorClose, forEachBackend, randAwayFromZero, randF32, readF64, toF32, upload } from './helpers/gpu';

type Tol = Tolerance & { scaled?: boolean };
type Rng = () => number;

/** float32 forward of a handful of flops per element */
const FWD: Tol = { rtol: 1e-5, atol: 1e-6, scaled: true };
/** forward passes with transcendental functions or long accumulations */
const FWD_LOOSE: Tol = { rtol: 1e-4, atol: 1e-5, scaled: true };
/** ops that only move data */
const EXACT: Tol = { rtol: 0, atol: 0 };
/** float32 gradient against float64 finite differences */
const GRAD: Tol = { rtol: 1e-3, atol: 1e-4, scaled: true };

interface Case {
  label: string;
  /** inputs, float32-valued (the GPU sees exactly these) */
  make: (rng: Rng) => NDArray[];
  gpu: (ts: Tensor[]) => Tensor;
  ref: (xs: NDArray[]) => NDArray;
  fwd?: Tol;
  /** gradient tolerance; null: forward only */
  grad?: Tol | null;
  /** indices of the inputs to differentiate (default: all) */
  diff?: number[];
  /** analytic reference gradients (one per `diff` entry) for shapes too big for finite differences */
  gradRef?: (xs: NDArray[], seed: NDArray) => NDArray[];
  /** finite-difference step */
  h?: number;
}

function hashString(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}

interface Prepared {
  inputs: NDArray[];
  expected: NDArray;
  seed: NDArray;
  grads: NDArray[] | null;
}

// Reference results depend only on the case, so the second backend reuses the first one's.
const prepared = new Map<string, Prepared>();

function prepare(c: Case): Prepared {
  let p = prepared.get(c.label);
  if (p) return p;
  const rng = makeRng(hashString(c.label));
  const inputs = c.make(rng);
  const expected = c.ref(inputs);
  const seed = randF32(expected.shape, rng);
  let grads: NDArray[] | null = null;
  if (c.grad !== null) {
    const diff = c.diff ?? inputs.map((_, i) => i);
    if (c.gradRef) {
      grads = c.gradRef(inputs, seed);
    } else {
      const f = (sub: NDArray[]) => c.ref(inputs.map((x, i) => (diff.includes(i) ? sub[diff.indexOf(i)] : x)));
      grads = finiteDiff(f, diff.map((i) => inputs[i]), seed, c.h);
    }
  }
  p = { inputs, expected, seed, grads };
  prepared.set(c.label, p);
  return p;
}

/** Forward and gradient of one case on `gpu`; also checks that the op frees everything it made. */
async function runCase(gpu: Gpu, c: Case): Promise<void> {
  const p = prepare(c);
  const diff = c.diff ?? p.inputs.map((_, i) => i);
  const liveBefore = gpu.memory.liveBytes;
  const grads: Tensor[] = [];
  try {
    await scope(async () => {
      const ts = p.inputs.map((x, i) => upload(x, { requiresGrad: c.grad !== null && diff.includes(i) }));
      const y = c.gpu(ts);
      await expectTensorClose(y, p.expected, c.fwd ?? FWD, `${c.label}: forward`);
      if (!p.grads) return;
      y.backward(upload(p.seed));
      for (const t of ts) if (t.grad) grads.push(t.grad);
      for (const [k, i] of diff.entries()) {
        const g = ts[i].grad;
        if (!g) throw new Error(`${c.label}: input ${i} got no gradient`);
        await expectTensorClose(g, p.grads[k], c.grad ?? GRAD, `${c.label}: gradient of input ${i}`);
      }
    });
  } finally {
    for (const g of grads) g.dispose();
  }
  expect(gpu.memory.liveBytes, `${c.label}: bytes still live after the scope`).toBe(liveBefore);
}

// ---- reference helpers ---------------------------------------------------------------------------

/** Sum a broadcast gradient down to `shape` (reference side). */
function sumToRef(g: NDArray, shape: number[]): NDArray {
  const lead = g.ndim - shape.length;
  const axes: number[] = [];
  g.shape.forEach((d, i) => {
    if (i < lead || (shape[i - lead] === 1 && d !== 1)) axes.push(i);
  });
  return axes.length ? R.reshape(R.sum(g, axes), shape) : g;
}

/** Analytic gradients of conv2d (the adjoint loops of the reference's forward loops). */
function conv2dGradRef(x: NDArray, w: NDArray, seed: NDArray, opts: R.Conv2dOptions): { gx: NDArray; gw: NDArray; gb: NDArray } {
  const pair = (v: number | [number, number] | undefined, d: number) => (v === undefined ? [d, d] : typeof v === 'number' ? [v, v] : v);
  const [sh, sw] = pair(opts.stride, 1);
  const [ph, pw] = pair(opts.padding, 0);
  const groups = opts.groups ?? 1;
  const [N, Cin, H, W] = x.shape;
  const [Cout, CinG, kh, kw] = w.shape;
  const [, , Ho, Wo] = seed.shape;
  const CoutG = Cout / groups;
  const gx = new NDArray(x.shape);
  const gw = new NDArray(w.shape);
  const gb = new NDArray([Cout]);
  for (let n = 0; n < N; n++)
    for (let co = 0; co < Cout; co++)
      for (let oy = 0; oy < Ho; oy++)
        for (let ox = 0; ox < Wo; ox++) {
          const s = seed.data[((n * Cout + co) * Ho + oy) * Wo + ox];
          gb.data[co] += s;
          for (let cg = 0; cg < CinG; cg++) {
            const ci = Math.floor(co / CoutG) * CinG + cg;
            for (let ky = 0; ky < kh; ky++) {
              const iy = oy * sh - ph + ky;
              if (iy < 0 || iy >= H) continue;
              for (let kx = 0; kx < kw; kx++) {
                const ix = ox * sw - pw + kx;
                if (ix < 0 || ix >= W) continue;
                const xi = ((n * Cin + ci) * H + iy) * W + ix;
                const wi = ((co * CinG + cg) * kh + ky) * kw + kx;
                gx.data[xi] += s * w.data[wi];
                gw.data[wi] += s * x.data[xi];
              }
            }
          }
        }
  return { gx, gw, gb };
}

/** Values drawn from a small set, so that comparisons see ties. */
function randChoice(shape: number[], rng: Rng, values: number[]): NDArray {
  const a = new NDArray(shape);
  for (let i = 0; i < a.size; i++) a.data[i] = values[Math.floor(rng() * values.length)];
  return a;
}

const randInts = (n: number, lo: number, hi: number, rng: Rng) => Int32Array.from({ length: n }, () => lo + Math.floor(rng() * (hi - lo)));

// ---- unary ---------------------------------------------------------------------------------------

const UNARY_REF: Record<string, { ref: (a: NDArray) => NDArray; make: (shape: number[], rng: Rng) => NDArray }> = {
  neg: { ref: R.neg, make: (s, r) => randF32(s, r, -3, 3) },
  exp: { ref: R.exp, make: (s, r) => randF32(s, r, -3, 3) },
  log: { ref: R.log, make: (s, r) => randF32(s, r, 0.2, 3) },
  sqrt: { ref: R.sqrt, make: (s, r) => randF32(s, r, 0.2, 3) },
  rsqrt: { ref: R.rsqrt, make: (s, r) => randF32(s, r, 0.2, 3) },
  abs: { ref: R.abs, make: (s, r) => randAwayFromZero(s, r, 0.05, 3) },
  square: { ref: R.square, make: (s, r) => randF32(s, r, -3, 3) },
  sin: { ref: R.sin, make: (s, r) => randF32(s, r, -3, 3) },
  cos: { ref: R.cos, make: (s, r) => randF32(s, r, -3, 3) },
  tanh: { ref: R.tanh, make: (s, r) => randF32(s, r, -3, 3) },
  sigmoid: { ref: R.sigmoid, make: (s, r) => randF32(s, r, -4, 4) },
  relu: { ref: R.relu, make: (s, r) => randAwayFromZero(s, r, 0.05, 3) },
  silu: { ref: R.silu, make: (s, r) => randF32(s, r, -4, 4) },
  gelu: { ref: R.gelu, make: (s, r) => randF32(s, r, -4, 4) },
};

const BINARY_REF: Record<string, { ref: (a: NDArray, b: NDArray) => NDArray; make: (sa: number[], sb: number[], rng: Rng) => NDArray[] }> = {
  add: { ref: R.add, make: (sa, sb, r) => [randF32(sa, r, -2, 2), randF32(sb, r, -2, 2)] },
  sub: { ref: R.sub, make: (sa, sb, r) => [randF32(sa, r, -2, 2), randF32(sb, r, -2, 2)] },
  mul: { ref: R.mul, make: (sa, sb, r) => [randF32(sa, r, -2, 2), randF32(sb, r, -2, 2)] },
  div: { ref: R.div, make: (sa, sb, r) => [randF32(sa, r, -2, 2), randAwayFromZero(sb, r, 0.5, 2)] },
  pow: { ref: R.pow, make: (sa, sb, r) => [randF32(sa, r, 0.5, 2), randF32(sb, r, -2, 2)] },
  maximum: { ref: R.maximum, make: (sa, sb, r) => [randF32(sa, r, -2, 2), randF32(sb, r, -2, 2)] },
  minimum: { ref: R.minimum, make: (sa, sb, r) => [randF32(sa, r, -2, 2), randF32(sb, r, -2, 2)] },
};

/** Analytic float64 gradients of silu?(groupNorm(x) * gamma + beta) for x, gamma, beta. */
function groupNormGradRef(x: NDArray, groups: number, gamma: NDArray, beta: NDArray, eps: number, silu: boolean, seed: NDArray): NDArray[] {
  const [N, C] = x.shape;
  const S = x.size / (N * C);
  const count = (C / groups) * S;
  const [dx, dg, db] = [new NDArray(x.shape), new NDArray([C]), new NDArray([C])];
  for (let row = 0; row < N * groups; row++) {
    const base = row * count;
    const idx = Array.from({ length: count }, (_, i) => base + i);
    const chan = (i: number) => (row % groups) * (C / groups) + Math.floor(i / S);
    const mu = idx.reduce((a, j) => a + x.data[j], 0) / count;
    const rstd = 1 / Math.sqrt(idx.reduce((a, j) => a + (x.data[j] - mu) ** 2, 0) / count + eps);
    const xh = idx.map((j) => (x.data[j] - mu) * rstd);
    const dz = idx.map((j, i) => {
      const z = xh[i] * gamma.data[chan(i)] + beta.data[chan(i)];
      const sg = 1 / (1 + Math.exp(-z));
      return seed.data[j] * (silu ? sg * (1 + z * (1 - sg)) : 1);
    });
    const dxh = dz.map((d, i) => d * gamma.data[chan(i)]);
    const meanD = dxh.reduce((a, v) => a + v, 0) / count;
    const meanDX = dxh.reduce((a, v, i) => a + v * xh[i], 0) / count;
    idx.forEach((j, i) => {
      dx.data[j] = rstd * (dxh[i] - meanD - xh[i] * meanDX);
      dg.data[chan(i)] += dz[i] * xh[i];
      db.data[chan(i)] += dz[i];
    });
  }
  return [dx, dg, db];
}

// ---- the suite -----------------------------------------------------------------------------------

forEachBackend('ops', (getGpu) => {
  const check = (c: Case) => it(c.label, () => runCase(getGpu(), c));

  // ---- elementwise unary ----
  it('every elementwise op has a reference case', () => {
    const untested = Object.keys(UNARY).filter((op) => !(op in UNARY_REF) && op !== 'sign' && op !== 'floor');
    expect(untested).toEqual([]);
    const cmp = ['eq', 'ne', 'lt', 'le', 'gt', 'ge'];
    expect(Object.keys(BINARY).filter((op) => !(op in BINARY_REF) && !cmp.includes(op))).toEqual([]);
  });

  for (const [op, { ref, make }] of Object.entries(UNARY_REF)) {
    check({
      label: `${op} [7, 33]`,
      make: (rng) => [make([7, 33], rng)],
      // the method form (x.exp()) attached to Tensor.prototype, which calls unary(op, x)
      gpu: ([x]) => (x as unknown as Record<string, () => Tensor>)[op].call(x),
      ref: ([x]) => ref(x),
      fwd: FWD_LOOSE,
    });
  }
  // sizes 1 and 257 (not a multiple of the workgroup size); the bounds check is shared by every op
  check({
    label: 'unary(sigmoid) on [257] and [1]',
    make: (rng) => [randF32([257], rng, -4, 4), randF32([1], rng, -4, 4)],
    gpu: ([x, s]) => concat([unary('sigmoid', x), unary('sigmoid', s)]),
    ref: ([x, s]) => R.concat([R.sigmoid(x), R.sigmoid(s)], 0),
    fwd: FWD_LOOSE,
  });

  check({
    label: 'sign and floor (forward only)',
    make: (rng) => [toF32(new NDArray([9], [-2.5, -1, -0.3, 0, 0.3, 1, 1.5, 2.999, -0.999])), randF32([33], rng, -5, 5)],
    gpu: ([a, b]) => concat([a.sign(), a.floor(), b.sign(), b.floor()]),
    ref: ([a, b]) => {
      const f = (x: NDArray, fn: (v: number) => number) => new NDArray(x.shape, x.data.map(fn));
      return R.concat([f(a, Math.sign), f(a, Math.floor), f(b, Math.sign), f(b, Math.floor)], 0);
    },
    fwd: EXACT,
    grad: null,
  });

  check({
    label: 'saturating unary ops at large |x| stay finite',
    make: (rng) => [randF32([7, 37], rng, -60, 60)],
    gpu: ([x]) => concat([x.tanh(), x.sigmoid(), x.silu(), x.gelu()]),
    ref: ([x]) => R.concat([R.tanh(x), R.sigmoid(x), R.silu(x), R.gelu(x)], 0),
    fwd: { rtol: 1e-5, atol: 1e-6 },
    grad: null,
  });

  check({
    label: 'exp on [257, 300] (> 65536 elements, many workgroups)',
    make: (rng) => [randF32([257, 300], rng, -2, 2)],
    gpu: ([x]) => x.exp(),
    ref: ([x]) => R.exp(x),
    fwd: FWD_LOOSE,
    gradRef: ([x], seed) => [R.mul(seed, R.exp(x))],
  });

  // ---- elementwise binary ----

  for (const [op, { ref, make }] of Object.entries(BINARY_REF)) {
    // every op with both operands broadcast; more broadcast patterns for mul and div (whose
    // gradients read the other operand, so a wrong broadcast index shows in both gradients)
    const patterns = [[[7, 1, 33], [5, 1]]];
    if (op === 'mul' || op === 'div') patterns.push([[2, 1, 4, 1], [3, 1, 5]], [[33, 9], [33, 9]], [[1], [4, 7]]);
    for (const [sa, sb] of patterns) {
      check({
        label: `${op} [${sa}] with [${sb}]`,
        make: (rng) => make(sa, sb, rng),
        gpu: ([a, b]) => binary(op as keyof typeof BINARY, a, b),
        ref: ([a, b]) => ref(a, b),
        fwd: FWD_LOOSE,
      });
    }
  }

  const SCALAR_CASES: [string, (x: Tensor) => Tensor, (x: NDArray) => NDArray, number, number][] = [
    ['x.add(3)', (x) => x.add(3), (x) => R.add(x, NDArray.scalar(3)), -2, 2],
    ['x.sub(-1.5)', (x) => x.sub(-1.5), (x) => R.sub(x, NDArray.scalar(-1.5)), -2, 2],
    ['x.mul(-2.5)', (x) => x.mul(-2.5), (x) => R.mul(x, NDArray.scalar(-2.5)), -2, 2],
    ['x.div(4)', (x) => x.div(4), (x) => R.div(x, NDArray.scalar(4)), -2, 2],
    ['x.pow(2)', (x) => x.pow(2), (x) => R.pow(x, NDArray.scalar(2)), -2, 2],
    ['x.pow(3) (negative base)', (x) => x.pow(3), (x) => R.pow(x, NDArray.scalar(3)), -2, -0.5],
    ['x.pow(0.5)', (x) => x.pow(0.5), (x) => R.pow(x, NDArray.scalar(0.5)), 0.3, 2],
    ['x.pow(-1)', (x) => x.pow(-1), (x) => R.pow(x, NDArray.scalar(-1)), 0.3, 2],
    ['x.maximum(0.3)', (x) => x.maximum(0.3), (x) => R.maximum(x, NDArray.scalar(0.3)), -2, 2],
    ['x.minimum(0.3)', (x) => x.minimum(0.3), (x) => R.minimum(x, NDArray.scalar(0.3)), -2, 2],
    ['2 - x', (x) => binary('sub', 2, x), (x) => R.sub(NDArray.scalar(2), x), -2, 2],
    ['1 / x', (x) => binary('div', 1, x), (x) => R.div(NDArray.scalar(1), x), 0.5, 2],
    ['2 ** x', (x) => binary('pow', 2, x), (x) => R.pow(NDArray.scalar(2), x), -2, 2],
    ['max(0.5, x)', (x) => binary('maximum', 0.5, x), (x) => R.maximum(NDArray.scalar(0.5), x), -2, 2],
  ];
  for (const [label, f, ref, lo, hi] of SCALAR_CASES) {
    check({ label: `${label} on [5, 33]`, make: (rng) => [randF32([5, 33], rng, lo, hi)], gpu: ([x]) => f(x), ref: ([x]) => ref(x), fwd: FWD_LOOSE });
  }

  check({
    label: 'pow special values (negative bases, zero, integer and fractional exponents)',
    make: () => [new NDArray([6, 1], [-2, -1.5, -1, 0, 0.5, 2]), new NDArray([7], [0, 1, 2, 3, -1, -2, 0.5])],
    gpu: ([a, b]) => a.pow(b),
    // includes pow(0, -1) = inf, pow(0, 0) = 1 and NaN for a negative base with a fractional exponent
    ref: ([a, b]) => R.pow(a, b),
    fwd: { rtol: 1e-5, atol: 1e-6 },
    grad: null,
  });

  it('pow gradient for a negative base with an integer exponent', () =>
    runCase(getGpu(), {
      label: 'pow grad negative base',
      make: (rng) => [randF32([4, 5], rng, -2, -0.5), new NDArray([5], [1, 2, 3, -1, -2])],
      gpu: ([a, b]) => a.pow(b),
      ref: ([a, b]) => R.pow(a, b),
      fwd: FWD_LOOSE,
      diff: [0],
    }));

  it('maximum and minimum send a tie gradient to exactly one side', async () => {
    await scope(async () => {
      const a = tensor([1, 2, 3, -1], [4], { requiresGrad: true });
      const b = tensor([1, 0, 3, 5], [4], { requiresGrad: true });
      const seed = Float32Array.from([0.5, -2, 3, 7]);
      for (const op of ['maximum', 'minimum'] as const) {
        a.grad = null;
        b.grad = null;
        binary(op, a, b).backward(tensor(seed, [4]));
        const ga = await readF64(a.grad!);
        const gb = await readF64(b.grad!);
        // ties (indices 0 and 2) must pass the seed through once, not twice or never
        for (const i of [0, 2]) expect(ga[i] + gb[i], `${op} tie at ${i}`).toBe(seed[i]);
        for (const i of [0, 2]) expect(ga[i] * gb[i], `${op} tie at ${i} split`).toBe(0);
        a.grad!.dispose();
        b.grad!.dispose();
      }
      a.grad = null;
      b.grad = null;
    });
  });

  // comparisons: data from a small set so that equal pairs occur
  const CMP: [string, (a: NDArray, b: NDArray) => NDArray][] = [
    ['eq', R.eq],
    ['ne', R.ne],
    ['lt', R.lt],
    ['le', R.le],
    ['gt', R.gt],
    ['ge', R.ge],
  ];
  for (const [op, ref] of CMP) {
    check({
      label: `${op} [7, 1, 33] with [5, 1] and with a scalar`,
      make: (rng) => [randChoice([7, 1, 33], rng, [-1, 0, 0.5, 1]), randChoice([5, 1], rng, [-1, 0, 0.5, 1])],
      gpu: ([a, b]) => concat([binary(op as keyof typeof BINARY, a, b).reshape([-1]), binary(op as keyof typeof BINARY, a, 0.5).reshape([-1])]),
      ref: ([a, b]) => R.concat([R.reshape(ref(a, b), [-1]), R.reshape(ref(a, NDArray.scalar(0.5)), [-1])], 0),
      fwd: EXACT,
      grad: null,
    });
  }

  it('comparisons pass no gradient', async () => {
    await scope(async () => {
      const a = tensor([1, 2, 3], [3], { requiresGrad: true });
      a.lt(2).add(a.mul(0)).sum().backward();
      const g = await readF64(a.grad!);
      expect(Array.from(g)).toEqual([0, 0, 0]);
      a.grad!.dispose();
    });
  });

  check({
    label: 'where cond [7, 1], a [1, 33], b [7, 33]',
    make: (rng) => [randChoice([7, 1], rng, [0, 1, 2, -1]), randF32([1, 33], rng), randF32([7, 33], rng)],
    gpu: ([c, a, b]) => c.where(a, b),
    ref: ([c, a, b]) => R.where(c, a, b),
    fwd: EXACT,
    diff: [1, 2],
  });
  check({
    label: 'where with scalar branches',
    make: (rng) => [randChoice([5, 6], rng, [0, 1]), randF32([6], rng)],
    gpu: ([c, a]) => concat([c.where(a, -3), c.where(2.5, a)]),
    ref: ([c, a]) => R.concat([R.where(c, a, NDArray.scalar(-3)), R.where(c, NDArray.scalar(2.5), a)], 0),
    fwd: EXACT,
    diff: [1],
  });

  check({
    label: 'add [33, 1, 257] + [1, 9, 257] (76329 broadcast elements)',
    make: (rng) => [randF32([33, 1, 257], rng), randF32([1, 9, 257], rng)],
    gpu: ([a, b]) => a.add(b).mul(b),
    ref: ([a, b]) => R.mul(R.add(a, b), b),
    fwd: FWD,
    gradRef: ([a, b], seed) => [sumToRef(R.mul(seed, b), a.shape), sumToRef(R.mul(seed, R.add(a, R.mul(b, NDArray.scalar(2)))), b.shape)],
  });

  // ---- reductions ----
  const REDUCE: [string, (x: Tensor, axes: number | number[] | undefined, k: boolean) => Tensor, typeof R.sum][] = [
    ['sum', (x, a, k) => x.sum(a, k), R.sum],
    ['mean', (x, a, k) => x.mean(a, k), R.mean],
    ['max', (x, a, k) => x.max(a, k), R.max],
    ['var', (x, a, k) => x.var(a, k), R.variance],
  ];
  // all axes; a middle axis (strided, kept axes on both sides); the last axis given as -1; two
  // non-adjacent axes
  const AXES: (number | number[] | undefined)[] = [undefined, 1, -1, [0, 2]];
  for (const [op, f, ref] of REDUCE) {
    for (const axes of AXES) {
      for (const keepdims of [false, true]) {
        check({
          label: `${op} [3, 4, 5] axes ${JSON.stringify(axes) ?? 'all'} keepdims ${keepdims}`,
          make: (rng) => [randF32([3, 4, 5], rng, -2, 2)],
          gpu: ([x]) => f(x, axes, keepdims),
          ref: ([x]) => ref(x, axes, keepdims),
          fwd: FWD_LOOSE,
        });
      }
    }
  }

  it('max shares the gradient between tied maxima', async () => {
    await scope(async () => {
      const x = tensor([1, 3, 3, 2, -1, -1, -5, -1], [2, 4], { requiresGrad: true });
      x.max(1).backward(tensor([2, 3], [2]));
      expect(Array.from(await readF64(x.grad!))).toEqual([0, 1, 1, 0, 1, 1, 0, 1]);
      x.grad!.dispose();
    });
  });

  const sumGrad = (shape: number[], axes: number[], scale = 1) => (seed: NDArray) =>
    R.mul(R.expand(R.reshape(seed, shape.map((d, i) => (axes.includes(i) ? 1 : d))), shape), NDArray.scalar(scale));
  const maxGrad = (x: NDArray, axes: number[], seed: NDArray) => {
    const keep = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
    const m = R.max(x, axes, true);
    const mask = R.eq(x, m);
    return R.div(R.mul(mask, R.reshape(seed, keep)), R.sum(mask, axes, true));
  };
  // large reductions: the two-pass chunked path (few outputs, >= 4096 reduced) and many outputs
  const BIG_REDUCE: [string, number[], number[], 'sum' | 'mean' | 'max' | 'var', number, number][] = [
    ['sum [3, 5000] axis 1 (chunked)', [3, 5000], [1], 'sum', -1, 1],
    ['mean [5000, 3] axis 0 (chunked, strided)', [5000, 3], [0], 'mean', -1, 1],
    ['sum [2, 3, 5000] axes 0, 2 (chunked over two dims)', [2, 3, 5000], [0, 2], 'sum', -1, 1],
    ['max [70001] all, negative data (chunked)', [70001], [0], 'max', -3, -1],
    ['max [4, 4096] axis 1 (chunked at the threshold)', [4, 4096], [1], 'max', -1, 1],
    ['var [2, 4097] axis 1 (chunked)', [2, 4097], [1], 'var', -1, 3],
    ['sum [3000, 37] axis 1 (many outputs)', [3000, 37], [1], 'sum', -1, 1],
    ['mean [33, 257, 7] axis 1 (many outputs, strided)', [33, 257, 7], [1], 'mean', -1, 1],
    ['sum [2, 33, 5, 257] axes 0, 2', [2, 33, 5, 257], [0, 2], 'sum', -1, 1],
    ['max [257, 300] axis 0', [257, 300], [0], 'max', -1, 1],
  ];
  for (const [label, shape, axes, op, lo, hi] of BIG_REDUCE) {
    const n = axes.reduce((a, d) => a * shape[d], 1);
    check({
      label,
      make: (rng) => [randF32(shape, rng, lo, hi)],
      gpu: ([x]) => (op === 'var' ? x.var(axes) : x[op](axes)),
      ref: ([x]) => (op === 'var' ? R.variance(x, axes) : R[op](x, axes)),
      fwd: op === 'max' ? EXACT : { rtol: 1e-4, atol: 2e-5, scaled: true },
      gradRef:
        op === 'var'
          ? ([x], seed) => [R.mul(sumGrad(shape, axes, 2 / n)(seed), R.sub(x, R.mean(x, axes, true)))]
          : op === 'max'
            ? ([x], seed) => [maxGrad(x, axes, seed)]
            : (_, seed) => [sumGrad(shape, axes, op === 'mean' ? 1 / n : 1)(seed)],
    });
  }

  it('reductions reject bad axes, naming the op and shape', async () => {
    await scope(() => {
      const x = zeros([2, 3]);
      expect(() => x.sum(2)).toThrow(/sum: axis 2 is out of range for shape \[2, 3\]/);
      expect(() => x.max(-3)).toThrow(/max: axis -3/);
      expect(() => x.mean([0, -2])).toThrow(/mean: repeated axis/);
    });
  });

  it('reductions over an empty axis: sum 0, mean NaN, max a clear error; broadcasts over empty tensors differentiate', async () => {
    await scope(async () => {
      const x = zeros([0, 3], { requiresGrad: true });
      const s = x.sum(0);
      expect(s.shape).toEqual([3]);
      expect(Array.from(await readF64(s))).toEqual([0, 0, 0]);
      expect(Array.from(await readF64(x.sum([0, 1], true)))).toEqual([0]);
      expect(x.mean().shape).toEqual([]);
      expect(Array.from(await readF64(x.mean()))).toEqual([NaN]);
      expect(Array.from(await readF64(x.var(0)))).toEqual([NaN, NaN, NaN]);
      expect(x.max(1).shape).toEqual([0]); // a non-empty axis of an empty tensor: nothing to reduce
      expect(() => x.max(0)).toThrow(/max: cannot reduce over the empty axes of shape \[0, 3\]/);
      // [1, 3] + [0, 3] -> [0, 3]: the gradient of the broadcast operand sums no rows
      const b = tensor([1, 2, 3], [1, 3], { requiresGrad: true });
      x.add(b).sum().backward();
      expect(b.grad!.shape).toEqual([1, 3]);
      expect(Array.from(await readF64(b.grad!))).toEqual([0, 0, 0]);
      expect(x.grad!.shape).toEqual([0, 3]);
      x.grad!.dispose();
      b.grad!.dispose();
    });
  });

  // ---- matmul ----
  // (every distinct matmul shape compiles three GEMM pipelines, which is slow on a software GPU)
  const MATMUL: [number[], number[]][] = [
    // batch dims broadcast on both sides and ranks differ: both gradients sum over a batch dim
    [[2, 1, 3, 4], [5, 4, 6]],
    // M = N = 1; its gradients are products with K = 1 ([1, 1] @ [1, 33] and [33, 1] @ [1, 1])
    [[1, 33], [33, 1]],
  ];
  for (const [sa, sb] of MATMUL) {
    check({
      label: `matmul [${sa}] @ [${sb}]`,
      make: (rng) => [randF32(sa, rng), randF32(sb, rng)],
      gpu: ([a, b]) => a.matmul(b),
      ref: ([a, b]) => R.matmul(a, b),
    });
  }
  const matmulGrad = ([a, b]: NDArray[], seed: NDArray) => [
    sumToRef(R.matmul(seed, R.transpose(b)), a.shape),
    sumToRef(R.matmul(R.transpose(a), seed), b.shape),
  ];
  for (const [sa, sb] of [
    [[33, 257], [257, 33]], // K = 257, few outputs
    [[2, 3, 65, 33], [3, 33, 70]], // batch broadcast, odd M and N over several workgroups
  ]) {
    check({
      label: `matmul [${sa}] @ [${sb}] (analytic gradient)`,
      make: (rng) => [randF32(sa, rng), randF32(sb, rng)],
      gpu: ([a, b]) => a.matmul(b),
      ref: ([a, b]) => R.matmul(a, b),
      fwd: { rtol: 1e-4, atol: 1e-5, scaled: true },
      gradRef: matmulGrad,
    });
  }

  it('matmul with K = 0 gives zeros; bad shapes are reported', async () => {
    await scope(async () => {
      const y = zeros([3, 0]).matmul(zeros([0, 4]));
      expect(y.shape).toEqual([3, 4]);
      expect(Array.from(await readF64(y))).toEqual(new Array(12).fill(0));
      expect(() => zeros([3, 4]).matmul(zeros([5, 2]))).toThrow(/matmul: inner dimensions differ: \[3, 4\] @ \[5, 2\]/);
      expect(() => zeros([4]).matmul(zeros([4, 2]))).toThrow(/matmul: operands must have at least 2 dimensions, got \[4\] and \[4, 2\]/);
      expect(() => zeros([2, 3, 4]).matmul(zeros([5, 4, 2]))).toThrow(/matmul: shapes \[2\] and \[5\] cannot be broadcast/);
    });
  });

  // ---- shape ops ----
  const SHAPE: Case[] = [
    { label: 'reshape [3, 4, 5] -> [5, -1]', make: (r) => [randF32([3, 4, 5], r)], gpu: ([x]) => x.reshape([5, -1]), ref: ([x]) => R.reshape(x, [5, 12]) },
    { label: 'reshape [3, 4, 5] -> [60] -> [2, 30]', make: (r) => [randF32([3, 4, 5], r)], gpu: ([x]) => x.reshape([60]).mul(2).reshape([2, 30]), ref: ([x]) => R.mul(R.reshape(x, [2, 30]), NDArray.scalar(2)) },
    { label: 'transpose [3, 4, 5] (last two)', make: (r) => [randF32([3, 4, 5], r)], gpu: ([x]) => x.transpose(), ref: ([x]) => R.transpose(x) },
    { label: 'transpose [3, 4, 5] axes 0, 2', make: (r) => [randF32([3, 4, 5], r)], gpu: ([x]) => x.transpose(0, 2), ref: ([x]) => R.permute(x, [2, 1, 0]) },
    { label: 'permute [2, 3, 4, 5] by [3, 0, -2, 1]', make: (r) => [randF32([2, 3, 4, 5], r)], gpu: ([x]) => x.permute([3, 0, -2, 1]), ref: ([x]) => R.permute(x, [3, 0, 2, 1]) },
    { label: 'permute [1, 7, 1, 3] by [2, 3, 0, 1]', make: (r) => [randF32([1, 7, 1, 3], r)], gpu: ([x]) => x.permute([2, 3, 0, 1]), ref: ([x]) => R.permute(x, [2, 3, 0, 1]) },
    { label: 'expand [3, 1, 5] -> [2, 3, 7, 5]', make: (r) => [randF32([3, 1, 5], r)], gpu: ([x]) => x.expand([2, 3, 7, 5]), ref: ([x]) => R.expand(x, [2, 3, 7, 5]) },
    { label: 'expand [5] -> [4, 5] and [1] -> [33]', make: (r) => [randF32([5], r), randF32([1], r)], gpu: ([x, s]) => concat([x.expand([4, 5]).reshape([-1]), s.expand([33])]), ref: ([x, s]) => R.concat([R.reshape(R.expand(x, [4, 5]), [-1]), R.expand(s, [33])], 0) },
    { label: 'slice [7, 33, 5] [2:5, 10:33, :]', make: (r) => [randF32([7, 33, 5], r)], gpu: ([x]) => x.slice([2, 10], [5, 33]), ref: ([x]) => R.slice(x, [2, 10, 0], [5, 33, 5]) },
    { label: 'slice [7, 33] single element and empty-free corner', make: (r) => [randF32([7, 33], r)], gpu: ([x]) => concat([x.slice([6, 32], [7, 33]).reshape([1]), x.slice([0, 0], [1, 1]).reshape([1])]), ref: ([x]) => R.concat([R.reshape(R.slice(x, [6, 32], [7, 33]), [1]), R.reshape(R.slice(x, [0, 0], [1, 1]), [1])], 0) },
    { label: 'concat axis 1 of [2, 3, 4], [2, 1, 4], [2, 5, 4]', make: (r) => [randF32([2, 3, 4], r), randF32([2, 1, 4], r), randF32([2, 5, 4], r)], gpu: (xs) => concat(xs, 1), ref: (xs) => R.concat(xs, 1) },
    { label: 'concat axis -1 of [3, 2], [3, 7]', make: (r) => [randF32([3, 2], r), randF32([3, 7], r)], gpu: (xs) => concat(xs, -1), ref: (xs) => R.concat(xs, -1) },
    { label: 'concat axis 0 of [1, 5], [4, 5]', make: (r) => [randF32([1, 5], r), randF32([4, 5], r)], gpu: (xs) => concat(xs), ref: (xs) => R.concat(xs, 0) },
    { label: 'pad [3, 4, 5] by [[1, 2], [0, 3], [2, 0]] with 0.5', make: (r) => [randF32([3, 4, 5], r)], gpu: ([x]) => x.pad([[1, 2], [0, 3], [2, 0]], 0.5), ref: ([x]) => R.pad(x, [[1, 2], [0, 3], [2, 0]], 0.5) },
    { label: 'pad [3, 4] first axis only', make: (r) => [randF32([3, 4], r)], gpu: ([x]) => x.pad([[2, 1]]), ref: ([x]) => R.pad(x, [[2, 1], [0, 0]]) },
    { label: 'clone [7, 5]', make: (r) => [randF32([7, 5], r)], gpu: ([x]) => x.clone(), ref: ([x]) => x },
  ];
  for (const c of SHAPE) check({ fwd: EXACT, grad: { rtol: 1e-5, atol: 1e-6, scaled: true }, ...c });

  check({
    label: 'permute [33, 65, 31] by [2, 0, 1] (66495 elements)',
    make: (r) => [randF32([33, 65, 31], r)],
    gpu: ([x]) => x.permute([2, 0, 1]),
    ref: ([x]) => R.permute(x, [2, 0, 1]),
    fwd: EXACT,
    gradRef: (_, seed) => [R.permute(seed, [1, 2, 0])],
    grad: EXACT,
  });
  check({
    label: 'expand [1, 257, 1] -> [3, 257, 129] then slice and pad',
    make: (r) => [randF32([1, 257, 1], r)],
    gpu: ([x]) => x.expand([3, 257, 129]).slice([1, 7, 3], [3, 250, 128]).pad([[0, 1], [2, 0], [1, 1]]),
    ref: ([x]) => R.pad(R.slice(R.expand(x, [3, 257, 129]), [1, 7, 3], [3, 250, 128]), [[0, 1], [2, 0], [1, 1]]),
    fwd: EXACT,
    gradRef: ([x], seed) => [sumToRef(R.pad(R.slice(seed, [0, 2, 1], [2, 245, 126]), [[1, 0], [7, 7], [3, 1]]), x.shape)],
  });

  it('int32 tensors keep their bits through shape ops', async () => {
    // includes bit patterns that are NaN, infinity and denormals when read as float32
    const values = [0, 1, -1, 5, 2147483647, -2147483648, 0x7fc00001, 0x7f800000, -8388607, 123456789, 7, -42];
    await scope(async () => {
      const x = tensor(Int32Array.from(values), [3, 4]);
      const ref = new NDArray([3, 4], values);
      const results: [string, Tensor, NDArray][] = [
        ['reshape', x.reshape([4, 3]), R.reshape(ref, [4, 3])],
        ['permute', x.transpose(), R.transpose(ref)],
        ['expand', x.reshape([3, 1, 4]).expand([3, 2, 4]), R.expand(R.reshape(ref, [3, 1, 4]), [3, 2, 4])],
        ['slice', x.slice([1, 1], [3, 4]), R.slice(ref, [1, 1], [3, 4])],
        ['clone', x.clone(), ref],
        ['concat', concat([x, x.slice([0, 0], [1, 4])]), R.concat([ref, R.slice(ref, [0, 0], [1, 4])], 0)],
        ['pad', x.pad([[1, 0], [0, 1]]), R.pad(ref, [[1, 0], [0, 1]])],
        ['pad with a value', x.pad([[0, 0], [2, 0]], -3), R.pad(ref, [[0, 0], [2, 0]], -3)],
      ];
      for (const [what, t, expected] of results) {
        expect(t.dtype, `${what} dtype`).toBe('i32');
        expect(t.shape, `${what} shape`).toEqual(expected.shape);
        expect(Array.from(await t.toArray()), what).toEqual(Array.from(expected.data));
      }
    });
  });

  it('shape ops report bad arguments with the op and shapes', async () => {
    await scope(() => {
      const x = zeros([2, 3, 4]);
      expect(() => x.reshape([5, -1])).toThrow(/reshape: cannot reshape \[2, 3, 4\]/);
      expect(() => x.reshape([-1, -1])).toThrow(/reshape: more than one -1/);
      expect(() => x.permute([0, 0, 1])).toThrow(/permute: \[0, 0, 1\] is not a permutation of the 3 axes of \[2, 3, 4\]/);
      expect(() => x.expand([2, 5, 4])).toThrow(/expand: cannot expand \[2, 3, 4\] to \[2, 5, 4\]/);
      expect(() => x.slice([0, 2], [2, 4])).toThrow(/slice: .* out of range for shape \[2, 3, 4\]/);
      expect(() => concat([x, zeros([2, 4, 4])], 2)).toThrow(/concat: shapes \[2, 3, 4\], \[2, 4, 4\] differ outside axis 2/);
      expect(() => x.pad([[-1, 0]])).toThrow(/pad: pads must be non-negative/);
      expect(() => x.add(zeros([5]))).toThrow(/add: shapes \[2, 3, 4\] and \[5\] cannot be broadcast together/);
    });
  });

  it('float ops reject int32 tensors instead of reading their bits as floats', async () => {
    await scope(() => {
      const i = tensor(Int32Array.from([1, 2, 3, 4]), [2, 2]);
      const f = ones([2, 2]);
      expect(() => i.sum()).toThrow(/sum: expects float32 tensors, got i32 of shape \[2, 2\]/);
      expect(() => i.mean(0)).toThrow(/mean: expects float32/);
      expect(() => i.max()).toThrow(/max: expects float32/);
      expect(() => i.var()).toThrow(/var: expects float32/);
      expect(() => i.matmul(f)).toThrow(/matmul: expects float32/);
      expect(() => f.matmul(i)).toThrow(/matmul: expects float32/);
      expect(() => i.softmax()).toThrow(/softmax: expects float32/);
      expect(() => i.logSoftmax()).toThrow(/logSoftmax: expects float32/);
      expect(() => i.where(f, f)).toThrow(/where: expects float32/);
      expect(() => f.where(i, 0)).toThrow(/where: expects float32/);
      const i4 = i.reshape([1, 1, 2, 2]);
      expect(() => i4.conv2d(ones([1, 1, 1, 1]))).toThrow(/conv2d: expects float32/);
      expect(() => ones([1, 1, 2, 2]).conv2d(i.reshape([4, 1, 1, 1]))).toThrow(/conv2d: expects float32/);
      expect(() => i4.upsample2x()).toThrow(/upsample2x: expects float32/);
      expect(() => i4.avgPool2x()).toThrow(/avgPool2x: expects float32/);
      expect(() => tensor(Int32Array.from([0]), [1]).gather(i)).toThrow(/embedding: expects a table \[V, D\] and int32 indices, got i32 \[2, 2\]/);
      expect(() => concat([f, i])).toThrow(/concat: tensors must share one dtype and device, got f32 \[2, 2\], i32 \[2, 2\]/);
    });
  });

  it('shape ops reject non-integer axes, offsets and sizes, and more axes than the tensor has', async () => {
    await scope(() => {
      const x = zeros([2, 3]);
      // a non-integer axis used to be accepted: concat of two [2, 3] gave [2, 3]
      expect(() => concat([x, x], 0.5)).toThrow(/concat: axis 0.5 out of range for 2-d tensors/);
      expect(() => concat([x, x], NaN)).toThrow(/concat: axis NaN out of range/);
      expect(() => x.slice([0.5], [2])).toThrow(/slice: \[\[0.5\], \[2\]\) is out of range for shape \[2, 3\]/);
      expect(() => x.slice([0, 0, 0], [1, 1, 1])).toThrow(/slice: .* has more axes than shape \[2, 3\]/);
      expect(() => x.pad([[1, 1], [0, 0], [1, 1]])).toThrow(/pad: 3 \[before, after\] pairs for the 2 axes of \[2, 3\]/);
      expect(() => x.permute([0.5, 1])).toThrow(/permute: \[0.5, 1\] is not a permutation of the 2 axes of \[2, 3\]/);
      expect(() => x.transpose(0.5, 1)).toThrow(/transpose: axes 0.5, 1 out of range for \[2, 3\]/);
      expect(() => x.reshape([2, 1, 3]).expand([2, -1, 3])).toThrow(/expand: cannot expand \[2, 1, 3\] to \[2, -1, 3\]/);
      expect(() => x.reshape([2, 1, 3]).expand([2, NaN, 3])).toThrow(/expand: cannot expand/);
      expect(() => x.softmax(2)).toThrow(/softmax: axis 2 is out of range for shape \[2, 3\]/);
      expect(() => x.logSoftmax(-3)).toThrow(/logSoftmax: axis -3 is out of range/);
    });
  });

  // ---- creation ----
  it('full, zeros, ones and arange', async () => {
    await scope(async () => {
      expect(Array.from(await readF64(full([2, 3], -1.25)))).toEqual(new Array(6).fill(-1.25));
      expect(Array.from(await readF64(zeros([7])))).toEqual(new Array(7).fill(0));
      expect(Array.from(await readF64(ones([1, 257])))).toEqual(new Array(257).fill(1));
      expect(Array.from(await readF64(arange(5)))).toEqual([0, 1, 2, 3, 4]);
      expect(Array.from(await readF64(arange(1, 2, 0.25)))).toEqual([1, 1.25, 1.5, 1.75]);
      const ai = arange(10, 0, -3, { dtype: 'i32' });
      expect(ai.dtype).toBe('i32');
      expect(Array.from(await ai.toArray())).toEqual([10, 7, 4, 1]);
      expect(() => arange(0, 3, 0.5, { dtype: 'i32' })).toThrow(/arange: start 0 and step 0.5 do not give int32 values/);
      expect(() => arange(Number.NaN)).toThrow(/arange: start, stop and step must be finite/);
      expect(() => arange(0, 3, 0)).toThrow(/step nonzero/);
      // from plain JavaScript: a missing number is named, not compiled into invalid WGSL
      expect(() => full([2], undefined as unknown as number)).toThrow(/expected a number for a WGSL f32 constant, got undefined/);
      const fi = full([3], -7, { dtype: 'i32' });
      expect(Array.from(await fi.toArray())).toEqual([-7, -7, -7]);
      expect(() => tensor([1, 2, 3], [2, 2])).toThrow(/3 values do not fill shape \[2, 2\]/);
    });
  });

  it('int32 creation: the full int32 range, out-of-range values refused, dtype honoured for typed arrays', async () => {
    await scope(async () => {
      // -2147483648 has no WGSL literal (2147483648i does not exist)
      expect(Array.from(await full([2], -2147483648, { dtype: 'i32' }).toArray())).toEqual([-2147483648, -2147483648]);
      expect(Array.from(await full([1], 2147483647, { dtype: 'i32' }).toArray())).toEqual([2147483647]);
      expect(Array.from(await tensor(Int32Array.from([5]), [1, 1]).pad([[0, 0], [1, 0]], -2147483648).toArray())).toEqual([-2147483648, 5]);
      expect(() => full([2], 3e9, { dtype: 'i32' })).toThrow(/full: 3000000000 is not an int32 value/);
      expect(() => full([2], 1.5, { dtype: 'i32' })).toThrow(/full: 1.5 is not an int32 value/);
      const fromF32 = tensor(Float32Array.from([1, -2]), [2], { dtype: 'i32' });
      expect(fromF32.dtype).toBe('i32');
      expect(Array.from(await fromF32.toArray())).toEqual([1, -2]);
      const fromI32 = tensor(Int32Array.from([3, 4]), [2], { dtype: 'f32' });
      expect(fromI32.dtype).toBe('f32');
      expect(Array.from(await fromI32.toArray())).toEqual([3, 4]);
    });
  });

  // compiling a pipeline costs ~0.5 s on a software GPU: kernels whose only shape dependence is their
  // size read it at run time, so a new size reuses the compiled pipeline
  it('one pipeline serves every size of a same-shape elementwise op, a flat concat and rand', async () => {
    const gpu = getGpu();
    await scope(async () => {
      const sizes = [8, 1000, 70_004];
      const sumOf = (n: number) => {
        const a = Float32Array.from({ length: n }, (_, i) => i * 0.5);
        const b = Float32Array.from({ length: n }, (_, i) => 1 - i);
        return { y: tensor(a, [n]).add(tensor(b, [n])), want: a.map((v, i) => Math.fround(v + b[i])) };
      };
      const first = sumOf(4);
      expect(Array.from(await first.y.toArray())).toEqual(Array.from(first.want));
      const before = gpu.counters.pipelines;
      for (const n of sizes) {
        const { y, want } = sumOf(n);
        expect(Array.from(await y.toArray())).toEqual(Array.from(want));
      }
      expect(gpu.counters.pipelines).toBe(before);

      const flat = (n: number, v: number) => tensor(new Array(n).fill(v), [n]);
      expect(Array.from(await concat([flat(1, 1), flat(3, 2)]).toArray())).toEqual([1, 2, 2, 2]);
      const beforeConcat = gpu.counters.pipelines;
      const c = await concat([flat(2, 3), flat(5, 4), flat(1, 5)]).toArray();
      expect(Array.from(c)).toEqual([3, 3, 4, 4, 4, 4, 4, 5]);
      expect(gpu.counters.pipelines).toBe(beforeConcat);

      await rand([16], { lo: -1, hi: 1 }).toArray();
      const beforeRand = gpu.counters.pipelines;
      const r = await rand([5000], { lo: 2, hi: 3 }).toArray();
      expect(Math.min(...r)).toBeGreaterThanOrEqual(2);
      expect(Math.max(...r)).toBeLessThan(3);
      expect(gpu.counters.pipelines).toBe(beforeRand);
    });
  });

  it('a few thousand dispatches with uniform blocks go to the GPU in one submit', async () => {
    const gpu = getGpu();
    await scope(async () => {
      await rand([1000]).toArray();
      const submits = gpu.counters.submits;
      const dispatches = gpu.counters.dispatches;
      let last = rand([1000]);
      for (let i = 1; i < 3000; i++) last = rand([1000], { lo: i, hi: i + 1 }); // one kernel, a uniform block each
      expect(gpu.counters.dispatches - dispatches).toBe(3000);
      expect(gpu.counters.submits).toBe(submits);
      expect(Math.floor((await last.toArray())[999])).toBe(2999);
      expect(gpu.counters.submits).toBe(submits + 1);
    });
  });

  // ---- softmax family ----
  for (const [shape, axis] of [
    [[7, 33], -1],
    [[3, 5, 7], 1],
  ] as [number[], number][]) {
    check({ label: `softmax [${shape}] axis ${axis}`, make: (r) => [randF32(shape, r, -3, 3)], gpu: ([x]) => x.softmax(axis), ref: ([x]) => R.softmax(x, axis) });
    check({ label: `logSoftmax [${shape}] axis ${axis}`, make: (r) => [randF32(shape, r, -3, 3)], gpu: ([x]) => x.logSoftmax(axis), ref: ([x]) => R.logSoftmax(x, axis) });
  }
  check({
    label: 'softmax and logSoftmax of large logits stay finite',
    make: (r) => [randF32([5, 9], r, -300, 300)],
    gpu: ([x]) => concat([x.softmax(), x.logSoftmax()]),
    ref: ([x]) => R.concat([R.softmax(x, -1), R.logSoftmax(x, -1)], 0),
    fwd: { rtol: 1e-5, atol: 1e-5, scaled: true },
    grad: null,
  });

  for (const [n, c] of [
    [7, 33],
    [1, 5],
  ]) {
    it(`crossEntropy [${n}, ${c}]`, () => {
      const labels = randInts(n, 0, c, makeRng(n * 100 + c));
      return runCase(getGpu(), {
        label: `crossEntropy [${n}, ${c}]`,
        make: (r) => [randF32([n, c], r, -3, 3)],
        gpu: ([x]) => x.crossEntropy(tensor(labels, [n])),
        ref: ([x]) => R.crossEntropy(x, labels),
      });
    });
  }
  it('crossEntropy rejects float labels', async () => {
    await scope(() => {
      expect(() => zeros([2, 3]).crossEntropy(zeros([2]))).toThrow(/crossEntropy: expects logits \[N, C\] and int32 labels \[N\], got \[2, 3\] and f32 \[2\]/);
    });
  });
  it('crossEntropy with a label outside [0, C) is NaN, not a smaller loss', async () => {
    await scope(async () => {
      for (const bad of [3, -1]) {
        const loss = zeros([2, 3]).crossEntropy(tensor(Int32Array.from([0, bad]), [2]));
        expect(Number.isNaN(await loss.item())).toBe(true);
      }
      expect(await zeros([2, 3]).crossEntropy(tensor(Int32Array.from([0, 2]), [2])).item()).toBeCloseTo(Math.log(3), 6);
    });
  });

  // ---- conv2d ----
  // (every distinct geometry compiles three GEMM pipelines, which is slow on a software GPU)
  const CONV: [string, number[], number[], boolean, R.Conv2dOptions][] = [
    ['3x3 s1 p1 bias', [2, 3, 7, 7], [4, 3, 3, 3], true, { padding: 1 }],
    ['3x3 s2 p1 groups 2 bias', [2, 4, 7, 7], [6, 2, 3, 3], true, { stride: 2, padding: 1, groups: 2 }],
    ['3x3 depthwise (channel multiplier 2) s2 p1', [1, 3, 7, 5], [6, 1, 3, 3], false, { stride: 2, padding: 1, groups: 3 }],
    ['1x1 bias', [2, 5, 7, 7], [3, 5, 1, 1], true, {}],
    // stride 2 without padding along W: the last input column is never read
    ['3x1 stride [1, 2] padding [1, 0] bias', [1, 2, 5, 8], [3, 2, 3, 1], true, { stride: [1, 2], padding: [1, 0] }],
  ];
  for (const [what, sx, sw, withBias, opts] of CONV) {
    check({
      label: `conv2d ${what} x [${sx}] w [${sw}]`,
      make: (r) => [randF32(sx, r), randF32(sw, r), ...(withBias ? [randF32([sw[0]], r)] : [])],
      gpu: ([x, w, b]) => x.conv2d(w, b ?? null, opts),
      ref: ([x, w, b]) => R.conv2d(x, w, b ?? null, opts),
    });
  }
  for (const [what, sx, sw, opts] of [['3x3 s1 p1 groups 2', [2, 16, 33, 33], [36, 8, 3, 3], { padding: 1, groups: 2 }]] as [
    string,
    number[],
    number[],
    R.Conv2dOptions,
  ][]) {
    check({
      label: `conv2d ${what} x [${sx}] w [${sw}] with bias (analytic gradient)`,
      make: (r) => [randF32(sx, r), randF32(sw, r), randF32([sw[0]], r)],
      gpu: ([x, w, b]) => x.conv2d(w, b, opts),
      ref: ([x, w, b]) => R.conv2d(x, w, b, opts),
      fwd: { rtol: 1e-4, atol: 1e-5, scaled: true },
      gradRef: ([x, w], seed) => {
        const { gx, gw, gb } = conv2dGradRef(x, w, seed, opts);
        return [gx, gw, gb];
      },
    });
  }
  it('the analytic conv2d gradient used above agrees with finite differences', () => {
    const rng = makeRng(99);
    const opts: R.Conv2dOptions = { stride: 2, padding: 1, groups: 2 };
    const x = randF32([2, 4, 5, 6], rng);
    const w = randF32([6, 2, 3, 3], rng);
    const b = randF32([6], rng);
    const seed = randF32(R.conv2d(x, w, b, opts).shape, rng);
    const fd = finiteDiff(([xx, ww, bb]) => R.conv2d(xx, ww, bb, opts), [x, w, b], seed);
    const { gx, gw, gb } = conv2dGradRef(x, w, seed, opts);
    R.assertClose(gx.data, fd[0].data, { rtol: 1e-6, atol: 1e-7 }, 'gx');
    R.assertClose(gw.data, fd[1].data, { rtol: 1e-6, atol: 1e-7 }, 'gw');
    R.assertClose(gb.data, fd[2].data, { rtol: 1e-6, atol: 1e-7 }, 'gb');
  });
  it('conv2d reports bad geometry', async () => {
    await scope(() => {
      const x = zeros([1, 4, 5, 5]);
      expect(() => x.conv2d(zeros([6, 3, 3, 3]), null, { groups: 2 })).toThrow(/conv2d: groups=2 does not fit input channels 4/);
      expect(() => x.conv2d(zeros([6, 4, 7, 7]))).toThrow(/conv2d: kernel 7x7 is larger than the padded input 5x5/);
      expect(() => x.conv2d(zeros([6, 4, 3, 3]), zeros([5]))).toThrow(/conv2d: bias must have shape \[6\], got \[5\]/);
      expect(() => zeros([4, 5, 5]).conv2d(zeros([6, 4, 3, 3]))).toThrow(/conv2d: expects x \[N, C, H, W\]/);
      // fractional strides and paddings used to run (stride 1.5 as 1, padding 0.5 as 0 with a padded output size)
      expect(() => x.conv2d(zeros([6, 4, 3, 3]), null, { stride: 1.5 })).toThrow(/conv2d: stride must be an integer >= 1 and padding an integer >= 0, got stride 1.5,1.5/);
      expect(() => x.conv2d(zeros([6, 4, 3, 3]), null, { padding: [0, 0.5] })).toThrow(/conv2d: stride must be an integer >= 1 .* padding 0,0.5/);
      expect(() => x.conv2d(zeros([6, 4, 3, 3]), null, { stride: NaN })).toThrow(/conv2d: stride must be an integer/);
    });
  });

  // ---- resampling ----
  check({ label: 'upsample2x [2, 3, 7, 5]', make: (r) => [randF32([2, 3, 7, 5], r)], gpu: ([x]) => x.upsample2x(), ref: ([x]) => R.upsample2x(x), fwd: EXACT });
  check({ label: 'avgPool2x [2, 3, 6, 10]', make: (r) => [randF32([2, 3, 6, 10], r)], gpu: ([x]) => x.avgPool2x(), ref: ([x]) => R.avgPool2x(x) });
  check({
    label: 'upsample2x then avgPool2x on [2, 3, 33, 65] (large)',
    make: (r) => [randF32([2, 3, 33, 65], r)],
    gpu: ([x]) => x.upsample2x().mul(x.upsample2x()).avgPool2x(),
    ref: ([x]) => R.avgPool2x(R.mul(R.upsample2x(x), R.upsample2x(x))),
    gradRef: ([x], seed) => [R.mul(seed, R.mul(x, NDArray.scalar(2)))],
  });
  it('avgPool2x rejects odd sizes', async () => {
    await scope(() => {
      expect(() => zeros([1, 1, 5, 4]).avgPool2x()).toThrow(/avgPool2x: expects \[N, C, H, W\] with even H and W, got \[1, 1, 5, 4\]/);
    });
  });

  // ---- normalisation ----
  for (const [shape, groups] of [
    [[2, 6, 5, 7], 3],
    [[3, 6], 2], // no spatial dims
  ] as [number[], number][]) {
    check({
      label: `groupNorm [${shape}] groups ${groups} with affine`,
      make: (r) => [randF32(shape, r, -2, 3), randF32([shape[1]], r, 0.5, 1.5), randF32([shape[1]], r)],
      gpu: ([x, g, b]) => x.groupNorm(groups, g, b),
      ref: ([x, g, b]) => R.groupNorm(x, groups, g, b, 1e-5),
      fwd: FWD_LOOSE,
    });
  }
  check({
    label: 'groupNorm [1, 4, 3, 5] groups 4 (one channel per group) without affine, eps 0.1',
    make: (r) => [randF32([1, 4, 3, 5], r)],
    gpu: ([x]) => x.groupNorm(4, null, null, 0.1),
    ref: ([x]) => R.groupNorm(x, 4, NDArray.full([4], 1), NDArray.full([4], 0), 0.1),
    fwd: FWD_LOOSE,
  });
  // the fused GroupNorm + SiLU; groups = 1 and groups = C; odd spatial sizes; groups of 286 and
  // 572 elements (several per invocation of the 64-wide workgroups); spatial sizes that are
  // multiples of 4 (the vec4 kernels)
  for (const [shape, groups] of [
    [[2, 6, 5, 7], 3],
    [[2, 6, 2, 4], 3],
    [[3, 4, 4], 2],
    [[2, 4, 3, 5], 1],
    [[2, 6, 3, 3], 6],
    [[5, 8], 4],
    [[2, 4, 13, 11], 2],
    [[1, 4, 13, 11], 1],
  ] as [number[], number][]) {
    check({
      label: `groupNorm [${shape}] groups ${groups} with affine and SiLU`,
      make: (r) => [randF32(shape, r, -2, 3), randF32([shape[1]], r, 0.5, 1.5), randF32([shape[1]], r)],
      gpu: ([x, g, b]) => x.groupNorm(groups, g, b, 1e-5, { silu: true }),
      ref: ([x, g, b]) => R.silu(R.groupNorm(x, groups, g, b, 1e-5)),
      fwd: FWD_LOOSE,
    });
  }
  check({
    label: 'groupNorm [2, 4, 3, 5] groups 2 with SiLU, beta only',
    make: (r) => [randF32([2, 4, 3, 5], r, -2, 3), randF32([4], r)],
    gpu: ([x, b]) => x.groupNorm(2, null, b, 1e-5, { silu: true }),
    ref: ([x, b]) => R.silu(R.groupNorm(x, 2, NDArray.full([4], 1), b, 1e-5)),
    fwd: FWD_LOOSE,
  });
  // the UNet's largest groups (small preset: 12 and 24 channels at 28x28, 4 groups), against the
  // float64 adjoint (checked against finite differences below)
  for (const [shape, silu] of [
    [[2, 12, 28, 28], true],
    [[1, 24, 28, 28], false],
  ] as [number[], boolean][]) {
    check({
      label: `groupNorm [${shape}] groups 4${silu ? ' with SiLU' : ''} (large)`,
      make: (r) => [randF32(shape, r, -2, 3), randF32([shape[1]], r, 0.5, 1.5), randF32([shape[1]], r)],
      gpu: ([x, g, b]) => x.groupNorm(4, g, b, 1e-5, { silu }),
      ref: ([x, g, b]) => (silu ? R.silu : (v: NDArray) => v)(R.groupNorm(x, 4, g, b, 1e-5)),
      gradRef: ([x, g, b], seed) => groupNormGradRef(x, 4, g, b, 1e-5, silu, seed),
      fwd: FWD_LOOSE,
    });
  }
  check({
    label: 'groupNorm [70000, 2] groups 1 with SiLU (more (sample, group) rows than one grid dimension holds)',
    // the two values of a row at least 1 apart: closer ones lose float32 digits to cancellation
    make: (r) => [toF32(new NDArray([70000, 2], Array.from({ length: 140000 }, (_, i) => (i % 2 ? 1 + 2 * r() : -1 - 2 * r())))), randF32([2], r, 0.5, 1.5), randF32([2], r)],
    gpu: ([x, g, b]) => x.groupNorm(1, g, b, 1e-5, { silu: true }),
    ref: ([x, g, b]) => R.silu(R.groupNorm(x, 1, g, b, 1e-5)),
    gradRef: ([x, g, b], seed) => groupNormGradRef(x, 1, g, b, 1e-5, true, seed),
    fwd: FWD_LOOSE,
  });
  it('the float64 GroupNorm adjoint matches finite differences', () => {
    const rng = makeRng(7);
    const [x, g, b] = [randF32([2, 6, 3, 2], rng, -2, 3), randF32([6], rng, 0.5, 1.5), randF32([6], rng)];
    for (const silu of [false, true]) {
      const f = ([x, g, b]: NDArray[]) => (silu ? R.silu : (v: NDArray) => v)(R.groupNorm(x, 3, g, b, 1e-5));
      const seed = randF32(x.shape, rng);
      const fd = finiteDiff(f, [x, g, b], seed);
      groupNormGradRef(x, 3, g, b, 1e-5, silu, seed).forEach((a, k) => R.assertClose(a.data, fd[k].data, { rtol: 1e-6, atol: 1e-7 }, `adjoint ${k}, silu ${silu}`));
    }
  });
  it('groupNorm is one dispatch forward and two backward', async () => {
    const gpu = getGpu();
    await scope(async () => {
      const [x, g, b] = [rand([2, 8, 5, 5]), ones([8]), zeros([8])].map((t) => ((t.requiresGrad = true), t));
      await x.sum().item(); // realize the inputs before counting
      const before = gpu.counters.dispatches;
      const y = x.groupNorm(4, g, b, 1e-5, { silu: true });
      expect(gpu.counters.dispatches - before).toBe(1);
      const seed = ones(y.shape);
      await seed.sum().item();
      const mid = gpu.counters.dispatches;
      y.backward(seed);
      expect(gpu.counters.dispatches - mid).toBe(2);
      // gradients outlive scopes: freed here, not by the garbage collector during a later case's memory check
      for (const t of [x, g, b]) t.grad?.dispose();
    });
  });
  for (const shape of [[2, 3, 16]]) {
    const d = shape[shape.length - 1];
    check({
      label: `layerNorm [${shape}] with affine`,
      make: (r) => [randF32(shape, r, -2, 3), randF32([d], r, 0.5, 1.5), randF32([d], r)],
      gpu: ([x, g, b]) => x.layerNorm(g, b),
      ref: ([x, g, b]) => R.layerNorm(x, g, b, 1e-5),
      fwd: FWD_LOOSE,
    });
  }
  check({
    label: 'layerNorm [2, 3, 16] without affine',
    make: (r) => [randF32([2, 3, 16], r)],
    gpu: ([x]) => x.layerNorm(null, null),
    ref: ([x]) => R.layerNorm(x, NDArray.full([16], 1), NDArray.full([16], 0), 1e-5),
    fwd: FWD_LOOSE,
  });
  it('normalisation layers check their parameters', async () => {
    await scope(() => {
      expect(() => zeros([2, 6, 3]).groupNorm(4, null, null)).toThrow(/groupNorm: 4 groups do not divide the 6 channels of \[2, 6, 3\]/);
      expect(() => zeros([2, 6, 3]).groupNorm(2, zeros([3]), null)).toThrow(/groupNorm: affine parameters must have shape \[6\], got \[3\]/);
      expect(() => zeros([2, 6, 3]).groupNorm(0, null, null)).toThrow(/groupNorm: 0 groups do not divide the 6 channels/);
      expect(() => zeros([2, 5]).layerNorm(zeros([4]), null)).toThrow(/layerNorm: affine parameters must have shape \[5\], got \[4\]/);
    });
  });

  // ---- embedding ----
  for (const [v, d, ishape] of [
    [11, 7, [3, 5]],
    [5, 33, [9]],
    [300, 3, [2, 2, 4]],
  ] as [number, number, number[]][]) {
    it(`embedding table [${v}, ${d}] indices [${ishape}]`, () => {
      const count = ishape.reduce((a, b) => a * b, 1);
      const idx = randInts(count, 0, v, makeRng(v * 1000 + d));
      idx[count - 1] = idx[0]; // a repeated row: its gradient accumulates
      return runCase(getGpu(), {
        label: `embedding [${v}, ${d}] [${ishape}]`,
        make: (r) => [randF32([v, d], r)],
        gpu: ([t]) => tensor(idx, ishape).gather(t),
        ref: ([t]) => R.embedding(t, idx, ishape),
        fwd: EXACT,
        grad: { rtol: 1e-5, atol: 1e-6, scaled: true },
      });
    });
  }
  it('embedding gives zero rows for out-of-range indices and rejects float indices', async () => {
    await scope(async () => {
      const table = tensor([1, 2, 3, 4, 5, 6], [3, 2]);
      const y = tensor(Int32Array.from([2, -1, 3, 0]), [4]).gather(table);
      expect(y.shape).toEqual([4, 2]);
      expect(Array.from(await readF64(y))).toEqual([5, 6, 0, 0, 0, 0, 1, 2]);
      expect(() => zeros([3]).gather(table)).toThrow(/embedding: expects a table \[V, D\] and int32 indices/);
    });
  });

  it('download round-trips', async () => {
    await scope(async () => {
      const a = randF32([2, 3], makeRng(1));
      const back = await download(upload(a));
      expect(back.shape).toEqual([2, 3]);
      expect(Array.from(back.data)).toEqual(Array.from(a.data));
    });
  });
});
