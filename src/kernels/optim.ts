// Fused optimizer updates: one kernel per parameter tensor, reading the size and the step-dependent
// scalars from a uniform block so one compiled pipeline serves every tensor and every step (a baked
// constant would recompile).
import { type Kernel, f32Bits, sizedIndex, sizedLaunch, sizedUniform, storage } from './kernel';

export interface AdamwScalars {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** bias corrections 1 - beta^step */
  bc1: number;
  bc2: number;
}

/** AdamW (decoupled weight decay), in place on p, m, v. gradScale[0] multiplies the gradient
 *  (global-norm clipping computed on the GPU, so no readback is needed). */
export function adamwKernel(n: number, c: AdamwScalars): Kernel {
  const code = `${storage(0, 'p', 'read_write')}
${storage(1, 'g', 'read')}
${storage(2, 'm', 'read_write')}
${storage(3, 'v', 'read_write')}
${storage(4, 'gradScale', 'read')}
${sizedUniform(5, 'P', ['lr: f32', 'beta1: f32', 'beta2: f32', 'eps: f32', 'weightDecay: f32', 'bc1: f32', 'bc2: f32'])}
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  ${sizedIndex('P')}
  let i = t;
  let grad = g[i] * gradScale[0];
  let m1 = P.beta1 * m[i] + (1.0 - P.beta1) * grad;
  let v1 = P.beta2 * v[i] + (1.0 - P.beta2) * grad * grad;
  m[i] = m1;
  v[i] = v1;
  let update = (m1 / P.bc1) / (sqrt(v1 / P.bc2) + P.eps);
  p[i] = p[i] - P.lr * (update + P.weightDecay * p[i]);
}`;
  const { workgroups, params } = sizedLaunch(n, 256, [c.lr, c.beta1, c.beta2, c.eps, c.weightDecay, c.bc1, c.bc2].map(f32Bits));
  return { name: 'adamw', code, workgroups, params };
}

/** ema = decay * ema + (1 - decay) * p. */
export function emaKernel(n: number, decay: number): Kernel {
  const code = `${storage(0, 'ema', 'read_write')}
${storage(1, 'p', 'read')}
${sizedUniform(2, 'P', ['decay: f32'])}
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  ${sizedIndex('P')}
  let i = t;
  ema[i] = P.decay * ema[i] + (1.0 - P.decay) * p[i];
}`;
  const { workgroups, params } = sizedLaunch(n, 256, [f32Bits(decay)]);
  return { name: 'ema', code, workgroups, params };
}
