// Tensor methods: thin sugar over the op functions, so models read like PyTorch (`x.matmul(w).add(b).relu()`).
import { Tensor } from '../tensor';
import { type Operand, full } from './base';
import { type UnaryOp, UNARY, type BinaryOp, BINARY, binary, clone, unary, where } from './elementwise';
import { type Axes, max, mean, sum, variance } from './reduce';
import { concat, expand, pad, permute, reshape, slice, transpose } from './shape';
import { matmul } from './matmul';
import { type Conv2dOptions, avgPool2x, conv2d, upsample2x } from './conv';
import { crossEntropy, embedding, groupNorm, layerNorm, logSoftmax, softmax } from './nn-functional';

export * from './base';
export * from './elementwise';
export * from './reduce';
export * from './shape';
export * from './matmul';
export * from './conv';
export * from './nn-functional';
export * from './random';

type UnaryMethods = { [K in UnaryOp]: () => Tensor };
type BinaryMethods = { [K in BinaryOp]: (other: Operand) => Tensor };

declare module '../tensor' {
  interface Tensor extends UnaryMethods, BinaryMethods {
    clone(): Tensor;
    onesLike(): Tensor;
    zerosLike(): Tensor;
    sum(axes?: Axes, keepdims?: boolean): Tensor;
    mean(axes?: Axes, keepdims?: boolean): Tensor;
    max(axes?: Axes, keepdims?: boolean): Tensor;
    var(axes?: Axes, keepdims?: boolean): Tensor;
    reshape(shape: readonly number[]): Tensor;
    permute(perm: readonly number[]): Tensor;
    transpose(a?: number, b?: number): Tensor;
    expand(shape: readonly number[]): Tensor;
    slice(starts: readonly number[], ends: readonly number[]): Tensor;
    pad(pads: readonly (readonly [number, number])[], value?: number): Tensor;
    matmul(other: Tensor): Tensor;
    conv2d(weight: Tensor, bias?: Tensor | null, opts?: Conv2dOptions): Tensor;
    upsample2x(): Tensor;
    avgPool2x(): Tensor;
    softmax(axis?: number): Tensor;
    logSoftmax(axis?: number): Tensor;
    crossEntropy(labels: Tensor): Tensor;
    groupNorm(groups: number, gamma: Tensor | null, beta: Tensor | null, eps?: number): Tensor;
    layerNorm(gamma: Tensor | null, beta: Tensor | null, eps?: number): Tensor;
    where(a: Operand, b: Operand): Tensor;
    gather(table: Tensor): Tensor;
  }
}

const proto = Tensor.prototype as unknown as Record<string, unknown>;
for (const op of Object.keys(UNARY) as UnaryOp[]) proto[op] = function (this: Tensor) { return unary(op, this); };
for (const op of Object.keys(BINARY) as BinaryOp[]) proto[op] = function (this: Tensor, o: Operand) { return binary(op, this, o); };

Object.assign(Tensor.prototype, {
  clone(this: Tensor) { return clone(this); },
  onesLike(this: Tensor) { return full(this.shape, 1, { gpu: this.gpu }); },
  zerosLike(this: Tensor) { return full(this.shape, 0, { gpu: this.gpu }); },
  sum(this: Tensor, axes?: Axes, keepdims = false) { return sum(this, axes, keepdims); },
  mean(this: Tensor, axes?: Axes, keepdims = false) { return mean(this, axes, keepdims); },
  max(this: Tensor, axes?: Axes, keepdims = false) { return max(this, axes, keepdims); },
  var(this: Tensor, axes?: Axes, keepdims = false) { return variance(this, axes, keepdims); },
  reshape(this: Tensor, shape: readonly number[]) { return reshape(this, shape); },
  permute(this: Tensor, perm: readonly number[]) { return permute(this, perm); },
  transpose(this: Tensor, a?: number, b?: number) { return transpose(this, a, b); },
  expand(this: Tensor, shape: readonly number[]) { return expand(this, shape); },
  slice(this: Tensor, starts: readonly number[], ends: readonly number[]) { return slice(this, starts, ends); },
  pad(this: Tensor, pads: readonly (readonly [number, number])[], value = 0) { return pad(this, pads, value); },
  matmul(this: Tensor, other: Tensor) { return matmul(this, other); },
  conv2d(this: Tensor, weight: Tensor, bias: Tensor | null = null, opts: Conv2dOptions = {}) { return conv2d(this, weight, bias, opts); },
  upsample2x(this: Tensor) { return upsample2x(this); },
  avgPool2x(this: Tensor) { return avgPool2x(this); },
  softmax(this: Tensor, axis = -1) { return softmax(this, axis); },
  logSoftmax(this: Tensor, axis = -1) { return logSoftmax(this, axis); },
  crossEntropy(this: Tensor, labels: Tensor) { return crossEntropy(this, labels); },
  groupNorm(this: Tensor, groups: number, gamma: Tensor | null, beta: Tensor | null, eps = 1e-5) { return groupNorm(this, groups, gamma, beta, eps); },
  layerNorm(this: Tensor, gamma: Tensor | null, beta: Tensor | null, eps = 1e-5) { return layerNorm(this, gamma, beta, eps); },
  where(this: Tensor, a: Operand, b: Operand) { return where(this, a, b); },
  gather(this: Tensor, table: Tensor) { return embedding(table, this); },
});

export { concat };
