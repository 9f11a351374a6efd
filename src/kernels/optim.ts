// Fused optimizer updates: one kernel per parameter tensor, reading step-dependent scalars from a
// uniform block so one compiled pipeline serves every step (a baked constant would recompile).
import { type Kernel, linearLaunch, storage, u32 } from './kernel';

/** AdamW (decoupled weight decay), in place on p, m, v. gradScale[0] multiplies the gradient
 *  (global-norm clipping computed on the GPU, so no readback is needed). */
export function adamwKernel(n: number): Kernel {
  const launch = linearLaunch(n, 256);
  const code = `${storage(0, 'p', 'read_write')}
${storage(1, 'g', 'read')}
${storage(2, 'm', 'read_write')}
${storage(3, 'v', 'read_write')}
${storage(4, 'gradScale', 'read')}
struct Params { lr: f32, beta1: f32, beta2: f32, eps: f32, weightDecay: f32, bc1: f32, bc2: f32, pad: f32 }
@group(0) @binding(5) var<uniform> P: Params;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = ${launch.linearIndex};
  if (i >= ${u32(n)}) { return; }
  let grad = g[i] * gradScale[0];
  let m1 = P.beta1 * m[i] + (1.0 - P.beta1) * grad;
  let v1 = P.beta2 * v[i] + (1.0 - P.beta2) * grad * grad;
  m[i] = m1;
  v[i] = v1;
  let update = (m1 / P.bc1) / (sqrt(v1 / P.bc2) + P.eps);
  p[i] = p[i] - P.lr * (update + P.weightDecay * p[i]);
}`;
  return { name: `adamw[${n}]`, code, workgroups: launch.workgroups };
}

/** ema = decay * ema + (1 - decay) * p, decay from a uniform. */
export function emaKernel(n: number): Kernel {
  const launch = linearLaunch(n, 256);
  const code = `${storage(0, 'ema', 'read_write')}
${storage(1, 'p', 'read')}
struct Params { decay: f32, pad0: f32, pad1: f32, pad2: f32 }
@group(0) @binding(2) var<uniform> P: Params;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = ${launch.linearIndex};
  if (i >= ${u32(n)}) { return; }
  ema[i] = P.decay * ema[i] + (1.0 - P.decay) * p[i];
}`;
  return { name: `ema[${n}]`, code, workgroups: launch.workgroups };
}
