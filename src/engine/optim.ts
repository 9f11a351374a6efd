// Optimizers and training utilities: AdamW with a fused WGSL update, global gradient-norm clipping
// folded into that update, an exponential moving average of parameters, learning-rate warmup.
import { adamwKernel, adamwMultiKernel, emaKernel, emaMultiKernel, sumSquaresMultiKernel } from '../kernels/optim';
import { f32 } from '../kernels/kernel';
import { Tensor, keep, noGrad, scope, formatShape } from './tensor';
import { ew, zeros } from './ops/index';
import { type Gpu, bufferOf } from './runtime/gpu';
import type { Module } from './modules';
import { ParameterArena } from './param-arena';

export interface AdamWOptions {
  lr?: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
  /** clip the global gradient norm to this value before the update (PyTorch's clip_grad_norm_) */
  maxGradNorm?: number;
}

/** How many parameter tensors one multi-tensor dispatch binds, given the storage buffers a stage may
 *  bind (raised to the adapter's maximum; WebGPU's default is 8) and the kernel's fixed bindings. */
function tensorsPerDispatch(gpu: Gpu, fixed: number, perTensor: number): number {
  const limit = gpu.limits.maxStorageBuffersPerShaderStage ?? 8;
  return Math.max(1, Math.min(16, Math.floor((limit - fixed) / perTensor)));
}

function chunks<T>(xs: T[], k: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += k) out.push(xs.slice(i, i + k));
  return out;
}

/** Offsets of `params` in a flat state arena (in elements, in order) and its total size: the layout
 *  of their parameter arena when they are packed (so state and parameters line up element for
 *  element), else back to back. */
function arenaLayout(params: Tensor[], packed: ParameterArena | null): { offsets: Map<Tensor, number>; total: number } {
  if (packed) return { offsets: new Map(params.map((p, k) => [p, packed.offsets[k]])), total: packed.total };
  const offsets = new Map<Tensor, number>();
  let total = 0;
  for (const p of params) {
    offsets.set(p, total);
    total += p.size;
  }
  return { offsets, total };
}

/** Global L2 norm of the gradients of `params` as a one-element tensor (no readback): over their
 *  gradient arena when they are packed and all have gradients, else one dispatch per group of
 *  gradients (sums of squares, one workgroup each), then one reduction. */
export function gradNorm(params: Tensor[]): Tensor {
  const packed = ParameterArena.of(params);
  if (packed?.collectGrads()) return packed.gradNorm();
  return noGrad(() => {
    const grads = params.filter((p) => p.grad && p.grad.size > 0).map((p) => p.grad!);
    if (grads.length === 0) return zeros([1]);
    const gpu = grads[0].gpu;
    const partial = Tensor.empty([grads.length], 'f32', gpu);
    const k = tensorsPerDispatch(gpu, 1, 1);
    let base = 0;
    for (const group of chunks(grads, k)) {
      gpu.dispatch(sumSquaresMultiKernel(group.map((g) => g.size), base), [partial.writableBuffer, ...group.map((g) => g.binding)]);
      base += group.length;
    }
    return partial.sum().sqrt().reshape([1]);
  });
}

/**
 * AdamW. Building one packs its parameters into a ParameterArena (param-arena.ts: values and
 * gradients each in one buffer, the tensors keep their identity), and the moments live in one flat
 * arena of the same layout (m in its first half, v in its second), so a step where every parameter
 * has a gradient is one dispatch over all of them. Otherwise (some gradients missing, or parameters
 * that could not be packed) it takes one dispatch per group of parameter tensors (multi-tensor
 * apply; the group size is set by how many buffers a shader stage may bind: 7 on
 * lavapipe/llvmpipe, 3 under WebGPU's defaults). Element for element the arithmetic is that of the
 * per-tensor kernel.
 */
export class AdamW {
  lr: number;
  readonly betas: [number, number];
  readonly eps: number;
  readonly weightDecay: number;
  readonly maxGradNorm: number | undefined;
  stepCount = 0;
  /** global gradient norm before clipping, from the last step (read with `await .item()`) */
  lastGradNorm: Tensor | null = null;
  private readonly offsets: Map<Tensor, number>;
  private readonly total: number;
  private arena: Tensor | null = null;
  private readonly packed: ParameterArena | null;

  constructor(
    readonly params: Tensor[],
    opts: AdamWOptions = {},
  ) {
    this.lr = opts.lr ?? 1e-3;
    this.betas = opts.betas ?? [0.9, 0.999];
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0;
    this.maxGradNorm = opts.maxGradNorm;
    for (const [name, v] of Object.entries({ lr: this.lr, eps: this.eps, weightDecay: this.weightDecay, beta1: this.betas[0], beta2: this.betas[1] })) {
      if (!Number.isFinite(v) || v < 0 || (name.startsWith('beta') && v >= 1)) throw new Error(`AdamW: invalid ${name} ${v}`);
    }
    this.packed = ParameterArena.pack(params);
    ({ offsets: this.offsets, total: this.total } = arenaLayout(params, this.packed));
  }

  /** The moments arena [m | v], zeros until the first step or load. */
  private moments(): Tensor {
    if (!this.arena) this.arena = keep(zeros([2 * Math.max(1, this.total)], { gpu: this.params[0].gpu }));
    return this.arena;
  }

  /** One update of every parameter that has a gradient. */
  step(): void {
    this.stepCount++;
    const [b1, b2] = this.betas;
    const scalars = { lr: this.lr, beta1: b1, beta2: b2, eps: this.eps, weightDecay: this.weightDecay, bc1: 1 - b1 ** this.stepCount, bc2: 1 - b2 ** this.stepCount };
    scope(() => {
      const withGrad = this.params.filter((p) => p.grad && p.size > 0);
      if (withGrad.length === 0) return;
      const gpu = withGrad[0].gpu;
      // the arena is ours while nobody repacked these parameters elsewhere
      const flat = this.packed !== null && ParameterArena.of(this.params) === this.packed && this.packed.collectGrads();
      let scale: Tensor;
      if (this.maxGradNorm !== undefined) {
        const norm = flat ? this.packed!.gradNorm() : gradNorm(withGrad);
        this.lastGradNorm?.dispose();
        this.lastGradNorm = keep(norm);
        scale = ew('clip', `min(1.0, ${f32(this.maxGradNorm)} / (n + 1e-6))`, { n: norm });
      } else {
        scale = ew('one', '1.0', {}, [1]);
      }
      const mv = this.moments().writableBuffer;
      if (flat) {
        const { values, grads, total } = this.packed!;
        // m and v: the two halves of the moments arena, bound as two ranges
        const m = { buffer: mv, offset: 0, size: total * 4 };
        const v = { buffer: mv, offset: total * 4, size: total * 4 };
        gpu.dispatch(adamwKernel(total, scalars), [values.writableBinding, grads.binding, m, v, scale.binding]);
        return;
      }
      const k = tensorsPerDispatch(gpu, 2, 2);
      for (const group of chunks(withGrad, k)) {
        const kernel = adamwMultiKernel(group.map((p) => p.size), group.map((p) => this.offsets.get(p)!), this.total, scalars);
        gpu.dispatch(kernel, [mv, scale.binding, ...group.flatMap((p) => [p.writableBinding, p.grad!.binding])]);
      }
    });
  }

  /** Drop the gradients; in a parameter arena the next backward overwrites their slots. */
  zeroGrad(): void {
    for (const p of this.params) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  /** Moments and step for a checkpoint, in parameter order (one readback of the arena). */
  async stateDict(): Promise<{ step: number; m: Float32Array[]; v: Float32Array[] }> {
    const all = await this.moments().toFloat32Array();
    const m = this.params.map((p) => all.slice(this.offsets.get(p)!, this.offsets.get(p)! + p.size));
    const v = this.params.map((p) => all.slice(this.total + this.offsets.get(p)!, this.total + this.offsets.get(p)! + p.size));
    return { step: this.stepCount, m, v };
  }

  loadStateDict(state: { step: number; m: Float32Array[]; v: Float32Array[] }): void {
    if (state.m.length !== this.params.length || state.v.length !== this.params.length) {
      throw new Error(`AdamW.loadStateDict: state has ${state.m.length} parameters, optimizer has ${this.params.length}`);
    }
    this.params.forEach((p, k) => {
      if (state.m[k].length !== p.size || state.v[k].length !== p.size) throw new Error(`AdamW.loadStateDict: parameter ${k} has ${p.size} elements, state has ${state.m[k].length}`);
    });
    // checked before the upload: a refused state leaves the optimizer as it was
    const all = new Float32Array(2 * Math.max(1, this.total));
    this.params.forEach((p, k) => {
      all.set(state.m[k], this.offsets.get(p)!);
      all.set(state.v[k], this.total + this.offsets.get(p)!);
    });
    const arena = this.moments();
    arena.gpu.upload(arena.writableBuffer, all);
    this.stepCount = state.step;
  }

  /** Free the moments (the optimizer starts from zeros if stepped again) and the arena's own
   *  references (the parameters stay ranges of it, alive until they are disposed). */
  dispose(): void {
    this.packed?.dispose();
    this.arena?.dispose();
    this.arena = null;
    this.lastGradNorm?.dispose();
    this.lastGradNorm = null;
  }
}

/** Linear warmup from 0 to `lr` over `warmupSteps`, then constant. */
export function warmupLr(step: number, lr: number, warmupSteps: number): number {
  return warmupSteps > 0 ? lr * Math.min(1, (step + 1) / warmupSteps) : lr;
}

export interface EmaOptions {
  decay?: number;
  /** decay ramps as min(decay, (1 + n) / (warmup + n)) over the first updates (0: no ramp) */
  warmup?: number;
}

/** Exponential moving average of a module's parameters (the weights used for sampling), kept in one
 *  flat arena: with the layout of their parameter arena when an optimizer packed them first (one
 *  dispatch per update), else back to back (one dispatch per group of parameter tensors, see AdamW). */
export class EMA {
  readonly decay: number;
  readonly warmup: number;
  updates = 0;
  private readonly params: Tensor[];
  private readonly offsets: Map<Tensor, number>;
  private readonly total: number;
  private arena: Tensor;
  private readonly packed: ParameterArena | null;

  constructor(
    readonly module: Module,
    opts: EmaOptions = {},
  ) {
    this.decay = opts.decay ?? 0.999;
    this.warmup = opts.warmup ?? 10;
    if (!(this.decay >= 0 && this.decay <= 1)) throw new Error(`EMA: decay must be in [0, 1], got ${this.decay}`);
    this.params = module.parameters();
    this.packed = ParameterArena.of(this.params);
    ({ offsets: this.offsets, total: this.total } = arenaLayout(this.params, this.packed));
    const gpu = this.params[0]?.gpu;
    this.arena = keep(Tensor.empty([Math.max(1, this.total)], 'f32', gpu));
    if (this.packed) {
      gpu.copy(bufferOf(this.packed.values.binding), 0, this.arena.writableBuffer, 0, this.total * 4);
    } else {
      for (const p of this.params) if (p.size > 0) gpu.copy(bufferOf(p.binding), p.byteOffset, this.arena.writableBuffer, this.offsets.get(p)! * 4, p.size * 4);
    }
  }

  currentDecay(): number {
    return this.warmup > 0 ? Math.min(this.decay, (1 + this.updates) / (this.warmup + this.updates)) : this.decay;
  }

  update(): void {
    const decay = this.currentDecay();
    const params = this.params.filter((p) => p.size > 0);
    if (params.length) {
      const gpu = params[0].gpu;
      const arena = this.arena.writableBuffer;
      if (this.packed && ParameterArena.of(this.params) === this.packed) {
        gpu.dispatch(emaKernel(this.total, decay), [arena, this.packed.values.binding]);
        this.updates++;
        return;
      }
      for (const group of chunks(params, tensorsPerDispatch(gpu, 1, 1))) {
        gpu.dispatch(emaMultiKernel(group.map((p) => p.size), group.map((p) => this.offsets.get(p)!), decay), [arena, ...group.map((p) => p.binding)]);
      }
    }
    this.updates++;
  }

  /** Copies of the averaged weights, one tensor per parameter (in parameter order). */
  get shadow(): Tensor[] {
    return this.params.map((p) => {
      const t = Tensor.empty(p.shape, 'f32', p.gpu);
      if (p.size > 0) p.gpu.copy(this.arena.buffer, this.offsets.get(p)! * 4, t.writableBuffer, 0, p.size * 4);
      return t;
    });
  }

  /** Copy the averaged weights into `target` (a module of the same architecture). */
  copyTo(target: Module): void {
    const params = target.parameters();
    if (params.length !== this.params.length) throw new Error('EMA.copyTo: target has a different number of parameters');
    params.forEach((p, k) => {
      if (p.size !== this.params[k].size) throw new Error(`EMA.copyTo: parameter ${k} has ${p.size} elements, EMA has ${this.params[k].size}`);
    });
    params.forEach((p, k) => {
      if (p.size > 0) p.gpu.copy(this.arena.buffer, this.offsets.get(this.params[k])! * 4, bufferOf(p.writableBinding), p.byteOffset, p.size * 4);
    });
  }

  /** Named host copies of the averaged weights (the names of the module's parameters; one readback). */
  async stateDict(): Promise<Record<string, { shape: number[]; data: Float32Array }>> {
    const all = await this.arena.toFloat32Array();
    const out: Record<string, { shape: number[]; data: Float32Array }> = {};
    const names = this.module.namedParameters().map(([n]) => n);
    names.forEach((name, k) => {
      const p = this.params[k];
      const o = this.offsets.get(p)!;
      out[name] = { shape: [...p.shape], data: all.slice(o, o + p.size) };
    });
    return out;
  }

  loadStateDict(state: Record<string, { shape: readonly number[]; data: Float32Array }>): void {
    const names = this.module.namedParameters().map(([name]) => name);
    names.forEach((name, k) => {
      const s = state[name];
      const want = this.params[k].shape;
      if (!s || s.data.length !== this.params[k].size || s.shape.join() !== want.join()) {
        throw new Error(`EMA.loadStateDict: ${name} is ${s ? `${formatShape(s.shape)} with ${s.data.length} values, expected ${formatShape(want)}` : 'missing'}`);
      }
    });
    // checked before the upload: a refused state leaves the average as it was
    const all = new Float32Array(Math.max(1, this.total));
    names.forEach((name, k) => all.set(state[name].data, this.offsets.get(this.params[k])!));
    this.arena.gpu.upload(this.arena.writableBuffer, all);
  }

  /** Free the averaged weights. */
  dispose(): void {
    this.arena.dispose();
  }
}
