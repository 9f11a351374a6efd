// What a kernel generator hands the runtime: WGSL source and its launch grid. Bindings are
// @group(0) @binding(0..n-1) in the order the op passes its buffers, then an optional uniform block.
export interface Kernel {
  /** Shown in WebGPU error messages and GPU timings. */
  name: string;
  code: string;
  workgroups: [number, number, number];
  /** The kernel's own uniform block (see sizedLaunch), bound after the buffers when the op passes
   *  no uniforms of its own. */
  params?: Uint32Array;
}

export const MAX_WORKGROUPS_PER_DIM = 65535;

/** A 1-D launch of `threads` invocations that may exceed 65535 workgroups: the grid wraps into y.
 *  The kernel computes its linear index with `linearIndex` (a WGSL expression using `gid`). */
export function linearLaunch(threads: number, workgroupSize: number): { workgroups: [number, number, number]; linearIndex: string } {
  const groups = Math.max(1, Math.ceil(threads / workgroupSize));
  const x = Math.min(groups, MAX_WORKGROUPS_PER_DIM);
  const y = Math.ceil(groups / x);
  return { workgroups: [x, y, 1], linearIndex: y === 1 ? 'gid.x' : `(gid.x + gid.y * ${x * workgroupSize}u)` };
}

/** A 3-D grid of workgroups whose counts may exceed 65535 per dimension (a GEMM with more than
 *  half a million rows, a batch of more than 65535 images). Within the limit the kernel is unchanged;
 *  beyond it the x*y*z workgroups are laid out linearly over the grid and `prelude` recovers the
 *  kernel's own `wid` from the `builtin` parameter it declares instead (padding workgroups return
 *  at once, so barriers and subgroup operations after it stay uniform). */
export function foldedGrid(grid: [number, number, number]): { workgroups: [number, number, number]; builtin: string; prelude: string } {
  const builtin = '@builtin(workgroup_id) wid: vec3u';
  if (grid.every((d) => d <= MAX_WORKGROUPS_PER_DIM)) return { workgroups: grid, builtin, prelude: '' };
  const [x, y] = grid;
  const total = grid[0] * grid[1] * grid[2];
  const gx = Math.min(total, MAX_WORKGROUPS_PER_DIM);
  const gy = Math.min(Math.ceil(total / gx), MAX_WORKGROUPS_PER_DIM);
  const gz = Math.ceil(total / (gx * gy));
  if (gz > MAX_WORKGROUPS_PER_DIM || gx * gy * gz >= 2 ** 32) throw new Error(`a grid of ${grid.join('x')} workgroups is too large for one launch`);
  return {
    workgroups: [gx, gy, gz],
    builtin: '@builtin(workgroup_id) widFolded: vec3u',
    prelude: `let lin = widFolded.x + (widFolded.y + widFolded.z * ${u32(gy)}) * ${u32(gx)};
  if (lin >= ${u32(total)}) { return; }
  let wid = vec3u(lin % ${u32(x)}, (lin / ${u32(x)}) % ${u32(y)}, lin / ${u32(x * y)});`,
  };
}

/**
 * A 1-D launch whose size the kernel reads at run time, so one compiled pipeline serves every
 * size: compiling a pipeline costs about half a second on a software GPU, and a training step
 * touches hundreds of tensor sizes. The kernel declares its uniform block with `sizedUniform` and
 * starts its body with `sizedIndex(block)`; `params` holds [threads, invocations per grid row,
 * ...extra] padded to 16 bytes.
 */
export function sizedLaunch(threads: number, workgroupSize: number, extra: number[] = []): { workgroups: [number, number, number]; params: Uint32Array } {
  const groups = Math.max(1, Math.ceil(threads / workgroupSize));
  const x = Math.min(groups, MAX_WORKGROUPS_PER_DIM);
  const y = Math.ceil(groups / x);
  const words = [threads, x * workgroupSize, ...extra];
  while (words.length % 4 !== 0) words.push(0);
  return { workgroups: [x, y, 1], params: Uint32Array.from(words) };
}

/** The bits of a float32, for f32 fields of a uniform block written as u32 words. */
export const f32Bits = (v: number): number => new Uint32Array(Float32Array.of(v).buffer)[0];

/** WGSL declaration of a sized launch's uniform block `name` at `binding`: `threads, rowStride`,
 *  then `fields` (one 4-byte member each, in the order of sizedLaunch's `extra`). */
export function sizedUniform(binding: number, name: string, fields: string[] = []): string {
  const members = ['threads: u32', 'rowStride: u32', ...fields];
  while (members.length % 4 !== 0) members.push(`pad${members.length}: u32`);
  return `struct ${name}_t { ${members.join(', ')} }
@group(0) @binding(${binding}) var<uniform> ${name}: ${name}_t;`;
}
/** Declares `t`, this invocation's index, and returns past the end. */
export const sizedIndex = (block: string) => `let t = gid.x + gid.y * ${block}.rowStride;
  if (t >= ${block}.threads) { return; }`;

/** WGSL literals: baked shape constants keep index arithmetic cheap (division by constants). */
export const u32 = (n: number): string => `${n >>> 0}u`;
export const i32 = (n: number): string => ((n | 0) === -2147483648 ? '(-2147483647i - 1i)' : `${n | 0}i`); // 2147483648i does not exist
/** Non-finite values are not constant-expressions in WGSL, so they come from private variables;
 *  a kernel that may receive them includes NON_FINITE. */
export const NON_FINITE = `var<private> F32_NAN_BITS: u32 = 0x7fc00000u;
var<private> F32_INF_BITS: u32 = 0x7f800000u;`;

export function f32(x: number): string {
  // a JavaScript caller may pass anything; f32(undefined) would otherwise become the WGSL 'f32(NaN.0)'
  if (typeof x !== 'number') throw new TypeError(`expected a number for a WGSL f32 constant, got ${typeof x} ${String(x)}`);
  if (Number.isNaN(x)) return 'bitcast<f32>(F32_NAN_BITS)';
  if (x === Infinity) return 'bitcast<f32>(F32_INF_BITS)';
  if (x === -Infinity) return '(-bitcast<f32>(F32_INF_BITS))';
  const s = Math.fround(x).toString();
  return /[.e]/.test(s) ? `f32(${s})` : `f32(${s}.0)`;
}

export function storage(binding: number, name: string, access: 'read' | 'read_write', type = 'f32'): string {
  return `@group(0) @binding(${binding}) var<storage, ${access}> ${name}: array<${type}>;`;
}
