// AdamW, EMA and gradient norm over a parameter arena (parameters and gradients packed into one
// buffer each, one dispatch per pass) and over unpacked parameters (one dispatch per group of
// tensors) against float64 references, over more tensors of odd sizes than one dispatch binds;
// gradients from backward land in the gradient arena equal to those of unpacked twins, zeroGrad
// makes the next backward overwrite them, the state dicts keep one entry per parameter, and a
// state loaded into a new optimizer continues bit-identically; bias gradients of packed parameters
// are summed into the arena together, a few dispatches for all of them.
import { expect, it } from 'vitest';
import { AdamW, EMA, Module, ParameterArena, type Tensor, conv2d, gradNorm, parameter, scope, tensor } from '../src/engine/index';
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

/** One float64 step of AdamW (betas 0.9, 0.99) on clipped gradients `g * scale`, then the EMA with
 *  decay `d`, in place on parameters p, moments m and v, and shadow e. */
function referenceStep(s: { p: Float64Array[]; m: Float64Array[]; v: Float64Array[]; e: Float64Array[] }, g: ArrayLike<number>[], scale: number, t: number, opts: { lr: number; eps: number; weightDecay: number }, d: number) {
  const { p, m, v, e } = s;
  p.forEach((pj, j) => {
    for (let i = 0; i < pj.length; i++) {
      const gi = g[j][i] * scale;
      m[j][i] = 0.9 * m[j][i] + 0.1 * gi;
      v[j][i] = 0.99 * v[j][i] + 0.01 * gi * gi;
      const upd = m[j][i] / (1 - 0.9 ** t) / (Math.sqrt(v[j][i] / (1 - 0.99 ** t)) + opts.eps);
      pj[i] -= opts.lr * (upd + opts.weightDecay * pj[i]);
      e[j][i] = d * e[j][i] + (1 - d) * pj[i];
    }
  });
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
      referenceStep({ p, m, v, e }, g, scale, t, opts, d);
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

  it('packed parameters: backward writes the gradient arena, AdamW, clipping and EMA are one pass each, zeroGrad overwrites', async () => {
    const gpu = getGpu();
    const rng = makeRng(11);
    // 18 tensors (more than one gather dispatch binds) of three sizes none of which fills its
    // aligned slot; few distinct shapes keep the kernels compiled few
    const sizes = Array.from({ length: 18 }, (_, j) => [1, 257, 31][j % 3]);
    const p0 = sizes.map((n) => Float32Array.from({ length: n }, () => rng() * 2 - 1));
    // even tensors: sum(w * p^2) (a lazy gradient, launched into the slot); odd: p . u through a
    // matmul (a gradient in a buffer of its own, gathered in); tensor 0 is used by two terms
    const w = sizes.map((n) => Float32Array.from({ length: n }, () => rng()));
    const u = sizes.map((n) => Float32Array.from({ length: n }, () => rng() * 2 - 1));
    const model = new Bag(p0);
    const twin = new Bag(p0);
    const params = model.parameters();
    const opts = { lr: 1e-2, betas: [0.9, 0.99] as [number, number], eps: 1e-8, weightDecay: 0.05, maxGradNorm: 2 };
    const opt = new AdamW(params, opts);
    const ema = new EMA(model, { decay: 0.8, warmup: 0 });
    const arena = ParameterArena.of(params)!;
    expect(arena).not.toBeNull();
    const backward = (ps: Tensor[]) =>
      scope(() => {
        const terms = ps.map((q, j) =>
          j % 2 === 0 ? q.square().mul(tensor(w[j], [sizes[j]])).sum() : q.reshape([1, sizes[j]]).matmul(tensor(u[j], [sizes[j], 1])).sum(),
        );
        terms.reduce((a, b) => a.add(b)).add(ps[0].mul(ps[0]).sum()).backward();
      });
    // float64 gradients at parameters p
    const reference = (p: Float64Array[]) => p.map((pj, j) => Array.from(pj, (x, i) => (j % 2 === 0 ? 2 * w[j][i] * x : u[j][i]) + (j === 0 ? 2 * x : 0)));
    const p = p0.map((a) => Float64Array.from(a));
    const m = sizes.map((n) => new Float64Array(n));
    const v = sizes.map((n) => new Float64Array(n));
    const e = p0.map((a) => Float64Array.from(a));
    for (let t = 1; t <= 2; t++) {
      backward(params);
      if (t === 1) backward(twin.parameters());
      const g = reference(p);
      const flat = await arena.grads.toFloat32Array();
      for (let j = 0; j < sizes.length; j++) {
        const got = await params[j].grad!.toFloat32Array();
        assertClose(got, g[j], { rtol: 1e-5, atol: 1e-6 }, `gradient ${j} at step ${t}`);
        // the twin is never stepped: its gradients are those of the first step's parameters
        if (t === 1) expect(got).toEqual(await twin.parameters()[j].grad!.toFloat32Array());
        expect(flat.slice(arena.offsets[j], arena.offsets[j] + sizes[j])).toEqual(got);
      }
      // the padding between slots stays zero
      const inSlots = new Set(sizes.flatMap((n, j) => Array.from({ length: n }, (_, i) => arena.offsets[j] + i)));
      expect(Array.from(flat).filter((x, i) => !inSlots.has(i) && x !== 0)).toEqual([]);
      const norm = Math.sqrt(g.reduce((a, gj) => a + gj.reduce((b, x) => b + x * x, 0), 0));
      const scale = Math.min(1, opts.maxGradNorm / (norm + 1e-6));
      let before = gpu.counters.dispatches;
      opt.step();
      // norm (square, the sum's passes, sqrt), clip factor, one AdamW pass over the arena
      expect(gpu.counters.dispatches - before).toBeLessThanOrEqual(6);
      before = gpu.counters.dispatches;
      ema.update();
      expect(gpu.counters.dispatches - before).toBe(1);
      expect(await opt.lastGradNorm!.item()).toBeCloseTo(norm, 3);
      opt.zeroGrad();
      expect(params.every((q) => q.grad === null)).toBe(true);
      referenceStep({ p, m, v, e }, g, scale, t, opts, 0.8);
      for (let j = 0; j < sizes.length; j++) {
        assertClose(await params[j].toArray(), Array.from(p[j]), { rtol: 1e-4, atol: 1e-5 }, `AdamW parameter ${j} at step ${t}`);
      }
    }
    const shadow = await ema.stateDict();
    sizes.forEach((_, j) => assertClose(shadow[`ps.${j}`].data, Array.from(e[j]), { rtol: 1e-4, atol: 1e-5 }, `EMA ${j}`));
    // backward twice without zeroGrad accumulates in the slots
    backward(params);
    backward(params);
    const g = reference(p);
    for (let j = 0; j < sizes.length; j++) assertClose(await params[j].grad!.toArray(), g[j].map((x) => 2 * x), { rtol: 1e-5, atol: 1e-6 }, `accumulated gradient ${j}`);
    // a parameter without a gradient is left alone (the per-group path), the others still update
    const kept = await params[3].toFloat32Array();
    params[3].grad!.dispose();
    params[3].grad = null;
    const moved = await params[4].toFloat32Array();
    opt.step();
    expect(await params[3].toFloat32Array()).toEqual(kept);
    expect(await params[4].toFloat32Array()).not.toEqual(moved);
    // a gradient or a parameter disposed on its own is a range: the arena stays, the others read on;
    // both arenas go back to the pool (no reference left) once everything is disposed
    const roots = [arena.values.storageForRead, arena.grads.storageForRead];
    const [value6, grad7] = [await params[6].toFloat32Array(), await params[7].grad!.toFloat32Array()];
    params[5].grad!.dispose();
    params[5].grad = null;
    params[8].dispose();
    expect(roots.every((r) => r.refs > 0)).toBe(true);
    expect(await params[6].toFloat32Array()).toEqual(value6);
    expect(await params[7].grad!.toFloat32Array()).toEqual(grad7);
    opt.zeroGrad();
    for (const x of [opt, ema, model, twin]) x.dispose();
    expect(roots.map((r) => r.refs)).toEqual([0, 0]);
  });

  it('bias gradients of packed parameters are summed into the arena together, equal to float64 sums', async () => {
    const gpu = getGpu();
    const rng = makeRng(5);
    const rand = (n: number) => Float32Array.from({ length: n }, () => rng() * 2 - 1);
    // each parameter is broadcast into a term sum(seed * (x + p)) (sum(seed * conv2d(x, w, p)) for
    // the convolution's bias), so its gradient is the seed summed over the broadcast axes
    const cases: { shape: number[]; into: number[]; how: string }[] = [
      { shape: [6], into: [5, 6], how: 'linear bias: [a, c]' },
      { shape: [3, 1, 1], into: [4, 3, 7, 8], how: 'per channel: [a, c, r]' },
      { shape: [3], into: [2, 3, 5, 8], how: 'conv2d bias' },
      { shape: [1], into: [4, 5], how: 'everything summed' },
      { shape: [1, 6], into: [3, 6], how: 'leading size-1 axis' },
      { shape: [2, 1, 4], into: [3, 2, 5, 4], how: 'kept axes around a summed one: reduced at once' },
      { shape: [6], into: [5, 6], how: 'used twice: the pending sum and a second gradient add up' },
    ];
    const size = (sh: number[]) => sh.reduce((a, d) => a * d, 1);
    const init = cases.map((c) => rand(size(c.shape)));
    const seeds = cases.map((c) => rand(size(c.into)));
    const xs = cases.map((c) => rand(size(c.into)));
    const twiceX = rand(2 * 6);
    const twiceSeed = rand(2 * 6);
    const convX = rand(2 * 2 * 5 * 8);
    const convW = rand(3 * 2 * 9);
    const ps = cases.map((c, j) => parameter(tensor(init[j], c.shape)));
    const arena = ParameterArena.pack(ps)!;
    expect(arena).not.toBeNull();
    const backward = () =>
      scope(() => {
        const terms = cases.map((c, j) => {
          const x = tensor(xs[j], c.into);
          const y = c.how === 'conv2d bias' ? conv2d(tensor(convX, [2, 2, 5, 8]), tensor(convW, [3, 2, 3, 3]), ps[j], { padding: 1 }) : x.add(ps[j]);
          return y.mul(tensor(seeds[j], c.into)).sum();
        });
        terms.push(tensor(twiceX, [2, 6]).add(ps[6]).mul(tensor(twiceSeed, [2, 6])).sum());
        terms.reduce((a, b) => a.add(b)).backward();
      });
    // float64: the seed summed over every axis the parameter is broadcast along
    const reference = cases.map((c, j) => {
      const out = new Float64Array(size(c.shape));
      // the shape the parameter is broadcast from (a convolution's bias runs along the channels)
      const pad = c.how === 'conv2d bias' ? [1, 3, 1, 1] : [...Array(c.into.length - c.shape.length).fill(1), ...c.shape];
      for (let e = 0; e < seeds[j].length; e++) {
        let rem = e;
        let o = 0;
        let stride = 1;
        for (let d = c.into.length - 1; d >= 0; d--) {
          const i = rem % c.into[d];
          rem = Math.floor(rem / c.into[d]);
          if (pad[d] !== 1) o += i * stride;
          stride *= pad[d];
        }
        out[o] += seeds[j][e];
      }
      return out;
    });
    for (let e = 0; e < 12; e++) reference[6][e % 6] += twiceSeed[e];
    gpu.startProfiling();
    backward();
    const profile = await gpu.readProfile();
    gpu.stopProfiling();
    for (let j = 0; j < cases.length; j++) {
      expect(ps[j].grad!.isBackedBy(ps[j].gradSlot!)).toBe(true);
      assertClose(await ps[j].grad!.toArray(), Array.from(reference[j]), { rtol: 1e-5, atol: 1e-5 }, cases[j].how);
    }
    // the five pending sums in one dispatch; the others reduced on their own
    const dispatches = (re: RegExp) => profile.filter((k) => re.test(k.name)).reduce((a, k) => a + k.dispatches, 0);
    expect(dispatches(/^sum\.multi/)).toBe(1);
    // a second backward without zeroGrad adds to the slots (no pending sums then)
    backward();
    for (let j = 0; j < cases.length; j++) assertClose(await ps[j].grad!.toArray(), Array.from(reference[j], (v) => 2 * v), { rtol: 1e-5, atol: 1e-5 }, `accumulated: ${cases[j].how}`);
    for (const q of ps) q.dispose();
    arena.dispose();
  });
});
