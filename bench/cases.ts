// Benchmark cases. Each case times the same computation on every engine: `chain` dependent ops (each
// op's input is the previous op's output), then one scalar reduction read back to the host, so no
// engine can skip or defer work. Reported times are per op (iteration time / chain).
// Adding a case is one entry in `benchCases`: a name, a shape, flops or bytes per op, and an
// implementation per engine (see `matmulCase` for the pattern).
import type { Env, EngineName } from './engines';
import { type Tensor, conv2d, keep, matmul, noGrad, scope, tensor } from '../src/engine/index';
import { plan, unetPresets } from '../src/models/unet';
import { unetStepCase } from './unet-step';
import type { Array as JaxArray } from '@jax-js/jax';
import type { Tensor as TfTensor, Tensor4D } from '@tensorflow/tfjs-core';

/** One engine's instance of a case. */
export interface CaseRun {
  /** run the chain and read back its scalar summary (returned, so tests can compare the engines) */
  iter(): Promise<number>;
  dispose(): void;
}

export interface BenchCase {
  case: string;
  shape: string;
  /** floating-point operations per op (2 per multiply-add) */
  flops?: number;
  /** ideal memory traffic per op in bytes (each input read once, each output written once) */
  bytes?: number;
  /** images processed per op (training steps report images/s) */
  images?: number;
  chain: number;
  /** engines measured for this case; one without an entry is reported as not applicable */
  impl: Partial<Record<EngineName, (env: Env) => CaseRun | Promise<CaseRun>>>;
  /** where only some engines can run it, why */
  note?: string;
  /** the values `iter` returns in the two warm-up iterations must agree with ours to this relative
   *  tolerance, or the peer is reported failed (training steps: the loss of the first two steps) */
  check?: { what: string; rtol: number };
}

/** Whether a peer's check values agree with ours: |peer - ours| <= rtol * max(1, |ours|) for each. */
export function checkAgrees(ours: number[], peer: number[], rtol: number): boolean {
  return ours.length === peer.length && ours.every((o, i) => Math.abs(peer[i] - o) <= rtol * Math.max(1, Math.abs(o)));
}

/** Deterministic uniform values in [-scale, scale). */
export function randomData(n: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = ((s >>> 8) / 2 ** 24 - 0.5) * 2 * scale;
  }
  return out;
}

const prod = (s: number[]) => s.reduce((a, b) => a * b, 1);

/** Values with unit variance: uniform in [-sqrt 3, sqrt 3). */
const unit = (n: number, seed: number) => randomData(n, seed, Math.sqrt(3));
/** Weights that keep the variance of x @ W (fan-in `fanIn`) near that of x. */
const weights = (n: number, fanIn: number, seed: number) => randomData(n, seed, Math.sqrt(3 / fanIn));

function tf(env: Env) {
  if (!env.tf) throw new Error('tfjs is not loaded');
  return env.tf;
}
function jax(env: Env) {
  if (!env.jax) throw new Error('jax-js is not loaded');
  return env.jax;
}

/** An input of a case: values and shape (in the layout the engine wants). */
interface Input {
  data: Float32Array;
  shape: number[];
}

// The three engines' runs of a chained case: y = step(y, ...operands) `chain` times, starting from
// the first input (the others are fixed operands), then sum(y) read back.
function oursChain(env: Env, inputs: Input[], chain: number, step: (y: Tensor, ...operands: Tensor[]) => Tensor): CaseRun {
  const [x, ...operands] = inputs.map((i) => keep(tensor(i.data, i.shape, { gpu: env.gpu })));
  return {
    iter: () =>
      scope(async () => {
        let y = x;
        for (let i = 0; i < chain; i++) y = step(y, ...operands);
        return await y.sum().item();
      }),
    dispose: () => [x, ...operands].forEach((t) => t.dispose()),
  };
}

function tfjsChain(env: Env, inputs: Input[], chain: number, step: (t: NonNullable<Env['tf']>, y: TfTensor, ...operands: TfTensor[]) => TfTensor): CaseRun {
  const t = tf(env);
  const [x, ...operands] = inputs.map((i) => t.tensor(i.data, i.shape));
  return {
    iter: async () => {
      const s = t.tidy(() => {
        let y = x;
        for (let i = 0; i < chain; i++) y = step(t, y, ...operands);
        return t.sum(y);
      });
      const v = (await s.data())[0];
      s.dispose();
      return v;
    },
    dispose: () => [x, ...operands].forEach((a) => a.dispose()),
  };
}

/** `dispose` frees what `step` holds (a jit-compiled function). */
function jaxChain(env: Env, inputs: Input[], chain: number, step: (y: JaxArray, ...operands: JaxArray[]) => JaxArray, dispose?: () => void): CaseRun {
  const { numpy: np } = jax(env);
  const [x, ...operands] = inputs.map((i) => np.array(i.data).reshape(i.shape));
  return {
    iter: async () => {
      // jax-js arrays are consumed by each use: pass new references
      let y: JaxArray = x.ref;
      for (let i = 0; i < chain; i++) y = step(y, ...operands.map((o) => o.ref));
      return (await y.sum().data())[0];
    },
    dispose: () => {
      [x, ...operands].forEach((a) => a.dispose());
      dispose?.();
    },
  };
}

/** x [.., M, K] -> x @ w, chained `chain` times (w [.., K, K] keeps the shape). */
export function matmulCase(name: string, xShape: number[], wShape: number[], chain: number): BenchCase {
  const [M, K] = xShape.slice(-2);
  const N = wShape[wShape.length - 1];
  if (N !== K) throw new Error(`${name}: chained matmul needs a square right operand`);
  const batch = prod(xShape.slice(0, -2));
  const inputs = [
    { data: unit(prod(xShape), 1), shape: xShape },
    { data: weights(prod(wShape), K, 2), shape: wShape },
  ];
  return {
    case: name,
    shape: `${xShape.join('x')} @ ${wShape.join('x')}`,
    flops: 2 * batch * M * N * K,
    chain,
    impl: {
      ours: (env) => oursChain(env, inputs, chain, (y, w) => matmul(y, w)),
      tfjs: (env) => tfjsChain(env, inputs, chain, (t, y, w) => t.matMul(y, w)),
      'jax-js': (env) => jaxChain(env, inputs, chain, (y, w) => jax(env).numpy.matmul(y, w)),
    },
  };
}

/** 3x3 'same' convolution keeping the channel count, x [N, C, H, W] (NHWC for tfjs). */
function convShapes(n: number, c: number, h: number) {
  const xShape = [n, c, h, h];
  const wShape = [c, c, 3, 3];
  const flops = 2 * n * c * h * h * c * 9;
  return { xShape, wShape, flops, xData: unit(prod(xShape), 3), wData: weights(prod(wShape), c * 9, 4) };
}

/** NCHW -> NHWC (tfjs activation layout) */
export const nchwToNhwc = (d: Float32Array, [n, c, h, w]: number[]) => {
  const out = new Float32Array(d.length);
  for (let i = 0; i < n; i++) for (let ch = 0; ch < c; ch++) for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) out[((i * h + y) * w + x) * c + ch] = d[((i * c + ch) * h + y) * w + x];
  return out;
};
/** OIHW -> HWIO (tfjs filter layout) */
export const oihwToHwio = (d: Float32Array, [o, i, kh, kw]: number[]) => {
  const out = new Float32Array(d.length);
  for (let a = 0; a < o; a++) for (let b = 0; b < i; b++) for (let y = 0; y < kh; y++) for (let x = 0; x < kw; x++) out[((y * kw + x) * i + b) * o + a] = d[((a * i + b) * kh + y) * kw + x];
  return out;
};

export function convForwardCase(n: number, c: number, h: number, chain: number): BenchCase {
  const { xShape, wShape, flops, xData, wData } = convShapes(n, c, h);
  const nchw = [
    { data: xData, shape: xShape },
    { data: wData, shape: wShape },
  ];
  const nhwc = [
    { data: nchwToNhwc(xData, xShape), shape: [n, h, h, c] },
    { data: oihwToHwio(wData, wShape), shape: [3, 3, c, c] },
  ];
  return {
    case: 'conv2d fwd',
    shape: `${xShape.join('x')} k3 p1 -> ${c}`,
    flops,
    chain,
    impl: {
      ours: (env) => oursChain(env, nchw, chain, (y, w) => conv2d(y, w, null, { padding: 1 })),
      tfjs: (env) => tfjsChain(env, nhwc, chain, (t, y, w) => t.conv2d(y as Tensor4D, w as Tensor4D, 1, 'same')),
      'jax-js': (env) => jaxChain(env, nchw, chain, (y, w) => jax(env).lax.conv(y, w, [1, 1], 'SAME')),
    },
  };
}

/**
 * Forward and backward of a 3x3 conv: y = conv(x, w); (dx, dw) = vjp(g); the chain continues with
 * x <- y + dx and w <- w - lr dw, so the forward output and both gradients are all needed.
 * Counted as 3 convolutions' flops. (Tests raise `lr` so that dw shows in the read-back sum.)
 */
export function convBackwardCase(n: number, c: number, h: number, chain: number, lr = 1e-6): BenchCase {
  const { xShape, wShape, flops, xData, wData } = convShapes(n, c, h);
  const gData = unit(prod(xShape), 5);
  return {
    case: 'conv2d fwd+bwd',
    shape: `${xShape.join('x')} k3 p1 -> ${c}`,
    flops: 3 * flops,
    chain,
    impl: {
      ours: (env) => {
        const x0 = keep(tensor(xData, xShape, { gpu: env.gpu }));
        const w0 = keep(tensor(wData, wShape, { gpu: env.gpu }));
        const g = keep(tensor(gData, xShape, { gpu: env.gpu }));
        return {
          iter: () =>
            scope(async () => {
              let x = x0;
              let w = w0;
              const grads: Tensor[] = [];
              for (let i = 0; i < chain; i++) {
                const xl = x.view(x.shape).requireGrad();
                const wl = w.view(w.shape).requireGrad();
                const y = conv2d(xl, wl, null, { padding: 1 });
                y.backward(g);
                grads.push(xl.grad!, wl.grad!);
                x = noGrad(() => y.add(xl.grad!));
                w = noGrad(() => wl.sub(wl.grad!.mul(lr)));
              }
              const v = await noGrad(() => x.sum().add(w.sum())).item();
              for (const t of grads) t.dispose();
              return v;
            }),
          dispose: () => (x0.dispose(), w0.dispose(), g.dispose()),
        };
      },
      tfjs: (env) => {
        const t = tf(env);
        const x0 = t.tensor4d(nchwToNhwc(xData, xShape), [n, h, h, c]);
        const w0 = t.tensor4d(oihwToHwio(wData, wShape), [3, 3, c, c]);
        const g = t.tensor4d(nchwToNhwc(gData, xShape), [n, h, h, c]);
        return {
          iter: async () => {
            const s = t.tidy(() => {
              let x = x0;
              let w = w0;
              for (let i = 0; i < chain; i++) {
                const { value: y, grads } = t.valueAndGrads((a: TfTensor, b: TfTensor) => t.conv2d(a as Tensor4D, b as Tensor4D, 1, 'same'))([x, w], g);
                x = t.add(y, grads[0]) as Tensor4D;
                w = t.sub(w, t.mul(grads[1], lr)) as Tensor4D;
              }
              return t.add(t.sum(x), t.sum(w));
            });
            const v = (await s.data())[0];
            s.dispose();
            return v;
          },
          dispose: () => (x0.dispose(), w0.dispose(), g.dispose()),
        };
      },
      'jax-js': (env) => {
        const { numpy: np, lax, vjp } = jax(env);
        const x0 = np.array(xData).reshape(xShape);
        const w0 = np.array(wData).reshape(wShape);
        const g = np.array(gData).reshape(xShape);
        const f = (a: JaxArray, b: JaxArray) => lax.conv(a, b, [1, 1], 'SAME');
        return {
          iter: async () => {
            let x: JaxArray = x0.ref;
            let w: JaxArray = w0.ref;
            for (let i = 0; i < chain; i++) {
              const [y, pull] = vjp(f, [x, w.ref]);
              const [dx, dw] = pull(g.ref) as [JaxArray, JaxArray];
              pull.dispose();
              x = y.add(dx);
              w = w.sub(dw.mul(lr));
            }
            return (await x.sum().add(w.sum()).data())[0];
          },
          dispose: () => (x0.dispose(), w0.dispose(), g.dispose()),
        };
      },
    },
  };
}

/** y = max(x * 0.9 + 0.1, 0) - 0.05: four elementwise ops, fused where the engine can. */
export function elementwiseCase(n: number, chain: number): BenchCase {
  const inputs = [{ data: unit(n, 6), shape: [n] }];
  return {
    case: 'elementwise chain of 4',
    shape: `${n}`,
    // each step reads and writes n floats; the sum read back at the end reads the last output once
    // more per iteration (a fifth of the traffic at chain 2), shared out over the chain's steps
    bytes: 8 * n + (4 * n) / chain,
    chain,
    note: 'ours: lazily fused into one kernel per step; tfjs: 4 kernels (no fusion); jax-js: jit-fused',
    impl: {
      ours: (env) =>
        oursChain(env, inputs, chain, (x) => {
          // the engine fuses the four ops lazily; reading .buffer launches each step's kernel, so
          // steps are not fused with each other (every op reads and writes n floats)
          const y = x.mul(0.9).add(0.1).relu().sub(0.05);
          void y.buffer;
          return y;
        }),
      tfjs: (env) => tfjsChain(env, inputs, chain, (t, y) => t.sub(t.relu(t.add(t.mul(y, 0.9), 0.1)), 0.05)),
      'jax-js': (env) => {
        const { numpy: np, jit } = jax(env);
        const f = jit((a: JaxArray) => np.maximum(a.mul(0.9).add(0.1), 0).sub(0.05));
        return jaxChain(env, inputs, chain, (y) => f(y), () => f.dispose());
      },
    },
  };
}

/** acc += sum(x), chained: one full reduction of n floats per op. */
export function reductionCase(n: number, chain: number): BenchCase {
  const data = unit(n, 7);
  return {
    case: 'reduction sum',
    shape: `${n}`,
    bytes: 4 * n,
    chain,
    impl: {
      ours: (env) => {
        const x = keep(tensor(data, [n], { gpu: env.gpu }));
        return {
          iter: () =>
            scope(async () => {
              let acc = x.sum();
              for (let i = 1; i < chain; i++) acc = acc.add(x.sum());
              return await acc.item();
            }),
          dispose: () => x.dispose(),
        };
      },
      tfjs: (env) => {
        const t = tf(env);
        const x = t.tensor1d(data);
        return {
          iter: async () => {
            const s = t.tidy(() => {
              let acc = t.sum(x);
              for (let i = 1; i < chain; i++) acc = t.add(acc, t.sum(x));
              return acc;
            });
            const v = (await s.data())[0];
            s.dispose();
            return v;
          },
          dispose: () => x.dispose(),
        };
      },
      'jax-js': (env) => {
        const { numpy: np } = jax(env);
        const x = np.array(data);
        return {
          iter: async () => {
            let acc: JaxArray = x.ref.sum();
            for (let i = 1; i < chain; i++) acc = acc.add(x.ref.sum());
            return (await acc.data())[0];
          },
          dispose: () => x.dispose(),
        };
      },
    },
  };
}

/** Batch of the UNet-shaped cases (the `small` teacher's training batch in the full run). */
const UNET_BATCH = 64;
/** Batch of the training step in `--quick` runs. */
const STEP_BATCH_QUICK = 8;

/**
 * Shapes our UNet uses, read from the presets' plans so they follow the presets: the 3x3 convolution
 * that keeps the channel count (every ResBlock's conv2) at the `small` preset's two largest levels
 * (12 channels at 28x28, 24 at 14x14), its time-embedding MLP (width 48), and the attention product
 * `v @ attn^T` of the `base` preset at its attention level (128 channels, 49 positions).
 */
export function unetBenchShapes(): { convs: { c: number; h: number }[]; embDim: number; attn: { c: number; n: number } } {
  const small = plan(unetPresets.small);
  const convs: { c: number; h: number }[] = [];
  for (const s of small.down) if (s.kind === 'res' && !convs.some((x) => x.h === s.size)) convs.push({ c: s.cout, h: s.size });
  const a = plan(unetPresets.base).down.find((s) => s.kind === 'res' && s.attn);
  if (!a || a.kind !== 'res') throw new Error('bench: the base preset has no attention level');
  return { convs: convs.slice(0, 2), embDim: small.embDim, attn: { c: a.cout, n: a.size * a.size } };
}

/** The cases, smallest first. */
export function benchCases(quick: boolean, hardware = false): BenchCase[] {
  const cases: BenchCase[] = [];
  // a real GPU also gets the 4096 product (the TFLOP/s target); CPU emulation would take minutes
  const sizes = quick ? [256, 1024] : hardware ? [256, 512, 1024, 2048, 4096] : [256, 512, 1024, 2048];
  for (const s of sizes) cases.push(matmulCase('matmul', [s, s], [s, s], hardware ? 8 : s <= 256 ? 8 : s <= 512 ? 4 : s <= 1024 ? 2 : 1));
  const u = unetBenchShapes();
  const B = UNET_BATCH;
  cases.push(matmulCase('matmul unet emb', [B, u.embDim], [u.embDim, u.embDim], 8));
  cases.push(matmulCase('matmul unet attn', [B, u.attn.c, u.attn.n], [B, u.attn.n, u.attn.n], 4));
  const convs = quick ? u.convs.slice(0, 1) : u.convs;
  for (const { c, h } of convs) cases.push(convForwardCase(B, c, h, 2));
  for (const { c, h } of convs) cases.push(convBackwardCase(B, c, h, 1));
  cases.push(elementwiseCase(quick ? 1 << 22 : 1 << 24, 2));
  cases.push(reductionCase(quick ? 1 << 22 : 1 << 24, 2));
  cases.push(unetStepCase('train step (MNIST teacher, AdamW)', unetPresets.small, quick ? STEP_BATCH_QUICK : UNET_BATCH, 'small'));
  return cases;
}
