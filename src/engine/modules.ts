// Modules in the PyTorch shape: parameters are found by walking a module's own fields, named by
// their path ('down.0.conv1.weight'), so state dicts line up with PyTorch's.
import { Tensor, keep, recordGrad, formatShape } from './tensor';
import { rand, randn, full } from './ops/index';
import { matmulRaw } from './ops/matmul';
import { bufferOf } from './runtime/gpu';

const PARAMETERS = new WeakSet<Tensor>();

/** A trainable leaf tensor that lives outside every scope. It stays a parameter (in state dicts)
 *  when frozen with requireGrad(false). */
export function parameter(t: Tensor): Tensor {
  PARAMETERS.add(t);
  return keep(t.requireGrad());
}

export const isParameter = (v: unknown): v is Tensor => v instanceof Tensor && PARAMETERS.has(v);

export abstract class Module {
  training = true;

  /** Parameters with dotted names, in field order (children recursively). */
  namedParameters(prefix = ''): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [key, value] of Object.entries(this)) {
      const name = prefix ? `${prefix}.${key}` : key;
      if (isParameter(value)) out.push([name, value]);
      else if (value instanceof Module) out.push(...value.namedParameters(name));
      else if (Array.isArray(value)) {
        value.forEach((v, i) => {
          if (v instanceof Module) out.push(...v.namedParameters(`${name}.${i}`));
          else if (isParameter(v)) out.push([`${name}.${i}`, v]);
        });
      }
    }
    return out;
  }

  parameters(): Tensor[] {
    return this.namedParameters().map(([, p]) => p);
  }

  /** Total number of parameter elements. */
  numParameters(): number {
    return this.parameters().reduce((a, p) => a + p.size, 0);
  }

  train(flag = true): this {
    const visit = (m: Module) => {
      m.training = flag;
      for (const v of Object.values(m)) {
        if (v instanceof Module) visit(v);
        else if (Array.isArray(v)) v.forEach((c) => c instanceof Module && visit(c));
      }
    };
    visit(this);
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Freeze (false) or unfreeze every parameter. */
  requiresGrad(flag: boolean): this {
    for (const p of this.parameters()) p.requiresGrad = flag;
    return this;
  }

  /** Free every parameter (and gradient) now; the module is unusable afterwards. */
  dispose(): void {
    for (const p of this.parameters()) {
      p.grad?.dispose();
      p.dispose();
    }
  }

  /** Clear every parameter's accumulated gradient. */
  zeroGrad(): void {
    for (const p of this.parameters()) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  /** Host copies of all parameters, by name. */
  async stateDict(): Promise<Record<string, { shape: number[]; data: Float32Array }>> {
    const out: Record<string, { shape: number[]; data: Float32Array }> = {};
    for (const [name, p] of this.namedParameters()) out[name] = { shape: [...p.shape], data: await p.toFloat32Array() };
    return out;
  }

  /** Load parameters by name; every parameter must be present with its exact shape. */
  loadStateDict(state: Record<string, { shape: readonly number[]; data: Float32Array }>): void {
    const params = this.namedParameters();
    const missing = params.filter(([n]) => !(n in state)).map(([n]) => n);
    const known = new Set(params.map(([n]) => n));
    const unexpected = Object.keys(state).filter((n) => !known.has(n));
    if (missing.length || unexpected.length) {
      throw new Error(
        `loadStateDict: parameters do not match the model` +
          (missing.length ? `; missing: ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ` (+${missing.length - 5})` : ''}` : '') +
          (unexpected.length ? `; unexpected: ${unexpected.slice(0, 5).join(', ')}${unexpected.length > 5 ? ` (+${unexpected.length - 5})` : ''}` : '') +
          ' (was the checkpoint made with another model configuration?)',
      );
    }
    // every check before the first upload: a refused state leaves the model as it was
    for (const [name, p] of params) {
      const s = state[name];
      if (s.shape.join() !== p.shape.join()) {
        throw new Error(`loadStateDict: ${name} has shape ${formatShape(s.shape)} in the checkpoint but ${formatShape(p.shape)} in the model (another model configuration?)`);
      }
      if (s.data.length !== p.size) throw new Error(`loadStateDict: ${name} has ${s.data.length} values for shape ${formatShape(p.shape)}`);
    }
    for (const [name, p] of params) p.gpu.upload(bufferOf(p.writableBinding), state[name].data, p.byteOffset);
  }
}

/** Any module or function from tensor to tensor. */
export type Layer = Module & { forward(x: Tensor): Tensor };

/** PyTorch's default init for Linear/Conv: U(-1/sqrt(fan_in), 1/sqrt(fan_in)). */
function fanInUniform(shape: number[], fanIn: number): Tensor {
  const bound = 1 / Math.sqrt(fanIn);
  return parameter(rand(shape, { lo: -bound, hi: bound }));
}

/** y = x W^T + b with x [..., in], W [out, in] (PyTorch layout), b [out]. */
export function linear(x: Tensor, weight: Tensor, bias: Tensor | null): Tensor {
  const [outF, inF] = weight.shape;
  if (x.shape[x.ndim - 1] !== inF) {
    throw new Error(`linear: input ${formatShape(x.shape)} has last dimension ${x.shape[x.ndim - 1]}, weight expects ${inF}`);
  }
  const x2 = x.reshape([-1, inF]);
  let y = matmulRaw(x2, weight, false, true);
  y = recordGrad(y, 'linear', [x2, weight], (g) => [
    x2.requiresGrad ? matmulRaw(g, weight) : null,
    weight.requiresGrad ? matmulRaw(g, x2, true, false) : null,
  ]);
  if (bias) y = y.add(bias);
  return y.reshape([...x.shape.slice(0, -1), outF]);
}

export class Linear extends Module {
  weight: Tensor;
  bias: Tensor | null;
  constructor(inFeatures: number, outFeatures: number, bias = true) {
    super();
    this.weight = fanInUniform([outFeatures, inFeatures], inFeatures);
    this.bias = bias ? fanInUniform([outFeatures], inFeatures) : null;
  }
  forward(x: Tensor): Tensor {
    return linear(x, this.weight, this.bias);
  }
}

export class Conv2d extends Module {
  weight: Tensor;
  bias: Tensor | null;
  constructor(
    inChannels: number,
    outChannels: number,
    readonly kernelSize: number,
    readonly opts: { stride?: number; padding?: number; groups?: number; bias?: boolean } = {},
  ) {
    super();
    const groups = opts.groups ?? 1;
    const fanIn = (inChannels / groups) * kernelSize * kernelSize;
    this.weight = fanInUniform([outChannels, inChannels / groups, kernelSize, kernelSize], fanIn);
    this.bias = opts.bias === false ? null : fanInUniform([outChannels], fanIn);
  }
  forward(x: Tensor): Tensor {
    return x.conv2d(this.weight, this.bias, { stride: this.opts.stride, padding: this.opts.padding, groups: this.opts.groups });
  }
}

export class GroupNorm extends Module {
  weight: Tensor;
  bias: Tensor;
  constructor(
    readonly groups: number,
    channels: number,
    readonly eps = 1e-5,
  ) {
    super();
    if (channels % groups !== 0) throw new Error(`GroupNorm: ${groups} groups do not divide ${channels} channels`);
    this.weight = parameter(full([channels], 1));
    this.bias = parameter(full([channels], 0));
  }
  forward(x: Tensor): Tensor {
    return x.groupNorm(this.groups, this.weight, this.bias, this.eps);
  }
}

export class LayerNorm extends Module {
  weight: Tensor;
  bias: Tensor;
  constructor(
    dim: number,
    readonly eps = 1e-5,
  ) {
    super();
    this.weight = parameter(full([dim], 1));
    this.bias = parameter(full([dim], 0));
  }
  forward(x: Tensor): Tensor {
    return x.layerNorm(this.weight, this.bias, this.eps);
  }
}

export class Embedding extends Module {
  weight: Tensor;
  constructor(count: number, dim: number) {
    super();
    this.weight = parameter(randn([count, dim]));
  }
  /** indices: int32 tensor of any shape */
  forward(indices: Tensor): Tensor {
    return indices.gather(this.weight);
  }
}

/** Applies its layers in order; plain functions (e.g. `(x) => x.silu()`) are allowed as layers. */
export class Sequential extends Module {
  layers: (Layer | ((x: Tensor) => Tensor))[];
  constructor(...layers: (Layer | ((x: Tensor) => Tensor))[]) {
    super();
    this.layers = layers;
  }
  forward(x: Tensor): Tensor {
    for (const l of this.layers) x = l instanceof Module ? l.forward(x) : l(x);
    return x;
  }
}
