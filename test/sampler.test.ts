// Solvers against exact solutions of linear ODEs (including their order of convergence), guidance
// against its closed form, NFE counting, and the prior sampler's law.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { availableBackends, dawnGpu } from '../src/engine/runtime/dawn';
import { type Gpu, Tensor, ew, setDefaultGpu, tensor } from '../src/engine/index';
import { NFE_PER_STEP, type Solver, type VelocityModel, integrate, sample } from '../src/models/sampling';
import { defaultKacConfig, kacVariance } from '../src/models/kac';

const backends = await availableBackends();

/** u(x, t, y) = lambda_y * x * (1 + t): label 0 -> lambda0, label 1 (null) -> lambda1. */
function linearModel(lambda0: number, lambda1: number): VelocityModel {
  return {
    forward: (x: Tensor, t: Tensor, y: Tensor) =>
      ew('linmodel', `x * select(${lambda0.toFixed(6)}, ${lambda1.toFixed(6)}, y == 1i) * (1.0 + t)`, { x, t: t.reshape([t.shape[0], 1]), y: y.reshape([y.shape[0], 1]) }),
  };
}

/** Exact x(t1) for dx/dt = lam (1 + t) x from t0 to t1. */
const exact = (x0: number, lam: number, t0: number, t1: number) => x0 * Math.exp(lam * ((t1 - t0) + (t1 * t1 - t0 * t0) / 2));

describe.each(backends)('sampler on %s', (backend) => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await dawnGpu({ backend });
    setDefaultGpu(gpu);
  });
  afterAll(() => gpu.destroy());

  async function endError(solver: Solver, steps: number): Promise<number> {
    const model = linearModel(0.8, 0);
    const x = tensor([1, -0.5], [2, 1]);
    const { x: out } = await integrate({ model, x, tStart: [1, 1], dt: 1 / steps, steps, solver, labels: tensor(Int32Array.from([0, 0]), [2]) });
    const got = await out.toArray();
    return Math.max(Math.abs(got[0] - exact(1, 0.8, 1, 0)), Math.abs(got[1] - exact(-0.5, 0.8, 1, 0)));
  }

  it.each([
    ['euler', 1],
    ['ab2', 2],
    ['midpoint', 2],
    ['heun', 2],
  ] as [Solver, number][])('%s converges at order %i on an exact linear ODE', async (solver, order) => {
    const e1 = await endError(solver, 10);
    const e2 = await endError(solver, 20);
    const observed = Math.log2(e1 / e2);
    expect(observed).toBeGreaterThan(order - 0.3);
    expect(observed).toBeLessThan(order + 0.5);
  });

  it('guidance mixes the branches in velocity space: u_null + w (u_cond - u_null)', async () => {
    const lam0 = 0.6;
    const lam1 = -0.2;
    const w = 1.5;
    const x = tensor([1], [1, 1]);
    const { x: out, nfe } = await integrate({
      model: linearModel(lam0, lam1), x, tStart: [1], dt: 1 / 200, steps: 200, solver: 'heun',
      labels: tensor(Int32Array.from([0]), [1]), guidance: { scale: w, nullClass: 1 },
    });
    expect(nfe).toBe(400);
    expect((await out.toArray())[0]).toBeCloseTo(exact(1, lam1 + w * (lam0 - lam1), 1, 0), 4);
  });

  it('each solver takes exactly the update of method.md on the grid T - k dt, with one batched guided pass per NFE', async () => {
    // u(x, t, y) = lambda_y sin(x) (1 + t) + 0.3 t: nonlinear in x, time-dependent, label-dependent
    const lam = [0.7, -0.4, 0.2];
    const calls: number[] = [];
    const model: VelocityModel = {
      forward: (x: Tensor, t: Tensor, y: Tensor) => {
        calls.push(x.shape[0]);
        return ew('probe', `select(select(${lam[0]}, ${lam[1]}, y == 1i), ${lam[2]}, y == 2i) * sin(x) * (1.0 + t) + 0.3 * t`, { x, t: t.reshape([t.shape[0], 1]), y: y.reshape([y.shape[0], 1]) });
      },
    };
    const w = 1.7;
    const uHost = (x: number, t: number, y: number) => lam[y]! * Math.sin(x) * (1 + t) + 0.3 * t;
    const ug = (x: number, t: number, y: number) => uHost(x, t, 2) + w * (uHost(x, t, y) - uHost(x, t, 2));
    const x0 = [0.5, -1.2, 2.0];
    const ys = [0, 1, 0];
    const t0 = [1, 0.6, 0.35];
    const dt = 0.07;
    const steps = 4;
    for (const solver of ['euler', 'ab2', 'midpoint', 'heun'] as Solver[]) {
      calls.length = 0;
      const { x: out, nfe } = await integrate({
        model, x: tensor(x0, [3, 1]), tStart: t0, dt, steps, solver, labels: tensor(Int32Array.from(ys), [3]), guidance: { scale: w, nullClass: 2 },
      });
      expect(nfe).toBe(steps * NFE_PER_STEP[solver]);
      expect(calls).toEqual(Array(nfe).fill(6)); // both branches in one forward pass of 2B
      const got = await out.toArray();
      for (let i = 0; i < 3; i++) {
        let x = x0[i]!;
        let prev: number | null = null;
        for (let k = 0; k < steps; k++) {
          const t = t0[i]! - k * dt;
          const u1 = ug(x, t, ys[i]!);
          if (solver === 'euler') x -= dt * u1;
          else if (solver === 'ab2') {
            x -= prev === null ? dt * u1 : dt * (1.5 * u1 - 0.5 * prev); // first step Euler
            prev = u1;
          } else if (solver === 'midpoint') x -= dt * ug(x - (dt / 2) * u1, t - dt / 2, ys[i]!);
          else x -= (dt / 2) * (u1 + ug(x - dt * u1, t - dt, ys[i]!));
        }
        expect(got[i]).toBeCloseTo(x, 5);
      }
    }
  });

  it('sample() draws the Kac prior and counts NFE per solver', async () => {
    const zero: VelocityModel = { forward: (x) => x.mul(0) };
    const { samples, nfe } = await sample({ model: zero, labels: new Int32Array(4000), sampleShape: [1], steps: 3, solver: 'midpoint', seed: 5 });
    expect(nfe).toBe(6);
    const v = Array.from(await samples.toArray());
    const mean = v.reduce((a, b) => a + b, 0) / v.length;
    const variance = v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length;
    expect(Math.max(...v.map(Math.abs))).toBeLessThanOrEqual(3 + 1e-6); // |K(1)| <= c T
    expect(variance).toBeGreaterThan(kacVariance(9, 3, 1) * 0.9);
    expect(variance).toBeLessThan(kacVariance(9, 3, 1) * 1.1);
  });

  it('sample() refuses an end time outside [0, T), a prior that needs data, and labels that are no class', async () => {
    const zero: VelocityModel = { forward: (x) => x.mul(0) };
    const base = { model: zero, labels: new Int32Array(2), sampleShape: [1], steps: 2, seed: 0 };
    await expect(sample({ ...base, tMin: 1 })).rejects.toThrow(/t-min must be in \[0, T\) = \[0, 1\), got 1/);
    await expect(sample({ ...base, tMin: -0.1 })).rejects.toThrow(/t-min must be in/);
    await expect(sample({ ...base, kac: { ...defaultKacConfig, signal: 'const' } })).rejects.toThrow(/signal 'const'/);
    await expect(sample({ ...base, labels: Int32Array.from([0, 11]), guidance: { scale: 1.5, nullClass: 10 } })).rejects.toThrow(/label 11 \(at 1\) is not a class in 0..9 \(10 = unconditional\)/);
    await expect(sample({ ...base, labels: Int32Array.from([-1, 0]) })).rejects.toThrow(/label -1 \(at 0\)/);
  });

  it('sampling stopped by a throwing onStep or a failing model frees its tensors', async () => {
    const model = linearModel(0.8, 0);
    const base = { model, labels: new Int32Array(64), sampleShape: [64], steps: 6, seed: 0 };
    await (await sample({ ...base, solver: 'ab2' })).samples.dispose(); // compiles, fills the pool
    await gpu.sync();
    const live = gpu.memory.liveBytes;
    for (const solver of ['euler', 'ab2', 'heun'] as Solver[]) {
      for (const stopAt of [0, 3]) {
        const stop = (k: number) => {
          if (k === stopAt) throw new Error('stopped');
        };
        await expect(sample({ ...base, solver, onStep: stop })).rejects.toThrow('stopped');
      }
    }
    let calls = 0;
    const failing: VelocityModel = {
      forward: (x, t, y) => {
        if (++calls === 3) throw new Error('model failed');
        return model.forward(x, t, y);
      },
    };
    await expect(sample({ ...base, model: failing, solver: 'ab2' })).rejects.toThrow('model failed');
    await gpu.sync();
    // (the garbage collector may return forgotten tensors at any time, so live bytes can only fall)
    expect(gpu.memory.liveBytes).toBeLessThanOrEqual(live);
  });
});
