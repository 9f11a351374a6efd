// The `const` signal (f = 1, f' = 0) of the 2-D experiment: X_t = x0 + K(g(t)), the target reduces to
// g'(t) v(g(t), x - x0), it transports the shifted Kac law (continuity equation), training batches
// obey |target| <= c g'(t), and the data prior x0 + K(g(T)) has the Kac law around x0.
import { describe, expect, it } from 'vitest';
import { Philox } from '../src/engine/philox.js';
import {
  KAC_SIGNALS,
  kacConfig,
  kacDensity,
  kacDF,
  kacDG,
  kacF,
  kacG,
  kacPrior,
  kacPriorFromData,
  kacTarget,
  kacTrainingBatch,
  kacVariance,
  kacVelocity,
} from '../src/models/kac.js';

const CONST_CONFIGS = [
  kacConfig({ signal: 'const' }), // the 2-D experiment: a = 9, c = 3, g(t) = t
  kacConfig({ signal: 'const', clock: 't2', a: 25, c: 2, T: 2 }),
];

describe("Kac signal 'const'", () => {
  it('is a listed, validated option with f = 1 and f\' = 0', () => {
    expect(KAC_SIGNALS).toContain('const');
    expect(kacConfig({ signal: 'const' }).signal).toBe('const');
    expect(() => kacConfig({ signal: 'constant' as never })).toThrow(/'linear', 'exp', 'const'/);
    for (const cfg of CONST_CONFIGS) {
      for (const t of [0, 0.1 * cfg.T, 0.5 * cfg.T, cfg.T]) {
        expect(kacF(t, cfg)).toBe(1);
        expect(kacDF(t, cfg)).toBe(0);
      }
    }
  });

  it("the target is g'(t) v(g(t), x - x0), with |target| <= c g'(t) and +-c g' on the atoms", () => {
    for (const cfg of CONST_CONFIGS) {
      for (const x0 of [-1, 0, 0.37, 1]) {
        for (const t of [1e-5, 0.01, 0.3, 0.77, 1].map((u) => u * cfg.T)) {
          const s = kacG(t, cfg);
          for (const w of [-1, -0.999, -0.5, 0, 0.2, 0.9, 1]) {
            const x = x0 + w * cfg.c * s;
            const u = kacTarget(t, x, x0, cfg);
            expect(u).toBe(kacDG(t, cfg) * kacVelocity(s, x - x0, cfg));
            expect(Math.abs(u)).toBeLessThanOrEqual(cfg.c * kacDG(t, cfg) * (1 + 1e-12));
          }
          // the atoms at x0 +- c g(t) move rigidly at +-c g'(t)
          expect(kacTarget(t, x0 + cfg.c * s, x0, cfg)).toBeCloseTo(cfg.c * kacDG(t, cfg), 12);
          expect(kacTarget(t, x0 - cfg.c * s, x0, cfg)).toBeCloseTo(-cfg.c * kacDG(t, cfg), 12);
        }
      }
    }
  });

  it('the target transports the law of x0 + K(g(t)) (continuity equation in t, inside the cone)', () => {
    for (const cfg of CONST_CONFIGS) {
      const x0 = -0.6;
      const h = 1e-5 * cfg.T;
      const q = (t: number, x: number) => kacDensity(cfg.a, cfg.c, kacG(t, cfg), x - x0);
      for (const t of [0.05, 0.3, 0.8].map((u) => u * cfg.T)) {
        const s = kacG(t, cfg);
        for (const w of [-0.8, -0.3, 0, 0.45, 0.9]) {
          const x = x0 + w * cfg.c * s;
          const dq = (q(t + h, x) - q(t - h, x)) / (2 * h);
          const flux = (y: number) => q(t, y) * kacTarget(t, y, x0, cfg);
          const dflux = (flux(x + h) - flux(x - h)) / (2 * h);
          expect(Math.abs(dq + dflux)).toBeLessThan(1e-5 * (Math.abs(dq) + Math.abs(dflux)) + 1e-8);
        }
      }
    }
  });

  it('training batches: xt = x0 + K, target = g\'(t) v(g(t), K), |target| <= c g\'(t)', () => {
    for (const cfg of CONST_CONFIGS) {
      const per = 2;
      const n = 2000;
      const rng = new Philox(7, 1);
      const t = new Float64Array(n);
      const x0 = new Float32Array(n * per);
      for (let i = 0; i < n; i++) {
        t[i] = rng.uniform() * cfg.T;
        x0[2 * i] = Math.floor(rng.uniform() * 3) - 1;
        x0[2 * i + 1] = Math.floor(rng.uniform() * 3) - 1;
      }
      const { xt, target } = kacTrainingBatch(x0, per, t, rng, cfg);
      for (let i = 0; i < n; i++) {
        const s = kacG(t[i]!, cfg);
        const dg = kacDG(t[i]!, cfg);
        for (let j = per * i; j < per * (i + 1); j++) {
          const k = xt[j]! - x0[j]!; // exact: |x0| <= 1 and |K| <= c s, so float32 rounding of xt is tiny
          expect(Math.abs(k)).toBeLessThanOrEqual(cfg.c * s * (1 + 1e-6) + 1e-6);
          expect(Math.abs(target[j]!)).toBeLessThanOrEqual(Math.fround(cfg.c * dg) * (1 + 1e-7));
          // target recomputed from the float32 xt (K was rounded into xt): agrees up to that rounding
          // except inside the light-cone layer, where the atom's +-c g' is used
          const expected = dg * kacVelocity(s, k, cfg);
          const layer = cfg.c * s - cfg.eps * (s / cfg.T) * cfg.c;
          if (Math.abs(Math.abs(k) - layer) > 1e-5) expect(Math.abs(target[j]! - expected)).toBeLessThan(2e-3 * cfg.c * Math.max(dg, 1e-3));
        }
      }
    }
  });

  it('kacPriorFromData: x0 + K(g(T)) for const, equal to kacPrior for linear; Kac law around x0', () => {
    const cfg = CONST_CONFIGS[0]!;
    const n = 40_000;
    const x0 = new Float32Array(n);
    for (let i = 0; i < n; i++) x0[i] = (i % 3) - 1;
    const prior = kacPriorFromData(x0, new Philox(3), cfg);
    const k = kacPrior(n, new Philox(3), cfg);
    let m2 = 0;
    let m4 = 0;
    let atoms = 0;
    for (let i = 0; i < n; i++) {
      // same draws in the same order: prior - x0 is K (up to float32 rounding of the sum)
      expect(Math.abs(prior[i]! - x0[i]! - k[i]!)).toBeLessThan(1e-6);
      const d = prior[i]! - x0[i]!;
      m2 += d * d;
      m4 += d ** 4;
      if (Math.abs(Math.abs(d) - cfg.c * cfg.T) < 1e-6) atoms++;
    }
    m2 /= n;
    m4 /= n;
    expect(Math.abs(m2 - kacVariance(cfg.a, cfg.c, cfg.T))).toBeLessThan(5 * Math.sqrt((m4 - m2 * m2) / n));
    expect(atoms).toBeLessThan(20); // mass e^{-9} = 1.2e-4: ~5 expected
    const lin = kacConfig({});
    const a = kacPriorFromData(x0, new Philox(9), lin);
    const b = kacPrior(n, new Philox(9), lin);
    for (let i = 0; i < n; i++) expect(a[i] === b[i]).toBe(true);
  });
});
