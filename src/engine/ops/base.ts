// Shared machinery of op definitions: launching a kernel into a fresh output tensor, broadcasting,
// fused elementwise expressions, and creating tensors from host data.
import type { Kernel } from '../../kernels/kernel';
import { f32, i32 } from '../../kernels/kernel';
import { type StridedView, contiguousStrides, elementwiseKernel } from '../../kernels/elementwise';
import { type DType, type LazyExpr, type Shape, Storage, Tensor, checkShape, getDefaultGpu, sizeOf, formatShape } from '../tensor';
import type { Gpu } from '../runtime/gpu';

export type Operand = Tensor | number;


/** Run `kernel` over `inputs` into a new tensor of `shape` (bound after the inputs). */
export function launch(kernel: Kernel, inputs: Tensor[], shape: Shape, dtype: DType = 'f32', uniforms?: ArrayBufferView, onGpu?: Gpu): Tensor {
  const gpu = inputs[0]?.gpu ?? onGpu ?? getDefaultGpu();
  for (const t of inputs) {
    if (t.gpu !== gpu) throw new Error(`${kernel.name}: inputs live on different GPU devices`);
  }
  const out = Tensor.empty(shape, dtype, gpu);
  if (out.size > 0) gpu.dispatch(kernel, [...inputs.map((t) => t.binding), out.binding], uniforms);
  return out;
}

/** Throws unless every given tensor is float32, naming the op (int32 tensors hold labels and indices). */
export function expectFloat(op: string, ...ts: (Tensor | null | undefined)[]): void {
  for (const t of ts) {
    if (t && t.dtype !== 'f32') throw new Error(`${op}: expects float32 tensors, got ${t.dtype} of shape ${formatShape(t.shape)}`);
  }
}

/** NumPy broadcasting of shapes; throws naming the op and the shapes. */
export function broadcastShapes(op: string, ...shapes: Shape[]): number[] {
  const nd = Math.max(...shapes.map((s) => s.length));
  const out: number[] = [];
  for (let i = 0; i < nd; i++) {
    let d = 1;
    for (const s of shapes) {
      const v = s[s.length - nd + i] ?? 1;
      if (v !== 1 && d !== 1 && v !== d) {
        throw new Error(`${op}: shapes ${shapes.map(formatShape).join(' and ')} cannot be broadcast together`);
      }
      if (v !== 1) d = v;
    }
    out.push(d);
  }
  return out;
}

/** Strides that read a contiguous tensor of `shape` as if broadcast to `outShape`. */
export function broadcastView(shape: Shape, outShape: Shape, dtype: DType = 'f32'): StridedView {
  const s = contiguousStrides([...shape]);
  const lead = outShape.length - shape.length;
  return {
    strides: outShape.map((_, d) => (d < lead || shape[d - lead] === 1 ? 0 : s[d - lead])),
    offset: 0,
    type: dtype,
  };
}

/**
 * An elementwise expression over named tensors, broadcast together: `ew('g * (1.0 - y * y)', {g, y})`.
 * Names must be plain identifiers. The result is lazy: same-shaped elementwise consumers inline it,
 * so chains become one kernel (see LazyExpr in tensor.ts). No gradient is recorded: ops use this for
 * forward kernels and backward rules alike.
 */
export function ew(name: string, expr: string, inputs: Record<string, Tensor>, outShape?: Shape, outType: DType = 'f32'): Tensor {
  // only inputs the expression mentions are bound (an unbound buffer would not match the layout)
  const names = Object.keys(inputs).filter((n) => new RegExp(`\\b${n}\\b`).test(expr));
  const tensors = names.map((n) => inputs[n]);
  const shape = [...(outShape ?? broadcastShapes(name, ...tensors.map((t) => t.shape)))];
  const gpu = tensors[0]?.gpu ?? getDefaultGpu();
  const lets = new Map<number, string>();
  const leaves: LazyExpr['leaves'] = new Map();
  const parts: string[] = [];
  const idents = tensors.map((t, k) => {
    if (t.gpu !== gpu) throw new Error(`${name}: inputs live on different GPU devices`);
    const room = Math.min(MAX_FUSED_LEAVES, gpu.limits.maxStorageBuffersPerShaderStage - 1) - (tensors.length - k - 1);
    if (t.fusableInto(shape) && leaves.size + t.lazy!.leaves.size <= room) {
      const lazy = t.lazy!;
      for (const [id, code] of lazy.lets) lets.set(id, code);
      for (const [k, leaf] of lazy.leaves) leaves.set(k, leaf);
      parts.push(lazy.name);
      return `v${lazy.result}`;
    }
    const view = broadcastView(t.shape, shape, t.dtype);
    const storage = t.storageForRead;
    const leaf = `s${storage.id}_${view.strides.join('_')}_o${view.offset}`;
    leaves.set(leaf, { storage, view });
    return leaf;
  });
  let code = expr;
  names.forEach((n, k) => (code = code.replace(new RegExp(`\\b${n}\\b`, 'g'), idents[k])));
  const id = nextLazyId++;
  lets.set(id, code);
  const fusedName = [...new Set([...parts.flatMap((p) => p.split('+')), name])].join('+');
  return new Tensor({ gpu, lazy: { name: fusedName.length > 120 ? `${fusedName.slice(0, 117)}...` : fusedName, lets, result: id, leaves } }, shape, outType);
}

let nextLazyId = 1;
/** Leaf buffers per fused kernel (and never more than the device's storage-buffer limit allows). */
const MAX_FUSED_LEAVES = 6;

/** Substitute numeric operands into an expression as literals; returns remaining tensor inputs. */
export function bindOperands(expr: string, operands: Record<string, Operand>): { expr: string; tensors: Record<string, Tensor> } {
  const tensors: Record<string, Tensor> = {};
  for (const [name, v] of Object.entries(operands)) {
    if (typeof v === 'number') expr = expr.replace(new RegExp(`\\b${name}\\b`, 'g'), `(${f32(v)})`);
    else tensors[name] = v;
  }
  return { expr, tensors };
}

// ---- creation -----------------------------------------------------------------------------------

export interface CreateOptions {
  gpu?: Gpu;
  dtype?: DType;
  requiresGrad?: boolean;
}

function fromHost(data: Float32Array | Int32Array, shape: Shape, opts: CreateOptions, what: string): Tensor {
  const s = checkShape(shape, what);
  if (sizeOf(s) !== data.length) throw new Error(`${what}: ${data.length} values do not fill shape ${formatShape(s)} (${sizeOf(s)} elements)`);
  const gpu = opts.gpu ?? getDefaultGpu();
  const dtype: DType = data instanceof Int32Array ? 'i32' : 'f32';
  const t = new Tensor(new Storage(gpu, gpu.alloc(Math.max(1, data.length) * 4)), s, dtype);
  gpu.upload(t.buffer, data);
  if (opts.requiresGrad) t.requiresGrad = true;
  return t;
}

/** A tensor from host values (nested arrays are not accepted: pass flat data and a shape). */
export function tensor(data: ArrayLike<number> | Float32Array | Int32Array, shape?: Shape, opts: CreateOptions = {}): Tensor {
  const dtype = opts.dtype ?? (data instanceof Int32Array ? 'i32' : 'f32');
  const typed =
    dtype === 'i32' ? (data instanceof Int32Array ? data : Int32Array.from(data)) : data instanceof Float32Array ? data : Float32Array.from(data);
  return fromHost(typed, shape ?? [typed.length], opts, 'tensor');
}

export function full(shape: Shape, value: number, opts: CreateOptions = {}): Tensor {
  const s = checkShape(shape, 'full');
  const dtype = opts.dtype ?? 'f32';
  if (dtype === 'i32' && (value | 0) !== value) throw new Error(`full: ${value} is not an int32 value`);
  const t = launch(elementwiseKernel('full', s, [], dtype === 'i32' ? i32(value) : f32(value), dtype), [], s, dtype, undefined, opts.gpu);
  if (opts.requiresGrad) t.requiresGrad = true;
  return t;
}

export const zeros = (shape: Shape, opts: CreateOptions = {}) => full(shape, 0, opts);
export const ones = (shape: Shape, opts: CreateOptions = {}) => full(shape, 1, opts);

/** [start, start + step, ...) below `stop`. */
export function arange(start: number, stop?: number, step = 1, opts: CreateOptions = {}): Tensor {
  if (stop === undefined) [start, stop] = [0, start];
  if (![start, stop, step].every(Number.isFinite) || step === 0) throw new Error(`arange: start, stop and step must be finite and step nonzero, got ${start}, ${stop}, ${step}`);
  const n = Math.max(0, Math.ceil((stop - start) / step));
  const dtype = opts.dtype ?? 'f32';
  if (dtype === 'i32' && ![start, step, start + (n - 1) * step].every((v) => (v | 0) === v)) {
    throw new Error(`arange: start ${start} and step ${step} do not give int32 values; use dtype 'f32'`);
  }
  const expr = dtype === 'i32' ? `${i32(start)} + i32(i) * ${i32(step)}` : `${f32(start)} + f32(i) * ${f32(step)}`;
  return launch(elementwiseKernel('arange', [n], [], expr, dtype), [], [n], dtype, undefined, opts.gpu);
}
