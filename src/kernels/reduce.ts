// Reductions (sum, max) over any set of axes, deterministic: each output is accumulated by one
// invocation in a fixed order (no atomics), so results are bit-identical run to run. Few outputs
// over a long axis are split into chunks reduced by a second pass, to keep the GPU busy.
import { type Kernel, f32, linearLaunch, sizedIndex, sizedLaunch, sizedUniform, storage, u32 } from './kernel';
import { coalesce, contiguousStrides } from './elementwise';

export type ReduceOp = 'sum' | 'max';

export interface ReducePlan {
  kernels: Kernel[];
  /** size in floats of the scratch buffer the first pass writes (0: single pass) */
  scratch: number;
}

const WG = 64;
const CHUNK = 1024;

function combine(op: ReduceOp, acc: string, x: string): string {
  return op === 'sum' ? `${acc} + ${x}` : `max(${acc}, ${x})`;
}

/** Start value: 0 for sums; the range's first element for max (exact even when all are -inf). */
const init = (op: ReduceOp, first: string) => (op === 'sum' ? '0.0' : `x[base + ${first}]`);

/**
 * Reduce input of `shape` over `axes`. Output is contiguous over the kept axes (keepdims is only a
 * reshape). The result is multiplied by `scale` (mean = sum * 1/n).
 */
export function reducePlan(name: string, shape: number[], axes: number[], op: ReduceOp, scale = 1): ReducePlan {
  const strides = contiguousStrides(shape);
  const keep = shape.map((_, d) => d).filter((d) => !axes.includes(d));
  const keepShape = keep.map((d) => shape[d]);
  const redShape = axes.map((d) => shape[d]);
  const outs = keepShape.reduce((a, b) => a * b, 1);
  const red = redShape.reduce((a, b) => a * b, 1);
  const outView = coalesce(keepShape, [contiguousStrides(keepShape), keep.map((d) => strides[d])]);
  const redView = coalesce(redShape, [axes.map((d) => strides[d])]);
  const rDims = redView.shape;
  const rStrides = redView.strides[0];

  // base index of output o in the input
  const baseLines: string[] = ['var rem = o;', 'var base = 0u;'];
  for (let d = outView.shape.length - 1; d >= 0; d--) {
    // the outermost kept dim (usually the batch) needs no modulo, so its size is not baked in
    baseLines.push(d > 0 ? `base += (rem % ${u32(outView.shape[d])}) * ${u32(outView.strides[1][d])}; rem = rem / ${u32(outView.shape[d])};` : `base += rem * ${u32(outView.strides[1][d])};`);
  }

  const split = outs < 2048 && red >= 4 * CHUNK && rDims.length > 0;
  // chunks split the outermost reduced dim; capped so the second pass never splits again
  const chunkLen = split ? Math.ceil(rDims[0] / Math.min(rDims[0], Math.ceil(red / CHUNK), 2048)) : 1;
  const chunks = split ? Math.ceil(rDims[0] / chunkLen) : 1;

  // nested loops over the reduced dims; the outermost may be limited to one chunk
  const loops = (outerLo: string, outerHi: string) => {
    let body = `acc = ${combine(op, 'acc', `x[base + ${rDims.map((_, d) => `r${d} * ${u32(rStrides[d])}`).join(' + ') || '0u'}]`)};`;
    for (let d = rDims.length - 1; d >= 0; d--) {
      const lo = d === 0 ? outerLo : '0u';
      const hi = d === 0 ? outerHi : u32(rDims[d]);
      body = `for (var r${d} = ${lo}; r${d} < ${hi}; r${d}++) {\n    ${body}\n  }`;
    }
    return rDims.length ? body : 'acc = x[base];';
  };

  // A contiguous reduced axis whose every range starts and ends on a multiple of 8 is read as vec4
  // with two accumulators: on the software GPUs scalar loads reach half the bandwidth.
  const vec =
    rDims.length === 1 &&
    rStrides[0] === 1 &&
    rDims[0] > 0 &&
    rDims[0] % 8 === 0 &&
    (!split || chunkLen % 8 === 0) &&
    outView.strides[1].every((st) => st % 4 === 0);
  const accumulate = (lo: string, hi: string) => {
    if (!vec) return `var acc = ${init(op, lo === '0u' ? '0u' : `j * ${u32(chunkLen * rStrides[0])}`)};\n  ${loops(lo, hi)}`;
    const c = (a: string, b: string) => (op === 'sum' ? `${a} + ${b}` : `max(${a}, ${b})`);
    return [
      'let b4 = base / 4u;',
      `let lo4 = (${lo}) / 4u;`,
      `let hi4 = (${hi}) / 4u;`,
      `var a0 = ${op === 'sum' ? 'vec4f(0.0)' : 'x[b4 + lo4]'};`,
      'var a1 = a0;',
      `for (var r = lo4; r < hi4; r += 2u) {\n    a0 = ${c('a0', 'x[b4 + r]')};\n    a1 = ${c('a1', 'x[b4 + r + 1u]')};\n  }`,
      `let s = ${c('a0', 'a1')};`,
      `var acc = ${c(`(${c('s.x', 's.y')})`, `(${c('s.z', 's.w')})`)};`,
    ].join('\n  ');
  };
  const xDecl = storage(0, 'x', 'read', vec ? 'vec4f' : 'f32');

  if (!split) {
    // the output count is a uniform: one pipeline for every batch size
    const launch = sizedLaunch(outs, WG);
    const code = `${xDecl}
${storage(1, 'out', 'read_write')}
${sizedUniform(2, 'launch')}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  ${sizedIndex('launch')}
  let o = t;
  ${baseLines.join('\n  ')}
  ${accumulate('0u', u32(rDims[0] ?? 1))}
  out[o] = acc${scale !== 1 ? ` * ${f32(scale)}` : ''};
}`;
    return { kernels: [{ name, code, workgroups: launch.workgroups, params: launch.params }], scratch: 0 };
  }

  const launch1 = linearLaunch(outs * chunks, WG);
  const pass1 = `${xDecl}
${storage(1, 'out', 'read_write')}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let t = ${launch1.linearIndex};
  if (t >= ${u32(outs * chunks)}) { return; }
  let o = t / ${u32(chunks)};
  let j = t % ${u32(chunks)};
  ${baseLines.join('\n  ')}
  ${accumulate(`j * ${u32(chunkLen)}`, `min(${u32(rDims[0])}, (j + 1u) * ${u32(chunkLen)})`)}
  out[t] = acc;
}`;
  const second = reducePlan(`${name}.chunks`, [outs, chunks], [1], op, scale);
  return {
    kernels: [{ name: `${name}.partial`, code: pass1, workgroups: launch1.workgroups }, ...second.kernels],
    scratch: outs * chunks,
  };
}
