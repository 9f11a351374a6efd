// Shape ops. reshape is free (a view of the same storage); permute, expand and slice are strided
// copies through the elementwise kernel; pad and concat have their own small kernels.
import { elementwiseKernel, contiguousStrides } from '../../kernels/elementwise';
import { padKernel, writeBlockKernel } from '../../kernels/indexing';
import { Tensor, recordGrad, sizeOf, formatShape } from '../tensor';
import { launch } from './base';
import { sumToLater } from './reduce';


export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const s = [...shape];
  const infer = s.indexOf(-1);
  if (infer >= 0) {
    if (s.indexOf(-1, infer + 1) >= 0) throw new Error(`reshape: more than one -1 in ${formatShape(shape)}`);
    const rest = s.reduce((a, d, i) => (i === infer ? a : a * d), 1);
    if (rest === 0 || x.size % rest !== 0) throw new Error(`reshape: cannot reshape ${formatShape(x.shape)} into ${formatShape(shape)}`);
    s[infer] = x.size / rest;
  }
  if (s.some((d) => !Number.isInteger(d) || d < 0) || sizeOf(s) !== x.size) {
    throw new Error(`reshape: cannot reshape ${formatShape(x.shape)} (${x.size} elements) into ${formatShape(shape)}`);
  }
  const y = x.view(s);
  return recordGrad(y, 'reshape', [x], (g) => [g.reshape(x.shape)]);
}

export function permute(x: Tensor, perm: readonly number[]): Tensor {
  const p = perm.map((d) => (d < 0 ? d + x.ndim : d));
  if (p.length !== x.ndim || new Set(p).size !== p.length || p.some((d) => !Number.isInteger(d) || d < 0 || d >= x.ndim)) {
    throw new Error(`permute: ${formatShape(perm)} is not a permutation of the ${x.ndim} axes of ${formatShape(x.shape)}`);
  }
  const strides = contiguousStrides(x.shape);
  const shape = p.map((d) => x.shape[d]);
  const y = launch(elementwiseKernel(`permute${formatShape(p)}`, shape, [{ strides: p.map((d) => strides[d]), offset: 0, type: x.dtype }], 'x0', x.dtype), [x], shape, x.dtype);
  const inverse = p.map((_, i) => p.indexOf(i));
  return recordGrad(y, 'permute', [x], (g) => [g.permute(inverse)]);
}

/** Swap two axes (default: the last two). */
export function transpose(x: Tensor, a = -2, b = -1): Tensor {
  const perm = x.shape.map((_, i) => i);
  const da = a < 0 ? a + x.ndim : a;
  const db = b < 0 ? b + x.ndim : b;
  if (![da, db].every((d) => Number.isInteger(d) && d >= 0 && d < x.ndim)) throw new Error(`transpose: axes ${a}, ${b} out of range for ${formatShape(x.shape)}`);
  [perm[da], perm[db]] = [perm[db], perm[da]];
  return permute(x, perm);
}

/** Broadcast to `shape` (NumPy rules: size-1 axes stretch, new axes on the left). */
export function expand(x: Tensor, shape: readonly number[]): Tensor {
  const lead = shape.length - x.ndim;
  if (lead < 0 || shape.some((d) => !Number.isInteger(d) || d < 0) || x.shape.some((d, i) => d !== 1 && d !== shape[i + lead])) {
    throw new Error(`expand: cannot expand ${formatShape(x.shape)} to ${formatShape(shape)}`);
  }
  if (lead === 0 && x.shape.every((d, i) => d === shape[i])) return x;
  const s = contiguousStrides(x.shape);
  const strides = shape.map((_, d) => (d < lead || x.shape[d - lead] === 1 ? 0 : s[d - lead]));
  const y = launch(elementwiseKernel(`expand${formatShape(x.shape)}->${formatShape(shape)}`, [...shape], [{ strides, offset: 0, type: x.dtype }], 'x0', x.dtype), [x], shape, x.dtype);
  return recordGrad(y, 'expand', [x], (g) => [sumToLater(g, x.shape)]);
}

/** x[starts[0]:ends[0], starts[1]:ends[1], ...]; missing trailing axes are taken whole. */
export function slice(x: Tensor, starts: readonly number[], ends: readonly number[]): Tensor {
  if (starts.length > x.ndim || ends.length > x.ndim) {
    throw new Error(`slice: [${formatShape(starts)}, ${formatShape(ends)}) has more axes than shape ${formatShape(x.shape)}`);
  }
  const lo = x.shape.map((d, i) => starts[i] ?? 0);
  const hi = x.shape.map((d, i) => ends[i] ?? d);
  if (x.shape.some((d, i) => !(Number.isInteger(lo[i]) && Number.isInteger(hi[i]) && 0 <= lo[i] && lo[i] <= hi[i] && hi[i] <= d))) {
    throw new Error(`slice: [${formatShape(starts)}, ${formatShape(ends)}) is out of range for shape ${formatShape(x.shape)}`);
  }
  const shape = hi.map((h, i) => h - lo[i]);
  const s = contiguousStrides(x.shape);
  const offset = lo.reduce((a, l, i) => a + l * s[i], 0);
  const y = launch(elementwiseKernel(`slice${formatShape(x.shape)}`, shape, [{ strides: s, offset, type: x.dtype }], 'x0', x.dtype), [x], shape, x.dtype);
  return recordGrad(y, 'slice', [x], (g) => [g.pad(lo.map((l, i) => [l, x.shape[i] - hi[i]] as [number, number]))]);
}

/** Constant padding, pads[d] = [before, after] for each axis (missing trailing axes: none). */
export function pad(x: Tensor, pads: readonly (readonly [number, number])[], value = 0): Tensor {
  if (pads.length > x.ndim) throw new Error(`pad: ${pads.length} [before, after] pairs for the ${x.ndim} axes of ${formatShape(x.shape)}`);
  const p = x.shape.map((_, i) => [pads[i]?.[0] ?? 0, pads[i]?.[1] ?? 0] as [number, number]);
  if (p.some(([a, b]) => !Number.isInteger(a) || !Number.isInteger(b) || a < 0 || b < 0)) {
    throw new Error(`pad: pads must be non-negative integers, got ${JSON.stringify(pads)}`);
  }
  const shape = x.shape.map((d, i) => d + p[i][0] + p[i][1]);
  const y = launch(padKernel(x.shape, p, value, x.dtype), [x], shape, x.dtype);
  return recordGrad(y, 'pad', [x], (g) => [g.slice(p.map(([a]) => a), p.map(([a], i) => a + x.shape[i]))]);
}

export function concat(xs: Tensor[], axis = 0): Tensor {
  if (xs.length === 0) throw new Error('concat: no tensors given');
  const nd = xs[0].ndim;
  const ax = axis < 0 ? axis + nd : axis;
  if (!Number.isInteger(ax) || ax < 0 || ax >= nd) throw new Error(`concat: axis ${axis} out of range for ${nd}-d tensors`);
  for (const t of xs) {
    if (t.ndim !== nd || t.shape.some((d, i) => i !== ax && d !== xs[0].shape[i])) {
      throw new Error(`concat: shapes ${xs.map((t) => formatShape(t.shape)).join(', ')} differ outside axis ${ax}`);
    }
    if (t.dtype !== xs[0].dtype || t.gpu !== xs[0].gpu) {
      throw new Error(`concat: tensors must share one dtype and device, got ${xs.map((t) => `${t.dtype} ${formatShape(t.shape)}`).join(', ')}`);
    }
  }
  const shape = [...xs[0].shape];
  shape[ax] = xs.reduce((a, t) => a + t.shape[ax], 0);
  const y = Tensor.empty(shape, xs[0].dtype, xs[0].gpu);
  let offset = 0;
  const offsets: number[] = [];
  for (const t of xs) {
    offsets.push(offset);
    if (t.size > 0) y.gpu.dispatch(writeBlockKernel(t.shape, shape, ax, offset), [t.binding, y.binding]);
    offset += t.shape[ax];
  }
  return recordGrad(y, 'concat', xs, (g) =>
    xs.map((t, k) => {
      const lo = shape.map((_, i) => (i === ax ? offsets[k] : 0));
      const hi = shape.map((d, i) => (i === ax ? offsets[k] + t.shape[ax] : d));
      return g.slice(lo, hi);
    }),
  );
}
