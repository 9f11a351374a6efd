// A model's parameters packed into one buffer, and their gradients into a second of the same layout,
// so AdamW, the EMA and the global gradient norm each run as one dispatch over all parameters
// (PyTorch's fused optimizers, apex's multi_tensor_apply). Each parameter stays the same Tensor
// object, now a range of the arena (a kernel binds buffer, offset and size); ranges start at the
// device's minStorageBufferOffsetAlignment and the padding between them holds zeros, which every
// flat kernel leaves at zero (AdamW: g = m = v = p = 0 gives p = 0; EMA: 0; norm: adds 0).
// A gradient arena is never cleared: zeroGrad drops the gradient tensors, and the first backward
// after it overwrites each slot (Tensor.gradSlot), so flat kernels run only when every parameter
// has a gradient written since (collectGrads).
import { Storage, Tensor, gatherIntoSlots, keep, noGrad } from './tensor';

const arenaOf = new WeakMap<Tensor, ParameterArena>();

export class ParameterArena {
  /** element offset of each parameter in both arenas */
  readonly offsets: number[];
  /** elements of each arena, padding included */
  readonly total: number;
  /** all parameter values, [total] */
  readonly values: Tensor;
  /** all gradients, [total] */
  readonly grads: Tensor;
  private readonly slots: (Storage | null)[];
  private disposed = false;

  private constructor(readonly params: Tensor[]) {
    const gpu = params[0].gpu;
    const align = Math.max(1, gpu.limits.minStorageBufferOffsetAlignment / 4);
    let total = 0;
    this.offsets = params.map((p) => {
      const o = total;
      total += Math.ceil(p.size / align) * align;
      return o;
    });
    this.total = Math.max(total, align);
    const arena = () => {
      const storage = new Storage(gpu, gpu.alloc(this.total * 4));
      gpu.clear(storage.buffer, 0, this.total * 4);
      return keep(new Tensor(storage, [this.total]));
    };
    this.values = arena();
    this.grads = arena();
    const values = this.values.storageForRead;
    const grads = this.grads.storageForRead;
    this.slots = params.map((p, k) => (p.size > 0 ? grads.range(this.offsets[k] * 4, p.size * 4) : null));
    params.forEach((p, k) => {
      arenaOf.get(p)?.dispose(); // an arena that lost a parameter is never used again
      if (p.size > 0) p.moveInto(values.range(this.offsets[k] * 4, p.size * 4));
      p.gradSlot = this.slots[k];
      arenaOf.set(p, this);
    });
  }

  /** Pack `params` (their data moves, each keeps its identity), or return the live arena that holds
   *  exactly these parameters in this order. Null where they cannot share one buffer (repeated or
   *  non-float32 tensors, several devices, or more bytes than one storage binding may hold). */
  static pack(params: Tensor[]): ParameterArena | null {
    const existing = ParameterArena.of(params);
    if (existing || params.length === 0) return existing;
    const gpu = params[0].gpu;
    const align = Math.max(1, gpu.limits.minStorageBufferOffsetAlignment / 4);
    const bytes = 4 * params.reduce((a, p) => a + Math.ceil(p.size / align) * align, 0);
    const packable =
      new Set(params).size === params.length &&
      params.every((p) => p.gpu === gpu && p.dtype === 'f32' && !p.disposed) &&
      bytes <= gpu.limits.maxStorageBufferBindingSize;
    return packable ? new ParameterArena(params) : null;
  }

  /** The live arena holding exactly `params` in this order, or null. */
  static of(params: Tensor[]): ParameterArena | null {
    const a = params.length > 0 ? arenaOf.get(params[0]) : undefined;
    if (!a || a.disposed || a.params.length !== params.length) return null;
    return a.params.every((p, k) => p === params[k] && arenaOf.get(p) === a) ? a : null;
  }

  /** True when every parameter has a gradient, and then each is in its slot: gradients set by hand
   *  (or computed before packing) are gathered in, a few multi-tensor dispatches. */
  collectGrads(): boolean {
    if (this.params.some((p) => p.size > 0 && !p.grad)) return false;
    const moved = this.params.flatMap((p, k) => (p.size > 0 && !p.grad!.isBackedBy(this.slots[k]!) ? [k] : []));
    if (moved.length === 0) return true;
    gatherIntoSlots(this.values.gpu, moved.map((k) => ({ slot: this.slots[k]!, src: this.params[k].grad! })));
    for (const k of moved) {
      const p = this.params[k];
      p.grad!.dispose();
      p.grad = keep(new Tensor(this.slots[k]!, p.shape));
    }
    return true;
  }

  /** Global L2 norm of the gradients as a one-element tensor (call after collectGrads() is true). */
  gradNorm(): Tensor {
    return noGrad(() => this.grads.square().sum().sqrt().reshape([1]));
  }

  /** Release the arena's own references: the parameters (ranges of it) keep the values alive, and
   *  their gradients go back to buffers of their own. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const p of this.params) if (arenaOf.get(p) === this) p.gradSlot = null;
    this.values.dispose();
    this.grads.dispose();
  }
}
