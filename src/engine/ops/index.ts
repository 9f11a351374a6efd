// Tensor methods: thin sugar over the op functions, so models read like PyTorch (`x.matmul(w).add(b).relu()`).
import { Tensor } from '../tensor';
import { type Operand, full } from './base';
import { type UnaryOp, UNARY, type BinaryOp, BINARY, binary, clone, unary, where } from './elementwise';
import { max, mean, sum, variance } from './reduce';
import { concat, expand, pad, permute, reshape, slice, transpose } from './shape';
import { matmul } from './matmul';
import { avgPool2x, conv2d, upsample2x } from './conv';
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

// Each method once: the op function it calls, with the tensor as its first argument. The method's
// type is the function's without that argument (return types are written out, so the table's type
// does not depend on Tensor's members, which it defines).
const METHODS = {
  clone,
  onesLike: (x: Tensor): Tensor => full(x.shape, 1, { gpu: x.gpu }),
  zerosLike: (x: Tensor): Tensor => full(x.shape, 0, { gpu: x.gpu }),
  sum,
  mean,
  max,
  var: variance,
  reshape,
  permute,
  transpose,
  expand,
  slice,
  pad,
  matmul,
  conv2d,
  upsample2x,
  avgPool2x,
  softmax,
  logSoftmax,
  crossEntropy,
  groupNorm,
  layerNorm,
  where,
  gather: (indices: Tensor, table: Tensor): Tensor => embedding(table, indices),
};

type Rest<F> = F extends (x: Tensor, ...rest: infer R) => Tensor ? R : never;
type TableMethods = { [K in keyof typeof METHODS]: (...args: Rest<(typeof METHODS)[K]>) => Tensor };

declare module '../tensor' {
  interface Tensor extends UnaryMethods, BinaryMethods, TableMethods {}
}

const proto = Tensor.prototype as unknown as Record<string, unknown>;
for (const op of Object.keys(UNARY) as UnaryOp[]) proto[op] = function (this: Tensor) { return unary(op, this); };
for (const op of Object.keys(BINARY) as BinaryOp[]) proto[op] = function (this: Tensor, o: Operand) { return binary(op, this, o); };
for (const [name, fn] of Object.entries(METHODS) as [string, (x: Tensor, ...rest: unknown[]) => Tensor][]) {
  proto[name] = function (this: Tensor, ...rest: unknown[]) { return fn(this, ...rest); };
}

export { concat };
