// Sanity tests of the float64 reference (test/reference.ts) itself: hand-computed
// small cases and identities between ops.
import { describe, expect, it } from 'vitest';
import * as R from './reference';
import { NDArray, assertClose, makeRng } from './reference';

const TIGHT = { rtol: 1e-12, atol: 1e-12 };
const FD = { rtol: 1e-6, atol: 1e-7 };

const arr = (shape: number[], data: number[]): NDArray => new NDArray(shape, data);
const close = (a: NDArray, e: NDArray | number[], label: string, tol = TIGHT): void => {
  if (e instanceof NDArray) expect(a.shape, `${label} shape`).toEqual(e.shape);
  assertClose(a.data, e instanceof NDArray ? e.data : e, tol, label);
};
const iota = (shape: number[], start = 0): NDArray => {
  const a = new NDArray(shape);
  for (let i = 0; i < a.size; i++) a.data[i] = start + i;
  return a;
};

describe('NDArray and RNG', () => {
  it('is row-major with get/set and validation', () => {
    const a = iota([2, 3, 4]);
    expect(a.size).toBe(24);
    expect(a.get([1, 2, 3])).toBe(23);
    expect(a.get([1, 0, 2])).toBe(14);
    a.set([0, 1, 1], -5);
    expect(a.data[5]).toBe(-5);
    expect(() => a.get([2, 0, 0])).toThrow(/out of bounds/);
    expect(() => a.get([0, 0])).toThrow(/rank/);
    expect(() => new NDArray([2, 2], [1, 2, 3])).toThrow(/length/);
    const s = new NDArray([]);
    expect(s.size).toBe(1);
    expect(s.get([])).toBe(0);
  });

  it('rand and makeRng are deterministic and in range', () => {
    const a = NDArray.rand([100], makeRng(7), -2, 3);
    const b = NDArray.rand([100], makeRng(7), -2, 3);
    const c = NDArray.rand([100], makeRng(8), -2, 3);
    expect(Array.from(a.data)).toEqual(Array.from(b.data));
    expect(Array.from(a.data)).not.toEqual(Array.from(c.data));
    for (const v of a.data) expect(v >= -2 && v < 3).toBe(true);
    const rng = makeRng(1);
    let m = 0;
    for (let i = 0; i < 10000; i++) m += rng();
    expect(Math.abs(m / 10000 - 0.5)).toBeLessThan(0.02);
  });
});

describe('elementwise unary', () => {
  const x = arr([5], [-2, -0.5, 0, 0.5, 2]);
  it('hand values', () => {
    close(R.neg(x), [2, 0.5, -0, -0.5, -2], 'neg');
    close(R.abs(x), [2, 0.5, 0, 0.5, 2], 'abs');
    close(R.square(x), [4, 0.25, 0, 0.25, 4], 'square');
    close(R.relu(x), [0, 0, 0, 0.5, 2], 'relu');
    close(R.sigmoid(arr([1], [0])), [0.5], 'sigmoid(0)');
    close(R.sigmoid(arr([2], [-800, 800])), [0, 1], 'sigmoid saturates');
    close(R.silu(arr([2], [1, -1])), [0.7310585786300049, -0.2689414213699951], 'silu');
    // 0.5 * 1 * (1 + tanh(sqrt(2/pi) * 1.044715))
    close(R.gelu(arr([3], [1, 0, -1])), [0.8411919906082768, 0, -0.15880800939172324], 'gelu', {
      rtol: 1e-12,
      atol: 1e-15,
    });
    const p = arr([3], [0.25, 1, 4]);
    close(R.sqrt(p), [0.5, 1, 2], 'sqrt');
    close(R.rsqrt(p), [2, 1, 0.5], 'rsqrt');
    close(R.log(R.exp(x)), x, 'log(exp(x))');
    close(R.exp(arr([1], [1])), [Math.E], 'exp(1)');
  });
  it('identities', () => {
    const r = NDArray.rand([50], makeRng(3), -3, 3);
    const s = R.sin(r);
    const c = R.cos(r);
    close(R.add(R.mul(s, s), R.mul(c, c)), new Array(50).fill(1), 'sin^2 + cos^2', { rtol: 1e-14, atol: 1e-14 });
    // tanh(x) = 2 sigmoid(2x) - 1
    const two = NDArray.scalar(2);
    close(R.tanh(r), R.sub(R.mul(two, R.sigmoid(R.mul(two, r))), NDArray.scalar(1)), 'tanh via sigmoid', {
      rtol: 1e-13,
      atol: 1e-14,
    });
  });
});

describe('broadcasting binary', () => {
  it('broadcasts [2,1,3] with [4,1] to [2,4,3]', () => {
    const a = iota([2, 1, 3]);
    const b = iota([4, 1], 10);
    const c = R.add(a, b);
    expect(c.shape).toEqual([2, 4, 3]);
    for (let i = 0; i < 2; i++)
      for (let j = 0; j < 4; j++)
        for (let k = 0; k < 3; k++) expect(c.get([i, j, k])).toBe(a.get([i, 0, k]) + b.get([j, 0]));
    // symmetric
    close(R.add(b, a), c, 'add commutes');
  });
  it('scalar and hand-computed ops', () => {
    const a = arr([2, 2], [1, 2, 3, 4]);
    const s = NDArray.scalar(2);
    close(R.sub(a, s), [-1, 0, 1, 2], 'sub');
    close(R.sub(s, a), [1, 0, -1, -2], 'rsub');
    close(R.mul(a, arr([2], [10, 100])), [10, 200, 30, 400], 'mul row');
    close(R.div(a, arr([2, 1], [1, 2])), [1, 2, 1.5, 2], 'div col');
    close(R.pow(a, s), [1, 4, 9, 16], 'pow');
    close(R.pow(s, a), [2, 4, 8, 16], 'pow scalar base');
    close(R.maximum(a, arr([2], [2, 2])), [2, 2, 3, 4], 'maximum');
    close(R.minimum(a, arr([2], [2, 2])), [1, 2, 2, 2], 'minimum');
  });
  it('comparisons return 0/1', () => {
    const a = arr([4], [1, 2, 3, 4]);
    const b = NDArray.scalar(2.5);
    const t = arr([4], [1, 2, 3, 3]);
    close(R.eq(a, t), [1, 1, 1, 0], 'eq');
    close(R.ne(a, t), [0, 0, 0, 1], 'ne');
    close(R.lt(a, b), [1, 1, 0, 0], 'lt');
    close(R.le(a, arr([1], [2])), [1, 1, 0, 0], 'le');
    close(R.gt(a, b), [0, 0, 1, 1], 'gt');
    close(R.ge(a, arr([1], [3])), [0, 0, 1, 1], 'ge');
  });
  it('where broadcasts over three inputs', () => {
    const cond = arr([2, 1], [1, 0]);
    const a = arr([3], [1, 2, 3]);
    const b = NDArray.scalar(-1);
    const w = R.where(cond, a, b);
    expect(w.shape).toEqual([2, 3]);
    close(w, [1, 2, 3, -1, -1, -1], 'where');
    close(R.where(arr([3], [0, 0.5, -2]), a, b), [-1, 2, 3], 'nonzero picks a');
  });
  it('throws on mismatch', () => {
    expect(() => R.add(new NDArray([2, 3]), new NDArray([3, 2]))).toThrow(/broadcast/);
    expect(() => R.mul(new NDArray([4]), new NDArray([3]))).toThrow(/broadcast/);
    expect(() => R.where(new NDArray([2]), new NDArray([3]), new NDArray([1]))).toThrow(/broadcast/);
    expect(() => R.broadcastShapes([5, 1, 4], [2, 3, 4])).toThrow(/broadcast/);
    expect(R.broadcastShapes([5, 1, 4], [3, 1], [])).toEqual([5, 3, 4]);
  });
});

describe('reductions', () => {
  const a = arr([2, 3], [1, 2, 3, 4, 5, 9]);
  it('sum/mean/max over axes with keepdims and negative axes', () => {
    const all = R.sum(a);
    expect(all.shape).toEqual([]);
    close(all, [24], 'sum all');
    close(R.sum(a, 0), arr([3], [5, 7, 12]), 'sum axis 0');
    close(R.sum(a, -1), arr([2], [6, 18]), 'sum axis -1');
    close(R.sum(a, [1], true), arr([2, 1], [6, 18]), 'sum keepdims');
    close(R.sum(a, [0, 1], true), arr([1, 1], [24]), 'sum both keepdims');
    close(R.mean(a, 1), arr([2], [2, 6]), 'mean');
    close(R.mean(a), arr([], [4]), 'mean all');
    close(R.max(a, 0), arr([3], [4, 5, 9]), 'max 0');
    close(R.max(arr([3], [-5, -2, -7])), arr([], [-2]), 'max negatives');
    close(R.var(a, 1), arr([2], [2 / 3, 14 / 3]), 'var');
    close(R.min(a, 1), arr([2], [1, 4]), 'min');
    expect(() => R.sum(a, [1, -1])).toThrow(/duplicate/);
    expect(() => R.sum(a, 2)).toThrow(/range/);
  });
  it('3-D reduction over non-adjacent axes', () => {
    const x = iota([2, 3, 4]);
    const s = R.sum(x, [0, 2], true);
    expect(s.shape).toEqual([1, 3, 1]);
    for (let j = 0; j < 3; j++) {
      let e = 0;
      for (let i = 0; i < 2; i++) for (let k = 0; k < 4; k++) e += x.get([i, j, k]);
      expect(s.get([0, j, 0])).toBe(e);
    }
  });
  it('var = mean of squares - square of mean', () => {
    const x = NDArray.rand([3, 4, 5], makeRng(11), -2, 2);
    for (const axes of [undefined, 0, [1, 2], [-1, 0]] as (number | number[] | undefined)[]) {
      const m = R.mean(x, axes);
      const e = R.sub(R.mean(R.square(x), axes), R.square(m));
      close(R.variance(x, axes), e, `var axes ${JSON.stringify(axes)}`, { rtol: 1e-10, atol: 1e-13 });
    }
  });
});

describe('matmul', () => {
  it('hand 2x3 @ 3x2', () => {
    const a = arr([2, 3], [1, 2, 3, 4, 5, 6]);
    const b = arr([3, 2], [7, 8, 9, 10, 11, 12]);
    close(R.matmul(a, b), arr([2, 2], [58, 64, 139, 154]), 'matmul');
  });
  it('broadcast batch dims', () => {
    const rng = makeRng(5);
    const a = NDArray.rand([2, 1, 2, 3], rng);
    const b = NDArray.rand([3, 3, 4], rng);
    const c = R.matmul(a, b);
    expect(c.shape).toEqual([2, 3, 2, 4]);
    for (let i = 0; i < 2; i++)
      for (let j = 0; j < 3; j++) {
        const ai = R.reshape(R.slice(a, [i, 0, 0, 0], [i + 1, 1, 2, 3]), [2, 3]);
        const bj = R.reshape(R.slice(b, [j, 0, 0], [j + 1, 3, 4]), [3, 4]);
        const cij = R.reshape(R.slice(c, [i, j, 0, 0], [i + 1, j + 1, 2, 4]), [2, 4]);
        close(cij, R.matmul(ai, bj), `batch ${i},${j}`);
      }
    expect(() => R.matmul(new NDArray([2, 3]), new NDArray([2, 3]))).toThrow(/inner/);
  });
  it('(AB)^T = B^T A^T', () => {
    const rng = makeRng(6);
    const a = NDArray.rand([2, 3, 4], rng);
    const b = NDArray.rand([2, 4, 5], rng);
    close(R.transpose(R.matmul(a, b)), R.matmul(R.transpose(b), R.transpose(a)), 'transpose identity', {
      rtol: 1e-13,
      atol: 1e-14,
    });
  });
});

describe('views and copies', () => {
  it('reshape with -1', () => {
    const a = iota([2, 3, 4]);
    const r = R.reshape(a, [4, -1]);
    expect(r.shape).toEqual([4, 6]);
    close(r, Array.from(a.data), 'reshape data');
    expect(() => R.reshape(a, [5, -1])).toThrow();
    expect(() => R.reshape(a, [-1, -1])).toThrow();
    expect(() => R.reshape(a, [2, 3])).toThrow();
  });
  it('permute / transpose', () => {
    const a = iota([2, 3, 4]);
    const p = R.permute(a, [2, 0, 1]);
    expect(p.shape).toEqual([4, 2, 3]);
    for (let i = 0; i < 2; i++)
      for (let j = 0; j < 3; j++) for (let k = 0; k < 4; k++) expect(p.get([k, i, j])).toBe(a.get([i, j, k]));
    close(R.permute(p, [1, 2, 0]), a, 'inverse permutation');
    const t = R.transpose(a);
    expect(t.shape).toEqual([2, 4, 3]);
    expect(t.get([1, 3, 2])).toBe(a.get([1, 2, 3]));
    close(R.transpose(arr([2, 3], [1, 2, 3, 4, 5, 6])), [1, 4, 2, 5, 3, 6], 'transpose 2d');
    expect(() => R.permute(a, [0, 0, 1])).toThrow();
  });
  it('expand', () => {
    const e = R.expand(arr([3, 1], [1, 2, 3]), [2, 3, 2]);
    close(e, [1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3], 'expand');
    expect(() => R.expand(arr([3], [1, 2, 3]), [2, 4])).toThrow();
  });
  it('slice / concat / pad', () => {
    const a = iota([3, 4]);
    close(R.slice(a, [1, 1], [3, 3]), arr([2, 2], [5, 6, 9, 10]), 'slice');
    const parts = [R.slice(a, [0, 0], [3, 1]), R.slice(a, [0, 1], [3, 4])];
    close(R.concat(parts, -1), a, 'concat undoes slice');
    close(R.concat([R.slice(a, [0, 0], [1, 4]), R.slice(a, [1, 0], [3, 4])], 0), a, 'concat axis 0');
    expect(() => R.concat([new NDArray([2, 2]), new NDArray([3, 3])], 0)).toThrow();
    const p = R.pad(arr([1, 2], [1, 2]), [
      [1, 0],
      [2, 1],
    ], 9);
    close(p, arr([2, 5], [9, 9, 9, 9, 9, 9, 9, 1, 2, 9]), 'pad');
    close(R.slice(R.pad(a, [[2, 1], [0, 3]]), [2, 0], [5, 4]), a, 'slice undoes pad');
  });
});

describe('softmax family', () => {
  const x = NDArray.rand([3, 5], makeRng(9), -4, 4);
  it('softmax sums to 1 along axis, logSoftmax = log(softmax)', () => {
    for (const axis of [0, 1, -1]) {
      const s = R.softmax(x, axis);
      const total = R.sum(s, axis);
      close(total, new Array(total.size).fill(1), `softmax sums axis ${axis}`, { rtol: 1e-14, atol: 1e-14 });
      close(R.logSoftmax(x, axis), R.log(s), `logSoftmax axis ${axis}`, { rtol: 1e-12, atol: 1e-13 });
    }
    close(R.softmax(arr([2], [0, Math.log(3)]), 0), [0.25, 0.75], 'softmax hand');
    close(R.softmax(arr([2], [1000, 1000]), 0), [0.5, 0.5], 'softmax stable');
    close(R.logSoftmax(arr([2], [-1000, 0]), 0), [-1000, 0], 'logSoftmax stable');
  });
  it('crossEntropy', () => {
    const z = new NDArray([2, 4]);
    const ce = R.crossEntropy(z, Int32Array.from([0, 3]));
    expect(ce.shape).toEqual([]);
    close(ce, [Math.log(4)], 'uniform logits');
    const lsm = R.logSoftmax(x, 1);
    const labels = Int32Array.from([4, 0, 2]);
    const e = -(lsm.get([0, 4]) + lsm.get([1, 0]) + lsm.get([2, 2])) / 3;
    close(R.crossEntropy(x, labels), [e], 'ce vs logSoftmax');
    expect(() => R.crossEntropy(x, Int32Array.from([5, 0, 0]))).toThrow(/range/);
  });
});

describe('conv2d', () => {
  it('hand 3x3 input, 2x2 kernel, with bias', () => {
    const x = arr([1, 1, 3, 3], [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const w = arr([1, 1, 2, 2], [1, 0, 0, -1]); // x[i,j] - x[i+1,j+1]
    close(R.conv2d(x, w, arr([1], [10]), {}), arr([1, 1, 2, 2], [6, 6, 6, 6]), 'valid');
    // padding 1: out[y,x] = x[y-1,x-1] - x[y,x] (zero outside)
    const p = R.conv2d(x, w, null, { padding: 1 });
    expect(p.shape).toEqual([1, 1, 4, 4]);
    close(p, [-1, -2, -3, 0, -4, -4, -4, 3, -7, -4, -4, 6, 0, 7, 8, 9], 'padded');
    // stride 2 with padding 1 picks out[0,0], out[0,2], out[2,0], out[2,2]
    close(R.conv2d(x, w, null, { padding: 1, stride: 2 }), [-1, -3, -7, -4], 'strided');
  });

  it('1x1 kernel equals matmul', () => {
    const rng = makeRng(21);
    const x = NDArray.rand([2, 3, 4, 5], rng);
    const w = NDArray.rand([6, 3, 1, 1], rng);
    const y = R.conv2d(x, w, null, {});
    // y[n] = W [6,3] @ x[n] [3, 20]
    const xm = R.reshape(x, [2, 3, 20]);
    const e = R.reshape(R.matmul(R.reshape(w, [6, 3]), xm), [2, 6, 4, 5]);
    close(y, e, '1x1 conv', { rtol: 1e-13, atol: 1e-14 });
  });

  it('groups equals concatenated per-group convs', () => {
    const rng = makeRng(22);
    const G = 2;
    const x = NDArray.rand([2, 4, 5, 5], rng);
    const w = NDArray.rand([6, 2, 3, 3], rng);
    const b = NDArray.rand([6], rng);
    const opts = { stride: [2, 1] as [number, number], padding: [1, 0] as [number, number] };
    const y = R.conv2d(x, w, b, { ...opts, groups: G });
    expect(y.shape).toEqual([2, 6, 3, 3]);
    const parts: NDArray[] = [];
    for (let g = 0; g < G; g++) {
      const xg = R.slice(x, [0, 2 * g, 0, 0], [2, 2 * g + 2, 5, 5]);
      const wg = R.slice(w, [3 * g, 0, 0, 0], [3 * g + 3, 2, 3, 3]);
      const bg = R.slice(b, [3 * g], [3 * g + 3]);
      parts.push(R.conv2d(xg, wg, bg, opts));
    }
    close(y, R.concat(parts, 1), 'grouped conv', { rtol: 1e-13, atol: 1e-14 });
  });

  it('padding equals explicit zero pad; stride equals subsampled stride-1 output', () => {
    const rng = makeRng(23);
    const x = NDArray.rand([1, 2, 6, 7], rng);
    const w = NDArray.rand([3, 2, 3, 2], rng);
    const padded = R.conv2d(x, w, null, { padding: [2, 1] });
    const explicit = R.conv2d(R.pad(x, [[0, 0], [0, 0], [2, 2], [1, 1]]), w, null, {});
    close(padded, explicit, 'pad identity');
    const s = R.conv2d(x, w, null, { padding: [2, 1], stride: [2, 3] });
    const [, , Ho, Wo] = padded.shape;
    // H' = floor((6 + 4 - 3)/2) + 1 = 4, W' = floor((7 + 2 - 2)/3) + 1 = 3
    expect(s.shape).toEqual([1, 3, Math.floor((Ho - 1) / 2) + 1, Math.floor((Wo - 1) / 3) + 1]);
    expect(s.shape).toEqual([1, 3, 4, 3]);
    for (let c = 0; c < 3; c++)
      for (let i = 0; i < 4; i++) for (let j = 0; j < 3; j++) expect(s.get([0, c, i, j])).toBe(padded.get([0, c, 2 * i, 3 * j]));
  });
});

describe('resampling', () => {
  it('upsample2x and avgPool2x', () => {
    const x = arr([1, 1, 2, 2], [1, 2, 3, 4]);
    close(R.upsample2x(x), arr([1, 1, 4, 4], [1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4]), 'upsample');
    close(R.avgPool2x(arr([1, 1, 2, 4], [1, 2, 3, 4, 5, 6, 7, 8])), arr([1, 1, 1, 2], [3.5, 5.5]), 'avgPool');
    const r = NDArray.rand([2, 3, 4, 6], makeRng(31));
    close(R.avgPool2x(R.upsample2x(r)), r, 'avgPool(upsample(x)) = x');
    expect(() => R.avgPool2x(new NDArray([1, 1, 3, 4]))).toThrow();
  });
});

describe('normalisation', () => {
  it('layerNorm hand case', () => {
    const x = arr([2, 3], [1, 2, 3, 0, 0, 6]);
    const g = arr([3], [1, 2, 1]);
    const b = arr([3], [0, 0, 1]);
    const y = R.layerNorm(x, g, b, 0);
    const s1 = Math.sqrt(2 / 3);
    const s2 = Math.sqrt(8);
    close(y, [-1 / s1, 0, 1 / s1 + 1, -2 / s2, -4 / s2, 4 / s2 + 1], 'layerNorm', { rtol: 1e-13, atol: 1e-14 });
  });

  it('groupNorm: per-group mean 0 var 1, affine, and special cases', () => {
    const rng = makeRng(41);
    const x = NDArray.rand([2, 6, 3, 2], rng, -3, 5);
    const ones = NDArray.full([6], 1);
    const zeros = new NDArray([6]);
    const y = R.groupNorm(x, 3, ones, zeros, 0);
    const grouped = R.reshape(y, [2, 3, 12]);
    close(R.mean(grouped, 2), new Array(6).fill(0), 'group mean', { rtol: 0, atol: 1e-13 });
    close(R.var(grouped, 2), new Array(6).fill(1), 'group var', { rtol: 1e-12, atol: 0 });
    // explicit formula with broadcasting ops
    const xg = R.reshape(x, [2, 3, 12]);
    const norm = R.div(R.sub(xg, R.mean(xg, 2, true)), R.sqrt(R.add(R.var(xg, 2, true), NDArray.scalar(1e-5))));
    const gamma = NDArray.rand([6], rng);
    const beta = NDArray.rand([6], rng);
    const e = R.add(R.mul(R.reshape(norm, [2, 6, 3, 2]), R.reshape(gamma, [6, 1, 1])), R.reshape(beta, [6, 1, 1]));
    close(R.groupNorm(x, 3, gamma, beta, 1e-5), e, 'groupNorm formula', { rtol: 1e-12, atol: 1e-13 });
    // groups = 1 equals layerNorm over flattened (C, spatial) with unit affine
    const g1 = R.groupNorm(x, 1, ones, zeros, 1e-5);
    const ln = R.layerNorm(R.reshape(x, [2, 36]), NDArray.full([36], 1), new NDArray([36]), 1e-5);
    close(g1, R.reshape(ln, [2, 6, 3, 2]), 'groups=1 vs layerNorm', { rtol: 1e-12, atol: 1e-13 });
    // works without spatial dims
    const x2 = NDArray.rand([3, 4], rng);
    close(
      R.groupNorm(x2, 1, NDArray.full([4], 1), new NDArray([4]), 1e-5),
      R.layerNorm(x2, NDArray.full([4], 1), new NDArray([4]), 1e-5),
      'groupNorm [N,C]',
      { rtol: 1e-12, atol: 1e-13 },
    );
    expect(() => R.groupNorm(x, 4, ones, zeros, 1e-5)).toThrow(/divisible/);
  });
});

describe('embedding', () => {
  it('gathers rows', () => {
    const table = iota([4, 3]);
    const e = R.embedding(table, Int32Array.from([3, 0, 0, 2]), [2, 2]);
    expect(e.shape).toEqual([2, 2, 3]);
    close(e, [9, 10, 11, 0, 1, 2, 0, 1, 2, 6, 7, 8], 'embedding');
    expect(() => R.embedding(table, Int32Array.from([4]), [1])).toThrow(/range/);
    expect(() => R.embedding(table, Int32Array.from([1, 2]), [3])).toThrow();
  });
});

describe('finiteDiff', () => {
  const rng = makeRng(51);
  it('x^2 gives 2x * seed and leaves inputs untouched', () => {
    const x = NDArray.rand([2, 3], rng);
    const before = x.data.slice();
    const seed = NDArray.rand([2, 3], rng);
    const [g] = R.finiteDiff(([a]) => R.square(a), [x], seed);
    close(g, R.mul(R.mul(NDArray.scalar(2), x), seed), 'd x^2', FD);
    expect(Array.from(x.data)).toEqual(Array.from(before));
    expect(() => R.finiteDiff(([a]) => R.square(a), [x], new NDArray([6]))).toThrow(/seed/);
  });
  it('multiple inputs with broadcasting: mul and matmul', () => {
    const a = NDArray.rand([2, 3], rng);
    const b = NDArray.rand([3], rng);
    const seed = NDArray.rand([2, 3], rng);
    const [ga, gb] = R.finiteDiff(([p, q]) => R.mul(p, q), [a, b], seed);
    close(ga, R.mul(seed, b), 'd mul / da', FD);
    close(gb, R.sum(R.mul(seed, a), 0), 'd mul / db (reduced over broadcast)', FD);

    const m = NDArray.rand([2, 3, 4], rng);
    const n = NDArray.rand([4, 5], rng);
    const s2 = NDArray.rand([2, 3, 5], rng);
    const [gm, gn] = R.finiteDiff(([p, q]) => R.matmul(p, q), [m, n], s2);
    close(gm, R.matmul(s2, R.transpose(n)), 'd matmul / dA', FD);
    close(gn, R.sum(R.matmul(R.transpose(m), s2), 0), 'd matmul / dB', FD);
  });
  it('closed-form derivatives: tanh, sigmoid, crossEntropy', () => {
    const x = NDArray.rand([5], rng, -2, 2);
    const ones = NDArray.full([5], 1);
    const t = R.tanh(x);
    close(R.finiteDiff(([a]) => R.tanh(a), [x], ones)[0], R.sub(ones, R.square(t)), "tanh'", FD);
    const s = R.sigmoid(x);
    close(R.finiteDiff(([a]) => R.sigmoid(a), [x], ones)[0], R.mul(s, R.sub(ones, s)), "sigmoid'", FD);

    const logits = NDArray.rand([3, 4], rng, -2, 2);
    const labels = Int32Array.from([1, 3, 0]);
    const [g] = R.finiteDiff(([z]) => R.crossEntropy(z, labels), [logits], NDArray.scalar(1));
    const onehot = new NDArray([3, 4]);
    labels.forEach((y, i) => onehot.set([i, y], 1));
    close(g, R.div(R.sub(R.softmax(logits, 1), onehot), NDArray.scalar(3)), "crossEntropy'", FD);
  });
});

describe('assertClose', () => {
  it('passes within tolerance and reports the worst element otherwise', () => {
    assertClose([1, 2, 3], [1, 2 + 1e-9, 3], { rtol: 1e-6, atol: 0 }, 'ok');
    assertClose([Infinity, NaN], [Infinity, NaN], { rtol: 0, atol: 0 }, 'special');
    let msg = '';
    try {
      assertClose([1, 2.5, 3.01], [1, 2, 3], { rtol: 1e-3, atol: 1e-3 }, 'my-label');
    } catch (e) {
      msg = (e as Error).message;
    }
    expect(msg).toMatch(/my-label/);
    expect(msg).toMatch(/index 1/);
    expect(msg).toMatch(/actual 2\.5/);
    expect(msg).toMatch(/expected 2/);
    expect(msg).toMatch(/atol 0\.001/);
    expect(msg).toMatch(/rtol 0\.001/);
    expect(msg).toMatch(/2\/3/);
    expect(() => assertClose([NaN], [1], { rtol: 1, atol: 1 }, 'nan')).toThrow(/nan/);
    expect(() => assertClose([1], [1, 2], { rtol: 1, atol: 1 }, 'len')).toThrow(/length/);
  });
});
