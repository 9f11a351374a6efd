// Reductions: sum, mean, max, var over any axes, with keepdims; and sumTo (undo a broadcast).
import { reducePlan, type ReduceOp } from '../../kernels/reduce';
import { PendingSum, Tensor, recordGrad, formatShape } from '../tensor';
import { ew, expectFloat, full, launch } from './base';

export type Axes = number | number[] | undefined;

/** Normalise axes (negative allowed; undefined = all), sorted and unique; throws naming the op. */
export function normAxes(op: string, shape: number[], axes: Axes): number[] {
  const list = axes === undefined ? shape.map((_, d) => d) : typeof axes === 'number' ? [axes] : axes;
  const out = list.map((a) => {
    const d = a < 0 ? a + shape.length : a;
    if (!Number.isInteger(d) || d < 0 || d >= shape.length) {
      throw new Error(`${op}: axis ${a} is out of range for shape ${formatShape(shape)}`);
    }
    return d;
  });
  if (new Set(out).size !== out.length) throw new Error(`${op}: repeated axis in ${formatShape(list)}`);
  return out.sort((a, b) => a - b);
}

function keptShape(shape: number[], axes: number[], keepdims: boolean): number[] {
  return keepdims ? shape.map((d, i) => (axes.includes(i) ? 1 : d)) : shape.filter((_, i) => !axes.includes(i));
}

function reduceRaw(x: Tensor, axes: number[], op: ReduceOp, scale: number, keepdims: boolean): Tensor {
  const outShape = keptShape(x.shape, axes, keepdims);
  if (x.size === 0) {
    if (op === 'max' && axes.some((d) => x.shape[d] === 0)) {
      throw new Error(`max: cannot reduce over the empty axes of shape ${formatShape(x.shape)} (the maximum of no elements is undefined)`);
    }
    // an empty sum is 0; an empty mean (scale 1/0) is NaN, as in NumPy and PyTorch
    return full(outShape, 0 * scale, { gpu: x.gpu });
  }
  if (axes.length === 0) {
    return scale === 1 ? x.clone().reshape(outShape) : x.mul(scale).reshape(outShape);
  }
  const plan = reducePlan(`${op}[${x.shape}] axes ${axes}`, x.shape, axes, op, scale);
  if (plan.scratch === 0) return launch(plan.kernels[0], [x], outShape);
  const partial = launch(plan.kernels[0], [x], [plan.scratch]);
  const out = launch(plan.kernels[1], [partial], outShape);
  partial.dispose();
  return out;
}

export function sum(x: Tensor, axes?: Axes, keepdims = false): Tensor {
  expectFloat('sum', x);
  const ax = normAxes('sum', x.shape, axes);
  const y = reduceRaw(x, ax, 'sum', 1, keepdims);
  return recordGrad(y, 'sum', [x], (g) => [g.reshape(keptShape(x.shape, ax, true)).expand(x.shape)]);
}

export function mean(x: Tensor, axes?: Axes, keepdims = false): Tensor {
  expectFloat('mean', x);
  const ax = normAxes('mean', x.shape, axes);
  const n = ax.reduce((a, d) => a * x.shape[d], 1);
  const y = reduceRaw(x, ax, 'sum', 1 / n, keepdims);
  return recordGrad(y, 'mean', [x], (g) => [g.reshape(keptShape(x.shape, ax, true)).mul(1 / n).expand(x.shape)]);
}

/** Maximum; the gradient goes to every position equal to the max (ties share it, as in PyTorch's amax). */
export function max(x: Tensor, axes?: Axes, keepdims = false): Tensor {
  expectFloat('max', x);
  const ax = normAxes('max', x.shape, axes);
  const y = reduceRaw(x, ax, 'max', 1, keepdims);
  return recordGrad(y, 'max', [x], (g) => {
    const k = keptShape(x.shape, ax, true);
    const mask = ew('max.mask', 'select(0.0, 1.0, x == m)', { x, m: y.reshape(k) });
    const count = reduceRaw(mask, ax, 'sum', 1, true);
    return [ew('max.grad', 'mask * g / count', { mask, g: g.reshape(k), count })];
  });
}

/** Population variance (correction 0), as normalisation layers use. */
export function variance(x: Tensor, axes?: Axes, keepdims = false): Tensor {
  expectFloat('var', x);
  const ax = normAxes('var', x.shape, axes);
  const centered = x.sub(mean(x, ax, true));
  return mean(centered.square(), ax, keepdims);
}

/** Sum a broadcast gradient back down to `shape` (the inverse of expand). */
export function sumTo(g: Tensor, shape: number[]): Tensor {
  if (g.shape.join() === shape.join()) return g;
  const lead = g.ndim - shape.length;
  const axes: number[] = [];
  g.shape.forEach((d, i) => {
    if (i < lead || (shape[i - lead] === 1 && d !== 1)) axes.push(i);
  });
  return reduceRaw(g, axes, 'sum', 1, false).reshape(shape);
}

/** sumTo for a gradient rule: where the reduction is a bias's (every axis before one block of kept
 *  axes and every axis after it summed), left pending, so backward() can reduce the gradients of a
 *  model's parameters together; otherwise sumTo at once. */
export function sumToLater(g: Tensor, shape: number[]): Tensor | PendingSum {
  if (g.shape.join() === shape.join()) return g;
  const lead = g.ndim - shape.length;
  const kept = g.shape.map((d, i) => i >= lead && shape[i - lead] === d && d !== 1);
  const first = kept.indexOf(true);
  const last = kept.lastIndexOf(true);
  const prod = (lo: number, hi: number) => g.shape.slice(lo, hi).reduce((a, d) => a * d, 1);
  const c = first < 0 ? 1 : prod(first, last + 1);
  const block = first < 0 || kept.slice(first, last + 1).every((k, i) => k || g.shape[first + i] === 1);
  if (!block || g.size === 0) return sumTo(g, shape);
  const a = first < 0 ? g.size : prod(0, first);
  return new PendingSum(g, a, c, g.size / (a * c), shape, () => sumTo(g, shape));
}
