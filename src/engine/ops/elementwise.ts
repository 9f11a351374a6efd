// Elementwise ops. Each is one line of WGSL for the forward pass and one for each gradient, side by
// side; both run as fused elementwise kernels (see ew in base.ts).
import { type PendingSum, Tensor, recordGrad } from '../tensor';
import { type Operand, bindOperands, broadcastShapes, ew, expectFloat } from './base';
import { sumToLater } from './reduce';

interface UnaryDef {
  /** forward, in terms of x */
  f: string;
  /** dL/dx in terms of g (dL/dy), x and y; omitted: not differentiable (zero gradient) */
  df?: string;
}

export const UNARY = {
  neg: { f: '-x', df: '-g' },
  exp: { f: 'exp(x)', df: 'g * y' },
  log: { f: 'log(x)', df: 'g / x' },
  sqrt: { f: 'sqrt(x)', df: 'g * 0.5 / y' },
  rsqrt: { f: 'inverseSqrt(x)', df: 'g * -0.5 * y * y * y' },
  abs: { f: 'abs(x)', df: 'g * sign(x)' },
  square: { f: 'x * x', df: 'g * 2.0 * x' },
  sin: { f: 'sin(x)', df: 'g * cos(x)' },
  cos: { f: 'cos(x)', df: '-g * sin(x)' },
  tanh: { f: 'tanh_safe(x)', df: 'g * (1.0 - y * y)' },
  sigmoid: { f: 'sigmoid(x)', df: 'g * y * (1.0 - y)' },
  relu: { f: 'max(x, 0.0)', df: 'select(0.0, g, x > 0.0)' },
  silu: { f: 'x * sigmoid(x)', df: 'g * (sigmoid(x) * (1.0 + x * (1.0 - sigmoid(x))))' },
  gelu: { f: 'gelu_tanh(x)', df: 'g * gelu_tanh_grad(x)' },
  sign: { f: 'sign(x)' },
  floor: { f: 'floor(x)' },
} satisfies Record<string, UnaryDef>;

export type UnaryOp = keyof typeof UNARY;

export function unary(op: UnaryOp, x: Tensor): Tensor {
  const def: UnaryDef = UNARY[op];
  if (x.dtype !== 'f32') throw new Error(`${op}: expects a float32 tensor, got ${x.dtype}`);
  const y = ew(op, def.f, { x });
  return recordGrad(y, op, [x], (g) => [def.df ? ew(`${op}.grad`, def.df, { g, x, y }) : null]);
}

interface BinaryDef {
  f: string;
  /** dL/da and dL/db in terms of g, a, b, y (before summing over broadcast dims) */
  da?: string;
  db?: string;
}

export const BINARY = {
  add: { f: 'a + b', da: 'g', db: 'g' },
  sub: { f: 'a - b', da: 'g', db: '-g' },
  mul: { f: 'a * b', da: 'g * b', db: 'g * a' },
  div: { f: 'a / b', da: 'g / b', db: '-g * a / (b * b)' },
  pow: { f: 'pow_real(a, b)', da: 'g * b * pow_real(a, b - 1.0)', db: 'select(g * y * log(a), 0.0, y == 0.0 || a <= 0.0)' },
  maximum: { f: 'max(a, b)', da: 'select(0.0, g, a >= b)', db: 'select(0.0, g, b > a)' },
  minimum: { f: 'min(a, b)', da: 'select(0.0, g, a <= b)', db: 'select(0.0, g, b < a)' },
  eq: { f: 'select(0.0, 1.0, a == b)' },
  ne: { f: 'select(0.0, 1.0, a != b)' },
  lt: { f: 'select(0.0, 1.0, a < b)' },
  le: { f: 'select(0.0, 1.0, a <= b)' },
  gt: { f: 'select(0.0, 1.0, a > b)' },
  ge: { f: 'select(0.0, 1.0, a >= b)' },
} satisfies Record<string, BinaryDef>;

export type BinaryOp = keyof typeof BINARY;

export function binary(op: BinaryOp, a: Operand, b: Operand): Tensor {
  const def: BinaryDef = BINARY[op];
  for (const v of [a, b]) {
    if (v instanceof Tensor && v.dtype !== 'f32') throw new Error(`${op}: expects float32 tensors, got ${v.dtype}`);
  }
  const { expr, tensors } = bindOperands(def.f, { a, b });
  const y = ew(op, expr, tensors);
  const inputs = [a, b].filter((v): v is Tensor => v instanceof Tensor);
  return recordGrad(y, op, inputs, (g) => {
    const grads: (Tensor | PendingSum | null)[] = [];
    for (const [name, operand, rule] of [['a', a, def.da], ['b', b, def.db]] as const) {
      if (!(operand instanceof Tensor)) continue;
      if (!rule) {
        grads.push(null);
        continue;
      }
      // a gradient that passes through unchanged is g itself, not a copy kernel
      const bound = bindOperands(rule, { a, b, g, y });
      grads.push(sumToLater(rule === 'g' ? g : ew(`${op}.grad_${name}`, bound.expr, bound.tensors, y.shape), operand.shape));
    }
    return grads;
  });
}

/** cond ? a : b elementwise (cond != 0 picks a), broadcasting all three. */
export function where(cond: Tensor, a: Operand, b: Operand): Tensor {
  expectFloat('where', cond, ...[a, b].filter((v): v is Tensor => v instanceof Tensor));
  const { expr, tensors } = bindOperands('select(b, a, c != 0.0)', { c: cond, a, b });
  const y = ew('where', expr, tensors, broadcastShapes('where', cond.shape, ...[a, b].filter((v): v is Tensor => v instanceof Tensor).map((t) => t.shape)));
  const inputs = [a, b].filter((v): v is Tensor => v instanceof Tensor);
  return recordGrad(y, 'where', inputs, (g) =>
    ([['a', a, 'select(0.0, g, c != 0.0)'], ['b', b, 'select(g, 0.0, c != 0.0)']] as const)
      .filter(([, v]) => v instanceof Tensor)
      .map(([name, v, rule]) => sumToLater(ew(`where.grad_${name}`, rule, { g, c: cond }, y.shape), (v as Tensor).shape)),
  );
}

/** A copy with its own storage; the gradient passes through. */
export function clone(x: Tensor): Tensor {
  const y = ew('copy', 'x', { x }, x.shape, x.dtype);
  return recordGrad(y, 'clone', [x], (g) => [g]);
}
