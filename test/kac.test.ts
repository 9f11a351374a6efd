import { describe, expect, it } from 'vitest';
import { Philox } from '../src/engine/philox.js';
import { besselRatioI1I0, i0e, i1e, i1eOverX, zI0OverI1 } from '../src/models/bessel.js';
import {
  defaultKacConfig,
  kacAtomMass,
  kacConfig,
  kacDensity,
  kacDF,
  kacDG,
  kacF,
  kacG,
  kacPrior,
  kacSample,
  kacSimulatePath,
  kacTarget,
  kacTrainingBatch,
  kacVariance,
  kacVelocity,
  logGamma,
  sampleBeta,
  sampleGamma,
  samplePoisson,
  type KacConfig,
} from '../src/models/kac.js';

// ---------------------------------------------------------------------------------------------
// Independent references, written here from textbook definitions
// ---------------------------------------------------------------------------------------------

/** I_nu(x), nu in {0, 1}, by the power series sum_k (x/2)^{2k+nu} / (k! (k+nu)!) (all terms > 0). */
function besselISeries(nu: 0 | 1, x: number): number {
  const q = (x * x) / 4;
  let term = nu === 0 ? 1 : x / 2;
  let sum = term;
  for (let k = 1; k < 2000; k++) {
    term *= q / (k * (k + nu));
    sum += term;
    if (term < sum * 1e-18) break;
  }
  return sum;
}

/** e^{-x} I_nu(x) by the Hankel asymptotic series (accurate to ~1e-16 for x >= 500). */
function besselIeAsymptotic(nu: 0 | 1, x: number): number {
  const mu = 4 * nu * nu;
  let term = 1;
  let sum = 1;
  for (let k = 1; k < 30; k++) {
    term *= -(mu - (2 * k - 1) ** 2) / (k * 8 * x);
    sum += term;
    if (Math.abs(term) < 1e-18) break;
  }
  return sum / Math.sqrt(2 * Math.PI * x);
}

/** The density exactly as written in method.md, with unscaled series Bessels (moderate z only). */
function densityDirect(a: number, c: number, s: number, x: number): number {
  const r = Math.sqrt(c * c * s * s - x * x);
  const z = (a / c) * r;
  return (Math.exp(-a * s) / (2 * c)) * (a * besselISeries(0, z) + ((a * c * s) / r) * besselISeries(1, z));
}

/** The velocity exactly as written in method.md, with unscaled series Bessels. */
function velocityDirect(a: number, c: number, s: number, x: number): number {
  const r = Math.sqrt(c * c * s * s - x * x);
  const z = (a / c) * r;
  return x / (s + (r / c) * (besselISeries(0, z) / besselISeries(1, z)));
}

/**
 * The density's continuous extension to the closed interval [-cs, cs] (kacDensity itself is 0 on
 * the light cone, where the atoms sit), so that quadrature rules may sample the endpoints.
 */
function densityClosed(a: number, c: number, s: number): (x: number) => number {
  const edge = c * s * (1 - 1e-15);
  return (x) => kacDensity(a, c, s, Math.min(edge, Math.max(-edge, x)));
}

/** Composite Simpson rule on [lo, hi] with n (even) intervals. */
function simpson(f: (x: number) => number, lo: number, hi: number, n: number): number {
  const h = (hi - lo) / n;
  let sum = f(lo) + f(hi);
  for (let i = 1; i < n; i++) sum += (i % 2 === 1 ? 4 : 2) * f(lo + i * h);
  return (sum * h) / 3;
}

/** Two-sample Kolmogorov-Smirnov statistic, handling ties (the atoms) correctly. */
function ks2(a: Float64Array, b: Float64Array): number {
  const x = Float64Array.from(a).sort();
  const y = Float64Array.from(b).sort();
  let i = 0;
  let j = 0;
  let d = 0;
  while (i < x.length && j < y.length) {
    const v = Math.min(x[i]!, y[j]!);
    while (i < x.length && x[i] === v) i++;
    while (j < y.length && y[j] === v) j++;
    d = Math.max(d, Math.abs(i / x.length - j / y.length));
  }
  return d;
}

/** One-sample KS statistic against a continuous CDF. */
function ks1(sample: Float64Array, cdf: (x: number) => number): number {
  const x = Float64Array.from(sample).sort();
  const n = x.length;
  let d = 0;
  for (let i = 0; i < n; i++) {
    const f = cdf(x[i]!);
    d = Math.max(d, Math.abs(f - i / n), Math.abs((i + 1) / n - f));
  }
  return d;
}

/** CDF of the continuous part (normalised by 1 - e^{-as}) by cumulative Simpson on a fine grid. */
function continuousCdfFromDensity(a: number, c: number, s: number, m = 4000): (x: number) => number {
  const cs = c * s;
  const h = (2 * cs) / m;
  const p = densityClosed(a, c, s);
  const grid = new Float64Array(m + 1);
  // cumulative integral: Simpson on each cell using its midpoint
  for (let i = 0; i < m; i++) {
    const x0 = -cs + i * h;
    const inc = (h / 6) * (p(x0) + 4 * p(x0 + h / 2) + p(x0 + h));
    grid[i + 1] = grid[i]! + inc;
  }
  const total = 1 - Math.exp(-a * s);
  return (x: number) => {
    const u = (x + cs) / h;
    if (u <= 0) return 0;
    if (u >= m) return grid[m]! / total;
    const i = Math.floor(u);
    return (grid[i]! + (u - i) * (grid[i + 1]! - grid[i]!)) / total;
  };
}

const KS_C_001 = 1.949; // Kolmogorov critical constant at alpha = 0.001

function cfgWith(over: Partial<KacConfig>): KacConfig {
  return kacConfig(over);
}

// ---------------------------------------------------------------------------------------------
// Bessel functions
// ---------------------------------------------------------------------------------------------

describe('bessel i0e / i1e', () => {
  it('match tabulated I0, I1 values (Abramowitz-Stegun / scipy)', () => {
    const table: [number, number, number][] = [
      // x, I0(x), I1(x)
      [1, 1.2660658777520082, 0.5651591039924851],
      [10, 2815.716628466254, 2670.988303701255],
    ];
    for (const [x, I0, I1] of table) {
      expect(Math.abs(i0e(x) / (I0 * Math.exp(-x)) - 1)).toBeLessThan(1e-12);
      expect(Math.abs(i1e(x) / (I1 * Math.exp(-x)) - 1)).toBeLessThan(1e-12);
    }
    expect(i0e(0)).toBe(1);
    expect(i1e(0)).toBe(0);
    expect(Math.abs(i1eOverX(0) - 0.5)).toBeLessThan(1e-15);
  });

  it('match the power series to 1e-12 relative on 0 < x <= 60', () => {
    let worst = 0;
    for (let x = 0.001; x <= 60; x = x < 1 ? x * 1.7 : x + 0.37) {
      const e = Math.exp(-x);
      const r0 = Math.abs(i0e(x) / (besselISeries(0, x) * e) - 1);
      const r1 = Math.abs(i1e(x) / (besselISeries(1, x) * e) - 1);
      const r2 = Math.abs(i1eOverX(x) / ((besselISeries(1, x) * e) / x) - 1);
      worst = Math.max(worst, r0, r1, r2);
    }
    expect(worst).toBeLessThan(1e-12);
  });

  it('match the asymptotic series for large x', () => {
    for (const x of [500, 1e3, 1e5, 1e9, 1e200]) {
      expect(Math.abs(i0e(x) / besselIeAsymptotic(0, x) - 1)).toBeLessThan(1e-12);
      expect(Math.abs(i1e(x) / besselIeAsymptotic(1, x) - 1)).toBeLessThan(1e-12);
    }
  });

  it('have even / odd symmetry', () => {
    for (const x of [0.3, 2, 7.9, 8.1, 40, 1e4]) {
      expect(i0e(-x)).toBe(i0e(x));
      expect(i1e(-x)).toBe(-i1e(x));
      expect(i1eOverX(-x)).toBe(i1eOverX(x));
      expect(besselRatioI1I0(-x)).toBe(-besselRatioI1I0(x));
    }
  });

  it('besselRatioI1I0 and zI0OverI1 never overflow and have the right limits', () => {
    for (const z of [1e-300, 1e-8, 0.5, 5, 50, 700, 800, 1e4, 1e300]) {
      const rho = besselRatioI1I0(z);
      expect(Number.isFinite(rho)).toBe(true);
      expect(rho).toBeGreaterThan(0);
      expect(rho).toBeLessThanOrEqual(1);
      expect(Number.isFinite(zI0OverI1(z))).toBe(true);
    }
    expect(besselRatioI1I0(0)).toBe(0);
    expect(besselRatioI1I0(Infinity)).toBe(1);
    expect(besselRatioI1I0(-Infinity)).toBe(-1);
    expect(Math.abs(zI0OverI1(0) - 2)).toBeLessThan(1e-15);
    // small z: I1/I0 = z/2 - z^3/16 + ...
    expect(Math.abs(besselRatioI1I0(1e-3) / (1e-3 / 2 - 1e-9 / 16) - 1)).toBeLessThan(1e-12);
    // large z: I1/I0 = 1 - 1/(2z) - 1/(8z^2) - ...
    const z = 1e6;
    expect(Math.abs(besselRatioI1I0(z) - (1 - 1 / (2 * z) - 1 / (8 * z * z)))).toBeLessThan(1e-15);
    // against the series ratio at moderate z
    for (const zz of [0.1, 3, 9, 30]) {
      expect(Math.abs(besselRatioI1I0(zz) / (besselISeries(1, zz) / besselISeries(0, zz)) - 1)).toBeLessThan(1e-12);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Law of K(s)
// ---------------------------------------------------------------------------------------------

const LAW_CASES: [number, number, number][] = [
  [9, 3, 1],
  [9, 3, 0.05],
  [25, 2, 1],
  [1, 1, 0.3],
  [9, 3, 4],
  [25, 2, 0.01],
];

describe('Kac law', () => {
  it('density agrees with the formula evaluated with unscaled series Bessels', () => {
    for (const [a, c, s] of [[9, 3, 1], [25, 2, 1], [1, 1, 0.3], [9, 3, 3]] as const) {
      const cs = c * s;
      for (const u of [-0.999, -0.7, -0.2, 0, 0.13, 0.5, 0.9, 0.9999]) {
        const x = u * cs;
        expect(Math.abs(kacDensity(a, c, s, x) / densityDirect(a, c, s, x) - 1)).toBeLessThan(1e-12);
      }
    }
  });

  it('density + atoms integrate to 1, density alone to 1 - e^{-as}', () => {
    for (const [a, c, s] of LAW_CASES) {
      const cs = c * s;
      const p = densityClosed(a, c, s);
      const dens = simpson(p, -cs, cs, 4000);
      expect(Math.abs(dens - (1 - Math.exp(-a * s)))).toBeLessThan(1e-10);
      expect(Math.abs(dens + 2 * kacAtomMass(a, s) - 1)).toBeLessThan(1e-10);
    }
  });

  it('the variance formula equals the second moment of density + atoms', () => {
    for (const [a, c, s] of LAW_CASES) {
      const cs = c * s;
      const p = densityClosed(a, c, s);
      const m2 = simpson((x) => x * x * p(x), -cs, cs, 4000) + 2 * kacAtomMass(a, s) * cs * cs;
      expect(Math.abs(m2 / kacVariance(a, c, s) - 1)).toBeLessThan(1e-9);
    }
    // tiny as: Var ~ c^2 s^2 (1 - 2as/3) (ballistic regime); no cancellation
    const v = kacVariance(9, 3, 1e-9);
    expect(Math.abs(v / (9e-18 * (1 - (2 * 9e-9) / 3)) - 1)).toBeLessThan(1e-12);
    expect(Math.sqrt(kacVariance(9, 3, 1))).toBeCloseTo(0.972, 3); // method.md
  });
});

// ---------------------------------------------------------------------------------------------
// Elementary samplers
// ---------------------------------------------------------------------------------------------

describe('Poisson / Gamma / Beta samplers', () => {
  it('logGamma matches log factorials and Gamma(1/2)', () => {
    let lf = 0;
    for (let k = 1; k <= 170; k++) {
      lf += Math.log(k);
      expect(Math.abs(logGamma(k + 1) - lf)).toBeLessThan(1e-12 * Math.max(1, lf));
    }
    expect(Math.abs(logGamma(0.5) - 0.5 * Math.log(Math.PI))).toBeLessThan(1e-14);
  });

  it('Poisson matches its pmf (inversion and PTRS branches)', () => {
    const rng = new Philox(11);
    for (const mean of [0.4, 3, 9.5, 10, 25, 150]) {
      const n = 200_000;
      const counts = new Map<number, number>();
      for (let i = 0; i < n; i++) {
        const k = samplePoisson(mean, rng);
        counts.set(k, (counts.get(k) ?? 0) + 1);
      }
      // chi-square over cells with expected count >= 20, the rest pooled into two tails
      const lo = Math.max(0, Math.floor(mean - 4 * Math.sqrt(mean)));
      const hi = Math.ceil(mean + 4 * Math.sqrt(mean)) + 2;
      const pmf = (k: number) => Math.exp(-mean + k * Math.log(mean) - logGamma(k + 1));
      const cells: [number, number][] = []; // [observed, expected]
      let tailObs = n;
      let tailExp = n;
      for (let k = lo; k <= hi; k++) {
        const e = n * pmf(k);
        if (e < 20) continue;
        const o = counts.get(k) ?? 0;
        cells.push([o, e]);
        tailObs -= o;
        tailExp -= e;
      }
      if (tailExp >= 20) cells.push([tailObs, tailExp]);
      else {
        // too little mass left for its own cell: pool it into the last cell
        const last = cells[cells.length - 1]!;
        cells[cells.length - 1] = [last[0] + tailObs, last[1] + tailExp];
      }
      let chi2 = 0;
      for (const [o, e] of cells) chi2 += (o - e) ** 2 / e;
      const df = cells.length - 1;
      // 99.9% quantile of chi^2_df (Wilson-Hilferty)
      const q = df * (1 - 2 / (9 * df) + 3.09 * Math.sqrt(2 / (9 * df))) ** 3;
      expect(chi2).toBeLessThan(q);
    }
  });

  it('Gamma matches the Erlang CDF (integer shapes) and moments (fractional shapes)', () => {
    const rng = new Philox(12);
    for (const k of [1, 2, 5, 13]) {
      const n = 20_000;
      const xs = new Float64Array(n);
      for (let i = 0; i < n; i++) xs[i] = sampleGamma(k, rng);
      const cdf = (x: number) => {
        let term = 1;
        let sum = 1;
        for (let j = 1; j < k; j++) {
          term *= x / j;
          sum += term;
        }
        return 1 - Math.exp(-x) * sum;
      };
      expect(ks1(xs, cdf)).toBeLessThan(KS_C_001 / Math.sqrt(n));
    }
    for (const shape of [0.3, 2.5]) {
      const n = 50_000;
      let m1 = 0;
      let m2 = 0;
      for (let i = 0; i < n; i++) {
        const g = sampleGamma(shape, rng);
        m1 += g;
        m2 += g * g;
      }
      m1 /= n;
      const varr = m2 / n - m1 * m1;
      expect(Math.abs(m1 - shape)).toBeLessThan(5 * Math.sqrt(shape / n));
      expect(Math.abs(varr / shape - 1)).toBeLessThan(0.05);
    }
    const b = sampleBeta(2, 3, rng);
    expect(b > 0 && b < 1).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------
// Kac samplers
// ---------------------------------------------------------------------------------------------

describe('Kac samplers', () => {
  it('exact sampler: variance matches the formula, atoms have mass e^{-as}', () => {
    const rng = new Philox(21);
    for (const [a, c, s] of [[9, 3, 1], [25, 2, 0.5], [9, 3, 0.1]] as const) {
      const n = 100_000;
      let m1 = 0;
      let m2 = 0;
      let m4 = 0;
      let atoms = 0;
      const cs = c * s;
      let outside = 0;
      for (let i = 0; i < n; i++) {
        const x = kacSample(a, c, s, rng);
        if (!(Math.abs(x) <= cs)) outside++;
        if (Math.abs(x) === cs) atoms++;
        m1 += x;
        m2 += x * x;
        m4 += x ** 4;
      }
      expect(outside).toBe(0);
      m1 /= n;
      m2 /= n;
      m4 /= n;
      const v = kacVariance(a, c, s);
      expect(Math.abs(m1)).toBeLessThan(5 * Math.sqrt(v / n));
      expect(Math.abs(m2 - v)).toBeLessThan(5 * Math.sqrt((m4 - m2 * m2) / n));
      const pAtom = Math.exp(-a * s);
      expect(Math.abs(atoms / n - pAtom)).toBeLessThan(5 * Math.sqrt((pAtom * (1 - pAtom)) / n) + 1e-12);
    }
    expect(kacSample(9, 3, 0, rng)).toBe(0);
  });

  it('exact sampler and flip-by-flip path simulator agree (two-sample KS)', () => {
    const rng = new Philox(22);
    for (const [a, c, s] of [[9, 3, 1], [25, 2, 0.6], [9, 3, 0.2]] as const) {
      const n = 60_000;
      const exact = new Float64Array(n);
      const path = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        exact[i] = kacSample(a, c, s, rng);
        path[i] = kacSimulatePath(a, c, s, rng).x;
      }
      expect(ks2(exact, path)).toBeLessThan(KS_C_001 * Math.sqrt(2 / n));
    }
  });

  it("exact sampler's continuous part follows the CDF integrated from the density (and a wrong a is rejected)", () => {
    const rng = new Philox(23);
    for (const [a, c, s, checkPower] of [[9, 3, 1, true], [25, 2, 1, true], [9, 3, 0.15, false]] as const) {
      const cs = c * s;
      const n = 40_000;
      const xs = new Float64Array(n);
      for (let i = 0; i < n; ) {
        const x = kacSample(a, c, s, rng);
        if (Math.abs(x) < cs) xs[i++] = x;
      }
      const crit = KS_C_001 / Math.sqrt(n);
      expect(ks1(xs, continuousCdfFromDensity(a, c, s))).toBeLessThan(crit);
      // power check: the same samples against the law with a 20% smaller a must fail
      if (checkPower) expect(ks1(xs, continuousCdfFromDensity(0.8 * a, c, s))).toBeGreaterThan(2 * crit);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Velocity
// ---------------------------------------------------------------------------------------------

describe('Kac velocity', () => {
  it('equals E[V | K = x] from simulated paths (binned), and the Brownian velocity does not', () => {
    const cfg = cfgWith({ eps: 0 });
    const rng = new Philox(31);
    for (const [a, c, s] of [[9, 3, 1], [25, 2, 0.3], [9, 3, 0.3]] as const) {
      const p = { ...cfg, a, c };
      const cs = c * s;
      const nb = 24;
      const n = 400_000;
      const cnt = new Float64Array(nb);
      const sum = new Float64Array(nb); // sum of V - v(x)
      const sumSq = new Float64Array(nb);
      const sumBrown = new Float64Array(nb); // sum of V - x/(2s)
      for (let i = 0; i < n; i++) {
        const { x, v, flips } = kacSimulatePath(a, c, s, rng);
        if (flips === 0) {
          // atom: the velocity is the atom's own
          expect(kacVelocity(s, x, p)).toBe(v);
          continue;
        }
        const b = Math.min(nb - 1, Math.max(0, Math.floor(((x + cs) / (2 * cs)) * nb)));
        const d = v - kacVelocity(s, x, p);
        cnt[b]!++;
        sum[b]! += d;
        sumSq[b]! += d * d;
        sumBrown[b]! += v - x / (2 * s);
      }
      // Per bin, mean(V - v(x)) is exactly 0 in expectation if v(s, .) = E[V | K = .]; standardise
      // by its Monte-Carlo standard error and sum the squares (chi^2 with one dof per bin).
      let chi2 = 0;
      let chi2Brown = 0;
      let bins = 0;
      for (let b = 0; b < nb; b++) {
        if (cnt[b]! < 50) continue;
        const m = sum[b]! / cnt[b]!;
        const se = Math.sqrt((sumSq[b]! / cnt[b]! - m * m) / cnt[b]!);
        chi2 += (m / se) ** 2;
        chi2Brown += (sumBrown[b]! / cnt[b]! / se) ** 2;
        bins++;
      }
      const q999 = bins * (1 - 2 / (9 * bins) + 3.09 * Math.sqrt(2 / (9 * bins))) ** 3; // Wilson-Hilferty
      expect(bins).toBeGreaterThan(15);
      expect(chi2).toBeLessThan(q999);
      // power: the Brownian velocity x/(2s) is rejected by the same statistic
      expect(chi2Brown).toBeGreaterThan(3 * q999);
    }
  });

  it('agrees with the formula evaluated with unscaled series Bessels', () => {
    const p = cfgWith({ eps: 0 });
    for (const s of [0.05, 0.5, 1, 3]) {
      for (const u of [-0.99, -0.5, 0.01, 0.3, 0.8, 0.9999]) {
        const x = u * 3 * s;
        expect(Math.abs(kacVelocity(s, x, p) / velocityDirect(9, 3, s, x) - 1)).toBeLessThan(1e-12);
      }
    }
  });

  it('|v| <= c everywhere, v is odd, including on and around the light cone', () => {
    let checked = 0;
    const bad: string[] = [];
    for (const a of [0.01, 9, 25, 1000]) {
      for (const c of [0.5, 2, 3]) {
        for (const eps of [0, 1e-4]) {
          const p = { a, c, eps, T: 1 };
          for (const s of [0, 1e-12, 1e-6, 1e-3, 0.01, 0.1, 0.5, 1, 2, 10, 100, 1e4]) {
            const cs = c * s;
            const xs: number[] = [cs, -cs, cs * (1 - 1e-15), cs * (1 - 1e-9), cs * (1 + 1e-9), 2 * cs + 1];
            for (let i = 0; i <= 400; i++) xs.push(-1.001 * cs + (i * 2.002 * cs) / 400);
            for (const x of xs) {
              const v = kacVelocity(s, x, p);
              checked++;
              if (!Number.isFinite(v) || Math.abs(v) > c || kacVelocity(s, -x, p) !== -v) {
                bad.push(`a=${a} c=${c} eps=${eps} s=${s} x=${x}: v=${v}`);
              }
            }
          }
        }
      }
    }
    expect(bad.slice(0, 5)).toEqual([]);
    expect(checked).toBeGreaterThan(100_000);
  });

  it('light-cone layer, s = 0 and the origin', () => {
    const p = defaultKacConfig; // a 9, c 3, eps 1e-4, T 1
    expect(kacVelocity(0, 0, p)).toBe(0);
    expect(kacVelocity(0, 0.5, p)).toBe(3);
    expect(kacVelocity(0, -0.5, p)).toBe(-3);
    expect(kacVelocity(1, 0, p)).toBe(0);
    const s = 0.5;
    const layer = 3 * s - 1e-4 * (s / 1) * 3;
    expect(kacVelocity(s, layer, p)).toBe(3);
    expect(kacVelocity(s, -layer, p)).toBe(-3);
    expect(kacVelocity(s, 3 * s, p)).toBe(3);
    const inside = layer * (1 - 1e-9);
    const vIn = kacVelocity(s, inside, p);
    expect(vIn).toBeLessThan(3);
    // just inside the layer the formula's light-cone limit applies: x / (s + 2/a)
    expect(Math.abs(vIn / (inside / (s + 2 / 9)) - 1)).toBeLessThan(1e-3);
    expect(() => kacVelocity(-1, 0, p)).toThrow();
  });

  it('small-z limit: denominator -> s + 2/a', () => {
    const p = cfgWith({ eps: 0 });
    // small s (z <= a s small), at several fractions of the cone
    for (const s of [1e-4, 1e-6]) {
      for (const u of [0, 0.3, 0.9]) {
        const x = u * 3 * s + 1e-300;
        const z = 9 * Math.sqrt(s * s - (x / 3) ** 2);
        const v = kacVelocity(s, x, p);
        expect(Math.abs(v / (x / (s + 2 / 9)) - 1)).toBeLessThan(z * z + 1e-14);
      }
    }
    // near the light cone at moderate s (r -> 0)
    const s = 1;
    const x = 3 * (1 - 1e-12);
    expect(Math.abs(kacVelocity(s, x, p) / (x / (s + 2 / 9)) - 1)).toBeLessThan(1e-8);
  });

  it('large-z limit: v -> x / (2 s), the Brownian probability-flow velocity', () => {
    const p = cfgWith({ eps: 0 });
    for (const s of [1e3, 1e5, 1e7]) {
      for (const x of [-5, 0.3, 1, 20]) {
        const rel = Math.abs(kacVelocity(s, x, p) / (x / (2 * s)) - 1);
        expect(rel).toBeLessThan(1 / (9 * s) + (x / (3 * s)) ** 2);
      }
    }
  });

  it('satisfies the continuity equation dp/ds + d(p v)/dx = 0 inside the cone', () => {
    for (const [a, c] of [[9, 3], [25, 2], [1, 1]] as const) {
      const p = { a, c, eps: 0, T: 1 };
      const h = 1e-4;
      for (const s of [0.3, 1]) {
        for (const u of [-0.8, -0.3, 0.1, 0.55, 0.9]) {
          const x = u * c * s;
          const ps = (kacDensity(a, c, s + h, x) - kacDensity(a, c, s - h, x)) / (2 * h);
          const flux = (y: number) => kacDensity(a, c, s, y) * kacVelocity(s, y, p);
          const fx = (flux(x + h) - flux(x - h)) / (2 * h);
          expect(Math.abs(ps + fx)).toBeLessThan(1e-6 * (Math.abs(ps) + Math.abs(fx)) + 1e-8);
        }
      }
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Config, schedules, target, prior, training batch
// ---------------------------------------------------------------------------------------------

describe('KacConfig', () => {
  it('has the reference defaults and validates fields', () => {
    expect(defaultKacConfig).toEqual({ a: 9, c: 3, T: 1, eps: 1e-4, signal: 'linear', clock: 't' });
    expect(kacConfig()).toEqual(defaultKacConfig);
    expect(kacConfig({ a: 25, c: 2, clock: 't2' })).toEqual({ ...defaultKacConfig, a: 25, c: 2, clock: 't2' });
    expect(() => kacConfig({ a: 0 })).toThrow(/KacConfig\.a/);
    expect(() => kacConfig({ c: -1 })).toThrow(/KacConfig\.c/);
    expect(() => kacConfig({ T: NaN })).toThrow(/KacConfig\.T/);
    expect(() => kacConfig({ eps: -1e-3 })).toThrow(/KacConfig\.eps/);
    expect(() => kacConfig({ signal: 'cosine' as never })).toThrow(/KacConfig\.signal.*'linear', 'exp'/);
    expect(() => kacConfig({ clock: 't3' as never })).toThrow(/KacConfig\.clock.*'t', 't2'/);
    expect(() => kacConfig({ clok: 't2' } as never)).toThrow(/unknown field 'clok'/);
    expect(kacConfig({ eps: 0 }).eps).toBe(0);
  });
});

const ALL_SCHEDULES: KacConfig[] = [
  cfgWith({}),
  cfgWith({ signal: 'exp' }),
  cfgWith({ clock: 't2', a: 25, c: 2 }),
  cfgWith({ signal: 'exp', clock: 't2', T: 2 }),
];

describe('schedules and conditional target', () => {
  it('f, g have the documented endpoints and f\', g\' are their derivatives', () => {
    const lin = cfgWith({ T: 2 });
    expect(kacF(0, lin)).toBe(1);
    expect(kacF(2, lin)).toBe(0);
    expect(kacF(0.5, cfgWith({ signal: 'exp' }))).toBeCloseTo(Math.exp(-0.5), 15);
    expect(kacG(2, cfgWith({ T: 2, clock: 't2' }))).toBe(2);
    expect(kacG(1, cfgWith({ T: 2, clock: 't2' }))).toBe(0.5);
    for (const cfg of ALL_SCHEDULES) {
      const h = 1e-6;
      for (const t of [0.1, 0.4, 0.9]) {
        expect(kacDF(t, cfg)).toBeCloseTo((kacF(t + h, cfg) - kacF(t - h, cfg)) / (2 * h), 7);
        expect(kacDG(t, cfg)).toBeCloseTo((kacG(t + h, cfg) - kacG(t - h, cfg)) / (2 * h), 7);
      }
    }
  });

  it('the conditional target transports the conditional law (continuity equation in t)', () => {
    for (const cfg of ALL_SCHEDULES) {
      const x0 = 0.7;
      const h = 1e-4;
      const q = (t: number, x: number) => kacDensity(cfg.a, cfg.c, kacG(t, cfg), x - kacF(t, cfg) * x0);
      for (const t of [0.3 * cfg.T, 0.8 * cfg.T]) {
        const s = kacG(t, cfg);
        for (const u of [-0.7, 0, 0.4, 0.85]) {
          const x = kacF(t, cfg) * x0 + u * cfg.c * s;
          const qt = (q(t + h, x) - q(t - h, x)) / (2 * h);
          const flux = (y: number) => q(t, y) * kacTarget(t, y, x0, cfg);
          const fx = (flux(x + h) - flux(x - h)) / (2 * h);
          expect(Math.abs(qt + fx)).toBeLessThan(1e-6 * (Math.abs(qt) + Math.abs(fx)) + 1e-8);
        }
        // the atoms move rigidly: f' x0 +- g' c
        const xa = kacF(t, cfg) * x0 + cfg.c * s;
        expect(kacTarget(t, xa, x0, cfg)).toBeCloseTo(kacDF(t, cfg) * x0 + kacDG(t, cfg) * cfg.c, 12);
      }
    }
  });
});

describe('prior and training batch', () => {
  it('prior is K(g(T)): variance and atom mass', () => {
    for (const cfg of [cfgWith({}), cfgWith({ a: 25, c: 2, clock: 't2' })]) {
      const rng = new Philox(41);
      const n = 60_000;
      const xs = kacPrior(n, rng, cfg);
      const s = kacG(cfg.T, cfg);
      const cs = Math.fround(cfg.c * s);
      let m2 = 0;
      let m4 = 0;
      let atoms = 0;
      for (const x of xs) {
        m2 += x * x;
        m4 += x ** 4;
        if (Math.abs(x) === cs) atoms++;
      }
      m2 /= n;
      m4 /= n;
      expect(Math.abs(m2 - kacVariance(cfg.a, cfg.c, s))).toBeLessThan(5 * Math.sqrt((m4 - m2 * m2) / n));
      const pa = Math.exp(-cfg.a * s);
      expect(Math.abs(atoms / n - pa)).toBeLessThan(5 * Math.sqrt(pa / n) + 1e-9);
    }
    expect(() => kacPrior(3, new Philox(1), defaultKacConfig, new Float32Array(2))).toThrow();
  });

  it('training batch equals the scalar API coordinate by coordinate', () => {
    for (const cfg of ALL_SCHEDULES) {
      const per = 50;
      const t = Float64Array.from([0, 0.01, 0.3, 0.77, 1].map((u) => u * cfg.T));
      const x0 = new Float32Array(per * t.length);
      for (let i = 0; i < x0.length; i++) x0[i] = Math.fround(Math.sin(i * 1.3));
      const rng = new Philox(51, 2);
      const replay = Philox.fromState(rng.state());
      const { xt, target } = kacTrainingBatch(x0, per, t, rng, cfg);
      expect(xt.length).toBe(x0.length);
      expect(target.length).toBe(x0.length);
      for (let i = 0; i < t.length; i++) {
        const ti = t[i]!;
        const s = kacG(ti, cfg);
        for (let j = i * per; j < (i + 1) * per; j++) {
          const k = kacSample(cfg.a, cfg.c, s, replay);
          expect(Math.abs(k)).toBeLessThanOrEqual(cfg.c * s);
          // (=== rather than toBe: +0 and -0 are the same value here)
          expect(xt[j] === Math.fround(kacF(ti, cfg) * x0[j]! + k)).toBe(true);
          expect(target[j] === Math.fround(kacDF(ti, cfg) * x0[j]! + kacDG(ti, cfg) * kacVelocity(s, k, cfg))).toBe(
            true,
          );
        }
      }
      // t = 0: no noise, target f'(0) x0
      for (let j = 0; j < per; j++) {
        expect(xt[j] === x0[j]).toBe(true);
        expect(target[j] === Math.fround(kacDF(0, cfg) * x0[j]!)).toBe(true);
      }
      expect(replay.state()).toEqual(rng.state());
    }
  });

  it('training batch noise has the Kac variance at each t; bad inputs are rejected', () => {
    const cfg = defaultKacConfig;
    const per = 20_000;
    const t = Float64Array.from([0.2, 0.9]);
    const x0 = new Float32Array(per * 2).fill(0.5);
    const { xt } = kacTrainingBatch(x0, per, t, new Philox(61), cfg);
    for (let i = 0; i < 2; i++) {
      const f = kacF(t[i]!, cfg);
      let m2 = 0;
      let m4 = 0;
      for (let j = i * per; j < (i + 1) * per; j++) {
        const k = xt[j]! - f * 0.5;
        m2 += k * k;
        m4 += k ** 4;
      }
      m2 /= per;
      m4 /= per;
      expect(Math.abs(m2 - kacVariance(cfg.a, cfg.c, t[i]!))).toBeLessThan(5 * Math.sqrt((m4 - m2 * m2) / per));
    }
    const rng = new Philox(1);
    expect(() => kacTrainingBatch(new Float32Array(5), 2, Float64Array.from([0.5, 0.5]), rng)).toThrow(/x0.length/);
    expect(() => kacTrainingBatch(new Float32Array(2), 0, Float64Array.from([]), rng)).toThrow(/perExample/);
    expect(() => kacTrainingBatch(new Float32Array(2), 1, Float64Array.from([0.5, 1.5]), rng)).toThrow(/outside/);
  });
});
