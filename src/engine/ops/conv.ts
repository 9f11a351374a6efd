// conv2d (stride, padding, groups) on the shared GEMM skeleton (src/kernels/gemm.ts): as implicit GEMM,
// where the forward pass and both gradients differ only in how they gather their operands, or as
// im2col + GEMM, or (forward and input gradient of a 3x3, stride-1, padding-1 convolution) as a direct
// convolution (src/kernels/conv3.ts, conv3-block.ts), and its weight gradient (groups of 1) as a
// direct kernel too (src/kernels/conv3-weight-grad.ts); the variant is chosen per adapter and shape
// class (src/engine/autotune.ts).
import type { GemmSpec } from '../../kernels/gemm';
import { type Conv3Spec, isSame3x3 } from '../../kernels/conv3';
import { convProblem, runProblem } from '../autotune';
import { pool2xKernel, upsample2xKernel } from '../../kernels/indexing';
import { u32, i32 } from '../../kernels/kernel';
import { PendingSum, Tensor, recordGrad, formatShape } from '../tensor';
import { expectFloat, launch } from './base';

export interface Conv2dOptions {
  stride?: number | [number, number];
  padding?: number | [number, number];
  groups?: number;
}

const pair = (v: number | [number, number] | undefined, d: number): [number, number] => (v === undefined ? [d, d] : typeof v === 'number' ? [v, v] : v);

interface Geometry {
  n: number; cin: number; h: number; w: number;
  cout: number; kh: number; kw: number;
  sh: number; sw: number; ph: number; pw: number;
  g: number; cinG: number; coutG: number;
  ho: number; wo: number;
}

function geometry(x: Tensor, w: Tensor, opts: Conv2dOptions): Geometry {
  if (x.ndim !== 4 || w.ndim !== 4) {
    throw new Error(`conv2d: expects x [N, C, H, W] and weight [Cout, Cin/groups, kh, kw], got ${formatShape(x.shape)} and ${formatShape(w.shape)}`);
  }
  const [n, cin, h, wd] = x.shape;
  const [cout, cinG, kh, kw] = w.shape;
  const g = opts.groups ?? 1;
  const [sh, sw] = pair(opts.stride, 1);
  const [ph, pw] = pair(opts.padding, 0);
  if (!Number.isInteger(g) || g < 1 || cin % g !== 0 || cout % g !== 0 || cinG !== cin / g) {
    throw new Error(`conv2d: groups=${g} does not fit input channels ${cin}, output channels ${cout} and weight ${formatShape(w.shape)} (need Cin and Cout divisible by groups, weight dim 1 = Cin/groups)`);
  }
  if (![sh, sw].every((v) => Number.isInteger(v) && v >= 1) || ![ph, pw].every((v) => Number.isInteger(v) && v >= 0)) {
    throw new Error(`conv2d: stride must be an integer >= 1 and padding an integer >= 0, got stride ${sh},${sw} padding ${ph},${pw}`);
  }
  const ho = Math.floor((h + 2 * ph - kh) / sh) + 1;
  const wo = Math.floor((wd + 2 * pw - kw) / sw) + 1;
  if (ho < 1 || wo < 1) throw new Error(`conv2d: kernel ${kh}x${kw} is larger than the padded input ${h + 2 * ph}x${wd + 2 * pw}`);
  return { n, cin, h, w: wd, cout, kh, kw, sh, sw, ph, pw, g, cinG, coutG: cout / g, ho, wo };
}

const name = (what: string, s: Geometry) => `conv2d.${what} ${s.n}x${s.cin}x${s.h}x${s.w} -> ${s.cout} k${s.kh}x${s.kw} s${s.sh} p${s.ph} g${s.g}`;

/** WGSL: whether (iy, ix) lies inside the input and its offset within one channel plane (0 when
 *  outside, so the load stays in bounds). Branch-free: `&` does not short-circuit, and a negative
 *  i32 becomes a huge u32, failing `< h`. */
function planeOffset(s: Geometry, iy: string, ix: string): string {
  return `let ok = (u32(${iy}) < ${u32(s.h)}) & (u32(${ix}) < ${u32(s.w)});
  let off = select(0u, u32(${iy}) * ${u32(s.w)} + u32(${ix}), ok);`;
}

/** x[n, ci, oy*s - p + ky, ox*s - p + kx] as a function of the image, channel, tap r and output position */
function gatherInput(s: Geometry, fn: string, args: string, img: string, ci: string, r: string, p: string): string {
  return `fn ${fn}(${args}) -> f32 {
  let img = ${img};
  let ci = ${ci};
  let r = ${r};
  let p = ${p};
  let iy = i32((p / ${u32(s.wo)}) * ${u32(s.sh)} + r / ${u32(s.kw)}) - ${i32(s.ph)};
  let ix = i32((p % ${u32(s.wo)}) * ${u32(s.sw)} + r % ${u32(s.kw)}) - ${i32(s.pw)};
  ${planeOffset(s, 'iy', 'ix')}
  return select(0.0, X[(img * ${u32(s.cin)} + ci) * ${u32(s.h * s.w)} + off], ok);
}`;
}

/** A 1x1 convolution with stride 1 and no padding reads its input as a plain matrix. */
const pointwise = (s: Geometry) => s.kh === 1 && s.kw === 1 && s.sh === 1 && s.sw === 1 && s.ph === 0 && s.pw === 0;

/** y[n, co, oy, ox] = bias[co] + sum w[co, ci, ky, kx] x[n, g*CinG + ci, oy*s - p + ky, ox*s - p + kx] */
function forward(x: Tensor, w: Tensor, bias: Tensor | null, s: Geometry): Tensor {
  const K = s.cinG * s.kh * s.kw;
  const P = s.ho * s.wo;
  const out = Tensor.empty([s.n, s.cout, s.ho, s.wo], 'f32', x.gpu);
  const grp = `(b % ${u32(s.g)})`;
  const img = `(b / ${u32(s.g)})`;
  const spec: GemmSpec = {
    name: name('fwd', s),
    batch: s.n * s.g,
    M: s.coutG,
    N: P,
    K,
    a: { kind: 'strided', buffer: 'W', offset: `${grp} * ${u32(s.coutG * K)}`, aligned4: s.g === 1 || (s.coutG * K) % 4 === 0, rowStride: K, colStride: 1 },
    b: pointwise(s)
      ? { kind: 'strided', buffer: 'X', offset: `(${img} * ${u32(s.cin)} + ${grp} * ${u32(s.cinG)}) * ${u32(P)}`, aligned4: P % 4 === 0 || (s.g === 1 && (s.cin * P) % 4 === 0), rowStride: P, colStride: 1 }
      : {
          kind: 'gather',
          buffers: ['X'],
          call: 'gatherX',
          fn: gatherInput(s, 'gatherX', 'b: u32, k: u32, n: u32', img, `${grp} * ${u32(s.cinG)} + k / ${u32(s.kh * s.kw)}`, `k % ${u32(s.kh * s.kw)}`, 'n'),
        },
    out: { buffer: 'Y', offset: `(${img} * ${u32(s.cout)} + ${grp} * ${u32(s.coutG)}) * ${u32(P)}`, aligned4: P % 4 === 0 || (s.g === 1 && (s.cout * P) % 4 === 0), rowStride: P },
    epilogue: bias ? { buffers: ['bias'], expr: `v + bias[${grp} * ${u32(s.coutG)} + m]` } : undefined,
  };
  const buffers = { W: w.binding, X: x.binding, Y: out.binding, ...(bias ? { bias: bias.binding } : {}) };
  const direct: Conv3Spec | undefined = isSame3x3(s)
    ? {
        name: spec.name,
        batch: spec.batch,
        M: s.coutG,
        C: s.cinG,
        H: s.h,
        W: s.w,
        input: { buffer: 'X', offset: `(${img} * ${u32(s.cin)} + ${grp} * ${u32(s.cinG)}) * ${u32(P)}` },
        weight: { buffer: 'W', index: (m, c, tap) => `((${grp} * ${u32(s.coutG)} + ${m}) * ${u32(s.cinG)} + ${c}) * 9u + ${tap}` },
        out: { buffer: 'Y', offset: spec.out.offset },
        epilogue: spec.epilogue,
      }
    : undefined;
  // im2col: col[(ci, ky, kx)][img][p], then Y[img] = W @ col[:, img, :] (groups of 1, real windows only)
  const im2col =
    s.g === 1 && !pointwise(s)
      ? {
          col: { name: name('fwd.im2col', s), input: 'X', out: 'col_', n: s.n, C: s.cin, H: s.h, W: s.w, kh: s.kh, kw: s.kw, sh: s.sh, sw: s.sw, ph: s.ph, pw: s.pw, ho: s.ho, wo: s.wo },
          gemm: {
            ...spec,
            batch: s.n,
            b: { kind: 'strided', buffer: 'col_', offset: `b * ${u32(P)}`, aligned4: P % 4 === 0, rowStride: s.n * P, colStride: 1 },
            out: { buffer: 'Y', offset: `b * ${u32(s.cout * P)}`, aligned4: (s.cout * P) % 4 === 0, rowStride: P },
            epilogue: bias ? { buffers: ['bias'], expr: 'v + bias[m]' } : undefined,
          } satisfies GemmSpec,
        }
      : undefined;
  runProblem(x.gpu, convProblem({ name: spec.name, family: 'conv.fwd', implicit: spec, direct, im2col }), buffers);
  return out;
}

/** dx[n, ci, iy, ix] = sum over (co, ky, kx) with oy = (iy + p - ky)/s integral and in range. */
function gradInput(g: Tensor, w: Tensor, s: Geometry): Tensor {
  const khw = s.kh * s.kw;
  const K = s.coutG * khw;
  const HW = s.h * s.w;
  const P = s.ho * s.wo;
  const out = Tensor.empty([s.n, s.cin, s.h, s.w], 'f32', g.gpu);
  const grp = `(b % ${u32(s.g)})`;
  const img = `(b / ${u32(s.g)})`;
  const spec: GemmSpec = {
    name: name('dx', s),
    batch: s.n * s.g,
    M: s.cinG,
    N: HW,
    K,
    // A[ci, (co, ky, kx)] = w[co, ci, ky, kx]
    a:
      khw === 1
        ? { kind: 'strided', buffer: 'W', offset: `${grp} * ${u32(s.coutG * s.cinG)}`, aligned4: s.g === 1 || (s.coutG * s.cinG) % 4 === 0, rowStride: 1, colStride: s.cinG }
        : {
            kind: 'gather',
            buffers: ['W'],
            call: 'gatherW',
            fn: `fn gatherW(b: u32, m: u32, k: u32) -> f32 {
  return W[(${grp} * ${u32(s.coutG)} + k / ${u32(khw)}) * ${u32(s.cinG * khw)} + m * ${u32(khw)} + k % ${u32(khw)}];
}`,
          },
    b: pointwise(s)
      ? { kind: 'strided', buffer: 'G', offset: `(${img} * ${u32(s.cout)} + ${grp} * ${u32(s.coutG)}) * ${u32(P)}`, aligned4: P % 4 === 0 || (s.g === 1 && (s.cout * P) % 4 === 0), rowStride: P, colStride: 1 }
      : {
          kind: 'gather',
          buffers: ['G'],
          call: 'gatherG',
          fn: `fn gatherG(b: u32, k: u32, p: u32) -> f32 {
  let co = ${grp} * ${u32(s.coutG)} + k / ${u32(khw)};
  let r = k % ${u32(khw)};
  let ty = i32(p / ${u32(s.w)}) + ${i32(s.ph)} - i32(r / ${u32(s.kw)});
  let tx = i32(p % ${u32(s.w)}) + ${i32(s.pw)} - i32(r % ${u32(s.kw)});
  let oy = ty / ${i32(s.sh)};
  let ox = tx / ${i32(s.sw)};
  let ok = (ty >= 0i) & (tx >= 0i) & (ty % ${i32(s.sh)} == 0i) & (tx % ${i32(s.sw)} == 0i) & (oy < ${i32(s.ho)}) & (ox < ${i32(s.wo)});
  let off = select(0u, u32(oy) * ${u32(s.wo)} + u32(ox), ok);
  return select(0.0, G[(${img} * ${u32(s.cout)} + co) * ${u32(P)} + off], ok);
}`,
        },
    out: { buffer: 'DX', offset: `(${img} * ${u32(s.cin)} + ${grp} * ${u32(s.cinG)}) * ${u32(HW)}`, aligned4: HW % 4 === 0 || (s.g === 1 && (s.cin * HW) % 4 === 0), rowStride: HW },
  };
  const buffers = { W: w.binding, G: g.binding, DX: out.binding };
  // dx is a 3x3 'same' convolution of g with the flipped, transposed weights
  const direct: Conv3Spec | undefined = isSame3x3(s)
    ? {
        name: spec.name,
        batch: spec.batch,
        M: s.cinG,
        C: s.coutG,
        H: s.h,
        W: s.w,
        input: { buffer: 'G', offset: `(${img} * ${u32(s.cout)} + ${grp} * ${u32(s.coutG)}) * ${u32(P)}` },
        weight: { buffer: 'W', index: (m, c, tap) => `((${grp} * ${u32(s.coutG)} + ${c}) * ${u32(s.cinG)} + ${m}) * 9u + 8u - ${tap}` },
        out: { buffer: 'DX', offset: spec.out.offset },
      }
    : undefined;
  // stride 1: dx = conv(g, flipped transposed w) with padding k - 1 - p, computed as im2col of g
  const ph2 = s.kh - 1 - s.ph;
  const pw2 = s.kw - 1 - s.pw;
  const im2col =
    s.g === 1 && s.sh === 1 && s.sw === 1 && khw > 1 && ph2 >= 0 && pw2 >= 0
      ? {
          col: { name: name('dx.im2col', s), input: 'G', out: 'col_', n: s.n, C: s.cout, H: s.ho, W: s.wo, kh: s.kh, kw: s.kw, sh: 1, sw: 1, ph: ph2, pw: pw2, ho: s.h, wo: s.w },
          gemm: {
            name: spec.name,
            batch: s.n,
            M: s.cin,
            N: HW,
            K,
            // A[ci, (co, ky', kx')] = w[co, ci, kh-1-ky', kw-1-kx']
            a: {
              kind: 'gather',
              buffers: ['W'],
              call: 'flippedW',
              fn: `fn flippedW(b: u32, m: u32, k: u32) -> f32 { return W[(k / ${u32(khw)}) * ${u32(s.cin * khw)} + m * ${u32(khw)} + ${u32(khw - 1)} - k % ${u32(khw)}]; }`,
            },
            b: { kind: 'strided', buffer: 'col_', offset: `b * ${u32(HW)}`, aligned4: HW % 4 === 0, rowStride: s.n * HW, colStride: 1 },
            out: { buffer: 'DX', offset: `b * ${u32(s.cin * HW)}`, aligned4: (s.cin * HW) % 4 === 0, rowStride: HW },
          } satisfies GemmSpec,
        }
      : undefined;
  runProblem(g.gpu, convProblem({ name: spec.name, family: 'conv.dx', implicit: spec, direct, im2col }), buffers);
  return out;
}

/** dw[co, ci, ky, kx] = sum over (n, oy, ox) of g[n, co, oy, ox] x[n, ci, oy*s - p + ky, ox*s - p + kx]. */
function gradWeight(g: Tensor, x: Tensor, s: Geometry): Tensor {
  const P = s.ho * s.wo;
  const khw = s.kh * s.kw;
  const N = s.cinG * khw;
  const out = Tensor.empty([s.cout, s.cinG, s.kh, s.kw], 'f32', g.gpu);
  const spec: GemmSpec = {
    name: name('dw', s),
    batch: s.g,
    M: s.coutG,
    N,
    K: s.n * P,
    // A[co, (img, p)] = g[img, b * CoutG + co, p]
    a:
      s.n === 1
        ? { kind: 'strided', buffer: 'G', offset: `b * ${u32(s.coutG * P)}`, aligned4: s.g === 1 || (s.coutG * P) % 4 === 0, rowStride: P, colStride: 1 }
        : {
            kind: 'gather',
            buffers: ['G'],
            call: 'gatherG',
            fn: `fn gatherG(b: u32, m: u32, k: u32) -> f32 {
  return G[((k / ${u32(P)}) * ${u32(s.cout)} + b * ${u32(s.coutG)} + m) * ${u32(P)} + k % ${u32(P)}];
}`,
          },
    b: {
      kind: 'gather',
      buffers: ['X'],
      call: 'gatherX',
      fn: gatherInput(s, 'gatherX', 'b: u32, k: u32, j: u32', `k / ${u32(P)}`, `b * ${u32(s.cinG)} + j / ${u32(khw)}`, `j % ${u32(khw)}`, `k % ${u32(P)}`),
    },
    out: { buffer: 'DW', offset: `b * ${u32(s.coutG * N)}`, aligned4: s.g === 1 || (s.coutG * N) % 4 === 0, rowStride: N },
  };
  // im2col: col[j][img][p] read as B[k = (img, p), n = j], contiguous along k (vec4 loads)
  const im2col =
    s.g === 1 && !pointwise(s)
      ? {
          col: { name: name('dw.im2col', s), input: 'X', out: 'col_', n: s.n, C: s.cin, H: s.h, W: s.w, kh: s.kh, kw: s.kw, sh: s.sh, sw: s.sw, ph: s.ph, pw: s.pw, ho: s.ho, wo: s.wo },
          gemm: { ...spec, b: { kind: 'strided', buffer: 'col_', offset: '0u', aligned4: true, rowStride: 1, colStride: s.n * P } } satisfies GemmSpec,
        }
      : undefined;
  const directWeightGrad =
    s.g === 1 && isSame3x3(s)
      ? { name: spec.name, n: s.n, M: s.cout, C: s.cin, H: s.h, W: s.w, grad: 'G', input: 'X', out: 'DW' }
      : undefined;
  runProblem(g.gpu, convProblem({ name: spec.name, family: 'conv.dw', implicit: spec, directWeightGrad, im2col }), { G: g.binding, X: x.binding, DW: out.binding });
  return out;
}

export function conv2d(x: Tensor, weight: Tensor, bias: Tensor | null = null, opts: Conv2dOptions = {}): Tensor {
  expectFloat('conv2d', x, weight, bias);
  const s = geometry(x, weight, opts);
  if (bias && (bias.ndim !== 1 || bias.shape[0] !== s.cout)) {
    throw new Error(`conv2d: bias must have shape [${s.cout}], got ${formatShape(bias.shape)}`);
  }
  const y = forward(x, weight, bias, s);
  const inputs = bias ? [x, weight, bias] : [x, weight];
  return recordGrad(y, 'conv2d', inputs, (g) => [
    x.requiresGrad ? gradInput(g, weight, s) : null,
    weight.requiresGrad ? gradWeight(g, x, s) : null,
    ...(bias ? [bias.requiresGrad ? new PendingSum(g, s.n, s.cout, s.ho * s.wo, [s.cout], () => g.sum([0, 2, 3])) : null] : []),
  ]);
}

function check4d(op: string, x: Tensor, even: boolean): void {
  expectFloat(op, x);
  if (x.ndim !== 4 || (even && (x.shape[2] % 2 !== 0 || x.shape[3] % 2 !== 0))) {
    throw new Error(`${op}: expects [N, C, H, W]${even ? ' with even H and W' : ''}, got ${formatShape(x.shape)}`);
  }
}

/** Nearest-neighbour 2x upsampling of [N, C, H, W]. */
export function upsample2x(x: Tensor): Tensor {
  check4d('upsample2x', x, false);
  const [n, c, h, w] = x.shape;
  const y = launch(upsample2xKernel(x.shape), [x], [n, c, 2 * h, 2 * w]);
  return recordGrad(y, 'upsample2x', [x], (g) => [launch(pool2xKernel(g.shape, 1), [g], x.shape)]);
}

/** 2x2 average pooling with stride 2 of [N, C, H, W] (H, W even). */
export function avgPool2x(x: Tensor): Tensor {
  check4d('avgPool2x', x, true);
  const [n, c, h, w] = x.shape;
  const y = launch(pool2xKernel(x.shape, 0.25), [x], [n, c, h / 2, w / 2]);
  return recordGrad(y, 'avgPool2x', [x], (g) => [launch(upsample2xKernel(g.shape), [g], x.shape).mul(0.25)]);
}
