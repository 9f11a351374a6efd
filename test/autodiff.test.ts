// Reverse mode and memory management: gradient accumulation through reused tensors, noGrad, detach,
// seeds, .grad accumulation across backward calls, scopes (nesting, returned values, keep, await),
// and the errors users see. Runs on every WebGPU backend present.
import { expect, it } from 'vitest';
import { type Gpu, type Tensor, concat, isGradEnabled, keep, noGrad, scope, tensor, zeros } from '../src/engine/index';
import * as R from './reference';
import { NDArray, assertClose, finiteDiff, makeRng } from './reference';
import { forEachBackend, randF32, readF64, upload } from './helpers/gpu';

const GRAD = { rtol: 1e-3, atol: 1e-4 };
const TIGHT = { rtol: 1e-6, atol: 1e-7 };

/** Read `t.grad`, failing clearly when it is missing. */
async function gradOf(t: Tensor, what: string): Promise<Float64Array> {
  if (!t.grad) throw new Error(`${what}: no gradient`);
  return readF64(t.grad);
}

/** Dispose the gradients of `ts` (they live outside every scope). */
function dropGrads(...ts: Tensor[]): void {
  for (const t of ts) {
    t.grad?.dispose();
    t.grad = null;
  }
}

forEachBackend('autodiff', (getGpu) => {
  /** Run `fn` in a scope and check that every byte it allocated is free afterwards. */
  async function leakFree(fn: (gpu: Gpu) => Promise<void> | void): Promise<void> {
    const gpu = getGpu();
    const before = gpu.memory.liveBytes;
    await scope(() => fn(gpu));
    expect(gpu.memory.liveBytes, 'bytes still live after the test').toBe(before);
  }

  // ---- accumulation through reused tensors ----

  it('x * x: both uses contribute (gradient 2x * seed)', () =>
    leakFree(async () => {
      const rng = makeRng(1);
      const xs = randF32([5, 7], rng);
      const seed = randF32([5, 7], rng);
      const x = upload(xs, { requiresGrad: true });
      x.mul(x).backward(upload(seed));
      assertClose(await gradOf(x, 'x'), R.mul(R.mul(xs, NDArray.scalar(2)), seed).data, TIGHT, 'd(x*x)/dx');
      dropGrads(x);
    }));

  it('x + x: gradient 2 * seed; x - x: gradient 0', () =>
    leakFree(async () => {
      const rng = makeRng(2);
      const seed = randF32([4, 3], rng);
      const x = upload(randF32([4, 3], rng), { requiresGrad: true });
      x.add(x).backward(upload(seed));
      assertClose(await gradOf(x, 'x'), R.mul(seed, NDArray.scalar(2)).data, TIGHT, 'd(x+x)/dx');
      dropGrads(x);
      x.sub(x).backward(upload(seed));
      assertClose(await gradOf(x, 'x'), new Float64Array(12), TIGHT, 'd(x-x)/dx');
      dropGrads(x);
    }));

  it('a branch reused by several consumers (diamond graph) matches finite differences', () =>
    leakFree(async () => {
      const rng = makeRng(3);
      const xs = randF32([3, 4], rng);
      const ws = randF32([4, 4], rng);
      const ref = ([x, w]: NDArray[]) => {
        const a = R.sin(R.matmul(x, w));
        const b = R.mul(a, R.exp(a));
        return R.sum(R.add(R.add(b, a), R.mul(a, R.sum(a, 1, true))));
      };
      const x = upload(xs, { requiresGrad: true });
      const w = upload(ws, { requiresGrad: true });
      const a = x.matmul(w).sin();
      const out = a.mul(a.exp()).add(a).add(a.mul(a.sum(1, true))).sum();
      assertClose(await readF64(out), ref([xs, ws]).data, { rtol: 1e-5, atol: 1e-5 }, 'forward');
      out.backward();
      const [gx, gw] = finiteDiff(ref, [xs, ws], NDArray.scalar(1));
      assertClose(await gradOf(x, 'x'), gx.data, GRAD, 'dx');
      assertClose(await gradOf(w, 'w'), gw.data, GRAD, 'dw');
      dropGrads(x, w);
    }));

  it('the same leaf under two broadcasts (outer product x xT)', () =>
    leakFree(async () => {
      const rng = makeRng(4);
      const xs = randF32([5], rng);
      const seed = randF32([5, 5], rng);
      const x = upload(xs, { requiresGrad: true });
      x.reshape([5, 1]).mul(x.reshape([1, 5])).backward(upload(seed));
      const [g] = finiteDiff(([v]) => R.mul(R.reshape(v, [5, 1]), R.reshape(v, [1, 5])), [xs], seed);
      assertClose(await gradOf(x, 'x'), g.data, GRAD, 'd(x xT)/dx');
      dropGrads(x);
    }));

  it('leaves that receive the same gradient tensor get independent .grad tensors', () =>
    leakFree(async () => {
      const a = tensor([1, 2, 3], [3], { requiresGrad: true });
      const b = tensor([4, 5, 6], [3], { requiresGrad: true });
      const seed = tensor([0.5, -1, 2], [3]);
      a.add(b).backward(seed);
      expect(a.grad).not.toBe(b.grad);
      expect(a.grad).not.toBe(seed);
      seed.dispose();
      a.grad!.dispose();
      expect(Array.from(await gradOf(b, 'b'))).toEqual([0.5, -1, 2]);
      a.grad = null;
      dropGrads(b);
    }));

  it('only leaves that require gradients get .grad; intermediates do not', () =>
    leakFree(async () => {
      const x = tensor([1, 2, 3], [3], { requiresGrad: true });
      const c = tensor([4, 5, 6], [3]);
      const h = x.mul(c);
      expect(h.requiresGrad).toBe(true);
      expect(c.requiresGrad).toBe(false);
      h.sum().backward();
      expect(Array.from(await gradOf(x, 'x'))).toEqual([4, 5, 6]);
      expect(c.grad).toBeNull();
      expect(h.grad).toBeNull();
      dropGrads(x);
    }));

  it('where with a condition computed from the input routes the gradient', () =>
    leakFree(async () => {
      const x = tensor([-2, -0.5, 0.5, 3], [4], { requiresGrad: true });
      // |x| written with where: gradient sign(x)
      x.gt(0).where(x, x.neg()).sum().backward();
      expect(Array.from(await gradOf(x, 'x'))).toEqual([-1, -1, 1, 1]);
      dropGrads(x);
    }));

  // ---- seeds and .grad accumulation ----

  it('a seed gradient for a non-scalar output', () =>
    leakFree(async () => {
      const rng = makeRng(5);
      const xs = randF32([2, 3], rng, -1, 1);
      const seed = randF32([2, 3], rng);
      const x = upload(xs, { requiresGrad: true });
      x.mul(3).exp().backward(upload(seed));
      const expected = R.mul(seed, R.mul(NDArray.scalar(3), R.exp(R.mul(xs, NDArray.scalar(3)))));
      assertClose(await gradOf(x, 'x'), expected.data, { rtol: 1e-5, atol: 1e-6 }, 'd exp(3x) / dx');
      dropGrads(x);
    }));

  it('backward() on a non-scalar without a seed, or with a wrong seed shape, throws', () =>
    leakFree(() => {
      const x = tensor([1, 2, 3, 4, 5, 6], [2, 3], { requiresGrad: true });
      const y = x.mul(2);
      expect(() => y.backward()).toThrow(/backward\(\): output has shape \[2, 3\]; pass a seed gradient/);
      expect(() => y.backward(zeros([3, 2]))).toThrow(/backward\(\): seed shape \[3, 2\] does not match output shape \[2, 3\]/);
      expect(x.grad).toBeNull();
    }));

  it('backward() on a tensor that does not require gradients throws instead of giving it a .grad', () =>
    leakFree(() => {
      const x = tensor([1, 2, 3], [3]);
      const loss = x.mul(2).sum();
      expect(() => loss.backward()).toThrow(/backward\(\): this tensor of shape \[\] does not require gradients/);
      expect(loss.grad).toBeNull();
      const w = tensor([1, 2, 3], [3], { requiresGrad: true });
      const frozen = noGrad(() => w.mul(x).sum());
      expect(() => frozen.backward()).toThrow(/does not require gradients/);
      expect(w.grad).toBeNull();
    }));

  it('.grad accumulates across backward calls until reset', () =>
    leakFree(async () => {
      const rng = makeRng(6);
      const xs = randF32([7], rng);
      const x = upload(xs, { requiresGrad: true });
      const loss = x.square().sum();
      loss.backward();
      const once = await gradOf(x, 'x');
      assertClose(once, R.mul(xs, NDArray.scalar(2)).data, TIGHT, 'first backward');
      loss.backward(); // the same graph again
      x.mul(x.detach()).sum().backward(); // and a fresh graph adding x
      const thrice = await gradOf(x, 'x');
      assertClose(thrice, R.mul(xs, NDArray.scalar(5)).data, TIGHT, 'accumulated 2x + 2x + x');
      dropGrads(x);
      loss.backward();
      assertClose(await gradOf(x, 'x'), once, TIGHT, 'after reset');
      dropGrads(x);
    }));

  // ---- noGrad and detach ----

  it('noGrad (sync) records no graph and restores the mode, also after a throw', () =>
    leakFree(() => {
      const x = tensor([1, 2], [2], { requiresGrad: true });
      expect(isGradEnabled()).toBe(true);
      const y = noGrad(() => {
        expect(isGradEnabled()).toBe(false);
        return x.mul(2).exp();
      });
      expect(isGradEnabled()).toBe(true);
      expect(y.requiresGrad).toBe(false);
      expect(y.node).toBeNull();
      expect(() =>
        noGrad(() => {
          throw new Error('boom');
        }),
      ).toThrow('boom');
      expect(isGradEnabled()).toBe(true);
      // nested: the inner exit does not re-enable recording
      noGrad(() => {
        noGrad(() => undefined);
        expect(isGradEnabled()).toBe(false);
        expect(x.add(1).node).toBeNull();
      });
      expect(isGradEnabled()).toBe(true);
      expect(x.add(1).node).not.toBeNull();
    }));

  it('noGrad (async) stays off across await and restores the mode afterwards', () =>
    leakFree(async () => {
      const x = tensor([1, 2], [2], { requiresGrad: true });
      const y = await noGrad(async () => {
        await x.toArray();
        expect(isGradEnabled()).toBe(false);
        return x.mul(2);
      });
      expect(y.node).toBeNull();
      expect(y.requiresGrad).toBe(false);
      expect(isGradEnabled()).toBe(true);
      await expect(
        noGrad(async () => {
          await x.toArray();
          throw new Error('async boom');
        }),
      ).rejects.toThrow('async boom');
      expect(isGradEnabled()).toBe(true);
    }));

  it('detach copies the values and cuts the graph', () =>
    leakFree(async () => {
      const x = tensor([1, -2, 3], [3], { requiresGrad: true });
      const h = x.mul(2);
      const d = h.detach();
      expect(d.requiresGrad).toBe(false);
      expect(d.node).toBeNull();
      expect(Array.from(await readF64(d))).toEqual([2, -4, 6]);
      h.dispose(); // a copy: the detached tensor survives its source
      expect(Array.from(await readF64(d))).toEqual([2, -4, 6]);
      x.mul(d).sum().backward(); // d is a constant: gradient d, not 2d
      expect(Array.from(await gradOf(x, 'x'))).toEqual([2, -4, 6]);
      dropGrads(x);
    }));

  // ---- scopes ----

  it('scope frees every temporary when it returns nothing', () =>
    leakFree((gpu) => {
      const x = tensor([1, 2, 3, 4], [2, 2], { requiresGrad: true });
      const before = gpu.memory.liveBytes;
      let temps: Tensor[] = [];
      const result = scope(() => {
        const a = x.mul(2).exp();
        const b = a.matmul(a).sum(0).softmax();
        temps = [a, b];
        b.sum().backward();
      });
      expect(result).toBeUndefined();
      for (const t of temps) expect(t.disposed).toBe(true);
      expect(x.disposed).toBe(false);
      dropGrads(x);
      expect(gpu.memory.liveBytes).toBe(before);
    }));

  it('a returned tensor survives and moves to the enclosing scope', () =>
    leakFree(async (gpu) => {
      const before = gpu.memory.liveBytes;
      let tmp: Tensor | null = null;
      let kept: Tensor | null = null;
      const outerResult = scope(() => {
        const r = scope(() => {
          tmp = tensor([1, 2, 3], [3]).mul(2);
          return tmp.add(1);
        });
        expect(tmp!.disposed).toBe(true);
        expect(r.disposed).toBe(false);
        kept = r;
        return r.toArray(); // a promise, not a tensor: r is freed with this scope
      });
      expect(Array.from(await outerResult)).toEqual([3, 5, 7]);
      expect(kept!.disposed).toBe(true);
      expect(gpu.memory.liveBytes).toBe(before);
    }));

  it('scope keeps tensors inside returned objects, arrays and maps', () =>
    leakFree(async () => {
      const dropped: Tensor[] = [];
      const out = scope(() => {
        const a = tensor([1], [1]);
        const b = tensor([2], [1]);
        const c = tensor([3], [1]);
        dropped.push(tensor([4], [1]), a.add(b));
        return { a, nested: { list: [b] }, map: new Map([['c', c]]) };
      });
      expect(out.a.disposed || out.nested.list[0].disposed || out.map.get('c')!.disposed).toBe(false);
      for (const t of dropped) expect(t.disposed).toBe(true);
      expect(await out.map.get('c')!.item()).toBe(3);
    }));

  it('keep() takes a tensor out of every scope until dispose()', () =>
    leakFree(async (gpu) => {
      const before = gpu.memory.liveBytes;
      let k: Tensor | null = null;
      scope(() => {
        scope(() => {
          k = keep(tensor([5, 6], [2]).mul(2));
        });
      });
      expect(k!.disposed).toBe(false);
      expect(Array.from(await readF64(k!))).toEqual([10, 12]);
      expect(gpu.memory.liveBytes).toBeGreaterThan(before);
      k!.dispose();
      expect(gpu.memory.liveBytes).toBe(before);
    }));

  it('scope works across await', () =>
    leakFree(async (gpu) => {
      const before = gpu.memory.liveBytes;
      let y: Tensor | null = null;
      const z = await scope(async () => {
        y = tensor([1, 2, 3], [3]).mul(2);
        expect(Array.from(await readF64(y))).toEqual([2, 4, 6]);
        const w = y.add(1); // created after an await: still owned by this scope
        await gpu.sync();
        return w.mul(w);
      });
      expect(y!.disposed).toBe(true);
      expect(z.disposed).toBe(false);
      expect(Array.from(await readF64(z))).toEqual([9, 25, 49]);
      z.dispose();
      expect(gpu.memory.liveBytes).toBe(before);
    }));

  it('scopes run concurrently fail clearly and still free their tensors', async () => {
    const gpu = getGpu();
    const before = gpu.memory.liveBytes;
    const tick = () => new Promise((r) => setTimeout(r, 5));
    const first = scope(async () => {
      zeros([1000]);
      await tick();
    });
    const second = scope(async () => {
      zeros([1000]);
      await tick();
      await tick();
    });
    await expect(first).rejects.toThrow(/memory scopes closed out of order/);
    await second;
    expect(gpu.memory.liveBytes, 'bytes still live after both scopes').toBe(before);
    // a scope that fails while out of order reports its own error, not the ordering one
    const failing = scope(async () => {
      zeros([1000]);
      await tick();
      throw new Error('the real failure');
    });
    const longer = scope(async () => {
      await tick();
      await tick();
    });
    await expect(failing).rejects.toThrow('the real failure');
    await longer;
    expect(gpu.memory.liveBytes, 'bytes still live after the failing scope').toBe(before);
  });

  it('a scope that throws frees its tensors and rethrows', () =>
    leakFree(async (gpu) => {
      const before = gpu.memory.liveBytes;
      let t: Tensor | null = null;
      expect(() =>
        scope(() => {
          t = tensor([1, 2], [2]).exp();
          throw new Error('inside scope');
        }),
      ).toThrow('inside scope');
      expect(t!.disposed).toBe(true);
      await expect(
        scope(async () => {
          t = tensor([1, 2], [2]).exp();
          await t.toArray();
          throw new Error('inside async scope');
        }),
      ).rejects.toThrow('inside async scope');
      expect(t!.disposed).toBe(true);
      expect(gpu.memory.liveBytes).toBe(before);
    }));

  it('backward inside a scope frees its gradient temporaries', () =>
    leakFree((gpu) => {
      const rng = makeRng(7);
      // (the matmul shape of the diamond test above: its pipelines are compiled already)
      const w = upload(randF32([4, 4], rng), { requiresGrad: true });
      const before = gpu.memory.liveBytes;
      scope(() => {
        const x = upload(randF32([3, 4], rng));
        x.matmul(w).gelu().layerNorm(null, null).logSoftmax().mean().backward();
      });
      // only w.grad remains
      expect(w.grad).not.toBeNull();
      const gradBytes = w.grad!.buffer.size; // (reading .buffer first: it may allocate)
      expect(gpu.memory.liveBytes - before).toBe(gradBytes);
      dropGrads(w);
      expect(gpu.memory.liveBytes).toBe(before);
    }));

  // ---- errors ----

  it('using a disposed tensor gives a clear error', () =>
    leakFree(async () => {
      const t = tensor([1, 2, 3, 4, 5, 6], [2, 3]);
      t.dispose();
      expect(t.disposed).toBe(true);
      expect(() => t.add(1)).toThrow(/use of a disposed tensor of shape \[2, 3\]/);
      expect(() => t.reshape([6])).toThrow(/disposed tensor/);
      await expect(t.toArray()).rejects.toThrow(/disposed tensor/);
      t.dispose(); // idempotent
      let inner: Tensor | null = null;
      scope(() => {
        inner = tensor([1], [1]).exp();
      });
      expect(() => inner!.mul(2)).toThrow(/freed by dispose\(\) or by the scope that created it/);
    }));

  it('backward through a graph whose intermediates a scope freed does not silently lose the gradient', () =>
    leakFree(async () => {
      const x = tensor([1, 2, 3], [3], { requiresGrad: true });
      const y = scope(() => x.mul(2).add(1)); // x.mul(2) is freed, y is returned
      let threw = false;
      try {
        y.sum().backward();
      } catch (e) {
        threw = true;
        expect(String(e)).toMatch(/disposed/);
      }
      if (!threw) expect(Array.from(await gradOf(x, 'x'))).toEqual([2, 2, 2]);
      dropGrads(x);
      y.dispose();
    }));

  it('shape errors name the op and the shapes', () =>
    leakFree(async () => {
      const a = zeros([2, 3]);
      const b = zeros([4]);
      expect(() => a.add(b)).toThrow(/add: shapes \[2, 3\] and \[4\] cannot be broadcast together/);
      expect(() => a.mul(b)).toThrow(/mul: shapes \[2, 3\] and \[4\] cannot be broadcast together/);
      expect(() => a.maximum(zeros([3, 3]))).toThrow(/maximum: shapes \[2, 3\] and \[3, 3\] cannot be broadcast together/);
      expect(() => zeros([2, 1]).where(a, zeros([5]))).toThrow(/where: shapes \[2, 1\] and \[2, 3\] and \[5\] cannot be broadcast/);
      expect(() => a.matmul(zeros([2, 3]))).toThrow(/matmul: inner dimensions differ: \[2, 3\] @ \[2, 3\] \(3 vs 2\)/);
      expect(() => a.reshape([4, 2])).toThrow(/reshape: cannot reshape \[2, 3\] \(6 elements\) into \[4, 2\]/);
      expect(() => concat([a, b])).toThrow(/concat: shapes \[2, 3\], \[4\] differ/);
      expect(() => tensor([1, 2, 3], [2, 2])).toThrow(/tensor: 3 values do not fill shape \[2, 2\]/);
      await expect(a.item()).rejects.toThrow(/item\(\): tensor of shape \[2, 3\] has 6 elements, expected 1/);
    }));
});
