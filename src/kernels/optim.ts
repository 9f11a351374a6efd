// Fused optimizer updates, reading the size and the step-dependent scalars from a uniform block so
// one compiled pipeline serves every tensor and every step (a baked constant would recompile). The
// single-tensor kernels also run over a whole parameter arena at once (engine/param-arena.ts); the
// multi-tensor ones serve parameters that are not packed into one.
import { type Kernel, f32Bits, sizedIndex, sizedLaunch, sizedUniform, storage, u32 } from './kernel';

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

// ---- multi-tensor updates (PyTorch's foreach/fused optimizers, apex's multi_tensor_apply) -----------
// One dispatch serves `k` parameter tensors: each is bound as its own buffer (WGSL has no arrays of
// buffers), the optimizer state lives in one flat arena per model, and the uniform block holds, per
// slot, where its threads end (prefix sums of the sizes) and where it starts in the arena. So a pass
// over P parameter tensors takes ceil(P / k) dispatches, k set by the storage buffers a stage may bind.

/** Per-slot uniform words: [end of slot j in the flat thread range, offset of slot j in the arena]. */
function slotWords(sizes: number[], offsets: number[]): number[] {
  const words: number[] = [];
  let end = 0;
  sizes.forEach((s, j) => {
    end += s;
    words.push(end, offsets[j]);
  });
  return words;
}

const slotFields = (k: number): string[] => Array.from({ length: k }, (_, j) => [`e${j}: u32`, `o${j}: u32`]).flat();

/** The if-chain that finds this thread's slot: `body(j)` runs with `i` (index in tensor j) and `o`
 *  (index in the arena) defined, then returns. */
function slotDispatch(k: number, body: (j: number) => string): string {
  return Array.from({ length: k }, (_, j) => {
    const start = j === 0 ? '0u' : `P.e${j - 1}`;
    return `  if (t < P.e${j}) {
    let i = t - ${start};
    let o = P.o${j} + i;
    ${body(j)}
    return;
  }`;
  }).join('\n');
}

/** AdamW over k tensors in one dispatch. Bindings: mv (m at [0, n), v at [n, 2n) of the arena),
 *  gradScale, then p0, g0, p1, g1, ...; the same arithmetic as adamwKernel, element for element. */
export function adamwMultiKernel(sizes: number[], offsets: number[], arenaSize: number, c: AdamwScalars): Kernel {
  const k = sizes.length;
  const bindings = Array.from({ length: k }, (_, j) => `${storage(2 + 2 * j, `p${j}`, 'read_write')}\n${storage(3 + 2 * j, `g${j}`, 'read')}`).join('\n');
  const code = `${storage(0, 'mv', 'read_write')}
${storage(1, 'gradScale', 'read')}
${bindings}
${sizedUniform(2 + 2 * k, 'P', ['lr: f32', 'beta1: f32', 'beta2: f32', 'eps: f32', 'weightDecay: f32', 'bc1: f32', 'bc2: f32', 'n: u32', ...slotFields(k)])}
fn adam(pv: f32, g: f32, o: u32) -> f32 {
  let grad = g * gradScale[0];
  let m1 = P.beta1 * mv[o] + (1.0 - P.beta1) * grad;
  let v1 = P.beta2 * mv[P.n + o] + (1.0 - P.beta2) * grad * grad;
  mv[o] = m1;
  mv[P.n + o] = v1;
  let update = (m1 / P.bc1) / (sqrt(v1 / P.bc2) + P.eps);
  return pv - P.lr * (update + P.weightDecay * pv);
}
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  ${sizedIndex('P')}
${slotDispatch(k, (j) => `p${j}[i] = adam(p${j}[i], g${j}[i], o);`)}
}`;
  const total = sizes.reduce((a, s) => a + s, 0);
  const scalars = [c.lr, c.beta1, c.beta2, c.eps, c.weightDecay, c.bc1, c.bc2].map(f32Bits);
  const { workgroups, params } = sizedLaunch(total, 256, [...scalars, arenaSize, ...slotWords(sizes, offsets)]);
  return { name: `adamw.multi${k}`, code, workgroups, params };
}

/** EMA over k tensors in one dispatch: ema arena (binding 0), then p0..p(k-1). */
export function emaMultiKernel(sizes: number[], offsets: number[], decay: number): Kernel {
  const k = sizes.length;
  const bindings = Array.from({ length: k }, (_, j) => storage(1 + j, `p${j}`, 'read')).join('\n');
  const code = `${storage(0, 'ema', 'read_write')}
${bindings}
${sizedUniform(1 + k, 'P', ['decay: f32', ...slotFields(k)])}
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  ${sizedIndex('P')}
${slotDispatch(k, (j) => `ema[o] = P.decay * ema[o] + (1.0 - P.decay) * p${j}[i];`)}
}`;
  const total = sizes.reduce((a, s) => a + s, 0);
  const { workgroups, params } = sizedLaunch(total, 256, [f32Bits(decay), ...slotWords(sizes, offsets)]);
  return { name: `ema.multi${k}`, code, workgroups, params };
}

/** Gathers k tensors into their slots of one arena (binding 0), from s0..s(k-1): how gradients
 *  computed in buffers of their own reach a model's gradient arena. */
export function copyMultiKernel(sizes: number[], offsets: number[]): Kernel {
  const k = sizes.length;
  const bindings = Array.from({ length: k }, (_, j) => storage(1 + j, `s${j}`, 'read')).join('\n');
  const code = `${storage(0, 'dst', 'read_write')}
${bindings}
${sizedUniform(1 + k, 'P', slotFields(k))}
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  ${sizedIndex('P')}
${slotDispatch(k, (j) => `dst[o] = s${j}[i];`)}
}`;
  const total = sizes.reduce((a, s) => a + s, 0);
  const { workgroups, params } = sizedLaunch(total, 256, slotWords(sizes, offsets));
  return { name: `gather.multi${k}`, code, workgroups, params };
}

/** Lanes of a workgroup of sumIntoSlotsKernel (a power of two). */
const SUM_LANES = 64;

/** Bias-style gradient sums of k tensors into their slots of one arena (binding 0), from
 *  s0..s(k-1): tensor j viewed as [A_j, C_j, R_j] is summed over A and R into its C_j elements. One
 *  workgroup per output element, each reducing in a fixed order (deterministic run to run). */
export function sumIntoSlotsKernel(shapes: { a: number; c: number; r: number }[], offsets: number[]): Kernel {
  const k = shapes.length;
  const bindings = Array.from({ length: k }, (_, j) => storage(1 + j, `s${j}`, 'read')).join('\n');
  const fields = slotFields(k);
  while (fields.length % 4 !== 0) fields.push(`pad${fields.length}: u32`);
  // the sizes are baked in (each is a loop bound or a stride); where the slot's workgroups end and
  // where it starts in the arena are uniforms
  const branches = shapes
    .map(({ a, c, r }, j) => {
      const start = j === 0 ? '0u' : `P.e${j - 1}`;
      return `  if (w < P.e${j}) {
    let ch = w - ${start};
    for (var i = 0u; i < ${u32(a)}; i++) {
      let base = (i * ${u32(c)} + ch) * ${u32(r)};
      for (var q = l; q < ${u32(r)}; q += ${u32(SUM_LANES)}) { acc += s${j}[base + q]; }
    }
    o = P.o${j} + ch;
  }`;
    })
    .join(' else\n');
  const code = `${storage(0, 'dst', 'read_write')}
${bindings}
struct P_t { ${fields.join(', ')} }
@group(0) @binding(${1 + k}) var<uniform> P: P_t;
var<workgroup> red: array<f32, ${SUM_LANES}>;
@compute @workgroup_size(${SUM_LANES})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) l: u32) {
  let w = wid.x;
  var acc = 0.0;
  var o = 0u;
${branches}
  red[l] = acc;
  workgroupBarrier();
  for (var s = ${u32(SUM_LANES / 2)}; s > 0u; s >>= 1u) {
    if (l < s) { red[l] += red[l + s]; }
    workgroupBarrier();
  }
  if (l == 0u) { dst[o] = red[0]; }
}`;
  // per slot: where its workgroups end (one per output element) and where it starts in the arena
  const words = slotWords(shapes.map(({ c }) => c), offsets);
  const workgroups = words[words.length - 2];
  while (words.length % 4 !== 0) words.push(0);
  return { name: `sum.multi${k}`, code, workgroups: [workgroups, 1, 1], params: Uint32Array.from(words) };
}

/** Sums of squares of k tensors in one dispatch, one workgroup per tensor (a fixed tree, so the
 *  result is the same every run): partial[base + j] = sum(g_j^2). Bindings: partial, g0..g(k-1). */
export function sumSquaresMultiKernel(sizes: number[], base: number): Kernel {
  const k = sizes.length;
  const bindings = Array.from({ length: k }, (_, j) => storage(1 + j, `g${j}`, 'read')).join('\n');
  const fields = ['base: u32', ...sizes.map((_, j) => `s${j}: u32`)];
  while (fields.length % 4 !== 0) fields.push(`pad${fields.length}: u32`);
  const branches = sizes
    .map((_, j) => `  if (w == ${j}u) { for (var i = l; i < P.s${j}; i += 256u) { let x = g${j}[i]; acc += x * x; } }`)
    .join('\n');
  const code = `${storage(0, 'partial', 'read_write')}
${bindings}
struct P_t { ${fields.join(', ')} }
@group(0) @binding(${1 + k}) var<uniform> P: P_t;
var<workgroup> red: array<f32, 256>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) l: u32) {
  let w = wid.x;
  var acc = 0.0;
${branches}
  red[l] = acc;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (l < s) { red[l] += red[l + s]; }
    workgroupBarrier();
  }
  if (l == 0u) { partial[P.base + w] = red[0]; }
}`;
  const words = [base, ...sizes];
  while (words.length % 4 !== 0) words.push(0);
  return { name: `sumsq.multi${k}`, code, workgroups: [k, 1, 1], params: Uint32Array.from(words) };
}
