// Direct 3x3 convolution (stride 1, padding 1), blocked in space: each lane computes TM output
// channels over a block of R rows x P columns of output positions. Per input channel it loads the
// (R + 2) x (P + 2) input values its block's windows cover and 9 weights per output channel, then
// does 9 TM R P multiply-adds with them from registers. On CPU emulation every load is a loop over
// the SIMD lanes, a workgroup-uniform one too, so what a kernel costs follows the values each lane
// loads per multiply-add: 9 TM R P / (9 TM + (R + 2)(P + 2)), 16 for 8 channels over 4 x 7
// positions, where a GEMM register tile of 8 x 8 does 4. Without subgroups there is no cheaper way
// to share the weights between lanes, so this is the direct kernel for adapters without them.
// Any row width works (scalar loads), and the same kernel computes the input gradient (the caller
// supplies the flipped, transposed weight indexing), like `conv3Plan`.
import { Bindings, type GemmLaunch, type GemmPlan, epilogueCall, epilogueFn, range } from './gemm';
import type { Conv3Spec } from './conv3';
import { foldedGrid, i32, u32 } from './kernel';

export interface Conv3BlockVariant {
  kind: 'block3';
  /** output channels per lane (uniform across the workgroup) */
  tm: number;
  /** output rows per lane */
  rows: number;
  /** output columns per lane */
  cols: number;
  wg: number;
}

export function conv3BlockKey(v: Conv3BlockVariant): string {
  return `block3.${v.tm}x${v.rows}x${v.cols}.wg${v.wg}`;
}

export function conv3BlockPlan(spec: Conv3Spec, variant: Conv3BlockVariant): GemmPlan {
  const { M, C, H, W, batch } = spec;
  // no block larger than the layer: the clamped duplicates would be loaded and multiplied for nothing
  const TM = Math.min(variant.tm, M);
  const R = Math.min(variant.rows, H);
  const P = Math.min(variant.cols, W);
  const WG = variant.wg;
  const N = H * W;
  const blocksX = Math.ceil(W / P);
  const blocks = Math.ceil(H / R) * blocksX;
  const bindings = new Bindings();
  bindings.add(spec.weight.buffer, 'read', 'f32');
  bindings.add(spec.input.buffer, 'read', 'f32');
  if (spec.epilogue) for (const b of spec.epilogue.buffers) bindings.add(b, 'read', 'f32');
  bindings.add(spec.out.buffer, 'read_write', 'f32');
  const X = spec.input.buffer;
  const I = range(TM);
  const IR = range(R + 2);
  const IC = range(P + 2);
  const pre: string[] = [
    `let ub = wid.y * ${u32(TM)};`,
    // lanes run over (image, block) so that small images still fill the workgroups
    `let lane = wid.x * ${u32(WG)} + lid.x;`,
    `let inRange = lane < ${u32(batch * blocks)};`,
    `let b = min(lane, ${u32(batch * blocks - 1)}) / ${u32(blocks)};`,
    `let blk = min(lane, ${u32(batch * blocks - 1)}) % ${u32(blocks)};`,
    `let y0 = (blk / ${u32(blocksX)}) * ${u32(R)};`,
    `let x0 = (blk % ${u32(blocksX)}) * ${u32(P)};`,
    `let inBase = ${spec.input.offset};`,
  ];
  for (const i of I) pre.push(`let m${i} = min(ub + ${u32(i)}, ${u32(M - 1)});`);
  // input row y0 + r - 1 and column x0 + q - 1: in range, and their clamped offsets (padding reads 0)
  for (const r of IR) pre.push(`let iy${r} = i32(y0) + ${i32(r - 1)};`, `let okY${r} = u32(iy${r}) < ${u32(H)};`, `let rowOff${r} = u32(clamp(iy${r}, 0i, ${i32(H - 1)})) * ${u32(W)};`);
  for (const q of IC) pre.push(`let ix${q} = i32(x0) + ${i32(q - 1)};`, `let okX${q} = u32(ix${q}) < ${u32(W)};`, `let colOff${q} = u32(clamp(ix${q}, 0i, ${i32(W - 1)}));`);
  for (const i of I) for (const r of range(R)) for (const q of range(P)) pre.push(`var acc${i}_${r}_${q} = 0.0;`);
  const body: string[] = [];
  for (const r of IR) {
    body.push(`let row${r} = cb + rowOff${r};`);
    for (const q of IC) body.push(`let x${r}_${q} = select(0.0, ${X}[row${r} + colOff${q}], okY${r} & okX${q});`);
  }
  for (const i of I) {
    body.push('{');
    for (let t = 0; t < 9; t++) body.push(`let w${t} = ${spec.weight.buffer}[${spec.weight.index(`m${i}`, 'c', u32(t))}];`);
    for (const r of range(R)) {
      for (const q of range(P)) {
        let sum = `acc${i}_${r}_${q}`;
        for (let t = 0; t < 9; t++) sum = `fma(w${t}, x${r + Math.floor(t / 3)}_${q + (t % 3)}, ${sum})`;
        body.push(`acc${i}_${r}_${q} = ${sum};`);
      }
    }
    body.push('}');
  }
  const stores: string[] = [];
  for (const r of range(R)) {
    for (const q of range(P)) {
      const cond = `inRange && y0 + ${u32(r)} < ${u32(H)} && x0 + ${u32(q)} < ${u32(W)}`;
      const st = I.map(
        (i) => `if (ub + ${u32(i)} < ${u32(M)}) { ${spec.out.buffer}[(${spec.out.offset}) + (ub + ${u32(i)}) * ${u32(N)} + nn] = ${epilogueCall(spec.epilogue, `acc${i}_${r}_${q}`, `ub + ${u32(i)}`, 'nn')}; }`,
      );
      stores.push(`if (${cond}) { let nn = (y0 + ${u32(r)}) * ${u32(W)} + x0 + ${u32(q)}; ${st.join(' ')} }`);
    }
  }
  const grid = foldedGrid([Math.ceil((batch * blocks) / WG), Math.ceil(M / TM), 1]);
  const code = `${bindings.wgsl()}
${epilogueFn(spec.epilogue)}
@compute @workgroup_size(${WG})
fn main(${grid.builtin}, @builtin(local_invocation_id) lid: vec3u) {
  ${grid.prelude}
  ${pre.join('\n  ')}
  for (var c = 0u; c < ${u32(C)}; c++) {
    let cb = inBase + c * ${u32(N)};
    ${body.join('\n    ')}
  }
  ${stores.join('\n  ')}
}`;
  const launch: GemmLaunch = { kernel: { name: spec.name, code, workgroups: grid.workgroups }, bindings: bindings.names };
  return { launches: [launch] };
}
