// Multi-tensor AdamW, EMA and gradient norm (one dispatch per group of parameter tensors, state in
// flat arenas) against float64 references, over more tensors of odd sizes than one dispatch binds;
// the state dicts keep one entry per parameter, and a state loaded into a new optimizer continues
// bit-identically.
import { expect, it } from 'vitest';
import { AdamW, EMA, Module, gradNorm, parameter, tensor } from '../src/engine/index';
import { forEachBackend } from './helpers/gpu';
import { assertClose, makeRng } from './reference';

const SIZES = [1, 3, 257, 5, 1000, 2, 31, 64, 7, 513, 1, 19, 4096, 3, 11, 129, 2]; // 17 tensors

class Bag extends Module {
  ps: ReturnType<typeof parameter>[];
  constructor(init: Float32Array[]) {
    super();
    this.ps = init.map((d) => parameter(tensor(d, [d.length])));
  }
}

forEachBackend('multi-tensor optimizers', (getGpu) => {
  it('AdamW with clipping, EMA and gradNorm match float64 over 17 tensors in few dispatches', async () => {
    const rng = makeRng(7);
    const p0 = SIZES.map((n) => Float32Array.from({ length: n }, () => rng() * 2 - 1));
    const model = new Bag(p0);
    const params = model.parameters();
    const opts = { lr: 1e-2, betas: [0.9, 0.99] as [number, number], eps: 1e-8, weightDecay: 0.05, maxGradNorm: 3 };
    const opt = new AdamW(params, opts);
    const ema = new EMA(model, { decay: 0.9, warmup: 4 });
    // float64 reference
    const p = p0.map((a) => Float64Array.from(a));
    const m = SIZES.map((n) => new Float64Array(n));
    const v = SIZES.map((n) => new Float64Array(n));
    const e = p0.map((a) => Float64Array.from(a));
    const gpu = getGpu();
    let dispatches = 0;
    for (let t = 1; t <= 3; t++) {
      const g = SIZES.map((n) => Float32Array.from({ length: n }, () => (rng() * 2 - 1) * t));
      params.forEach((q, j) => (q.grad = tensor(g[j], [SIZES[j]])));
      const norm = Math.sqrt(g.reduce((a, gj) => a + gj.reduce((b, x) => b + x * x, 0), 0));
      expect(await gradNorm(params).item()).toBeCloseTo(norm, 3);
      const scale = Math.min(1, opts.maxGradNorm / (norm + 1e-6));
      const before = gpu.counters.dispatches;
      opt.step();
      opt.zeroGrad();
      ema.update();
      dispatches = gpu.counters.dispatches - before;
      const d = Math.min(0.9, t / (4 + t - 1));
      SIZES.forEach((n, j) => {
        for (let i = 0; i < n; i++) {
          const gi = g[j][i] * scale;
          m[j][i] = 0.9 * m[j][i] + 0.1 * gi;
          v[j][i] = 0.99 * v[j][i] + 0.01 * gi * gi;
          const upd = m[j][i] / (1 - 0.9 ** t) / (Math.sqrt(v[j][i] / (1 - 0.99 ** t)) + opts.eps);
          p[j][i] -= opts.lr * (upd + opts.weightDecay * p[j][i]);
          e[j][i] = d * e[j][i] + (1 - d) * p[j][i];
        }
      });
      expect(await opt.lastGradNorm!.item()).toBeCloseTo(norm, 3);
    }
    for (let j = 0; j < SIZES.length; j++) {
      assertClose(await params[j].toArray(), Array.from(p[j]), { rtol: 1e-4, atol: 1e-5 }, `AdamW parameter ${j}`);
    }
    const shadow = await ema.stateDict();
    SIZES.forEach((n, j) => {
      expect(shadow[`ps.${j}`].shape).toEqual([n]);
      assertClose(shadow[`ps.${j}`].data, Array.from(e[j]), { rtol: 1e-4, atol: 1e-5 }, `EMA ${j}`);
    });
    // 17 tensors, one step: gradient norm (3 groups + reduction + clip), AdamW (3 groups), EMA (3)
    // with 16 bindings per stage; per-tensor kernels took 17 each for AdamW and EMA alone
    expect(dispatches).toBeLessThanOrEqual(20);

    // state dicts: one entry per parameter; a new optimizer loaded from them continues bit-identically
    const state = await opt.stateDict();
    expect(state.m.map((a) => a.length)).toEqual(SIZES);
    const twin = new Bag(await Promise.all(params.map((q) => q.toFloat32Array())));
    const opt2 = new AdamW(twin.parameters(), opts);
    opt2.loadStateDict(state);
    const ema2 = new EMA(twin, { decay: 0.9, warmup: 4 });
    ema2.loadStateDict(shadow);
    ema2.updates = ema.updates;
    const g = SIZES.map((n) => Float32Array.from({ length: n }, () => rng() * 2 - 1));
    for (const [o, ps] of [[opt, params], [opt2, twin.parameters()]] as const) {
      ps.forEach((q, j) => (q.grad = tensor(g[j], [SIZES[j]])));
      o.step();
      o.zeroGrad();
    }
    ema.update();
    ema2.update();
    const tw = twin.parameters();
    for (let j = 0; j < SIZES.length; j++) expect(await tw[j].toArray()).toEqual(await params[j].toArray());
    expect(await ema2.stateDict()).toEqual(await ema.stateDict());
    for (const o of [opt, opt2]) o.dispose();
    for (const x of [ema, ema2]) x.dispose();
    for (const mdl of [model, twin]) mdl.dispose();
  });
});
