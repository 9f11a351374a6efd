// GroupNorm with its affine and an optional SiLU, forward and backward, as three kernels.
// x is [N, C, S] (S: the spatial size, 1 for [N, C]); the elements of one (sample, group) are
// contiguous. Forward: one workgroup per (sample, group) reduces its mean, then the variance about
// that mean (two passes: the groups hold thousands of elements), writes y and keeps (mean, rstd).
// Backward: one workgroup per (sample, group) writes dx; one workgroup per channel sums dgamma and
// dbeta over the batch and the spatial positions. Reductions run in a fixed order (no atomics), so
// results are bit-identical run to run. Every size is a uniform: one pipeline per variant.
// When the spatial size is a multiple of 4 the tensors are read and written as vec4 (a vec4 never
// straddles two channels): software adapters load a value lane by lane, so this cuts the loads,
// bounds checks and channel lookups by 4.
import { type Kernel, MAX_WORKGROUPS_PER_DIM, f32Bits, storage } from './kernel';
import { ELEMENTWISE_PRELUDE } from './elementwise';

export interface GroupNormSpec {
  batch: number;
  channels: number;
  groups: number;
  /** product of the dimensions after the channels (1 when there are none) */
  spatial: number;
  eps: number;
  /** whether gamma and beta are bound (absent: 1 and 0) */
  gamma: boolean;
  beta: boolean;
  /** SiLU applied to the affine output */
  silu: boolean;
}

const WG = 64;

const UNIFORM = `struct gn_t { groups: u32, cpg: u32, spatial: u32, count: u32, rows: u32, channels: u32, perChannel: u32, gridX: u32, eps: f32, pad0: u32, pad1: u32, pad2: u32 }`;

function params(s: GroupNormSpec, gridX: number): Uint32Array {
  const cpg = s.channels / s.groups;
  return Uint32Array.from([s.groups, cpg, s.spatial, cpg * s.spatial, s.batch * s.groups, s.channels, s.batch * s.spatial, gridX, f32Bits(s.eps), 0, 0, 0]);
}

/** A grid of `count` workgroups folded into y past the per-dimension limit; the kernel reads its
 *  linear workgroup index as wid.x + wid.y * gridX. */
function grid(count: number): { workgroups: [number, number, number]; gridX: number } {
  const x = Math.max(1, Math.min(count, MAX_WORKGROUPS_PER_DIM));
  return { workgroups: [x, Math.ceil(count / x), 1], gridX: x };
}

/** Sum of v over the workgroup; every invocation calls it and gets the total. */
const WORKGROUP_SUM = `var<workgroup> part: array<f32, ${WG}>;
fn workgroupSum(lid: u32, v: f32) -> f32 {
  part[lid] = v;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s >>= 1u) {
    if (lid < s) { part[lid] += part[lid + s]; }
    workgroupBarrier();
  }
  let total = part[0];
  workgroupBarrier();
  return total;
}`;

export type GroupNormPass = 'forward' | 'dx' | 'dparams';

/** Which affine parameters a pass binds (after its other inputs, gamma first): a parameter the
 *  pass does not read must not be bound, since the pipeline's layout leaves it out. */
export function groupNormAffineBindings(s: GroupNormSpec, pass: GroupNormPass): ('gamma' | 'beta')[] {
  const gamma = s.gamma && (pass !== 'dparams' || s.silu);
  const beta = s.beta && (pass === 'forward' || s.silu);
  return [...(gamma ? ['gamma' as const] : []), ...(beta ? ['beta' as const] : [])];
}

/** Bindings in order: the pass's inputs, its affine parameters, its outputs, then the uniform. */
function header(s: GroupNormSpec, pass: GroupNormPass): string {
  const { inputs, outputs } = BINDINGS[pass];
  const bound = groupNormAffineBindings(s, pass);
  const names = [...inputs, ...bound];
  const type = (n: string) => (['g', 'x', 'y', 'dx'].includes(n) ? 'T' : 'f32');
  const decls = [...names.map((n, k) => storage(k, n, 'read', type(n))), ...outputs.map((n, k) => storage(names.length + k, n, 'read_write', type(n)))];
  return `${ELEMENTWISE_PRELUDE}
${vectorHelpers(s)}
${decls.join('\n')}
${UNIFORM}
@group(0) @binding(${names.length + outputs.length}) var<uniform> p: gn_t;
${WORKGROUP_SUM}
fn gammaAt(c: u32) -> f32 { return ${bound.includes('gamma') ? 'gamma[c]' : '1.0'}; }
fn betaAt(c: u32) -> f32 { return ${bound.includes('beta') ? 'beta[c]' : '0.0'}; }`;
}

const BINDINGS = {
  forward: { inputs: ['x'], outputs: ['y', 'stats'] },
  dx: { inputs: ['g', 'x', 'stats'], outputs: ['dx'] },
  dparams: { inputs: ['g', 'x', 'stats'], outputs: ['dgamma', 'dbeta'] },
};

const variant = (s: GroupNormSpec) => `${s.gamma ? 'g' : ''}${s.beta ? 'b' : ''}${s.silu ? '_silu' : ''}${width(s) === 4 ? '_v4' : ''}`;

/** Elements per load: 4 when the spatial size allows vec4 access, else 1. */
const width = (s: GroupNormSpec) => (s.spatial % 4 === 0 ? 4 : 1);

/** WGSL helpers over the load type T (vec4f or f32): horizontal sum, and the prelude's sigmoid per
 *  component. */
function vectorHelpers(s: GroupNormSpec): string {
  const v4 = width(s) === 4;
  return `alias T = ${v4 ? 'vec4f' : 'f32'};
fn hsum(v: T) -> f32 { return ${v4 ? 'v.x + v.y + v.z + v.w' : 'v'}; }
fn sigmoidT(v: T) -> T { return ${v4 ? 'vec4f(sigmoid(v.x), sigmoid(v.y), sigmoid(v.z), sigmoid(v.w))' : 'sigmoid(v)'}; }`;
}

/** dL/dz at element i of channel c, z the affine output before SiLU (reads g, x, mu, rstd). */
function gradAtZ(s: GroupNormSpec): string {
  return `fn xhatAt(i: u32, mu: f32, rstd: f32) -> T { return (x[i] - mu) * rstd; }
fn dzAt(i: u32, c: u32, xh: T) -> T {
  ${s.silu ? `let z = xh * gammaAt(c) + betaAt(c);
  let sg = sigmoidT(z);
  return g[i] * sg * (1.0 + z * (1.0 - sg));` : 'return g[i];'}
}`;
}

/** The entry of the per-(sample, group) kernels: one workgroup per row, the row's `count` loads
 *  (of `spatial` per channel) starting at x[base], its first channel c0. */
const rowEntry = (s: GroupNormSpec) => `@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * p.gridX;
  if (row >= p.rows) { return; }
  let count = p.count / ${width(s)}u;
  let spatial = p.spatial / ${width(s)}u;
  let base = row * count;
  let c0 = (row % p.groups) * p.cpg;`;

/**
 * y = (x - mean) * rstd * gamma + beta per (sample, group), then SiLU if asked, and stats
 * [N * groups, 2] = (mean, 1 / sqrt(var + eps)) for the backward pass.
 * Bindings: x, the affine parameters of groupNormAffineBindings, y, stats.
 */
export function groupNormForwardKernel(s: GroupNormSpec): Kernel {
  const launch = grid(s.batch * s.groups);
  const code = `${header(s, 'forward')}
${rowEntry(s)}
  var acc = T(0.0);
  for (var i = lid; i < count; i += ${WG}u) { acc += x[base + i]; }
  let mu = workgroupSum(lid, hsum(acc)) / f32(p.count);
  var sq = T(0.0);
  for (var i = lid; i < count; i += ${WG}u) { let d = x[base + i] - mu; sq += d * d; }
  let rstd = inverseSqrt(workgroupSum(lid, hsum(sq)) / f32(p.count) + p.eps);
  for (var i = lid; i < count; i += ${WG}u) {
    let c = c0 + i / spatial;
    let z = (x[base + i] - mu) * rstd * gammaAt(c) + betaAt(c);
    y[base + i] = ${s.silu ? 'z * sigmoidT(z)' : 'z'};
  }
  if (lid == 0u) {
    stats[2u * row] = mu;
    stats[2u * row + 1u] = rstd;
  }
}`;
  return { name: `groupNorm_${variant(s)}`, code, workgroups: launch.workgroups, params: params(s, launch.gridX) };
}

/** dx per (sample, group): rstd * (dxh - mean(dxh) - xhat * mean(dxh * xhat)), dxh = dz * gamma,
 *  g = dL/dy. Bindings: g, x, stats, the affine parameters of groupNormAffineBindings, dx. */
export function groupNormBackwardDxKernel(s: GroupNormSpec): Kernel {
  const launch = grid(s.batch * s.groups);
  const code = `${header(s, 'dx')}
${gradAtZ(s)}
${rowEntry(s)}
  let mu = stats[2u * row];
  let rstd = stats[2u * row + 1u];
  var sumD = T(0.0);
  var sumDX = T(0.0);
  for (var i = lid; i < count; i += ${WG}u) {
    let c = c0 + i / spatial;
    let xh = xhatAt(base + i, mu, rstd);
    let d = dzAt(base + i, c, xh) * gammaAt(c);
    sumD += d;
    sumDX += d * xh;
  }
  let meanD = workgroupSum(lid, hsum(sumD)) / f32(p.count);
  let meanDX = workgroupSum(lid, hsum(sumDX)) / f32(p.count);
  for (var i = lid; i < count; i += ${WG}u) {
    let c = c0 + i / spatial;
    let xh = xhatAt(base + i, mu, rstd);
    let d = dzAt(base + i, c, xh) * gammaAt(c);
    dx[base + i] = rstd * (d - meanD - xh * meanDX);
  }
}`;
  return { name: `groupNorm_${variant(s)}.grad_x`, code, workgroups: launch.workgroups, params: params(s, launch.gridX) };
}

/** dgamma[c] = sum of dz * xhat and dbeta[c] = sum of dz over the batch and spatial positions.
 *  Bindings: g, x, stats, the affine parameters of groupNormAffineBindings, dgamma, dbeta. */
export function groupNormBackwardParamsKernel(s: GroupNormSpec): Kernel {
  const launch = grid(s.channels);
  const code = `${header(s, 'dparams')}
${gradAtZ(s)}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let c = wid.x + wid.y * p.gridX;
  if (c >= p.channels) { return; }
  let grp = c / p.cpg;
  let spatial = p.spatial / ${width(s)}u;
  var sumG = T(0.0);
  var sumB = T(0.0);
  for (var k = lid; k < p.perChannel / ${width(s)}u; k += ${WG}u) {
    let n = k / spatial;
    let i = (n * p.channels + c) * spatial + k % spatial;
    let row = n * p.groups + grp;
    let xh = xhatAt(i, stats[2u * row], stats[2u * row + 1u]);
    let d = dzAt(i, c, xh);
    sumG += d * xh;
    sumB += d;
  }
  let totalG = workgroupSum(lid, hsum(sumG));
  let totalB = workgroupSum(lid, hsum(sumB));
  if (lid == 0u) {
    dgamma[c] = totalG;
    dbeta[c] = totalB;
  }
}`;
  return { name: `groupNorm_${variant(s)}.grad_params`, code, workgroups: launch.workgroups, params: params(s, launch.gridX) };
}
