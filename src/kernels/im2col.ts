// im2col: unfold convolution windows into a matrix so that a convolution becomes a plain strided
// GEMM with vec4 loads. col[j][img][p] = x[img, ci, oy*sh - ph + ky, ox*sw - pw + kx] (0 outside),
// with j = (ci, ky, kx) and p = (oy, ox). Costs one gather per element of col and a scratch buffer of
// C*kh*kw * n * P floats, against one gather per element *per block of output channels* in the
// implicit GEMM; on CPU emulation, where a divergent gather is a loop over SIMD lanes, that trade
// can win. The [j][img][p] layout serves both the forward product (col as B[k = j, n = p] per image)
// and the weight gradient (col as B[k = (img, p), n = j], contiguous along k).
import type { GemmLaunch } from './gemm';
import { i32, linearLaunch, u32 } from './kernel';

export interface Im2colSpec {
  name: string;
  /** input buffer name, [n, C, H, W] */
  input: string;
  /** output (col) buffer name */
  out: string;
  n: number;
  C: number;
  H: number;
  W: number;
  kh: number;
  kw: number;
  sh: number;
  sw: number;
  ph: number;
  pw: number;
  ho: number;
  wo: number;
}

export const im2colElements = (s: Im2colSpec) => s.C * s.kh * s.kw * s.n * s.ho * s.wo;

export function im2colLaunch(s: Im2colSpec): GemmLaunch {
  const P = s.ho * s.wo;
  const vec = P % 4 === 0 ? 4 : 1;
  const groups = P / vec;
  const total = s.C * s.kh * s.kw * s.n * groups;
  const khw = s.kh * s.kw;
  const launch = linearLaunch(total, 256);
  const C = Array.from({ length: vec }, (_, c) => c);
  const code = `@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read_write> COL: array<${vec === 4 ? 'vec4f' : 'f32'}>;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = ${launch.linearIndex};
  if (i >= ${u32(total)}) { return; }
  let pg = i % ${u32(groups)};
  let rest = i / ${u32(groups)};
  let img = rest % ${u32(s.n)};
  let j = rest / ${u32(s.n)};
  let ci = j / ${u32(khw)};
  let r = j % ${u32(khw)};
  let ky = r / ${u32(s.kw)};
  let kx = r % ${u32(s.kw)};
  let base = (img * ${u32(s.C)} + ci) * ${u32(s.H * s.W)};
  ${C.map(
    (c) => `let p${c} = pg * ${u32(vec)} + ${u32(c)};
  let iy${c} = i32((p${c} / ${u32(s.wo)}) * ${u32(s.sh)} + ky) - ${i32(s.ph)};
  let ix${c} = i32((p${c} % ${u32(s.wo)}) * ${u32(s.sw)} + kx) - ${i32(s.pw)};
  let ok${c} = (u32(iy${c}) < ${u32(s.H)}) & (u32(ix${c}) < ${u32(s.W)});
  let v${c} = select(0.0, X[base + select(0u, u32(iy${c}) * ${u32(s.W)} + u32(ix${c}), ok${c})], ok${c});`,
  ).join('\n  ')}
  COL[i] = ${vec === 4 ? 'vec4f(v0, v1, v2, v3)' : 'v0'};
}`;
  return { kernel: { name: s.name, code, workgroups: launch.workgroups }, bindings: [s.input, s.out] };
}
