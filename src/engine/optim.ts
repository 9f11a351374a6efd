// Optimizers and training utilities: AdamW with a fused WGSL update, global gradient-norm clipping
// folded into that update, an exponential moving average of parameters, learning-rate warmup.
import { adamwKernel, emaKernel } from '../kernels/optim';
import { f32 } from '../kernels/kernel';
import { Tensor, keep, noGrad, scope, formatShape } from './tensor';
import { concat, ew, zeros } from './ops/index';
import type { Module } from './modules';

export interface AdamWOptions {
  lr?: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
  /** clip the global gradient norm to this value before the update (PyTorch's clip_grad_norm_) */
  maxGradNorm?: number;
}

/** Global L2 norm of the gradients of `params` as a one-element tensor (no readback). */
export function gradNorm(params: Tensor[]): Tensor {
  return noGrad(() => {
    const grads = params.filter((p) => p.grad).map((p) => p.grad!.reshape([-1]));
    if (grads.length === 0) return zeros([1]);
    return concat(grads).square().sum().sqrt().reshape([1]);
  });
}

export class AdamW {
  lr: number;
  readonly betas: [number, number];
  readonly eps: number;
  readonly weightDecay: number;
  readonly maxGradNorm: number | undefined;
  stepCount = 0;
  /** global gradient norm before clipping, from the last step (read with `await .item()`) */
  lastGradNorm: Tensor | null = null;
  private readonly state = new Map<Tensor, { m: Tensor; v: Tensor }>();

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
  }

  private slots(p: Tensor) {
    let s = this.state.get(p);
    if (!s) {
      s = keep({ m: zeros(p.shape, { gpu: p.gpu }), v: zeros(p.shape, { gpu: p.gpu }) });
      this.state.set(p, s);
    }
    return s;
  }

  /** One update of every parameter that has a gradient. */
  step(): void {
    this.stepCount++;
    const [b1, b2] = this.betas;
    const scalars = { lr: this.lr, beta1: b1, beta2: b2, eps: this.eps, weightDecay: this.weightDecay, bc1: 1 - b1 ** this.stepCount, bc2: 1 - b2 ** this.stepCount };
    scope(() => {
      const withGrad = this.params.filter((p) => p.grad);
      if (withGrad.length === 0) return;
      const gpu = withGrad[0].gpu;
      let scale: Tensor;
      if (this.maxGradNorm !== undefined) {
        const norm = gradNorm(withGrad);
        this.lastGradNorm?.dispose();
        this.lastGradNorm = keep(norm);
        scale = ew('clip', `min(1.0, ${f32(this.maxGradNorm)} / (n + 1e-6))`, { n: norm });
      } else {
        scale = ew('one', '1.0', {}, [1]);
      }
      for (const p of withGrad) {
        const { m, v } = this.slots(p);
        gpu.dispatch(adamwKernel(p.size, scalars), [p.writableBuffer, p.grad!.buffer, m.writableBuffer, v.writableBuffer, scale.buffer]);
      }
    });
  }

  zeroGrad(): void {
    for (const p of this.params) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  /** Moments and step for a checkpoint, in parameter order. */
  async stateDict(): Promise<{ step: number; m: Float32Array[]; v: Float32Array[] }> {
    const m: Float32Array[] = [];
    const v: Float32Array[] = [];
    for (const p of this.params) {
      const s = this.slots(p);
      m.push(await s.m.toFloat32Array());
      v.push(await s.v.toFloat32Array());
    }
    return { step: this.stepCount, m, v };
  }

  loadStateDict(state: { step: number; m: Float32Array[]; v: Float32Array[] }): void {
    if (state.m.length !== this.params.length || state.v.length !== this.params.length) {
      throw new Error(`AdamW.loadStateDict: state has ${state.m.length} parameters, optimizer has ${this.params.length}`);
    }
    this.params.forEach((p, k) => {
      if (state.m[k].length !== p.size || state.v[k].length !== p.size) throw new Error(`AdamW.loadStateDict: parameter ${k} has ${p.size} elements, state has ${state.m[k].length}`);
    });
    // checked before the first upload: a refused state leaves the optimizer as it was
    this.params.forEach((p, k) => {
      const s = this.slots(p);
      p.gpu.upload(s.m.writableBuffer, state.m[k]);
      p.gpu.upload(s.v.writableBuffer, state.v[k]);
    });
    this.stepCount = state.step;
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

/** Exponential moving average of a module's parameters (the weights used for sampling). */
export class EMA {
  readonly decay: number;
  readonly warmup: number;
  updates = 0;
  readonly shadow: Tensor[];

  constructor(
    readonly module: Module,
    opts: EmaOptions = {},
  ) {
    this.decay = opts.decay ?? 0.999;
    this.warmup = opts.warmup ?? 10;
    if (!(this.decay >= 0 && this.decay <= 1)) throw new Error(`EMA: decay must be in [0, 1], got ${this.decay}`);
    this.shadow = keep(noGrad(() => module.parameters().map((p) => p.clone())));
  }

  currentDecay(): number {
    return this.warmup > 0 ? Math.min(this.decay, (1 + this.updates) / (this.warmup + this.updates)) : this.decay;
  }

  update(): void {
    const decay = this.currentDecay();
    this.module.parameters().forEach((p, k) => p.gpu.dispatch(emaKernel(p.size, decay), [this.shadow[k].writableBuffer, p.buffer]));
    this.updates++;
  }

  /** Copy the averaged weights into `target` (a module of the same architecture). */
  copyTo(target: Module): void {
    const params = target.parameters();
    if (params.length !== this.shadow.length) throw new Error('EMA.copyTo: target has a different number of parameters');
    params.forEach((p, k) => {
      if (p.size !== this.shadow[k].size) throw new Error(`EMA.copyTo: parameter ${k} has ${p.size} elements, EMA has ${this.shadow[k].size}`);
      p.gpu.copy(this.shadow[k].buffer, 0, p.writableBuffer, 0, p.size * 4);
    });
  }

  /** Named host copies of the averaged weights (the names of the module's parameters). */
  async stateDict(): Promise<Record<string, { shape: number[]; data: Float32Array }>> {
    const out: Record<string, { shape: number[]; data: Float32Array }> = {};
    const names = this.module.namedParameters().map(([n]) => n);
    for (let k = 0; k < names.length; k++) out[names[k]] = { shape: [...this.shadow[k].shape], data: await this.shadow[k].toFloat32Array() };
    return out;
  }

  loadStateDict(state: Record<string, { shape: readonly number[]; data: Float32Array }>): void {
    const names = this.module.namedParameters().map(([name]) => name);
    names.forEach((name, k) => {
      const s = state[name];
      const want = this.shadow[k].shape;
      if (!s || s.data.length !== this.shadow[k].size || s.shape.join() !== want.join()) {
        throw new Error(`EMA.loadStateDict: ${name} is ${s ? `${formatShape(s.shape)} with ${s.data.length} values, expected ${formatShape(want)}` : 'missing'}`);
      }
    });
    // checked before the first upload: a refused state leaves the average as it was
    names.forEach((name, k) => this.shadow[k].gpu.upload(this.shadow[k].writableBuffer, state[name].data));
  }
}
