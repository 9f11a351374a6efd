// GEMM kernel generators shared by matmul and conv2d (implicit GEMM): C[b, m, n] = epi(sum_k A[b, m, k] B[b, k, n]).
// An op describes how to read its operands (strided, or through a WGSL gather function) and where C
// goes; a *variant* says how the work is tiled. Variants:
//  - 'reg': register blocking without workgroup memory or barriers. A workgroup is a 1-D row of `wg`
//    lanes along one axis of C (n or m); every lane of a workgroup shares the same block of the other
//    axis, so that operand's loads are workgroup-uniform (vec4 loads of 4 rows where it is contiguous
//    along them) while the lane operand is read with vec4 loads wherever it is contiguous (along the
//    lane axis, or along k with a 4-step k loop). This is what wins on lavapipe/llvmpipe, where each divergent load is
//    a loop over the SIMD lanes and barriers are coroutine switches.
//    With `sg` (subgroups of exactly `wg` lanes), the shared operand is read once per lane instead of
//    once per workgroup-uniform load and handed to every lane with subgroupBroadcast: llvmpipe runs
//    any load inside a loop lane by lane, so a uniform load costs as much as `wg` divergent ones.
//  - 'tiled': classic 16x16-thread workgroups staging TK-deep tiles of A and B in workgroup memory,
//    each thread accumulating rm x rn outputs. What real GPUs want.
// Any variant can split K (split-K): partial sums go to a scratch buffer and a second kernel adds them
// and applies the epilogue; this keeps long-K / small-output products (conv weight gradients) parallel.
import { type Kernel, foldedGrid, linearLaunch, u32 } from './kernel';

/** How to read one operand as a matrix: A as [m, k], B as [k, n]. */
export type GemmOperand =
  | {
      kind: 'strided';
      /** buffer name (bound by the caller under this name) */
      buffer: string;
      /** WGSL u32 expression in `b` (batch index): element offset of this batch's matrix */
      offset: string;
      /** true when `offset` is a multiple of 4 for every b (enables vec4 loads) */
      aligned4: boolean;
      /** element strides along the matrix rows and columns */
      rowStride: number;
      colStride: number;
    }
  | {
      kind: 'gather';
      /** buffers the gather function reads (declared as array<f32>) */
      buffers: string[];
      /** WGSL source of the gather function(s); should be branch-free (use select) */
      fn: string;
      /** name of a function (b: u32, row: u32, col: u32) -> f32 defined in `fn` */
      call: string;
    };

export interface GemmSpec {
  /** shown in errors and GPU timings */
  name: string;
  /** independent products (grid z) */
  batch: number;
  M: number;
  N: number;
  K: number;
  a: GemmOperand;
  b: GemmOperand;
  /** C[b, m, n] lives at offset(b) + m * rowStride + n in buffer `buffer` */
  out: { buffer: string; offset: string; aligned4: boolean; rowStride: number };
  /** f32 WGSL expression of `v` (the sum) and u32 `b`, `m`, `n`; may read `buffers` (array<f32>) */
  epilogue?: { buffers: string[]; expr: string };
}

export type GemmVariant =
  | { kind: 'reg'; lanes: 'n' | 'm'; tm: number; tn: number; wg: number; splitK: number; sg?: boolean }
  | { kind: 'tiled'; rm: number; rn: number; tk: number; splitK: number };

/** One launch of a plan: the kernel and the buffer names for @binding(0..). */
export interface GemmLaunch {
  kernel: Kernel;
  bindings: string[];
}

export interface GemmPlan {
  launches: GemmLaunch[];
  /** scratch buffers the plan needs (split-K partial sums, im2col columns), bound under `name` */
  scratch?: { name: string; bytes: number }[];
}

export const SCRATCH = 'partials_';

export function variantKey(v: GemmVariant): string {
  return v.kind === 'reg' ? `reg.${v.lanes}.${v.tm}x${v.tn}.wg${v.wg}.sk${v.splitK}${v.sg ? '.sg' : ''}` : `tiled.${v.rm}x${v.rn}.tk${v.tk}.sk${v.splitK}`;
}

export const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** Element index expression `offset + r * rs + c * cs`, without multiplications by 1. */
function stridedIndex(op: Extract<GemmOperand, { kind: 'strided' }>, r: string, c: string): string {
  const t = (e: string, s: number) => (s === 0 ? null : s === 1 ? `(${e})` : `(${e}) * ${u32(s)}`);
  return [op.offset === '0u' ? null : `(${op.offset})`, t(r, op.rowStride), t(c, op.colStride)].filter(Boolean).join(' + ') || '0u';
}

function elem(op: GemmOperand, r: string, c: string): string {
  return op.kind === 'strided' ? `${op.buffer}[${stridedIndex(op, r, c)}]` : `${op.call}(b, ${r}, ${c})`;
}

/** Declarations of the buffers a kernel reads and writes, in binding order (also conv3.ts's). */
export class Bindings {
  readonly names: string[] = [];
  private readonly decls: string[] = [];
  add(name: string, access: 'read' | 'read_write', type: 'f32' | 'vec4f'): void {
    if (this.names.includes(name)) return;
    this.declare(name, name, access, type);
  }
  /** `buffer` bound once more, read as `wgslName` (the launcher binds `names` entries by buffer). */
  alias(wgslName: string, buffer: string, type: 'f32' | 'vec4f'): void {
    this.declare(wgslName, buffer, 'read', type);
  }
  private declare(wgslName: string, buffer: string, access: 'read' | 'read_write', type: 'f32' | 'vec4f'): void {
    this.decls.push(`@group(0) @binding(${this.names.length}) var<storage, ${access}> ${wgslName}: array<${type}>;`);
    this.names.push(buffer);
  }
  operand(op: GemmOperand, vec4: boolean): void {
    if (op.kind === 'strided') this.add(op.buffer, 'read', vec4 ? 'vec4f' : 'f32');
    else for (const buf of op.buffers) this.add(buf, 'read', 'f32');
  }
  wgsl(): string {
    return this.decls.join('\n');
  }
}

/** Where results go: the real output (epilogue applied) or split-K partials. */
interface Sink {
  buffer: string;
  offset: string;
  aligned4: boolean;
  rowStride: number;
  epilogue?: GemmSpec['epilogue'];
}

/** What a GEMM's output and its split-K sum depend on. */
export type GemmOutput = Pick<GemmSpec, 'name' | 'batch' | 'M' | 'N' | 'out' | 'epilogue'>;

function finalSink(spec: GemmOutput): Sink {
  return { ...spec.out, epilogue: spec.epilogue };
}

function partialSink(spec: GemmSpec): Sink {
  const mn = spec.M * spec.N;
  return { buffer: SCRATCH, offset: `(s * ${u32(spec.batch)} + b) * ${u32(mn)}`, aligned4: mn % 4 === 0, rowStride: spec.N };
}

function sinkVec4(spec: GemmSpec, sink: Sink): boolean {
  return sink.aligned4 && spec.N % 4 === 0 && sink.rowStride % 4 === 0;
}

/** The value `v` at (b, m, n) through the epilogue, where there is one (also conv3.ts's). */
export const epilogueCall = (epilogue: { expr: string } | undefined, v: string, m: string, n: string): string =>
  epilogue ? `epilogue(${v}, b, ${m}, ${n})` : v;

export const epilogueFn = (epilogue: { expr: string } | undefined): string =>
  epilogue ? `fn epilogue(v: f32, b: u32, m: u32, n: u32) -> f32 { return ${epilogue.expr}; }` : '';

const epi = (sink: Sink, v: string, m: string, n: string): string => epilogueCall(sink.epilogue, v, m, n);

function helpers(spec: GemmSpec): string {
  return [spec.a, spec.b].map((op) => (op.kind === 'gather' ? op.fn : '')).join('\n');
}

/** K range of split `s` (WGSL statements defining kBeg, kEnd; `s` defined when splitting). */
function kRange(spec: GemmSpec, splitK: number, step: number): { chunk: number; code: string } {
  if (splitK <= 1) return { chunk: spec.K, code: `let kBeg = 0u;\n  let kEnd = ${u32(spec.K)};` };
  const chunk = Math.ceil(spec.K / splitK / step) * step;
  return {
    chunk,
    code: `let kBeg = s * ${u32(chunk)};\n  let kEnd = min(kBeg + ${u32(chunk)}, ${u32(spec.K)});`,
  };
}

/** Effective split count: no more splits than K allows, and a grid z within limits. */
export function effectiveSplit(spec: GemmSpec, splitK: number): number {
  const s = Math.max(1, Math.min(splitK, Math.floor(spec.K / 16) || 1, Math.floor(65535 / spec.batch)));
  // chunks are rounded up to a multiple of 4; drop splits that would be empty
  const chunk = Math.ceil(spec.K / s / 4) * 4;
  return Math.max(1, Math.ceil(spec.K / chunk));
}

// ---- register-blocked variant -------------------------------------------------------------------

function regKernel(spec: GemmSpec, v: Extract<GemmVariant, { kind: 'reg' }>, splitK: number, sink: Sink): GemmLaunch {
  const { M, N, K, batch } = spec;
  const lanesN = v.lanes === 'n';
  // D: the operand indexed by the lane; U: the operand shared by the workgroup
  const D = lanesN ? spec.b : spec.a;
  const U = lanesN ? spec.a : spec.b;
  const TL = lanesN ? v.tn : v.tm;
  const TU = lanesN ? v.tm : v.tn;
  const L = lanesN ? N : M;
  const Usize = lanesN ? M : N;
  const WG = v.wg;
  if (v.sg && TU % WG !== 0) throw new Error(`gemm ${variantKey(v)}: a subgroup-shared block of ${TU} is not a multiple of ${WG} lanes`);
  // D's strides along the lane axis and along k
  const sL = D.kind === 'strided' ? (lanesN ? D.colStride : D.rowStride) : 0;
  const sK = D.kind === 'strided' ? (lanesN ? D.rowStride : D.colStride) : 0;
  let mode: 'lane' | 'k' | 'none' = 'none';
  if (D.kind === 'strided' && D.aligned4) {
    if (sL === 1 && sK % 4 === 0 && L % 4 === 0 && TL % 4 === 0) mode = 'lane';
    else if (sK === 1 && sL % 4 === 0 && K % 4 === 0) mode = 'k';
  }
  // U read as vec4 (4 consecutive rows of the shared block in one load) where it is contiguous along
  // them: A^T with lanes along n, B with lanes along m (fewer loads: bench/RESULTS.md)
  const uStride = U.kind === 'strided' ? (lanesN ? U.rowStride : U.colStride) : 0;
  const uStrideK = U.kind === 'strided' ? (lanesN ? U.colStride : U.rowStride) : 0;
  const uVec = !v.sg && U.kind === 'strided' && U.aligned4 && uStride === 1 && uStrideK % 4 === 0 && Usize % 4 === 0 && TU % 4 === 0;
  const KU = mode === 'k' ? 4 : 1;
  const g = mode === 'lane' ? 4 : 1;
  const { code: kCode } = kRange(spec, splitK, KU);

  const binds = new Bindings();
  binds.operand(spec.a, lanesN ? uVec : mode !== 'none');
  binds.operand(spec.b, lanesN ? mode !== 'none' : uVec);
  if (sink.epilogue) for (const buf of sink.epilogue.buffers) binds.add(buf, 'read', 'f32');
  const vecOut = sinkVec4(spec, sink) && (lanesN ? g === 4 : TU % 4 === 0);
  binds.add(sink.buffer, 'read_write', vecOut ? 'vec4f' : 'f32');

  const I = range(TU);
  const Q = range(TL / g);
  const J = range(TL);
  // lane coordinates: element j = q * g + c sits at lb + (q * WG + lid) * g + c
  const laneCoord = (q: number) => `lb + ${u32(q * WG * g)} + lid.x * ${u32(g)}`;
  const lines: string[] = [];
  lines.push(`let lb = wid.x * ${u32(WG * TL)};`, `let ub = wid.y * ${u32(TU)};`);
  // rows of U this lane reads: all TU (each load workgroup-uniform), or with sg one in every WG
  const S = range(TU / WG);
  const P = range(TU / 4);
  if (v.sg) for (const j of S) lines.push(`let s${j} = min(ub + ${u32(j * WG)} + lid.x, ${u32(Usize - 1)});`);
  // clamped vec4 rows are past Usize (a multiple of 4) and never stored
  else if (uVec) for (const p of P) lines.push(`let u${p} = min(ub + ${u32(p * 4)}, ${u32(Usize - 4)});`);
  else for (const i of I) lines.push(`let u${i} = min(ub + ${u32(i)}, ${u32(Usize - 1)});`);
  for (const q of Q) lines.push(`let l${q} = min(${laneCoord(q)}, ${u32(L - g)});`);
  for (const i of I) for (const j of J) lines.push(`var acc${i}_${j} = 0.0;`);

  // loads of U at (row, k)
  const uElem = (row: string, k: string) => (lanesN ? elem(U, row, k) : elem(U, k, row));
  const dIndex = (q: number, k: string, c = '0u') =>
    D.kind === 'strided' ? (lanesN ? stridedIndex(D, k, `l${q} + ${c}`) : stridedIndex(D, `l${q} + ${c}`, k)) : '';
  const body: string[] = [];
  for (let kk = 0; kk < KU; kk++) {
    const k = kk === 0 ? 'k' : `k + ${u32(kk)}`;
    if (v.sg) {
      for (const j of S) body.push(`let s${j}_${kk} = ${uElem(`s${j}`, k)};`);
      for (const i of I) body.push(`let a${i}_${kk} = subgroupBroadcast(s${Math.floor(i / WG)}_${kk}, ${u32(i % WG)});`);
    } else if (uVec) {
      const Us = U as Extract<GemmOperand, { kind: 'strided' }>;
      for (const p of P) body.push(`let a4_${p}_${kk} = ${Us.buffer}[(${lanesN ? stridedIndex(Us, `u${p}`, k) : stridedIndex(Us, k, `u${p}`)}) >> 2u];`);
      for (const i of I) body.push(`let a${i}_${kk} = a4_${Math.floor(i / 4)}_${kk}[${i % 4}];`);
    } else {
      for (const i of I) body.push(`let a${i}_${kk} = ${uElem(`u${i}`, k)};`);
    }
  }
  if (mode === 'lane') {
    for (const q of Q) body.push(`let d${q} = ${(D as { buffer: string }).buffer}[(${dIndex(q, 'k')}) >> 2u];`);
  } else if (mode === 'k') {
    for (const j of J) body.push(`let d${j} = ${(D as { buffer: string }).buffer}[(${dIndex(j, 'k')}) >> 2u];`);
  } else {
    for (const j of J) body.push(`let d${j} = ${lanesN ? elem(D, 'k', `l${j}`) : elem(D, `l${j}`, 'k')};`);
  }
  for (let kk = 0; kk < KU; kk++) {
    for (const j of J) {
      const d = mode === 'lane' ? `d${Math.floor(j / 4)}[${j % 4}]` : mode === 'k' ? `d${j}[${kk}]` : `d${j}`;
      for (const i of I) body.push(`acc${i}_${j} = fma(a${i}_${kk}, ${d}, acc${i}_${j});`);
    }
  }

  // stores: element (i, j) is C[m, n] with (m, n) = lanesN ? (u_i, l_j) : (l_j, u_i)
  const uOf = (i: number) => `ub + ${u32(i)}`;
  const lOf = (j: number) => (g === 4 ? `${laneCoord(Math.floor(j / 4))} + ${u32(j % 4)}` : laneCoord(j));
  const stores: string[] = [];
  const outIdx = (m: string, n: string) =>
    [sink.offset === '0u' ? null : `(${sink.offset})`, `(${m}) * ${u32(sink.rowStride)}`, `(${n})`].filter(Boolean).join(' + ');
  if (vecOut) {
    // groups of 4 consecutive n for one m
    const groups: { m: string; n0: string; vals: [number, number][] }[] = [];
    if (lanesN) for (const i of I) for (const q of Q) groups.push({ m: uOf(i), n0: lOf(q * 4), vals: [0, 1, 2, 3].map((c) => [i, q * 4 + c]) });
    else for (const j of J) for (let p = 0; p < TU / 4; p++) groups.push({ m: lOf(j), n0: uOf(p * 4), vals: [0, 1, 2, 3].map((c) => [p * 4 + c, j]) });
    for (const gr of groups) {
      const vals = gr.vals.map(([i, j], c) => epi(sink, `acc${i}_${j}`, 'mm', `nn + ${u32(c)}`));
      stores.push(`{ let mm = ${gr.m}; let nn = ${gr.n0}; if (mm < ${u32(M)} && nn < ${u32(N)}) { ${sink.buffer}[(${outIdx('mm', 'nn')}) >> 2u] = vec4f(${vals.join(', ')}); } }`);
    }
  } else {
    for (const i of I) {
      for (const j of J) {
        const [m, n] = lanesN ? [uOf(i), lOf(j)] : [lOf(j), uOf(i)];
        stores.push(`{ let mm = ${m}; let nn = ${n}; if (mm < ${u32(M)} && nn < ${u32(N)}) { ${sink.buffer}[${outIdx('mm', 'nn')}] = ${epi(sink, `acc${i}_${j}`, 'mm', 'nn')}; } }`);
      }
    }
  }

  const grid = foldedGrid([Math.ceil(L / (WG * TL)), Math.ceil(Usize / TU), batch * splitK]);
  const code = `${v.sg ? 'enable subgroups;\n' : ''}${binds.wgsl()}
${helpers(spec)}
${epilogueFn(sink.epilogue)}
@compute @workgroup_size(${WG})
fn main(${grid.builtin}, @builtin(local_invocation_id) lid: vec3u) {
  ${grid.prelude}
  let b = wid.z % ${u32(batch)};
  let s = wid.z / ${u32(batch)};
  ${kCode}
  ${lines.join('\n  ')}
  for (var k = kBeg; k < kEnd; k += ${u32(KU)}) {
    ${body.join('\n    ')}
  }
  ${stores.join('\n  ')}
}`;
  return {
    kernel: {
      name: spec.name,
      code,
      workgroups: grid.workgroups,
    },
    bindings: binds.names,
  };
}

// ---- workgroup-tiled variant --------------------------------------------------------------------

const TILE_THREADS = 16;

function tiledKernel(spec: GemmSpec, v: Extract<GemmVariant, { kind: 'tiled' }>, splitK: number, sink: Sink): GemmLaunch {
  const { M, N, batch } = spec;
  const T = TILE_THREADS;
  const BM = T * v.rm;
  const BN = T * v.rn;
  const TK = v.tk;
  const threads = T * T;
  const { code: kCode } = kRange(spec, splitK, TK);
  const binds = new Bindings();
  binds.operand(spec.a, false);
  binds.operand(spec.b, false);
  if (sink.epilogue) for (const buf of sink.epilogue.buffers) binds.add(buf, 'read', 'f32');
  binds.add(sink.buffer, 'read_write', 'f32');
  const loadsA = range(Math.ceil((BM * TK) / threads)).map((r) => {
    const guard = (r + 1) * threads > BM * TK ? `if (e${r}a < ${u32(BM * TK)}) ` : '';
    return `{ let e${r}a = li + ${u32(r * threads)}; ${guard}{ let mm = e${r}a / ${u32(TK)}; let kk = e${r}a % ${u32(TK)}; let kg = k0 + kk;
      As[kk * ${u32(BM)} + mm] = select(0.0, ${elem(spec.a, `min(mb + mm, ${u32(M - 1)})`, `min(kg, kEnd - 1u)`)}, kg < kEnd); } }`;
  });
  const loadsB = range(Math.ceil((BN * TK) / threads)).map((r) => {
    const guard = (r + 1) * threads > BN * TK ? `if (e${r}b < ${u32(BN * TK)}) ` : '';
    return `{ let e${r}b = li + ${u32(r * threads)}; ${guard}{ let kk = e${r}b / ${u32(BN)}; let nn = e${r}b % ${u32(BN)}; let kg = k0 + kk;
      Bs[kk * ${u32(BN)} + nn] = select(0.0, ${elem(spec.b, `min(kg, kEnd - 1u)`, `min(nb + nn, ${u32(N - 1)})`)}, kg < kEnd); } }`;
  });
  const I = range(v.rm);
  const J = range(v.rn);
  const outIdx = (m: string, n: string) =>
    [sink.offset === '0u' ? null : `(${sink.offset})`, `(${m}) * ${u32(sink.rowStride)}`, `(${n})`].filter(Boolean).join(' + ');
  const grid = foldedGrid([Math.ceil(N / BN), Math.ceil(M / BM), batch * splitK]);
  const code = `${binds.wgsl()}
${helpers(spec)}
${epilogueFn(sink.epilogue)}
var<workgroup> As: array<f32, ${BM * TK}>;
var<workgroup> Bs: array<f32, ${BN * TK}>;
@compute @workgroup_size(${T}, ${T})
fn main(${grid.builtin}, @builtin(local_invocation_id) lid: vec3u, @builtin(local_invocation_index) li: u32) {
  ${grid.prelude}
  let b = wid.z % ${u32(batch)};
  let s = wid.z / ${u32(batch)};
  ${kCode}
  let mb = wid.y * ${u32(BM)};
  let nb = wid.x * ${u32(BN)};
  ${I.map((i) => J.map((j) => `var acc${i}_${j} = 0.0;`).join(' ')).join('\n  ')}
  for (var k0 = kBeg; k0 < kEnd; k0 += ${u32(TK)}) {
    ${loadsA.join('\n    ')}
    ${loadsB.join('\n    ')}
    workgroupBarrier();
    for (var kk = 0u; kk < ${u32(TK)}; kk++) {
      ${I.map((i) => `let a${i} = As[kk * ${u32(BM)} + lid.y + ${u32(i * T)}];`).join(' ')}
      ${J.map((j) => `let b${j} = Bs[kk * ${u32(BN)} + lid.x + ${u32(j * T)}];`).join(' ')}
      ${I.map((i) => J.map((j) => `acc${i}_${j} = fma(a${i}, b${j}, acc${i}_${j});`).join(' ')).join('\n      ')}
    }
    workgroupBarrier();
  }
  ${I.map((i) =>
    J.map(
      (j) =>
        `{ let mm = mb + lid.y + ${u32(i * T)}; let nn = nb + lid.x + ${u32(j * T)}; if (mm < ${u32(M)} && nn < ${u32(N)}) { ${sink.buffer}[${outIdx('mm', 'nn')}] = ${epi(sink, `acc${i}_${j}`, 'mm', 'nn')}; } }`,
    ).join('\n  '),
  ).join('\n  ')}
}`;
  return {
    kernel: { name: spec.name, code, workgroups: grid.workgroups },
    bindings: binds.names,
  };
}

// ---- split-K reduction --------------------------------------------------------------------------

/** Sums `splitK` partial results laid out [split, batch, M, N] in scratch into the output (also
 *  conv3-weight-grad.ts's). */
export function splitKSumLaunch(spec: GemmOutput, splitK: number): GemmLaunch {
  const { M, N, batch } = spec;
  const total = batch * M * N;
  const sink = finalSink(spec);
  const launch = linearLaunch(total, 256);
  const binds = new Bindings();
  binds.add(SCRATCH, 'read', 'f32');
  if (sink.epilogue) for (const buf of sink.epilogue.buffers) binds.add(buf, 'read', 'f32');
  binds.add(sink.buffer, 'read_write', 'f32');
  const outIdx = [sink.offset === '0u' ? null : `(${sink.offset})`, `m * ${u32(sink.rowStride)}`, 'n'].filter(Boolean).join(' + ');
  const code = `${binds.wgsl()}
${epilogueFn(sink.epilogue)}
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = ${launch.linearIndex};
  if (i >= ${u32(total)}) { return; }
  let n = i % ${u32(N)};
  let m = (i / ${u32(N)}) % ${u32(M)};
  let b = i / ${u32(M * N)};
  var v = 0.0;
  for (var s = 0u; s < ${u32(splitK)}; s++) { v += ${SCRATCH}[s * ${u32(total)} + i]; }
  ${sink.buffer}[${outIdx}] = ${epi(sink, 'v', 'm', 'n')};
}`;
  return { kernel: { name: `${spec.name} (split-K sum)`, code, workgroups: launch.workgroups }, bindings: binds.names };
}

// ---- plans --------------------------------------------------------------------------------------

/** The launches that compute `spec` with `variant`. */
export function gemmPlan(spec: GemmSpec, variant: GemmVariant): GemmPlan {
  const splitK = effectiveSplit(spec, variant.splitK);
  const sink = splitK > 1 ? partialSink(spec) : finalSink(spec);
  const main = variant.kind === 'reg' ? regKernel(spec, variant, splitK, sink) : tiledKernel(spec, variant, splitK, sink);
  if (splitK === 1) return { launches: [main] };
  return {
    launches: [main, splitKSumLaunch(spec, splitK)],
    scratch: [{ name: SCRATCH, bytes: splitK * spec.batch * spec.M * spec.N * 4 }],
  };
}

/** A short signature of what a variant's code depends on besides sizes (operand layouts, alignment). */
export function layoutSignature(spec: GemmSpec): string {
  const op = (o: GemmOperand) =>
    o.kind === 'gather' ? 'g' : `s${o.rowStride === 1 ? 'r' : o.colStride === 1 ? 'c' : 'x'}${o.aligned4 ? '4' : ''}`;
  return `${op(spec.a)}${op(spec.b)}${spec.out.aligned4 && spec.out.rowStride % 4 === 0 && spec.N % 4 === 0 ? 'v' : ''}`;
}
