// conv2d (stride, padding, groups) as implicit GEMM on the shared register-blocked skeleton: the
// forward pass and both gradients differ only in how they gather their operands.
import { gemmKernel } from '../../kernels/gemm';
import { pool2xKernel, upsample2xKernel } from '../../kernels/indexing';
import { storage, u32, i32 } from '../../kernels/kernel';
import { Tensor, recordGrad } from '../tensor';
import { launch } from './base';

export interface Conv2dOptions {
  stride?: number | [number, number];
  padding?: number | [number, number];
  groups?: number;
}

const pair = (v: number | [number, number] | undefined, d: number): [number, number] => (v === undefined ? [d, d] : typeof v === 'number' ? [v, v] : v);
const str = (s: readonly number[]) => `[${s.join(', ')}]`;

interface Geometry {
  n: number; cin: number; h: number; w: number;
  cout: number; kh: number; kw: number;
  sh: number; sw: number; ph: number; pw: number;
  g: number; cinG: number; coutG: number;
  ho: number; wo: number;
}

function geometry(x: Tensor, w: Tensor, opts: Conv2dOptions): Geometry {
  if (x.ndim !== 4 || w.ndim !== 4) {
    throw new Error(`conv2d: expects x [N, C, H, W] and weight [Cout, Cin/groups, kh, kw], got ${str(x.shape)} and ${str(w.shape)}`);
  }
  const [n, cin, h, wd] = x.shape;
  const [cout, cinG, kh, kw] = w.shape;
  const g = opts.groups ?? 1;
  const [sh, sw] = pair(opts.stride, 1);
  const [ph, pw] = pair(opts.padding, 0);
  if (!Number.isInteger(g) || g < 1 || cin % g !== 0 || cout % g !== 0 || cinG !== cin / g) {
    throw new Error(`conv2d: groups=${g} does not fit input channels ${cin}, output channels ${cout} and weight ${str(w.shape)} (need Cin and Cout divisible by groups, weight dim 1 = Cin/groups)`);
  }
  if (sh < 1 || sw < 1 || ph < 0 || pw < 0) throw new Error(`conv2d: stride must be >= 1 and padding >= 0, got stride ${sh},${sw} padding ${ph},${pw}`);
  const ho = Math.floor((h + 2 * ph - kh) / sh) + 1;
  const wo = Math.floor((wd + 2 * pw - kw) / sw) + 1;
  if (ho < 1 || wo < 1) throw new Error(`conv2d: kernel ${kh}x${kw} is larger than the padded input ${h + 2 * ph}x${wd + 2 * pw}`);
  return { n, cin, h, w: wd, cout, kh, kw, sh, sw, ph, pw, g, cinG, coutG: cout / g, ho, wo };
}

const name = (what: string, s: Geometry) => `conv2d.${what} ${s.n}x${s.cin}x${s.h}x${s.w} -> ${s.cout} k${s.kh}x${s.kw} s${s.sh} p${s.ph} g${s.g}`;

/** y[n, co, oy, ox] = bias[co] + sum w[co, ci, ky, kx] x[n, g*CinG + ci, oy*s - p + ky, ox*s - p + kx] */
function forward(x: Tensor, w: Tensor, bias: Tensor | null, s: Geometry): Tensor {
  const K = s.cinG * s.kh * s.kw;
  const out = Tensor.empty([s.n, s.cout, s.ho, s.wo], 'f32', x.gpu);
  const kernel = gemmKernel({
    name: name('fwd', s),
    batch: s.n * s.g,
    M: s.coutG,
    N: s.ho * s.wo,
    K,
    decls: `${storage(0, 'W', 'read')}\n${storage(1, 'X', 'read')}\n${bias ? storage(2, 'bias', 'read') + '\n' : ''}${storage(bias ? 3 : 2, 'Y', 'read_write')}
fn gatherX(b: u32, k: u32, p: u32) -> f32 {
  let grp = b % ${u32(s.g)};
  let img = b / ${u32(s.g)};
  let ci = grp * ${u32(s.cinG)} + k / ${u32(s.kh * s.kw)};
  let r = k % ${u32(s.kh * s.kw)};
  let iy = i32((p / ${u32(s.wo)}) * ${u32(s.sh)} + r / ${u32(s.kw)}) - ${i32(s.ph)};
  let ix = i32((p % ${u32(s.wo)}) * ${u32(s.sw)} + r % ${u32(s.kw)}) - ${i32(s.pw)};
  if (iy < 0i || iy >= ${i32(s.h)} || ix < 0i || ix >= ${i32(s.w)}) { return 0.0; }
  return X[(img * ${u32(s.cin)} + ci) * ${u32(s.h * s.w)} + u32(iy) * ${u32(s.w)} + u32(ix)];
}`,
    loadA: `W[((b % ${u32(s.g)}) * ${u32(s.coutG)} + m) * ${u32(K)} + k]`,
    loadB: 'gatherX(b, k, n)',
    store: `let co = (b % ${u32(s.g)}) * ${u32(s.coutG)} + m;
  Y[((b / ${u32(s.g)}) * ${u32(s.cout)} + co) * ${u32(s.ho * s.wo)} + n] = v${bias ? ' + bias[co]' : ''};`,
  });
  x.gpu.dispatch(kernel, bias ? [w.buffer, x.buffer, bias.buffer, out.buffer] : [w.buffer, x.buffer, out.buffer]);
  return out;
}

/** dx[n, ci, iy, ix] = sum over (co, ky, kx) with oy = (iy + p - ky)/s integral and in range. */
function gradInput(g: Tensor, w: Tensor, s: Geometry): Tensor {
  const K = s.coutG * s.kh * s.kw;
  const out = Tensor.empty([s.n, s.cin, s.h, s.w], 'f32', g.gpu);
  const kernel = gemmKernel({
    name: name('dx', s),
    batch: s.n * s.g,
    M: s.cinG,
    N: s.h * s.w,
    K,
    decls: `${storage(0, 'W', 'read')}\n${storage(1, 'G', 'read')}\n${storage(2, 'DX', 'read_write')}
fn gatherG(b: u32, k: u32, p: u32) -> f32 {
  let grp = b % ${u32(s.g)};
  let img = b / ${u32(s.g)};
  let co = grp * ${u32(s.coutG)} + k / ${u32(s.kh * s.kw)};
  let r = k % ${u32(s.kh * s.kw)};
  let ty = i32(p / ${u32(s.w)}) + ${i32(s.ph)} - i32(r / ${u32(s.kw)});
  let tx = i32(p % ${u32(s.w)}) + ${i32(s.pw)} - i32(r % ${u32(s.kw)});
  if (ty < 0i || tx < 0i || ty % ${i32(s.sh)} != 0i || tx % ${i32(s.sw)} != 0i) { return 0.0; }
  let oy = ty / ${i32(s.sh)};
  let ox = tx / ${i32(s.sw)};
  if (oy >= ${i32(s.ho)} || ox >= ${i32(s.wo)}) { return 0.0; }
  return G[(img * ${u32(s.cout)} + co) * ${u32(s.ho * s.wo)} + u32(oy) * ${u32(s.wo)} + u32(ox)];
}`,
    // A[ci, (co, ky, kx)] = w[co, ci, ky, kx]
    loadA: `W[((b % ${u32(s.g)}) * ${u32(s.coutG)} + k / ${u32(s.kh * s.kw)}) * ${u32(s.cinG * s.kh * s.kw)} + m * ${u32(s.kh * s.kw)} + k % ${u32(s.kh * s.kw)}]`,
    loadB: 'gatherG(b, k, n)',
    store: `DX[((b / ${u32(s.g)}) * ${u32(s.cin)} + (b % ${u32(s.g)}) * ${u32(s.cinG)} + m) * ${u32(s.h * s.w)} + n] = v;`,
  });
  g.gpu.dispatch(kernel, [w.buffer, g.buffer, out.buffer]);
  return out;
}

/** dw[co, ci, ky, kx] = sum over (n, oy, ox) of g[n, co, oy, ox] x[n, ci, oy*s - p + ky, ox*s - p + kx]. */
function gradWeight(g: Tensor, x: Tensor, s: Geometry): Tensor {
  const P = s.ho * s.wo;
  const out = Tensor.empty([s.cout, s.cinG, s.kh, s.kw], 'f32', g.gpu);
  const kernel = gemmKernel({
    name: name('dw', s),
    batch: s.g,
    M: s.coutG,
    N: s.cinG * s.kh * s.kw,
    K: s.n * P,
    decls: `${storage(0, 'G', 'read')}\n${storage(1, 'X', 'read')}\n${storage(2, 'DW', 'read_write')}
fn gatherX(b: u32, k: u32, j: u32) -> f32 {
  let img = k / ${u32(P)};
  let p = k % ${u32(P)};
  let ci = b * ${u32(s.cinG)} + j / ${u32(s.kh * s.kw)};
  let r = j % ${u32(s.kh * s.kw)};
  let iy = i32((p / ${u32(s.wo)}) * ${u32(s.sh)} + r / ${u32(s.kw)}) - ${i32(s.ph)};
  let ix = i32((p % ${u32(s.wo)}) * ${u32(s.sw)} + r % ${u32(s.kw)}) - ${i32(s.pw)};
  if (iy < 0i || iy >= ${i32(s.h)} || ix < 0i || ix >= ${i32(s.w)}) { return 0.0; }
  return X[(img * ${u32(s.cin)} + ci) * ${u32(s.h * s.w)} + u32(iy) * ${u32(s.w)} + u32(ix)];
}`,
    loadA: `G[((k / ${u32(P)}) * ${u32(s.cout)} + b * ${u32(s.coutG)} + m) * ${u32(P)} + k % ${u32(P)}]`,
    loadB: 'gatherX(b, k, n)',
    store: `DW[(b * ${u32(s.coutG)} + m) * ${u32(s.cinG * s.kh * s.kw)} + n] = v;`,
  });
  g.gpu.dispatch(kernel, [g.buffer, x.buffer, out.buffer]);
  return out;
}

export function conv2d(x: Tensor, weight: Tensor, bias: Tensor | null = null, opts: Conv2dOptions = {}): Tensor {
  const s = geometry(x, weight, opts);
  if (bias && (bias.ndim !== 1 || bias.shape[0] !== s.cout)) {
    throw new Error(`conv2d: bias must have shape [${s.cout}], got ${str(bias.shape)}`);
  }
  const y = forward(x, weight, bias, s);
  const inputs = bias ? [x, weight, bias] : [x, weight];
  return recordGrad(y, 'conv2d', inputs, (g) => [
    x.requiresGrad ? gradInput(g, weight, s) : null,
    weight.requiresGrad ? gradWeight(g, x, s) : null,
    ...(bias ? [bias.requiresGrad ? g.sum([0, 2, 3]) : null] : []),
  ]);
}

function check4d(op: string, x: Tensor, even: boolean): void {
  if (x.ndim !== 4 || (even && (x.shape[2] % 2 !== 0 || x.shape[3] % 2 !== 0))) {
    throw new Error(`${op}: expects [N, C, H, W]${even ? ' with even H and W' : ''}, got ${str(x.shape)}`);
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
