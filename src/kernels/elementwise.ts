// Elementwise kernels: out[i] = EXPR(x0, x1, ...), each input read through a strided view of the
// output's coordinates (stride 0 = broadcast). Views make permute/expand/slice/pad copies the same
// kernel as add or exp. Strided views bake their shapes into the source, so index arithmetic divides
// by constants; the element count is a uniform, so a kernel that reads every input at the output's
// own index (most of a training step) compiles once for all sizes.
import { type Kernel, NON_FINITE, sizedIndex, sizedLaunch, sizedUniform, storage, u32 } from './kernel';

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

/** Which views read exactly the output's linear index (offset 0, the output's own strides). */
export function directViews(shape: number[], views: StridedView[]): boolean[] {
  const c = coalesce(shape, [contiguousStrides(shape), ...views.map((v) => v.strides)]);
  return views.map((v, k) => v.offset === 0 && c.strides[k + 1].every((s, d) => s === c.strides[0][d]));
}

/** WGSL statements computing `idx{k}` for every view from the linear output index `i`
 *  (only for the views in `which`, default all). */
export function viewIndexing(shape: number[], views: StridedView[], which: boolean[] = views.map(() => true)): string {
  const outStrides = contiguousStrides(shape);
  const c = coalesce(shape, [outStrides, ...views.map((v) => v.strides)]);
  const dims = c.shape;
  const lines: string[] = [];
  const direct = directViews(shape, views);
  if (views.some((_, k) => which[k] && !direct[k]) && dims.length > 0) {
    lines.push('var rem = i;');
    for (let d = dims.length - 1; d >= 0; d--) {
      lines.push(d > 0 ? `let c${d} = rem % ${u32(dims[d])}; rem = rem / ${u32(dims[d])};` : `let c${d} = rem;`);
    }
  }
  views.forEach((v, k) => {
    if (!which[k]) return;
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

/** Consecutive groups (vec4s, or single elements when the size is not a multiple of 4) per
 *  invocation. On the software GPUs (lavapipe, llvmpipe) each invocation has a large fixed cost:
 *  one f32 per invocation copies at a fifth of the bandwidth that four vec4s per invocation reach
 *  (bench/roofline.ts measures both). */
export const ELEMENTWISE_GROUPS_PER_THREAD = 4;

/** out = expr over inputs x0..x{n-1} (f32 values, or i32 for i32 views), with `i` the output index;
 *  `lets` are statements run before it (a fused chain of elementwise ops).
 *
 *  Each invocation handles ELEMENTWISE_GROUPS_PER_THREAD consecutive groups of 4 elements when the
 *  size is a multiple of 4: inputs read at the output's own index ("direct" views) are loaded as
 *  vec4, strided/broadcast views element by element, the expression runs once per lane, and the
 *  result is stored as a vec4. Otherwise each invocation handles that many single elements. */
export function elementwiseKernel(name: string, outShape: number[], views: StridedView[], expr: string, outType: 'f32' | 'i32' = 'f32', lets: string[] = []): Kernel {
  const size = outShape.reduce((a, b) => a * b, 1);
  const wg = 256;
  const per = ELEMENTWISE_GROUPS_PER_THREAD;
  const vec = size % 4 === 0 && size > 0;
  const direct = vec ? directViews(outShape, views) : views.map(() => false);
  const groups = vec ? size / 4 : size;
  const launch = sizedLaunch(Math.ceil(groups / per), wg, [groups]);
  const vt = (t: 'f32' | 'i32') => (t === 'f32' ? 'vec4f' : 'vec4<i32>');
  const decls = views.map((v, k) => storage(k, `in${k}`, 'read', direct[k] ? vt(v.type ?? 'f32') : (v.type ?? 'f32')));
  decls.push(storage(views.length, 'out', 'read_write', vec ? vt(outType) : outType));
  decls.push(sizedUniform(views.length + 1, 'launch', ['count: u32']));
  const body = (loads: string[]) => [viewIndexing(outShape, views, direct.map((d) => !d)), ...loads, ...lets].filter(Boolean).join('\n    ');
  let main: string;
  if (vec) {
    const loads = views.map((_, k) => (direct[k] ? `let x${k} = v${k}[c];` : `let x${k} = in${k}[idx${k}];`));
    main = `for (var k = 0u; k < ${u32(per)}; k++) {
    let q = t * ${u32(per)} + k;
    if (q >= launch.count) { return; }
    ${views.map((_, k) => (direct[k] ? `let v${k} = in${k}[q];\n    ` : '')).join('')}var r: ${vt(outType)};
    for (var c = 0u; c < 4u; c++) {
    let i = 4u * q + c;
    ${body(loads)}
    r[c] = ${expr};
    }
    out[q] = r;
  }`;
  } else {
    const loads = views.map((_, k) => `let x${k} = in${k}[idx${k}];`);
    main = `for (var k = 0u; k < ${u32(per)}; k++) {
    let i = t * ${u32(per)} + k;
    if (i >= launch.count) { return; }
    ${body(loads)}
    out[i] = ${expr};
  }`;
  }
  const code = `${decls.join('\n')}
${ELEMENTWISE_PRELUDE}
@compute @workgroup_size(${wg})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  ${sizedIndex('launch')}
  ${main}
}`;
  return { name, code, workgroups: launch.workgroups, params: launch.params };
}
