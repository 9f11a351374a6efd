// Weight gradient of a 3x3 convolution (stride 1, padding 1, one group):
//   dw[m, c, ky, kx] = sum over (img, oy, ox) of g[img, m, oy, ox] * x[img, c, oy + ky - 1, ox + kx - 1].
// As a GEMM this is a reduction over every output position with the 3x3 window gathered for each
// one. Here each lane owns a block of TM output x TC input channels, all 9 taps, and walks a few
// image rows left to right: at every position it loads TM gradient values and, per input channel
// and window row, the one input value entering the window (the other two are the previous
// positions' values, kept in registers). That is TM + 3 TC loads for 9 TM TC multiply-adds, where
// the GEMM's register tile does 8 per load at best; on CPU emulation each divergent load is a loop
// over SIMD lanes, so this is what the gradient spends its time on. Lanes write per-chunk partial
// sums to scratch, laid out as a split-K GEMM's, and the GEMM's split-K sum adds the chunks up.
import { Bindings, type GemmLaunch, type GemmPlan, SCRATCH, range, splitKSumLaunch } from './gemm';
import { foldedGrid, u32 } from './kernel';

export interface Conv3WeightGradSpec {
  name: string;
  /** images */
  n: number;
  /** output channels (of the convolution) */
  M: number;
  /** input channels */
  C: number;
  H: number;
  W: number;
  /** buffer names: output gradient [n, M, H, W], input [n, C, H, W], weight gradient [M, C, 3, 3] */
  grad: string;
  input: string;
  out: string;
}

export interface Conv3WeightGradVariant {
  kind: 'dw3';
  /** output channels per lane */
  tm: number;
  /** input channels per lane */
  tc: number;
  /** image rows per lane (at least; more when the partial sums would take too much scratch) */
  rows: number;
  wg: number;
}

/** Partial sums kept in scratch at most (elements): bounds the scratch for wide layers. */
const MAX_PARTIALS = 1 << 22;

export function conv3WeightGradKey(v: Conv3WeightGradVariant): string {
  return `dw3.${v.tm}x${v.tc}.r${v.rows}.wg${v.wg}`;
}

export function conv3WeightGradPlan(spec: Conv3WeightGradSpec, variant: Conv3WeightGradVariant): GemmPlan {
  const { n, M, C, H, W } = spec;
  // blocks no larger than the layer (a block of 12 output channels over 1 would do 12 times the work)
  const v = { ...variant, tm: Math.min(variant.tm, M), tc: Math.min(variant.tc, C) };
  const P = H * W;
  const E = M * C * 9;
  const rows = n * H;
  const chunks = Math.max(1, Math.min(Math.ceil(rows / v.rows), Math.floor(MAX_PARTIALS / E)));
  const rowsPerChunk = Math.ceil(rows / chunks);
  const blocksM = Math.ceil(M / v.tm);
  const blocksC = Math.ceil(C / v.tc);
  const lanes = blocksM * blocksC * chunks;
  const I = range(v.tm);
  const J = range(v.tc);
  const KY = range(3);
  const G = spec.grad;
  const X = spec.input;
  const tap = (i: number, j: number, t: number) => `a${i}_${j}_${t}`;

  const body: string[] = [
    // lanes next to each other share a chunk of rows (the same input and gradient rows)
    `let cb = lane % ${u32(blocksC)};`,
    `let mb = (lane / ${u32(blocksC)}) % ${u32(blocksM)};`,
    `let chunk = lane / ${u32(blocksC * blocksM)};`,
  ];
  for (const i of I) body.push(`let m${i} = min(mb * ${u32(v.tm)} + ${u32(i)}, ${u32(M - 1)});`);
  for (const j of J) body.push(`let c${j} = min(cb * ${u32(v.tc)} + ${u32(j)}, ${u32(C - 1)});`);
  for (const i of I) for (const j of J) for (const t of range(9)) body.push(`var ${tap(i, j, t)} = 0.0;`);
  body.push(`for (var r = 0u; r < ${u32(rowsPerChunk)}; r++) {`);
  body.push(`  let row = chunk * ${u32(rowsPerChunk)} + r;`, `  if (row >= ${u32(rows)}) { break; }`, `  let img = row / ${u32(H)};`, `  let oy = row % ${u32(H)};`);
  for (const i of I) body.push(`  let g${i} = (img * ${u32(M)} + m${i}) * ${u32(P)} + oy * ${u32(W)};`);
  for (const ky of KY) {
    body.push(`  let iy${ky} = i32(oy) + ${ky - 1}i;`, `  let inside${ky} = u32(iy${ky}) < ${u32(H)};`);
  }
  // window of input row ky of channel j at columns ox - 1 (left), ox (mid) and ox + 1 (right)
  for (const j of J) {
    for (const ky of KY) {
      body.push(
        `  let x${j}_${ky} = (img * ${u32(C)} + c${j}) * ${u32(P)} + u32(clamp(iy${ky}, 0i, ${H - 1}i)) * ${u32(W)};`,
        `  var left${j}_${ky} = 0.0;`,
        `  var mid${j}_${ky} = select(0.0, ${X}[x${j}_${ky}], inside${ky});`,
      );
    }
  }
  body.push(`  for (var ox = 0u; ox < ${u32(W)}; ox++) {`);
  body.push(`    let hasRight = ox + 1u < ${u32(W)};`, `    let rx = min(ox + 1u, ${u32(W - 1)});`);
  for (const j of J) for (const ky of KY) body.push(`    let right${j}_${ky} = select(0.0, ${X}[x${j}_${ky} + rx], inside${ky} && hasRight);`);
  for (const i of I) body.push(`    let gv${i} = ${G}[g${i} + ox];`);
  for (const i of I) {
    for (const j of J) {
      for (const ky of KY) {
        const win = [`left${j}_${ky}`, `mid${j}_${ky}`, `right${j}_${ky}`];
        body.push(`    ${win.map((w, kx) => `${tap(i, j, ky * 3 + kx)} = fma(gv${i}, ${w}, ${tap(i, j, ky * 3 + kx)});`).join(' ')}`);
      }
    }
  }
  for (const j of J) for (const ky of KY) body.push(`    left${j}_${ky} = mid${j}_${ky};`, `    mid${j}_${ky} = right${j}_${ky};`);
  body.push('  }', '}');
  body.push(`let base = chunk * ${u32(E)};`);
  for (const i of I) {
    for (const j of J) {
      const writes = range(9).map((t) => `${SCRATCH}[base + (m${i} * ${u32(C)} + c${j}) * 9u + ${u32(t)}] = ${tap(i, j, t)};`);
      body.push(`if (mb * ${u32(v.tm)} + ${u32(i)} < ${u32(M)} && cb * ${u32(v.tc)} + ${u32(j)} < ${u32(C)}) { ${writes.join(' ')} }`);
    }
  }

  const mainBindings = new Bindings();
  mainBindings.add(G, 'read', 'f32');
  mainBindings.add(X, 'read', 'f32');
  mainBindings.add(SCRATCH, 'read_write', 'f32');
  const grid = foldedGrid([Math.ceil(lanes / v.wg), 1, 1]);
  const main: GemmLaunch = {
    kernel: {
      name: spec.name,
      code: `${mainBindings.wgsl()}
@compute @workgroup_size(${v.wg})
fn main(${grid.builtin}, @builtin(local_invocation_id) lid: vec3u) {
  ${grid.prelude}
  let lane = wid.x * ${u32(v.wg)} + lid.x;
  if (lane >= ${u32(lanes)}) { return; }
  ${body.join('\n  ')}
}`,
      workgroups: grid.workgroups,
    },
    bindings: mainBindings.names,
  };

  // dw as the output of a [M, C * 9] GEMM
  const sum = splitKSumLaunch({ name: spec.name, batch: 1, M, N: C * 9, out: { buffer: spec.out, offset: '0u', aligned4: false, rowStride: C * 9 } }, chunks);
  return { launches: [main, sum], scratch: [{ name: SCRATCH, bytes: chunks * E * 4 }] };
}
