// Direct 3x3 convolution (stride 1, padding 1) for rows whose width is a multiple of 4: the
// register-blocked GEMM's structure (lanes along output positions, a workgroup-uniform block of
// output channels) but the input is read as aligned vec4 rows instead of one gathered scalar per
// (tap, position). For a group of 4 output columns ox0..ox0+3 and one input row, the three taps
// kx = 0, 1, 2 need columns ox0-1 .. ox0+4: the aligned vec4 at ox0 plus one neighbour value on each
// side. So one (channel, ky) step costs 3 vec4 loads per 4 outputs instead of 12 scalar gathers with
// their index arithmetic; on CPU emulation each divergent load is a loop over SIMD lanes, so this
// is what a convolution spends its time on.
// The same kernel computes the input gradient of such a convolution (a 3x3 convolution of the output
// gradient with the flipped, transposed weights): the caller supplies the weight indexing.
// With `sg` (subgroups of exactly `wg` lanes) the TM x 9 weights of a channel step are loaded once
// across the subgroup, each lane a few, and handed to every lane with subgroupBroadcast, as the GEMM's
// `sg` variant does with its shared operand: llvmpipe runs a workgroup-uniform load as costly as a
// divergent one.
import { Bindings, type GemmLaunch, type GemmPlan, epilogueCall, epilogueFn, range } from './gemm';
import { foldedGrid, u32 } from './kernel';

export interface Conv3Spec {
  name: string;
  /** images x groups (grid z) */
  batch: number;
  /** output channels per group */
  M: number;
  /** reduction (input) channels per group */
  C: number;
  H: number;
  /** row width (`conv3Plan` needs a multiple of 4) */
  W: number;
  input: { buffer: string; /** WGSL u32 in `b`: element offset of this batch's first reduction channel (`conv3Plan`: a multiple of 4) */ offset: string };
  /** weight buffer and the WGSL u32 element index of the weight for output m, input c and tap
   *  ky * 3 + kx (all three WGSL u32 expressions) */
  weight: { buffer: string; index: (m: string, c: string, tap: string) => string };
  /** out[b, m, p] at offset(b) + m * H * W + p */
  out: { buffer: string; offset: string };
  epilogue?: { buffers: string[]; expr: string };
}

export interface Conv3Variant {
  kind: 'direct3';
  /** output channels per lane (uniform across the workgroup) */
  tm: number;
  /** groups of 4 output positions per lane */
  q: number;
  wg: number;
  /** weights shared through subgroup broadcasts (subgroups of `wg` lanes) */
  sg?: boolean;
}

type Window = { kh: number; kw: number; sh: number; sw: number; ph: number; pw: number; w: number; wo: number; h: number; ho: number };

/** A 3x3 window, stride 1, padding 1: the output has the input's size. */
export function isSame3x3(s: Window): boolean {
  return s.kh === 3 && s.kw === 3 && s.sh === 1 && s.sw === 1 && s.ph === 1 && s.pw === 1 && s.wo === s.w && s.ho === s.h;
}

export function conv3Plan(spec: Conv3Spec, v: Conv3Variant): GemmPlan {
  const { M, C, H, W, batch } = spec;
  if (W % 4 !== 0) throw new Error(`${spec.name}: the direct 3x3 kernel reads rows as vec4, but rows are ${W} wide; use the blocked kernel (conv3-block.ts) or a GEMM`);
  const N = H * W;
  const WG = v.wg;
  const TM = v.tm;
  const Q = v.q;
  const bindings = new Bindings();
  const bind = (name: string, access: 'read' | 'read_write', type: 'f32' | 'vec4f') => bindings.add(name, access, type);
  bind(spec.weight.buffer, 'read', 'f32');
  bind(spec.input.buffer, 'read', 'vec4f');
  // the same buffer again as scalars, for the one neighbour value on each side ('#' suffix: alias)
  const XS = `${spec.input.buffer}_s`;
  bindings.alias(XS, `${spec.input.buffer}#s`, 'f32');
  if (spec.epilogue) for (const b of spec.epilogue.buffers) bind(b, 'read', 'f32');
  bind(spec.out.buffer, 'read_write', 'vec4f');
  const X = spec.input.buffer;
  const I = range(TM);
  const J = range(Q);
  const KY = range(3);
  const pre: string[] = [];
  pre.push(`let ub = wid.y * ${u32(TM)};`, `let lb = wid.x * ${u32(WG * 4 * Q)};`);
  for (const i of I) pre.push(`let m${i} = min(ub + ${u32(i)}, ${u32(M - 1)});`);
  pre.push(`let inBase = (${spec.input.offset}) >> 2u;`, `let lastS = arrayLength(&${XS}) - 1u;`);
  for (const j of J) {
    pre.push(
      `let p${j} = min(lb + ${u32(j * WG * 4)} + lid.x * 4u, ${u32(N - 4)});`,
      `let oy${j} = p${j} / ${u32(W)};`,
      `let ox${j} = p${j} % ${u32(W)};`,
      `let hasPrev${j} = ox${j} > 0u;`,
      `let hasNext${j} = ox${j} + 4u < ${u32(W)};`,
    );
    for (const ky of KY) {
      pre.push(
        `let iy${j}_${ky} = i32(oy${j}) + ${ky - 1}i;`,
        `let ok${j}_${ky} = u32(iy${j}_${ky}) < ${u32(H)};`,
        `let r${j}_${ky} = (u32(clamp(iy${j}_${ky}, 0i, ${H - 1}i)) * ${u32(W)} + ox${j}) >> 2u;`,
      );
    }
  }
  for (const i of I) for (const j of J) pre.push(`var acc${i}_${j} = vec4f(0.0);`);
  const body: string[] = [];
  // weight e = i * 9 + tap of this channel step: with sg, lane l loads e = r * WG + l for each round r
  const rounds = range(Math.ceil((TM * 9) / WG));
  if (v.sg) {
    for (const r of rounds) {
      pre.push(`let e${r} = min(${u32(r * WG)} + lid.x, ${u32(TM * 9 - 1)});`, `let wm${r} = min(ub + e${r} / 9u, ${u32(M - 1)});`, `let wt${r} = e${r} % 9u;`);
      body.push(`let w${r} = ${spec.weight.buffer}[${spec.weight.index(`wm${r}`, 'c', `wt${r}`)}];`);
    }
  }
  const weight = (i: number, ky: number, kx: number) => {
    const e = i * 9 + ky * 3 + kx;
    return v.sg ? `subgroupBroadcast(w${Math.floor(e / WG)}, ${u32(e % WG)})` : `${spec.weight.buffer}[${spec.weight.index(`m${i}`, 'c', u32(ky * 3 + kx))}]`;
  };
  for (const ky of KY) {
    body.push('{');
    for (const i of I) for (let kx = 0; kx < 3; kx++) body.push(`let a${i}_${kx} = ${weight(i, ky, kx)};`);
    for (const j of J) {
      body.push(
        `let vi${j} = cb + r${j}_${ky};`,
        `let cur${j} = select(vec4f(0.0), ${X}[vi${j}], ok${j}_${ky});`,
        `let prv${j} = select(0.0, ${XS}[max(vi${j} * 4u, 1u) - 1u], ok${j}_${ky} & hasPrev${j});`,
        `let nxt${j} = select(0.0, ${XS}[min(vi${j} * 4u + 4u, lastS)], ok${j}_${ky} & hasNext${j});`,
        `let t0_${j} = vec4f(prv${j}, cur${j}.xyz);`,
        `let t2_${j} = vec4f(cur${j}.yzw, nxt${j});`,
      );
      for (const i of I) body.push(`acc${i}_${j} = fma(vec4f(a${i}_2), t2_${j}, fma(vec4f(a${i}_1), cur${j}, fma(vec4f(a${i}_0), t0_${j}, acc${i}_${j})));`);
    }
    body.push('}');
  }
  const epi = (val: string, m: string, n: string) => epilogueCall(spec.epilogue, val, m, n);
  const stores: string[] = [];
  for (const i of I) {
    for (const j of J) {
      const vals = [0, 1, 2, 3].map((c) => epi(`acc${i}_${j}[${c}]`, 'mm', `nn + ${u32(c)}`));
      stores.push(
        `{ let mm = ub + ${u32(i)}; let nn = lb + ${u32(j * WG * 4)} + lid.x * 4u; if (mm < ${u32(M)} && nn < ${u32(N)}) { ${spec.out.buffer}[((${spec.out.offset}) + mm * ${u32(N)} + nn) >> 2u] = vec4f(${vals.join(', ')}); } }`,
      );
    }
  }
  const grid = foldedGrid([Math.ceil(N / (WG * 4 * Q)), Math.ceil(M / TM), batch]);
  const code = `${v.sg ? 'enable subgroups;\n' : ''}${bindings.wgsl()}
${epilogueFn(spec.epilogue)}
@compute @workgroup_size(${WG})
fn main(${grid.builtin}, @builtin(local_invocation_id) lid: vec3u) {
  ${grid.prelude}
  let b = wid.z;
  ${pre.join('\n  ')}
  for (var c = 0u; c < ${u32(C)}; c++) {
    let cb = inBase + c * ${u32(N / 4)};
    ${body.join('\n    ')}
  }
  ${stores.join('\n  ')}
}`;
  const launch: GemmLaunch = {
    kernel: { name: spec.name, code, workgroups: grid.workgroups },
    bindings: bindings.names,
  };
  return { launches: [launch] };
}

export function conv3Key(v: Conv3Variant): string {
  return `direct3.${v.tm}x${4 * v.q}.wg${v.wg}${v.sg ? '.sg' : ''}`;
}
