// One register-blocked GEMM skeleton for matmul and for conv2d as implicit GEMM: each invocation
// accumulates a TM x 4 tile of C in vec4 registers, reading A and B through WGSL snippets, so a
// convolution only supplies its gather expressions. No workgroup memory or barriers: on CPU
// emulation (lavapipe, llvmpipe) barriers are very expensive while register blocking pays off.
import { type Kernel, u32 } from './kernel';

export interface GemmSpec {
  name: string;
  /** number of independent products (grid z) */
  batch: number;
  M: number;
  N: number;
  K: number;
  /** WGSL declarations: storage buffers, helper functions */
  decls: string;
  /** WGSL expression for A[b, m, k] (u32 variables `b`, `m`, `k` are in scope) */
  loadA: string;
  /** WGSL expression for B[b, k, n] */
  loadB: string;
  /** WGSL statement storing f32 `v` at C[b, m, n]; may apply an epilogue */
  store: string;
  /** rows of C per invocation (default 4) */
  tm?: number;
}

const TN = 4;

export function gemmKernel(spec: GemmSpec): Kernel {
  const tm = spec.tm ?? 4;
  const wgx = 8;
  const wgy = 8;
  const { M, N, K } = spec;
  const rows = Array.from({ length: tm }, (_, r) => r);
  const cols = Array.from({ length: TN }, (_, c) => c);
  const code = `${spec.decls}
fn loadA(b: u32, m: u32, k: u32) -> f32 { return ${spec.loadA}; }
fn loadB(b: u32, k: u32, n: u32) -> f32 { return ${spec.loadB}; }
fn storeC(b: u32, m: u32, n: u32, v: f32) { ${spec.store} }

@compute @workgroup_size(${wgx}, ${wgy})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let col0 = gid.x * ${TN}u;
  let row0 = gid.y * ${tm}u;
  let b = gid.z;
  if (col0 >= ${u32(N)} || row0 >= ${u32(M)}) { return; }
  ${rows.map((r) => `let m${r} = min(row0 + ${r}u, ${u32(M - 1)});`).join('\n  ')}
  ${cols.map((c) => `let n${c} = min(col0 + ${c}u, ${u32(N - 1)});`).join('\n  ')}
  ${rows.map((r) => `var acc${r} = vec4f(0.0);`).join('\n  ')}
  for (var k = 0u; k < ${u32(K)}; k++) {
    let bv = vec4f(${cols.map((c) => `loadB(b, k, n${c})`).join(', ')});
    ${rows.map((r) => `acc${r} = fma(vec4f(loadA(b, m${r}, k)), bv, acc${r});`).join('\n    ')}
  }
  ${rows
    .map((r) =>
      cols
        .map((c) => `if (row0 + ${r}u < ${u32(M)} && col0 + ${c}u < ${u32(N)}) { storeC(b, row0 + ${r}u, col0 + ${c}u, acc${r}[${c}]); }`)
        .join('\n  '),
    )
    .join('\n  ')}
}`;
  return {
    name: spec.name,
    code,
    workgroups: [Math.ceil(N / TN / wgx), Math.ceil(M / tm / wgy), spec.batch],
  };
}
