// The velocity network of the 2-D experiment (method.md, end): an MLP on the concatenation [x, t] of
// the point (2 coordinates) and the raw time t (no embedding), 3 hidden layers of 256 with ReLU,
// linear output of 2 velocity components. Parameters: layers.0 .. layers.3 (.weight, .bias).
import { Linear, Module, Tensor, concat } from '../engine/index';

export interface VelocityMlpOptions {
  /** point dimension (default 2) */
  dim?: number;
  /** hidden width (default 256) */
  hidden?: number;
  /** number of hidden layers (default 3) */
  depth?: number;
}

export class VelocityMlp extends Module {
  readonly dim: number;
  layers: Linear[];
  constructor(opts: VelocityMlpOptions = {}) {
    super();
    this.dim = opts.dim ?? 2;
    const hidden = opts.hidden ?? 256;
    const depth = opts.depth ?? 3;
    if (!Number.isInteger(depth) || depth < 1 || !Number.isInteger(hidden) || hidden < 1) throw new Error(`VelocityMlp: depth and hidden must be positive integers, got ${depth}, ${hidden}`);
    const widths = [this.dim + 1, ...Array<number>(depth).fill(hidden), this.dim];
    this.layers = widths.slice(1).map((w, i) => new Linear(widths[i], w));
  }
  /** x [B, dim], t float32 [B] (raw time); labels are ignored (unconditional), accepted for the sampler's interface. */
  forward(x: Tensor, t: Tensor, _y?: Tensor | null): Tensor {
    if (x.ndim !== 2 || x.shape[1] !== this.dim) throw new Error(`VelocityMlp: expects x [B, ${this.dim}], got [${x.shape.join(', ')}]`);
    if (t.ndim !== 1 || t.shape[0] !== x.shape[0]) throw new Error(`VelocityMlp: t must have shape [${x.shape[0]}], got [${t.shape.join(', ')}]`);
    let h = concat([x, t.reshape([-1, 1])], 1);
    this.layers.forEach((layer, i) => {
      h = layer.forward(h);
      if (i < this.layers.length - 1) h = h.relu();
    });
    return h;
  }
}
