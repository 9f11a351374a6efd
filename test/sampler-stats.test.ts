// Issue 18: AB-2 started with a Heun step (float64 host reference of the update), and the per-step
// largest |u| the sampler reports (integrated guided field and both branches) against a host
// float64 recomputation of the same trajectory.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dawnGpu } from '../src/engine/runtime/dawn';
import { BACKENDS } from './helpers/gpu';
import { type Gpu, type Tensor, ew, setDefaultGpu, tensor } from '../src/engine/index';
import { type Solver, type VelocityModel, integrate, mergeVelocityMaxima } from '../src/models/sampling';
import { float64StepOps, runStep, solverStep } from '../src/models/solvers';


// u(x, t, y) = lambda_y sin(x) (1 + t) + 0.3 t: nonlinear in x, time- and label-dependent (2 = null)
const lam = [0.7, -0.4, 0.2];
const uHost = (x: number, t: number, y: number) => lam[y]! * Math.sin(x) * (1 + t) + 0.3 * t;
const probe: VelocityModel = {
  forward: (x: Tensor, t: Tensor, y: Tensor) =>
    ew('probe', `select(select(${lam[0]}, ${lam[1]}, y == 1i), ${lam[2]}, y == 2i) * sin(x) * (1.0 + t) + 0.3 * t`, { x, t: t.reshape([t.shape[0], 1]), y: y.reshape([y.shape[0], 1]) }),
};

describe('AB-2 with a Heun start (float64 host)', () => {
  it('the first step is Heun (2 NFE) and hands its start velocity to the next AB-2 step', () => {
    const f = (x: Float64Array, t: number) => Float64Array.from(x, (v) => uHost(v, t, 0));
    const x0 = Float64Array.from([0.5, -1.2]);
    const [t0, dt] = [0.9, 0.1];
    const at = (k: number, when: string) => t0 - k * dt - (when === 'end' ? dt : 0);
    const s1 = runStep(solverStep('ab2', float64StepOps, dt, x0, null, 'heun'), (x, when) => f(x, at(0, when)));
    expect(s1.nfe).toBe(2);
    const s2 = runStep(solverStep('ab2', float64StepOps, dt, s1.x, s1.u, 'heun'), (x, when) => f(x, at(1, when)));
    expect(s2.nfe).toBe(1);
    for (let i = 0; i < 2; i++) {
      const u0 = uHost(x0[i]!, t0, 0);
      const x1 = x0[i]! - (dt / 2) * (u0 + uHost(x0[i]! - dt * u0, t0 - dt, 0));
      expect(s1.x[i]).toBe(x1);
      expect(s1.u![i]).toBe(u0);
      expect(s2.x[i]).toBeCloseTo(x1 - dt * (1.5 * uHost(x1, t0 - dt, 0) - 0.5 * u0), 15);
    }
    // the default start is still Euler
    const e = runStep(solverStep('ab2', float64StepOps, dt, x0, null), (x, when) => f(x, at(0, when)));
    expect(e.nfe).toBe(1);
    expect(e.x[0]).toBe(x0[0]! - dt * uHost(x0[0]!, t0, 0));
  });

  it('merges per-step maxima of batches', () => {
    expect(mergeVelocityMaxima({ integrated: [1, 5], cond: [2, 2], uncond: [0, 9] }, { integrated: [3, 4], cond: [1, 3], uncond: [1, 1] })).toEqual({ integrated: [3, 5], cond: [2, 3], uncond: [1, 9] });
  });
});

describe.each(BACKENDS)('velocity statistics on %s', (backend) => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await dawnGpu({ backend });
    setDefaultGpu(gpu);
  });
  afterAll(() => gpu.destroy());

  it('per-step max |u| (guided field and both branches) and the Heun-started AB-2 match a float64 host run', async () => {
    const w = 1.7;
    const x0 = [0.5, -1.2, 2.0];
    const ys = [0, 1, 0];
    const t0 = [1, 0.6, 0.35];
    const dt = 0.07;
    const steps = 4;
    for (const [solver, start] of [['ab2', 'heun'], ['heun', 'euler'], ['euler', 'euler']] as [Solver, 'euler' | 'heun'][]) {
      for (const guided of [true, false]) {
        const { x: out, nfe, velocityMax } = await integrate({
          model: probe, x: tensor(x0, [3, 1]), tStart: t0, dt, steps, solver, labels: tensor(Int32Array.from(ys), [3]),
          guidance: guided ? { scale: w, nullClass: 2 } : undefined, ab2Start: start, stats: true,
        });
        // host float64: the same trajectories, and the largest |u| of every evaluation in each step
        const want = { integrated: Array(steps).fill(0), cond: Array(steps).fill(0), uncond: Array(steps).fill(0) };
        const got = await out.toArray();
        for (let i = 0; i < 3; i++) {
          const ug = (x: number, t: number, k: number) => {
            const c = uHost(x, t, ys[i]!);
            const n = uHost(x, t, 2);
            const u = guided ? n + w * (c - n) : c;
            want.integrated[k] = Math.max(want.integrated[k], Math.abs(u));
            want.cond[k] = Math.max(want.cond[k], Math.abs(c));
            want.uncond[k] = Math.max(want.uncond[k], Math.abs(n));
            return u;
          };
          let x = x0[i]!;
          let prev: number | null = null;
          for (let k = 0; k < steps; k++) {
            const t = t0[i]! - k * dt;
            const u1 = ug(x, t, k);
            if (solver === 'euler') x -= dt * u1;
            else if (solver === 'heun' || prev === null) x -= (dt / 2) * (u1 + ug(x - dt * u1, t - dt, k));
            else x -= dt * (1.5 * u1 - 0.5 * prev);
            if (solver === 'ab2') prev = u1;
          }
          expect(got[i]).toBeCloseTo(x, 5);
        }
        expect(nfe).toBe(solver === 'euler' ? steps : solver === 'heun' ? 2 * steps : steps + 1);
        expect(velocityMax!.integrated.length).toBe(steps);
        velocityMax!.integrated.forEach((v, k) => expect(v).toBeCloseTo(want.integrated[k], 5));
        if (guided) {
          velocityMax!.cond!.forEach((v, k) => expect(v).toBeCloseTo(want.cond[k], 5));
          velocityMax!.uncond!.forEach((v, k) => expect(v).toBeCloseTo(want.uncond[k], 5));
        } else {
          expect(velocityMax!.cond).toBeUndefined();
        }
        out.dispose();
      }
    }
    // no statistics unless asked
    const plain = await integrate({ model: probe, x: tensor(x0, [3, 1]), tStart: t0, dt, steps: 2, solver: 'ab2', labels: tensor(Int32Array.from(ys), [3]) });
    expect(plain.velocityMax).toBeUndefined();
  });
});

describe('velocity summary', () => {
  it('puts each step against c, (|w| + |1 - w|) c and the exact field bound (|f\'| + g\' c)(|w| + |1 - w|)', async () => {
    const { velocitySummary, velocityTable } = await import('../src/eval/velocity');
    const { kacConfig } = await import('../src/models/kac');
    // a = 25, c = 2, g = t^2 (T = 1): g' = 2t, linear signal |f'| = 1; two steps from 1 to 0
    const s = velocitySummary({ integrated: [3, 5], cond: [2, 2], uncond: [1, 1] }, kacConfig({ a: 25, c: 2, clock: 't2' }), 0, 1.5);
    expect(s.guidedFactor).toBe(2);
    expect(s.steps.map((r) => [r.t0, r.t1, r.bound])).toEqual([[1, 0.5, 2 * (1 + 2 * 2)], [0.5, 0, 2 * (1 + 1 * 2)]]);
    expect([s.max, s.maxStep]).toEqual([5, 1]);
    expect(velocityTable(s)).toContain('| 1 | 0.5000 -> 0.0000 | 5.000 | 2.000 | 1.000 | 2 | 4.000 | 6.000 |');
  });
});
