// Batched matmul with broadcast batch dims. Transposed operands are read through strides, so the
// backward pass (g @ b^T, a^T @ g) launches the same kernel without copying.
import { runGemm } from '../autotune';
import { contiguousStrides } from '../../kernels/elementwise';
import { u32 } from '../../kernels/kernel';
import { Tensor, recordGrad, formatShape } from '../tensor';
import { broadcastShapes, expectFloat, zeros } from './base';
import { sumTo } from './reduce';


/** WGSL for the element offset of batch `b` in an operand with batch shape `own` broadcast to `batch`. */
function batchOffset(batch: number[], own: number[], matrixSize: number): string {
  const lead = batch.length - own.length;
  const ownStrides = contiguousStrides(own).map((s) => s * matrixSize);
  const terms: string[] = [];
  let div = 1;
  for (let d = batch.length - 1; d >= 0; d--) {
    const o = d - lead;
    if (o >= 0 && own[o] !== 1) terms.push(`((b / ${u32(div)}) % ${u32(batch[d])}) * ${u32(ownStrides[o])}`);
    div *= batch[d];
  }
  return terms.join(' + ') || '0u';
}

/** (a or a^T) @ (b or b^T) for contiguous a [..., r, c], b [..., r, c]. */
export function matmulRaw(a: Tensor, b: Tensor, transA = false, transB = false): Tensor {
  expectFloat('matmul', a, b);
  const [ar, ac] = a.shape.slice(-2);
  const [br, bc] = b.shape.slice(-2);
  const [M, K] = transA ? [ac, ar] : [ar, ac];
  const [K2, N] = transB ? [bc, br] : [br, bc];
  if (K !== K2) {
    throw new Error(`matmul: inner dimensions differ: ${formatShape(a.shape)}${transA ? '^T' : ''} @ ${formatShape(b.shape)}${transB ? '^T' : ''} (${K} vs ${K2})`);
  }
  const aBatch = a.shape.slice(0, -2);
  const bBatch = b.shape.slice(0, -2);
  const batch = broadcastShapes('matmul', aBatch, bBatch);
  const nb = batch.reduce((x, y) => x * y, 1);
  const outShape = [...batch, M, N];
  if (K === 0) return zeros(outShape, { gpu: a.gpu }); // an empty sum
  const out = Tensor.empty(outShape, 'f32', a.gpu);
  if (out.size === 0) return out;
  const aSize = ar * ac;
  const bSize = br * bc;
  runGemm(
    a.gpu,
    {
      name: `matmul ${formatShape(a.shape)}${transA ? 'T' : ''}x${formatShape(b.shape)}${transB ? 'T' : ''}`,
      batch: nb,
      M,
      N,
      K,
      // A[m, k] = a[m, k] or a[k, m]; B[k, n] = b[k, n] or b[n, k]
      a: { kind: 'strided', buffer: 'A', offset: batchOffset(batch, aBatch, aSize), aligned4: aSize % 4 === 0, rowStride: transA ? 1 : ac, colStride: transA ? ac : 1 },
      b: { kind: 'strided', buffer: 'B', offset: batchOffset(batch, bBatch, bSize), aligned4: bSize % 4 === 0, rowStride: transB ? 1 : bc, colStride: transB ? bc : 1 },
      out: { buffer: 'C', offset: `b * ${u32(M * N)}`, aligned4: (M * N) % 4 === 0, rowStride: N },
    },
    'matmul',
    { A: a.binding, B: b.binding, C: out.binding },
  );
  return out;
}

export function matmul(a: Tensor, b: Tensor): Tensor {
  if (a.ndim < 2 || b.ndim < 2) {
    throw new Error(`matmul: operands must have at least 2 dimensions, got ${formatShape(a.shape)} and ${formatShape(b.shape)} (reshape vectors to [1, n] or [n, 1])`);
  }
  const y = matmulRaw(a, b);
  return recordGrad(y, 'matmul', [a, b], (g) => [
    a.requiresGrad ? sumTo(matmulRaw(g, b, false, true), a.shape) : null,
    b.requiresGrad ? sumTo(matmulRaw(a, g, true, false), b.shape) : null,
  ]);
}
