// Neural-network ops composed from primitives (their gradients follow by the chain rule), plus the
// embedding gather with its own deterministic scatter-add gradient and GroupNorm's fused kernels.
import { gatherRowsKernel, scatterRowsKernel } from '../../kernels/indexing';
import { type GroupNormPass, type GroupNormSpec, groupNormAffineBindings, groupNormBackwardDxKernel, groupNormBackwardParamsKernel, groupNormForwardKernel } from '../../kernels/norm';
import { f32, i32 } from '../../kernels/kernel';
import { Tensor, noGrad, recordGrad, formatShape } from '../tensor';
import { ew, expectFloat, launch } from './base';
import { normAxes } from './reduce';


export function softmax(x: Tensor, axis = -1): Tensor {
  expectFloat('softmax', x);
  normAxes('softmax', x.shape, axis);
  const shifted = x.sub(noGrad(() => x.max(axis, true)));
  const e = shifted.exp();
  return e.div(e.sum(axis, true));
}

export function logSoftmax(x: Tensor, axis = -1): Tensor {
  expectFloat('logSoftmax', x);
  normAxes('logSoftmax', x.shape, axis);
  const shifted = x.sub(noGrad(() => x.max(axis, true)));
  return shifted.sub(shifted.exp().sum(axis, true).log());
}

/** Mean over the batch of -log softmax(logits)[label]; logits [N, C], labels int32 [N]. */
export function crossEntropy(logits: Tensor, labels: Tensor): Tensor {
  if (logits.ndim !== 2 || labels.ndim !== 1 || labels.shape[0] !== logits.shape[0] || labels.dtype !== 'i32') {
    throw new Error(`crossEntropy: expects logits [N, C] and int32 labels [N], got ${formatShape(logits.shape)} and ${labels.dtype} ${formatShape(labels.shape)}`);
  }
  const [n, c] = logits.shape;
  // a label outside [0, C) makes the loss NaN: checking on the host would cost a readback
  const onehot = ew('onehot', `select(select(0.0, 1.0, l == i32(i % ${c}u)), ${f32(NaN)}, l < 0i || l >= ${i32(c)})`, { l: labels.reshape([n, 1]) }, [n, c]);
  return logSoftmax(logits, 1).mul(onehot).sum().mul(-1 / n);
}

function affine(y: Tensor, gamma: Tensor | null, beta: Tensor | null, shape: number[]): Tensor {
  let out = y;
  if (gamma) out = out.mul(gamma.reshape(shape));
  if (beta) out = out.add(beta.reshape(shape));
  return out;
}

export interface GroupNormOptions {
  /** apply SiLU to the normalised, affine output in the same kernels (the UNet's norm-then-SiLU) */
  silu?: boolean;
}

/**
 * GroupNorm over x [N, C, ...]: statistics per sample and group of C/groups channels, then the
 * affine per channel, then SiLU if asked. Fused: one kernel forward, two backward (dx; dgamma and
 * dbeta), whatever the shape.
 */
export function groupNorm(x: Tensor, groups: number, gamma: Tensor | null, beta: Tensor | null, eps = 1e-5, opts: GroupNormOptions = {}): Tensor {
  expectFloat('groupNorm', x, gamma, beta);
  const [n, c] = x.shape;
  if (x.ndim < 2 || !Number.isInteger(groups) || groups < 1 || c % groups !== 0) {
    throw new Error(`groupNorm: ${groups} groups do not divide the ${c} channels of ${formatShape(x.shape)}`);
  }
  for (const p of [gamma, beta]) if (p && (p.ndim !== 1 || p.shape[0] !== c)) throw new Error(`groupNorm: affine parameters must have shape [${c}], got ${formatShape(p.shape)}`);
  for (const p of [gamma, beta]) if (p && p.gpu !== x.gpu) throw new Error('groupNorm: x and the affine parameters live on different GPU devices');
  const spec: GroupNormSpec = { batch: n, channels: c, groups, spatial: x.size / Math.max(1, n * c), eps, gamma: !!gamma, beta: !!beta, silu: !!opts.silu };
  const affine = [gamma, beta].filter((p): p is Tensor => !!p);
  const params = (pass: GroupNormPass) => groupNormAffineBindings(spec, pass).map((name) => (name === 'gamma' ? gamma! : beta!).binding);
  const y = Tensor.empty(x.shape, 'f32', x.gpu);
  const stats = Tensor.empty([n * groups, 2], 'f32', x.gpu);
  if (x.size > 0) x.gpu.dispatch(groupNormForwardKernel(spec), [x.binding, ...params('forward'), y.binding, stats.binding]);
  return recordGrad(y, opts.silu ? 'groupNormSilu' : 'groupNorm', [x, ...affine], (g) => {
    const inputs = [g.binding, x.binding, stats.binding];
    let dx: Tensor | null = null;
    if (x.requiresGrad) {
      dx = Tensor.empty(x.shape, 'f32', x.gpu);
      if (x.size > 0) x.gpu.dispatch(groupNormBackwardDxKernel(spec), [...inputs, ...params('dx'), dx.binding]);
    }
    if (!affine.some((p) => p.requiresGrad)) return [dx, ...affine.map(() => null)];
    const dgamma = Tensor.empty([c], 'f32', x.gpu);
    const dbeta = Tensor.empty([c], 'f32', x.gpu);
    x.gpu.dispatch(groupNormBackwardParamsKernel(spec), [...inputs, ...params('dparams'), dgamma.binding, dbeta.binding]);
    return [dx, ...(gamma ? [dgamma] : []), ...(beta ? [dbeta] : [])];
  });
}

/** LayerNorm over the last dimension. */
export function layerNorm(x: Tensor, gamma: Tensor | null, beta: Tensor | null, eps = 1e-5): Tensor {
  const d = x.shape[x.ndim - 1];
  for (const p of [gamma, beta]) if (p && (p.ndim !== 1 || p.shape[0] !== d)) throw new Error(`layerNorm: affine parameters must have shape [${d}], got ${formatShape(p.shape)}`);
  const mu = x.mean(-1, true);
  const centered = x.sub(mu);
  const y = centered.mul(centered.square().mean(-1, true).add(eps).rsqrt());
  return affine(y, gamma, beta, [d]);
}

/** Rows of table [V, D] at int32 indices of any shape: result [...indices.shape, D]. */
export function embedding(table: Tensor, indices: Tensor): Tensor {
  if (table.ndim !== 2 || table.dtype !== 'f32' || indices.dtype !== 'i32') {
    throw new Error(`embedding: expects a table [V, D] and int32 indices, got ${table.dtype} ${formatShape(table.shape)} and ${indices.dtype} indices`);
  }
  const [v, d] = table.shape;
  const y = launch(gatherRowsKernel(v, d, indices.size), [table, indices], [...indices.shape, d]);
  return recordGrad(y, 'embedding', [table], (g) => [launch(scatterRowsKernel(v, d, indices.size), [g, indices], table.shape)]);
}
