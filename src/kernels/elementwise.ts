// Elementwise kernels: out[i] = EXPR(x0, x1, ...), each input read through a strided view of the
// output's coordinates (stride 0 = broadcast). Views make permute/expand/slice/pad copies the same
// kernel as add or exp; shapes are baked into the source so index arithmetic divides by constants.
import { type Kernel, NON_FINITE, linearLaunch, storage, u32 } from './kernel';

export interface StridedView {
  /** element strides of this input along each output dimension (0 where broadcast) */
  strides: number[];
  /** element offset of output coordinate 0 in the input */
  offset: number;
  type?: 'f32' | 'i32';
}

/** Helper functions available to every elementwise expression. */
export const ELEMENTWISE_PRELUDE = /* wgsl */ `${NON_FINITE}
fn tanh_safe(x: f32) -> f32 { let e = exp(-2.0 * abs(x)); return sign(x) * (1.0 - e) / (1.0 + e); }
fn sigmoid(x: f32) -> f32 { let e = exp(-abs(x)); return select(e / (1.0 + e), 1.0 / (1.0 + e), x >= 0.0); }
fn gelu_tanh(x: f32) -> f32 { return 0.5 * x * (1.0 + tanh_safe(0.7978845608028654 * (x + 0.044715 * x * x * x))); }
fn gelu_tanh_grad(x: f32) -> f32 {
  let u = 0.7978845608028654 * (x + 0.044715 * x * x * x);
  let t = tanh_safe(u);
  return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * 0.7978845608028654 * (1.0 + 3.0 * 0.044715 * x * x);
}
fn pow_real(a: f32, b: f32) -> f32 {
  if (b == 0.0) { return 1.0; }
  let p = exp2(b * log2(abs(a)));
  if (a >= 0.0) { return select(p, 0.0, a == 0.0 && b > 0.0); }
  if (floor(b) != b) { return bitcast<f32>(F32_NAN_BITS); }
  let odd = (floor(b * 0.5) * 2.0) != b;
  return select(p, -p, odd);
}
`;

/** Merge adjacent output dimensions that every view (and the contiguous output) walks linearly. */
export function coalesce(shape: number[], views: number[][]): { shape: number[]; strides: number[][] } {
  const outShape: number[] = [];
  const outStrides: number[][] = views.map(() => []);
  for (let d = 0; d < shape.length; d++) {
    if (shape[d] === 1) continue;
    const last = outShape.length - 1;
    if (last >= 0 && views.every((s, k) => outStrides[k][last] === s[d] * shape[d])) {
      outShape[last] *= shape[d];
      views.forEach((s, k) => (outStrides[k][last] = s[d]));
    } else {
      outShape.push(shape[d]);
      views.forEach((s, k) => outStrides[k].push(s[d]));
    }
  }
  return { shape: outShape, strides: outStrides };
}

export function contiguousStrides(shape: number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    s[d] = acc;
    acc *= shape[d];
  }
  return s;
}

/** WGSL statements computing `idx{k}` for every view from the linear output index `i`. */
export function viewIndexing(shape: number[], views: StridedView[]): string {
  const outStrides = contiguousStrides(shape);
  const c = coalesce(shape, [outStrides, ...views.map((v) => v.strides)]);
  const dims = c.shape;
  const lines: string[] = [];
  const direct = views.map((v, k) => v.offset === 0 && c.strides[k + 1].every((s, d) => s === c.strides[0][d]));
  if (!direct.every(Boolean) && dims.length > 0) {
    lines.push('var rem = i;');
    for (let d = dims.length - 1; d >= 0; d--) {
      lines.push(d > 0 ? `let c${d} = rem % ${u32(dims[d])}; rem = rem / ${u32(dims[d])};` : `let c${d} = rem;`);
    }
  }
  views.forEach((v, k) => {
    if (direct[k]) {
      lines.push(`let idx${k} = i;`);
      return;
    }
    const terms = [u32(v.offset)];
    c.strides[k + 1].forEach((s, d) => {
      if (s !== 0) terms.push(s === 1 ? `c${d}` : `c${d} * ${u32(s)}`);
    });
    lines.push(`let idx${k} = ${terms.join(' + ')};`);
  });
  return lines.join('\n  ');
}

/** out = expr over inputs x0..x{n-1} (f32 values, or i32 for i32 views), with `i` the output index;
 *  `lets` are statements run before it (a fused chain of elementwise ops). */
export function elementwiseKernel(name: string, outShape: number[], views: StridedView[], expr: string, outType: 'f32' | 'i32' = 'f32', lets: string[] = []): Kernel {
  const size = outShape.reduce((a, b) => a * b, 1);
  const wg = 256;
  const launch = linearLaunch(size, wg);
  const decls = views.map((v, k) => storage(k, `in${k}`, 'read', v.type ?? 'f32'));
  decls.push(storage(views.length, 'out', 'read_write', outType));
  const loads = views.map((_, k) => `let x${k} = in${k}[idx${k}];`).join('\n  ');
  const code = `${decls.join('\n')}
${ELEMENTWISE_PRELUDE}
@compute @workgroup_size(${wg})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = ${launch.linearIndex};
  if (i >= ${u32(size)}) { return; }
  ${viewIndexing(outShape, views)}
  ${loads}
  ${lets.join('\n  ')}
  out[i] = ${expr};
}`;
  return { name, code, workgroups: launch.workgroups };
}
