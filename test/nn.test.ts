// nn and optim against independent references: a float64 AdamW step, a float64 EMA, an MLP that
// must fit a known function, flat GPU memory over 1,000 training steps, PyTorch-style state dicts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { availableBackends, dawnGpu } from '../src/engine/runtime/dawn';
import {
  AdamW, EMA, Gpu, Linear, Module, Sequential, Tensor, gradNorm, manualSeed, randn, scope, setDefaultGpu, tensor,
} from '../src/engine/index';
import { assertClose, makeRng } from './reference';

const backends = await availableBackends();

class Mlp extends Module {
  net: Sequential;
  constructor(widths: number[]) {
    super();
    const layers: (Linear | ((x: Tensor) => Tensor))[] = [];
    widths.slice(1).forEach((w, i) => {
      layers.push(new Linear(widths[i], w));
      if (i < widths.length - 2) layers.push((x) => x.tanh());
    });
    this.net = new Sequential(...layers);
  }
  forward(x: Tensor): Tensor {
    return this.net.forward(x);
  }
}

describe.each(backends)('nn and optim on %s', (backend) => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await dawnGpu({ backend });
    setDefaultGpu(gpu);
    manualSeed(1234);
  });
  afterAll(() => gpu.destroy());

  it('AdamW matches a float64 reference over 3 steps, with weight decay and clipping', async () => {
    const rng = makeRng(7);
    const n = 37;
    const p0 = Array.from({ length: n }, () => rng() * 2 - 1);
    const grads = [0, 1, 2].map(() => Array.from({ length: n }, () => (rng() * 2 - 1) * 3));
    const opts = { lr: 0.01, betas: [0.9, 0.99] as [number, number], eps: 1e-8, weightDecay: 0.1, maxGradNorm: 1.0 };

    // float64 reference (PyTorch AdamW semantics, clip_grad_norm_ with eps 1e-6)
    const p = [...p0];
    const m = new Array(n).fill(0);
    const v = new Array(n).fill(0);
    for (let t = 1; t <= 3; t++) {
      const g = grads[t - 1];
      const norm = Math.sqrt(g.reduce((a, x) => a + x * x, 0));
      const c = Math.min(1, opts.maxGradNorm / (norm + 1e-6));
      for (let i = 0; i < n; i++) {
        const gi = g[i] * c;
        m[i] = opts.betas[0] * m[i] + (1 - opts.betas[0]) * gi;
        v[i] = opts.betas[1] * v[i] + (1 - opts.betas[1]) * gi * gi;
        const mh = m[i] / (1 - opts.betas[0] ** t);
        const vh = v[i] / (1 - opts.betas[1] ** t);
        p[i] -= opts.lr * (mh / (Math.sqrt(vh) + opts.eps) + opts.weightDecay * p[i]);
      }
    }

    const param = tensor(p0, [n]).requireGrad();
    const opt = new AdamW([param], opts);
    for (const g of grads) {
      param.grad = tensor(g, [n]);
      opt.step();
      opt.zeroGrad();
    }
    assertClose(await param.toArray(), p, { rtol: 1e-5, atol: 1e-6 }, 'AdamW parameters');
    const lastNorm = Math.sqrt(grads[2].reduce((a, x) => a + x * x, 0));
    expect(await opt.lastGradNorm!.item()).toBeCloseTo(lastNorm, 4);
  });

  it('gradNorm is the global L2 norm over all gradients', async () => {
    const a = tensor([3, 0], [2]).requireGrad();
    const b = tensor([0, 4, 12], [3]).requireGrad();
    a.grad = tensor([3, 0], [2]);
    b.grad = tensor([0, 4, 12], [3]);
    expect(await gradNorm([a, b]).item()).toBeCloseTo(13, 5);
  });

  it('EMA follows a float64 reference with warmup', async () => {
    const model = new Linear(3, 2);
    const ema = new EMA(model, { decay: 0.9, warmup: 5 });
    const w0 = Array.from(await model.weight.toArray());
    let ref = [...w0];
    for (let k = 0; k < 4; k++) {
      const wk = w0.map((x, i) => x + (k + 1) * 0.1 * (i + 1));
      model.loadStateDict({ weight: { shape: [2, 3], data: Float32Array.from(wk) }, bias: { shape: [2], data: await model.bias!.toFloat32Array() } });
      const d = Math.min(0.9, (1 + k) / (5 + k));
      ref = ref.map((e, i) => d * e + (1 - d) * wk[i]);
      ema.update();
    }
    assertClose(await ema.shadow[0].toArray(), ref, { rtol: 1e-5, atol: 1e-6 }, 'EMA weights');
  });

  it('an MLP fits sin(3x) on [-1, 1] to MSE below 2e-3', async () => {
    const model = new Mlp([1, 32, 32, 1]);
    const opt = new AdamW(model.parameters(), { lr: 1e-2 });
    const xs = Array.from({ length: 128 }, (_, i) => -1 + (2 * i) / 127);
    const x = tensor(xs, [128, 1]);
    const y = tensor(xs.map((v) => Math.sin(3 * v)), [128, 1]);
    let loss = Infinity;
    for (let step = 0; step < 400; step++) {
      const l = await scope(async () => {
        const out = model.forward(x).sub(y).square().mean();
        out.backward();
        opt.step();
        opt.zeroGrad();
        return step % 50 === 49 ? out.item() : null;
      });
      if (l !== null) loss = l;
    }
    expect(loss).toBeLessThan(2e-3);
  });

  it('GPU memory stays flat over 1,000 training steps', async () => {
    const model = new Mlp([8, 16, 1]);
    const opt = new AdamW(model.parameters(), { lr: 1e-3, maxGradNorm: 1 });
    const ema = new EMA(model);
    const step = () =>
      scope(() => {
        const x = randn([16, 8]);
        const loss = model.forward(x).square().mean();
        loss.backward();
        opt.step();
        opt.zeroGrad();
        ema.update();
      });
    for (let i = 0; i < 10; i++) step();
    await gpu.sync();
    const live = gpu.memory.liveBytes;
    const created = gpu.memory.buffersCreated;
    for (let i = 0; i < 1000; i++) {
      step();
      if (i % 100 === 0) await gpu.sync();
    }
    await gpu.sync();
    // (unreferenced tensors may be returned by the garbage collector at any time, so live bytes
    // can only fall; a leak would make them grow, and new buffers would be created)
    expect(gpu.memory.liveBytes).toBeLessThanOrEqual(live);
    expect(gpu.memory.buffersCreated).toBe(created);
  });

  it('state dicts use dotted PyTorch names and round-trip exactly', async () => {
    const a = new Mlp([2, 3, 1]);
    const b = new Mlp([2, 3, 1]);
    expect(a.namedParameters().map(([n]) => n)).toEqual(['net.layers.0.weight', 'net.layers.0.bias', 'net.layers.2.weight', 'net.layers.2.bias']);
    const state = await a.stateDict();
    b.loadStateDict(state);
    for (const [name, p] of b.namedParameters()) expect(Array.from(await p.toArray())).toEqual(Array.from(state[name].data));
    const wrong = new Mlp([2, 4, 1]);
    expect(() => wrong.loadStateDict(state)).toThrow(/net.layers.0.weight has shape \[3, 2\] in the checkpoint but \[4, 2\]/);
  });

  it('a refused state dict changes nothing (no partial load) for modules, EMA and AdamW', async () => {
    // same names, the first layer matches, the last one does not: [2, 3] in the checkpoint, [1, 3] here
    const other = await new Mlp([2, 3, 2]).stateDict();
    const model = new Mlp([2, 3, 1]);
    const before = await model.stateDict();
    expect(() => model.loadStateDict(other)).toThrow(/net.layers.2.weight has shape \[2, 3\] in the checkpoint but \[1, 3\]/);
    const after = await model.stateDict();
    for (const name of Object.keys(before)) expect(Array.from(after[name].data), name).toEqual(Array.from(before[name].data));

    const ema = new EMA(model);
    const emaBefore = await ema.stateDict();
    // the right sizes everywhere but a transposed last weight: refused, and nothing loaded
    const transposed: Record<string, { shape: number[]; data: Float32Array }> = { ...other, 'net.layers.2.weight': { shape: [3, 1], data: new Float32Array(3).fill(7) } };
    for (const k of ['net.layers.0.weight', 'net.layers.0.bias']) transposed[k] = { shape: other[k].shape, data: other[k].data.map(() => 5) };
    transposed['net.layers.2.bias'] = { shape: [1], data: new Float32Array([9]) };
    expect(() => ema.loadStateDict(transposed)).toThrow(/EMA.loadStateDict: net.layers.2.weight is \[3, 1\]/);
    const emaAfter = await ema.stateDict();
    for (const name of Object.keys(emaBefore)) expect(Array.from(emaAfter[name].data), name).toEqual(Array.from(emaBefore[name].data));

    const opt = new AdamW(model.parameters(), { lr: 0.1 });
    const optBefore = await opt.stateDict();
    const sizes = model.parameters().map((p) => p.size);
    const bad = sizes.map((n, k) => new Float32Array(k === sizes.length - 1 ? n + 1 : n).fill(3));
    expect(() => opt.loadStateDict({ step: 5, m: bad, v: bad })).toThrow(/AdamW.loadStateDict: parameter 3/);
    const optAfter = await opt.stateDict();
    expect(optAfter.step).toBe(optBefore.step);
    optBefore.m.forEach((m, k) => expect(Array.from(optAfter.m[k])).toEqual(Array.from(m)));
  });
});
