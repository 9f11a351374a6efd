// Kernels that move data by index arithmetic the strided views cannot express: padding, writing a
// block into a larger tensor (concat), 2x nearest upsampling and 2x2 sum pooling, row gathers.
import { type Kernel, NON_FINITE, f32, i32, sizedIndex, sizedLaunch, sizedUniform, storage, u32 } from './kernel';
import { contiguousStrides } from './elementwise';

const WG = 256;

function coords(shape: number[], index = 'i'): string {
  const lines = [`var rem = ${index};`];
  // the outermost dim (usually the batch) needs no modulo, so its size is not baked in
  for (let d = shape.length - 1; d > 0; d--) lines.push(`let c${d} = rem % ${u32(shape[d])}; rem = rem / ${u32(shape[d])};`);
  if (shape.length > 0) lines.push('let c0 = rem;');
  return lines.join('\n  ');
}

/** A kernel of one invocation per output element `i`; `launch.extra` is an optional run-time word. */
function kernel(name: string, threads: number, buffers: string[], body: (i: string) => string, extra = 0): Kernel {
  const launch = sizedLaunch(threads, WG, [extra]);
  const code = `${buffers.join('\n')}
${sizedUniform(buffers.filter((b) => b.includes('@binding')).length, 'launch', ['extra: u32'])}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  ${sizedIndex('launch')}
  let i = t;
  ${body('i')}
}`;
  return { name, code, workgroups: launch.workgroups, params: launch.params };
}

/** Constant padding: pads[d] = [before, after]. */
export function padKernel(shape: number[], pads: [number, number][], value: number, type: 'f32' | 'i32' = 'f32'): Kernel {
  const out = shape.map((d, k) => d + pads[k][0] + pads[k][1]);
  const inStrides = contiguousStrides(shape);
  const n = out.reduce((a, b) => a * b, 1);
  const checks = shape.map((d, k) => `(c${k} >= ${u32(pads[k][0])} && c${k} < ${u32(pads[k][0] + d)})`);
  const index = shape.map((_, k) => `(c${k} - ${u32(pads[k][0])}) * ${u32(inStrides[k])}`);
  return kernel(`pad[${shape}]`, n, [NON_FINITE, storage(0, 'x', 'read', type), storage(1, 'out', 'read_write', type)], () => `${coords(out)}
  if (${checks.join(' && ') || 'true'}) { out[i] = x[${index.join(' + ') || '0u'}]; } else { out[i] = ${type === 'i32' ? i32(value) : f32(value)}; }`);
}

/** Write all of `x` (shape `shape`) into `out` (shape `outShape`) starting at `offset` along `axis`. */
export function writeBlockKernel(shape: number[], outShape: number[], axis: number, offset: number): Kernel {
  const n = shape.reduce((a, b) => a * b, 1);
  const outStrides = contiguousStrides(outShape);
  const buffers = [storage(0, 'x', 'read'), storage(1, 'out', 'read_write')];
  if (shape.slice(0, axis).every((d) => d === 1)) {
    // a contiguous run of out (concatenating flat tensors, or along the outermost axis): one
    // pipeline for every size and offset
    return kernel('concat.write.contiguous', n, buffers, () => 'out[launch.extra + i] = x[i];', offset * outStrides[axis]);
  }
  const index = shape.map((_, k) => `${k === axis ? `(c${k} + ${u32(offset)})` : `c${k}`} * ${u32(outStrides[k])}`);
  return kernel(`concat.write[${shape}]->[${outShape}]`, n, buffers, () => `${coords(shape)}
  out[${index.join(' + ') || '0u'}] = x[i];`);
}

/** [N, C, H, W] -> [N, C, 2H, 2W], nearest neighbour. */
export function upsample2xKernel(shape: number[]): Kernel {
  const [n, c, h, w] = shape;
  const out = [n, c, 2 * h, 2 * w];
  return kernel(`upsample2x[${shape}]`, n * c * 4 * h * w, [storage(0, 'x', 'read'), storage(1, 'out', 'read_write')], () => `${coords(out)}
  out[i] = x[(c0 * ${u32(c)} + c1) * ${u32(h * w)} + (c2 / 2u) * ${u32(w)} + c3 / 2u];`);
}

/** [N, C, H, W] -> [N, C, H/2, W/2], sum of each 2x2 block times `scale`. */
export function pool2xKernel(shape: number[], scale: number): Kernel {
  const [n, c, h, w] = shape;
  const out = [n, c, h / 2, w / 2];
  return kernel(`pool2x[${shape}]`, (n * c * h * w) / 4, [storage(0, 'x', 'read'), storage(1, 'out', 'read_write')], () => `${coords(out)}
  let base = (c0 * ${u32(c)} + c1) * ${u32(h * w)} + c2 * ${u32(2 * w)} + c3 * 2u;
  out[i] = (x[base] + x[base + 1u] + x[base + ${u32(w)}] + x[base + ${u32(w + 1)}]) * ${f32(scale)};`);
}

/** out[j, :] = table[idx[j], :] for j < count; table [rows, dim]. Out-of-range indices give 0. */
export function gatherRowsKernel(rows: number, dim: number, count: number): Kernel {
  return kernel(`gather[${rows}x${dim}] x${count}`, count * dim, [storage(0, 'table', 'read'), storage(1, 'idx', 'read', 'i32'), storage(2, 'out', 'read_write')], () => `let j = i / ${u32(dim)};
  let r = idx[j];
  if (r < 0i || r >= ${rows}i) { out[i] = 0.0; return; }
  out[i] = table[u32(r) * ${u32(dim)} + i % ${u32(dim)}];`);
}

/** grad_table[r, :] = sum over j with idx[j] == r of g[j, :], in index order (deterministic). */
export function scatterRowsKernel(rows: number, dim: number, count: number): Kernel {
  return kernel(`scatter[${rows}x${dim}] x${count}`, rows * dim, [storage(0, 'g', 'read'), storage(1, 'idx', 'read', 'i32'), storage(2, 'out', 'read_write')], () => `let r = i32(i / ${u32(dim)});
  let d = i % ${u32(dim)};
  var acc = 0.0;
  for (var j = 0u; j < ${u32(count)}; j++) {
    if (idx[j] == r) { acc += g[j * ${u32(dim)} + d]; }
  }
  out[i] = acc;`);
}
