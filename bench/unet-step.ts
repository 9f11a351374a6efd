// End-to-end training step: one step of our UNet (flow-matching MSE, backward, AdamW with global
// gradient-norm clipping) on ours, and the same network written with each peer's own ops and
// autodiff (tf.variableGrads on TensorFlow.js, valueAndGrad under jit on jax-js). All three start
// from the same weights (our model's initial parameters) and take the same fixed batch, so their
// losses must agree step for step; the bench checks that before timing (BenchCase.check).
//
// Ops the peers lack are built from their primitives: GroupNorm (moments over each group) on both,
// nearest 2x upsampling on jax-js (repeat twice), AdamW with clipping on both (written out: tfjs's
// Adam has no decoupled weight decay or clipping, jax-js has no optimizers). tfjs convolutions are
// NHWC with HWIO filters, so our NCHW images and OIHW weights are transposed when loaded.
import { AdamW, scope } from '../src/engine/index';
import { DEFAULT_MAX_PERIOD, DEFAULT_TIME_SCALE } from '../src/models/embeddings';
import { UNet, type UNetConfig, plan, unetFlops } from '../src/models/unet';
import { type TeacherBatch, teacherLoss } from '../src/train/teacher';
import type { Array as JaxArray } from '@jax-js/jax';
import type { Tensor as TfTensor, Tensor4D, Variable } from '@tensorflow/tfjs-core';
import { type BenchCase, type CaseRun, nchwToNhwc, oihwToHwio, randomData as uniform } from './cases';
import type { Jax, Tf } from './engines';

/** Optimizer settings of the step, the same on every engine. */
export const STEP_OPT = { lr: 1e-3, betas: [0.9, 0.999] as [number, number], eps: 1e-8, weightDecay: 0.01, maxGradNorm: 1 };

type State = Record<string, { shape: number[]; data: Float32Array }>;

/** A fixed batch: x_t and the target velocity with unit variance, times in [0, 1), every label
 *  (the null class included). */
export function stepBatch(cfg: UNetConfig, batch: number): TeacherBatch {
  const per = cfg.inChannels * cfg.imageSize * cfg.imageSize;
  const xt = uniform(batch * per, 11, Math.sqrt(3));
  return {
    x0: xt,
    xt,
    target: uniform(batch * per, 12, Math.sqrt(3)),
    t: Float64Array.from(uniform(batch, 13, 0.5), (u) => u + 0.5),
    labels: Int32Array.from({ length: batch }, (_, i) => i % (cfg.numClasses + 1)),
  };
}

/**
 * Our model's initial parameters, by name. The output convolution starts at zero in our UNet, which
 * would make the first loss mean(target^2) whatever the rest of the network computes, and stop every
 * other gradient; here it gets PyTorch's default init instead, so the losses check the whole network.
 */
async function initialState(cfg: UNetConfig): Promise<State> {
  const model = new UNet(cfg);
  const state = await model.stateDict();
  model.dispose();
  const fanIn = cfg.baseChannels * 9;
  for (const [k, seed] of [['outConv.weight', 14], ['outConv.bias', 15]] as const) state[k].data = uniform(state[k].data.length, seed, 1 / Math.sqrt(fanIn));
  return state;
}

/** The frequencies of our timestep embedding (embeddings.ts), rounded to float32 once as ours are. */
function frequencies(cfg: UNetConfig): Float32Array {
  const half = cfg.baseChannels / 2;
  const scale = cfg.timeScale ?? DEFAULT_TIME_SCALE;
  return Float32Array.from({ length: half }, (_, i) => scale * Math.exp((-Math.log(DEFAULT_MAX_PERIOD) * i) / half));
}

/** The layers the forward pass is written in; each engine implements them in its own layout. */
interface Ops<A> {
  x: A;
  conv(x: A, prefix: string, stride: number, pad: number): A;
  groupNorm(x: A, prefix: string): A;
  silu(x: A): A;
  linear(x: A, prefix: string): A;
  add(a: A, b: A): A;
  /** h [B, C, H, W] (or NHWC) plus v [B, C] broadcast over the positions */
  addPerChannel(h: A, v: A): A;
  concatChannels(a: A, b: A): A;
  upsample2x(x: A): A;
  classEmbedding(prefix: string): A;
  timeEmbedding(): A;
}

/** UNet.forward (src/models/unet.ts) over `Ops`, following the same plan. */
function unetForward<A>(o: Ops<A>, cfg: UNetConfig): A {
  if (cfg.attentionAtLowest) throw new Error('bench: the peers\' UNet has no attention blocks (the step case uses presets without attention)');
  const p = plan(cfg);
  const embAct = o.silu(o.add(o.linear(o.silu(o.linear(o.timeEmbedding(), 'timeMlp1')), 'timeMlp2'), o.classEmbedding('classEmb')));
  const res = (x: A, pre: string, cin: number, cout: number) => {
    let h = o.conv(o.silu(o.groupNorm(x, `${pre}.norm1`)), `${pre}.conv1`, 1, 1);
    h = o.addPerChannel(h, o.linear(embAct, `${pre}.emb`));
    h = o.conv(o.silu(o.groupNorm(h, `${pre}.norm2`)), `${pre}.conv2`, 1, 1);
    return o.add(h, cin === cout ? x : o.conv(x, `${pre}.skip`, 1, 0));
  };
  let h = o.conv(o.x, 'inConv', 1, 1);
  const skips = [h];
  p.down.forEach((s, i) => {
    h = s.kind === 'res' ? res(h, `down.${i}`, s.cin, s.cout) : o.conv(h, `down.${i}.conv`, 2, 1);
    skips.push(h);
  });
  h = res(h, 'mid1', p.mid.ch, p.mid.ch);
  h = res(h, 'mid2', p.mid.ch, p.mid.ch);
  p.up.forEach((s, i) => {
    h = s.kind === 'res' ? res(o.concatChannels(h, skips.pop()!), `up.${i}`, s.cin, s.cout) : o.conv(o.upsample2x(h), `up.${i}.conv`, 1, 1);
  });
  return o.conv(o.silu(o.groupNorm(h, 'outNorm')), 'outConv', 1, 1);
}

function need<T>(name: string, m: Record<string, T>): T {
  if (!(name in m)) throw new Error(`bench: parameter ${name} missing (has the UNet changed?)`);
  return m[name];
}

// ---- ours -----------------------------------------------------------------------------------------

/** One step of our teacher on batch `b`: loss, backward, AdamW (then `after`, an EMA say); the loss. */
export function teacherStep(model: UNet, opt: AdamW, b: TeacherBatch, after?: () => void): Promise<number> {
  const { inChannels, imageSize } = model.config;
  return scope(async () => {
    const loss = teacherLoss(model, b, [inChannels, imageSize, imageSize]);
    loss.backward();
    opt.step();
    opt.zeroGrad();
    after?.();
    return await loss.item();
  });
}

function oursStep(cfg: UNetConfig, b: TeacherBatch, state: State): CaseRun {
  const model = new UNet(cfg);
  model.loadStateDict(state);
  const opt = new AdamW(model.parameters(), STEP_OPT);
  return {
    iter: () => teacherStep(model, opt, b),
    dispose: () => {
      model.dispose();
      opt.dispose();
    },
  };
}

// ---- TensorFlow.js (NHWC) ---------------------------------------------------------------------------

function tfjsStep(t: Tf, cfg: UNetConfig, b: TeacherBatch, state: State): CaseRun {
  const n = b.labels.length;
  const { inChannels: c, imageSize: s, groups } = cfg;
  const vars: Record<string, Variable> = {};
  for (const [name, { shape, data }] of Object.entries(state)) {
    vars[name] = shape.length === 4 ? t.variable(t.tensor(oihwToHwio(data, shape), [shape[2], shape[3], shape[1], shape[0]]), true, name) : t.variable(t.tensor(data, shape), true, name);
  }
  const list = Object.values(vars);
  const m = list.map((v) => t.variable(t.zerosLike(v), false));
  const v2 = list.map((v) => t.variable(t.zerosLike(v), false));
  const x = t.tensor4d(nchwToNhwc(b.xt, [n, c, s, s]), [n, s, s, c]);
  const target = t.tensor4d(nchwToNhwc(b.target, [n, c, s, s]), [n, s, s, c]);
  const times = t.tensor2d(Float32Array.from(b.t), [n, 1]);
  const freqs = t.tensor2d(frequencies(cfg), [1, cfg.baseChannels / 2]);
  const labels = t.tensor1d(b.labels, 'int32');
  const ops: Ops<TfTensor> = {
    x,
    conv: (y, pre, stride, pad) => {
      const pads = [[0, 0], [pad, pad], [pad, pad], [0, 0]] as [[number, number], [number, number], [number, number], [number, number]];
      return t.add(t.conv2d(y as Tensor4D, need(`${pre}.weight`, vars) as Tensor4D, stride, pad ? pads : 'valid'), need(`${pre}.bias`, vars));
    },
    groupNorm: (y, pre) => {
      const [bb, h, w, ch] = y.shape;
      const g = t.reshape(y, [bb, h, w, groups, ch / groups]);
      const { mean, variance } = t.moments(g, [1, 2, 4], true);
      const z = t.reshape(t.mul(t.sub(g, mean), t.rsqrt(t.add(variance, 1e-5))), y.shape);
      return t.add(t.mul(z, need(`${pre}.weight`, vars)), need(`${pre}.bias`, vars));
    },
    silu: (y) => t.mul(y, t.sigmoid(y)),
    linear: (y, pre) => t.add(t.matMul(y, need(`${pre}.weight`, vars), false, true), need(`${pre}.bias`, vars)),
    add: (a, bb) => t.add(a, bb),
    addPerChannel: (h, e) => t.add(h, t.reshape(e, [e.shape[0], 1, 1, e.shape[1]!])),
    concatChannels: (a, bb) => t.concat([a, bb], 3),
    upsample2x: (y) => t.image.resizeNearestNeighbor(y as Tensor4D, [2 * y.shape[1]!, 2 * y.shape[2]!]),
    classEmbedding: (pre) => t.gather(need(`${pre}.weight`, vars), labels),
    timeEmbedding: () => {
      const a = t.mul(times, freqs);
      return t.concat([t.sin(a), t.cos(a)], 1);
    },
  };
  let step = 0;
  const { lr, betas: [b1, b2], eps, weightDecay, maxGradNorm } = STEP_OPT;
  return {
    iter: async () => {
      step++;
      const bc1 = 1 - b1 ** step;
      const bc2 = 1 - b2 ** step;
      const loss = t.tidy(() => {
        const { value, grads } = t.variableGrads(() => t.mean(t.square(t.sub(unetForward(ops, cfg), target))) as TfTensor<never>, list);
        const gs = list.map((p) => grads[p.name]);
        // chained adds: tfjs's addN binds one buffer per operand, past the adapter's limit for ~50 tensors
        const norm = t.sqrt(gs.map((g) => t.sum(t.square(g))).reduce((a, x) => t.add(a, x)));
        const scale = t.minimum(1, t.div(maxGradNorm, t.add(norm, 1e-6)));
        list.forEach((p, k) => {
          const g = t.mul(gs[k], scale);
          const m1 = t.add(t.mul(m[k], b1), t.mul(g, 1 - b1));
          const v1 = t.add(t.mul(v2[k], b2), t.mul(t.square(g), 1 - b2));
          m[k].assign(m1);
          v2[k].assign(v1);
          const update = t.div(t.div(m1, bc1), t.add(t.sqrt(t.div(v1, bc2)), eps));
          p.assign(t.sub(p, t.mul(t.add(update, t.mul(p, weightDecay)), lr)));
        });
        return value;
      });
      const out = (await loss.data())[0];
      loss.dispose();
      return out;
    },
    dispose: () => [...list, ...m, ...v2, x, target, times, freqs, labels].forEach((a) => a.dispose()),
  };
}

// ---- jax-js (NCHW, like ours) -----------------------------------------------------------------------

type JaxParams = Record<string, JaxArray>;
type JaxBatch = { x: JaxArray; target: JaxArray; t: JaxArray; freqs: JaxArray; labels: JaxArray };

function jaxStep(jax: Jax, cfg: UNetConfig, b: TeacherBatch, state: State): CaseRun {
  const { numpy: np, lax, nn, jit, valueAndGrad } = jax;
  const n = b.labels.length;
  const { inChannels: c, imageSize: s, groups } = cfg;
  const { lr, betas: [b1, b2], eps, weightDecay, maxGradNorm } = STEP_OPT;
  // Arrays are consumed by each use; inside the traced function every use takes a new reference
  // (tracing holds no GPU memory, and the compiled step frees its own temporaries).
  const r = (a: JaxArray) => a.ref;
  const lossFn = (params: JaxParams, d: JaxBatch) => {
    const P = (name: string) => r(need(name, params));
    const ops: Ops<JaxArray> = {
      x: d.x,
      conv: (y, pre, stride, pad) => {
        const w = P(`${pre}.weight`);
        const out = lax.convGeneralDilated(r(y), w, [stride, stride], [[pad, pad], [pad, pad]]);
        return out.add(P(`${pre}.bias`).reshape([1, -1, 1, 1]));
      },
      groupNorm: (y, pre) => {
        const shape = y.shape;
        const g = r(y).reshape([shape[0], groups, -1]);
        const centered = r(g).sub(np.mean(g, 2, { keepdims: true }));
        const z = r(centered).div(np.sqrt(np.mean(np.square(centered), 2, { keepdims: true }).add(1e-5))).reshape(shape);
        return z.mul(P(`${pre}.weight`).reshape([1, -1, 1, 1])).add(P(`${pre}.bias`).reshape([1, -1, 1, 1]));
      },
      silu: (y) => nn.silu(r(y)),
      linear: (y, pre) => np.matmul(r(y), np.transpose(P(`${pre}.weight`))).add(P(`${pre}.bias`)),
      add: (a, bb) => r(a).add(r(bb)),
      addPerChannel: (h, e) => r(h).add(r(e).reshape([e.shape[0], e.shape[1], 1, 1])),
      concatChannels: (a, bb) => np.concatenate([r(a), r(bb)], 1),
      upsample2x: (y) => np.repeat(np.repeat(r(y), 2, 2), 2, 3),
      classEmbedding: (pre) => np.take(P(`${pre}.weight`), r(d.labels), 0),
      timeEmbedding: () => {
        const a = r(d.t).reshape([n, 1]).mul(r(d.freqs));
        return np.concatenate([np.sin(r(a)), np.cos(a)], 1);
      },
    };
    return np.mean(np.square(unetForward(ops, cfg).sub(r(d.target))));
  };
  const names = Object.keys(state);
  const step = jit((params: JaxParams, m: JaxParams, v: JaxParams, d: JaxBatch, bc: JaxArray[]) => {
    const [loss, grads] = valueAndGrad(lossFn)(params, d) as unknown as [JaxArray, JaxParams];
    const norm = np.sqrt(names.map((k) => np.sum(np.square(r(grads[k])))).reduce((a, x) => a.add(x)));
    const scale = np.minimum(1, np.array(maxGradNorm).div(norm.add(1e-6)));
    const out: [JaxArray, JaxParams, JaxParams, JaxParams] = [loss, {}, {}, {}];
    for (const k of names) {
      const g = grads[k].mul(r(scale));
      const m1 = m[k].mul(b1).add(r(g).mul(1 - b1));
      const v1 = v[k].mul(b2).add(np.square(g).mul(1 - b2));
      const update = r(m1).div(r(bc[0])).div(np.sqrt(r(v1).div(r(bc[1]))).add(eps));
      const p = params[k];
      out[1][k] = r(p).sub(update.add(p.mul(weightDecay)).mul(lr));
      out[2][k] = m1;
      out[3][k] = v1;
    }
    return out;
  });
  const upload = (data: Float32Array, shape: number[]) => np.array(data, { dtype: np.float32 }).reshape(shape);
  let params: JaxParams = Object.fromEntries(names.map((k) => [k, upload(state[k].data, state[k].shape)]));
  let m: JaxParams = Object.fromEntries(names.map((k) => [k, np.zeros(state[k].shape, { dtype: np.float32 })]));
  let v: JaxParams = Object.fromEntries(names.map((k) => [k, np.zeros(state[k].shape, { dtype: np.float32 })]));
  const data: JaxBatch = {
    x: upload(b.xt, [n, c, s, s]),
    target: upload(b.target, [n, c, s, s]),
    t: upload(Float32Array.from(b.t), [n]),
    freqs: upload(frequencies(cfg), [1, cfg.baseChannels / 2]),
    labels: np.array(b.labels, { dtype: np.int32 }),
  };
  const refs = (p: JaxParams) => Object.fromEntries(Object.entries(p).map(([k, a]) => [k, a.ref]));
  let count = 0;
  return {
    iter: async () => {
      count++;
      const bc = [np.array(Math.fround(1 - b1 ** count)), np.array(Math.fround(1 - b2 ** count))];
      const [loss, p1, m1, v1] = step(params, m, v, refs(data as unknown as JaxParams) as unknown as JaxBatch, bc);
      params = p1;
      m = m1;
      v = v1;
      return (await loss.data())[0];
    },
    dispose: () => {
      for (const a of [...Object.values(params), ...Object.values(m), ...Object.values(v), ...Object.values(data)]) a.dispose();
      step.dispose();
    },
  };
}

/**
 * One training step of the UNet `cfg` at `batch`, on all three engines; `iter` returns the step's
 * loss (before the update), which `check` compares across engines. Counted as 3x the forward FLOPs.
 */
export function unetStepCase(name: string, cfg: UNetConfig, batch: number, presetName: string): BenchCase {
  const b = stepBatch(cfg, batch);
  let state: Promise<State> | null = null;
  const weights = () => (state ??= initialState(cfg));
  return {
    case: name,
    shape: `unet ${presetName} batch ${batch}`,
    flops: 3 * unetFlops(cfg, batch),
    images: batch,
    chain: 1,
    check: { what: 'loss', rtol: 1e-4 },
    note: 'loss, backward, AdamW with clipping (no EMA); peers: the same network in their own ops and autodiff, from the same weights',
    impl: {
      ours: async () => oursStep(cfg, b, await weights()),
      tfjs: async (env) => {
        if (!env.tf) throw new Error('tfjs is not loaded');
        return tfjsStep(env.tf, cfg, b, await weights());
      },
      'jax-js': async (env) => {
        if (!env.jax) throw new Error('jax-js is not loaded');
        return jaxStep(env.jax, cfg, b, await weights());
      },
    },
  };
}
