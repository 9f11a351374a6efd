/**
 * Float64 CPU reference of the 1-D Kac (telegraph) process and of the Kac-flow generative process
 * built on it (docs/method.md, sections 1-2). Everything here is the ground truth that GPU kernels
 * and training code are checked against, so it favours exactness and numerical stability over speed.
 *
 * The Kac process K(s): start at 0 with velocity +-c (1/2 each), flip the velocity at the events of
 * a Poisson process of rate a. Law of K(s): atoms e^{-as}/2 at +-cs plus a density on |x| < cs.
 */

import { Philox } from '../engine/philox.js';
import { i0e, i1eOverX, zI0OverI1 } from './bessel.js';

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/**
 * Signal schedule f: `linear` f(t) = 1 - t/T (default), `exp` f(t) = e^{-t}, `const` f(t) = 1
 * (f' = 0: the data is never scaled down, X_t = X_0 + K(g(t)); the 2-D experiment of method.md).
 * With `const` the target reduces to g'(t) v(g(t), x - x0) and the prior X_T = X_0 + K(g(T)) needs
 * data: `kacPrior` draws only the K(g(T)) part (see `kacPriorFromData`).
 */
export type KacSignal = 'linear' | 'exp' | 'const';
/** Kac clock g: `t` g(t) = t (default), `t2` g(t) = T (t/T)^2. */
export type KacClock = 't' | 't2';

export const KAC_SIGNALS: readonly KacSignal[] = ['linear', 'exp', 'const'];
export const KAC_CLOCKS: readonly KacClock[] = ['t', 't2'];

/** Parameters of the Kac flow. */
export interface KacConfig {
  /** Switching rate of the velocity flips (> 0). */
  a: number;
  /** Speed (> 0); every velocity is bounded by c per coordinate. */
  c: number;
  /** Time horizon (> 0): data at t = 0, prior at t = T. */
  T: number;
  /**
   * Light-cone layer (>= 0): points with |x| >= c s - eps (s/T) c are treated as the atom and get
   * velocity sign(x) c. Reference code: 1e-4 for images, 1e-6 for 2-D.
   */
  eps: number;
  signal: KacSignal;
  clock: KacClock;
}

/** Defaults of the reference code: a = 9, c = 3, T = 1, eps = 1e-4, linear signal, clock g(t) = t. */
export const defaultKacConfig: Readonly<KacConfig> = Object.freeze({
  a: 9,
  c: 3,
  T: 1,
  eps: 1e-4,
  signal: 'linear',
  clock: 't',
});

const KAC_CONFIG_KEYS = ['a', 'c', 'T', 'eps', 'signal', 'clock'] as const;

/**
 * Builds a validated config from defaults plus overrides. Throws an Error naming the bad field and
 * what it allows (unknown fields too, so a typo like `clok` does not silently fall back to a default).
 */
export function kacConfig(partial: Partial<KacConfig> = {}): KacConfig {
  if (partial === null || typeof partial !== 'object') {
    throw new Error(`kacConfig: expected an object of overrides (got ${String(partial)})`);
  }
  for (const key of Object.keys(partial)) {
    if (!(KAC_CONFIG_KEYS as readonly string[]).includes(key)) {
      throw new Error(`KacConfig: unknown field '${key}'; allowed fields: ${KAC_CONFIG_KEYS.join(', ')}`);
    }
  }
  const cfg: KacConfig = { ...defaultKacConfig, ...stripUndefined(partial) };
  const positive = (name: 'a' | 'c' | 'T'): void => {
    const v = cfg[name];
    if (typeof v !== 'number' || !Number.isFinite(v) || !(v > 0)) {
      throw new Error(`KacConfig.${name} must be a finite number > 0 (got ${String(v)})`);
    }
  };
  positive('a');
  positive('c');
  positive('T');
  if (typeof cfg.eps !== 'number' || !Number.isFinite(cfg.eps) || !(cfg.eps >= 0)) {
    throw new Error(`KacConfig.eps must be a finite number >= 0 (got ${String(cfg.eps)})`);
  }
  if (!KAC_SIGNALS.includes(cfg.signal)) {
    throw new Error(
      `KacConfig.signal must be one of ${KAC_SIGNALS.map((s) => `'${s}'`).join(', ')} (got ${JSON.stringify(cfg.signal)})`,
    );
  }
  if (!KAC_CLOCKS.includes(cfg.clock)) {
    throw new Error(
      `KacConfig.clock must be one of ${KAC_CLOCKS.map((s) => `'${s}'`).join(', ')} (got ${JSON.stringify(cfg.clock)})`,
    );
  }
  return cfg;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Law of K(s)
// ---------------------------------------------------------------------------------------------

/** Mass of EACH atom (at +cs and at -cs): e^{-as}/2, the probability of no flip times 1/2. */
export function kacAtomMass(a: number, s: number): number {
  return 0.5 * Math.exp(-a * s);
}

/**
 * Density of the continuous part of K(s) at x (integrates to 1 - e^{-as} over |x| < cs; 0 outside
 * and on the light cone, where the atoms sit):
 *
 *     p(s,x) = e^{-as}/(2c) [a I0(z) + (a c s / r) I1(z)],  r = sqrt(c^2 s^2 - x^2), z = a r / c.
 *
 * Evaluated as e^{z - as}/(2c) [a i0e(z) + a^2 s i1e(z)/z], which cannot overflow (z <= as) and is
 * finite at r = 0; z - as is formed as -a x^2 / (c (r + cs)) to avoid cancellation near x = 0.
 */
export function kacDensity(a: number, c: number, s: number, x: number): number {
  const cs = c * s;
  const ax = Math.abs(x);
  if (!(s > 0) || !(ax < cs)) return 0;
  const r = Math.sqrt((cs - ax) * (cs + ax));
  const z = (a * r) / c;
  const zMinusAs = (-a * x * x) / (c * (r + cs));
  return (Math.exp(zMinusAs) / (2 * c)) * (a * i0e(z) + a * a * s * i1eOverX(z));
}

/**
 * Var K(s) = c^2/(2a^2) (2as - 1 + e^{-2as}). For small y = 2as the bracket is y^2/2 - y^3/6 + ...
 * and is summed as a series to avoid cancellation.
 */
export function kacVariance(a: number, c: number, s: number): number {
  const y = 2 * a * s;
  let bracket: number;
  if (y < 0.5) {
    // sum_{k>=2} (-y)^k / k!
    let term = (y * y) / 2;
    bracket = 0;
    for (let k = 2; k < 40 && term !== 0; k++) {
      bracket += term;
      term *= -y / (k + 1);
    }
  } else {
    bracket = y + Math.expm1(-y);
  }
  return ((c * c) / (2 * a * a)) * bracket;
}

// ---------------------------------------------------------------------------------------------
// Elementary samplers (on top of Philox, so every draw is reproducible and checkpointable)
// ---------------------------------------------------------------------------------------------

const HALF_LOG_2PI = 0.5 * Math.log(2 * Math.PI);
// Stirling-series coefficients B_{2k} / (2k (2k - 1)), k = 1..10.
const STIRLING = [
  1 / 12,
  -1 / 360,
  1 / 1260,
  -1 / 1680,
  1 / 1188,
  -691 / 360360,
  1 / 156,
  -3617 / 122400,
  43867 / 244188,
  -174611 / 125400,
];

/** log Gamma(x) for x > 0 (Stirling series after shifting x up to >= 7; ~1e-15 absolute). */
export function logGamma(x: number): number {
  if (!(x > 0)) throw new RangeError(`logGamma: x must be > 0 (got ${x})`);
  if (x === 1 || x === 2) return 0;
  let shift = 0;
  let x0 = x;
  while (x0 < 7) {
    x0 += 1;
    shift++;
  }
  const x2 = 1 / (x0 * x0);
  let series = STIRLING[9]!;
  for (let k = 8; k >= 0; k--) series = series * x2 + STIRLING[k]!;
  let lg = series / x0 + HALF_LOG_2PI + (x0 - 0.5) * Math.log(x0) - x0;
  for (let k = 0; k < shift; k++) {
    x0 -= 1;
    lg -= Math.log(x0);
  }
  return lg;
}

/** Poisson(mean) below this mean is drawn by inversion, at or above it by PTRS. */
const POISSON_INVERSION_MAX = 10;

/**
 * Poisson(mean) sample. mean < 10: inversion by sequential search (one uniform, ~mean steps);
 * mean >= 10: Hormann's PTRS transformed rejection with squeeze (exact, O(1) expected).
 */
export function samplePoisson(mean: number, rng: Philox): number {
  if (!(mean >= 0) || !Number.isFinite(mean)) {
    throw new RangeError(`samplePoisson: mean must be finite and >= 0 (got ${mean})`);
  }
  if (mean === 0) return 0;
  if (mean < POISSON_INVERSION_MAX) return poissonInversion(mean, Math.exp(-mean), rng);
  return poissonPtrs(mean, rng);
}

function poissonInversion(mean: number, expNegMean: number, rng: Philox): number {
  for (;;) {
    let u = rng.uniform();
    let p = expNegMean;
    let k = 0;
    // Subtract P(N = k) until u falls inside; restart in the (~1e-16 likely) event that rounding
    // lets u outlast every representable term.
    while (u >= p) {
      u -= p;
      k++;
      p *= mean / k;
      if (p === 0) break;
    }
    if (p !== 0) return k;
  }
}

function poissonPtrs(mean: number, rng: Philox): number {
  // W. Hormann, "The transformed rejection method for generating Poisson random variables",
  // Insurance: Mathematics and Economics 12 (1993).
  const slam = Math.sqrt(mean);
  const logLam = Math.log(mean);
  const b = 0.931 + 2.53 * slam;
  const a = -0.059 + 0.02483 * b;
  const invAlpha = 1.1239 + 1.1328 / (b - 3.4);
  const vr = 0.9277 - 3.6224 / (b - 2);
  for (;;) {
    const u = rng.uniform() - 0.5;
    const v = rng.uniform();
    const us = 0.5 - Math.abs(u);
    const k = Math.floor(((2 * a) / us + b) * u + mean + 0.43);
    if (us >= 0.07 && v <= vr) return k;
    if (k < 0 || (us < 0.013 && v > us)) continue;
    if (
      Math.log(v) + Math.log(invAlpha) - Math.log(a / (us * us) + b) <=
      -mean + k * logLam - logGamma(k + 1)
    ) {
      return k;
    }
  }
}

/**
 * Gamma(shape, 1) sample by Marsaglia-Tsang ("A simple method for generating gamma variables",
 * 2000); shape < 1 via Gamma(shape + 1) * U^{1/shape}.
 */
export function sampleGamma(shape: number, rng: Philox): number {
  if (!(shape > 0) || !Number.isFinite(shape)) {
    throw new RangeError(`sampleGamma: shape must be finite and > 0 (got ${shape})`);
  }
  if (shape < 1) return sampleGamma(shape + 1, rng) * Math.pow(rng.uniformOpen(), 1 / shape);
  const d = shape - 1 / 3;
  const cc = 1 / Math.sqrt(9 * d);
  for (;;) {
    let x: number;
    let v: number;
    do {
      x = rng.normal();
      v = 1 + cc * x;
    } while (v <= 0);
    v = v * v * v;
    const u = rng.uniformOpen();
    const x2 = x * x;
    if (u < 1 - 0.0331 * x2 * x2) return d * v;
    if (Math.log(u) < 0.5 * x2 + d * (1 - v + Math.log(v))) return d * v;
  }
}

/** Beta(alpha, beta) sample as G1 / (G1 + G2) with independent gammas. */
export function sampleBeta(alpha: number, beta: number, rng: Philox): number {
  const g1 = sampleGamma(alpha, rng);
  const g2 = sampleGamma(beta, rng);
  return g1 / (g1 + g2);
}

// ---------------------------------------------------------------------------------------------
// Kac samplers
// ---------------------------------------------------------------------------------------------

/**
 * Exact draw of K(s) from its precomputed Poisson mean `as`, `e^{-as}` and `cs` (the training batch
 * hoists them out of the per-coordinate loop). N ~ Poisson(as) flips; N = 0: the atom +-cs. Else the
 * N + 1 holding times are s * Dirichlet(1,...,1) and alternate direction, so the time spent moving
 * in the initial direction is s * Beta(m1, m2), m1 = ceil((N+1)/2), m2 = floor((N+1)/2), and
 * K = +-cs (2B - 1) with an independent sign.
 */
function kacSampleCore(as: number, expNegAs: number, cs: number, rng: Philox): number {
  const sign = rng.nextU32() >>> 31 ? 1 : -1;
  const n = as < POISSON_INVERSION_MAX ? poissonInversion(as, expNegAs, rng) : poissonPtrs(as, rng);
  if (n === 0) return sign * cs;
  const m1 = (n + 2) >>> 1;
  const m2 = (n + 1) >>> 1;
  const b = sampleBeta(m1, m2, rng);
  return sign * cs * (2 * b - 1);
}

/** Exact O(1) draw of K(s) (atoms included). K(0) = 0. */
export function kacSample(a: number, c: number, s: number, rng: Philox): number {
  if (!(s >= 0) || !Number.isFinite(s)) throw new RangeError(`kacSample: s must be finite and >= 0 (got ${s})`);
  if (s === 0) return 0;
  const as = a * s;
  return kacSampleCore(as, Math.exp(-as), c * s, rng);
}

/**
 * Slow reference: simulates the telegraph process flip by flip (exponential holding times of rate
 * a) and returns the final position, the final velocity (+-c) and the number of flips.
 */
export function kacSimulatePath(
  a: number,
  c: number,
  s: number,
  rng: Philox,
): { x: number; v: number; flips: number } {
  let v = rng.nextU32() >>> 31 ? c : -c;
  let t = 0;
  let x = 0;
  let flips = 0;
  for (;;) {
    const tau = -Math.log(rng.uniformOpen()) / a;
    if (t + tau >= s) {
      x += v * (s - t);
      return { x, v, flips };
    }
    x += v * tau;
    t += tau;
    v = -v;
    flips++;
  }
}

// ---------------------------------------------------------------------------------------------
// Velocity of the probability flow
// ---------------------------------------------------------------------------------------------

/** The parameters the velocity depends on (a KacConfig fits). */
export type KacVelocityParams = Pick<KacConfig, 'a' | 'c' | 'eps' | 'T'>;

/** v(s, x) given the precomputed light-cone layer threshold `layer = cs - eps (s/T) c`. */
function velocityCore(s: number, x: number, a: number, c: number, layer: number): number {
  const ax = Math.abs(x);
  if (ax >= layer) return x > 0 ? c : x < 0 ? -c : 0;
  const cs = c * s;
  const r = Math.sqrt((cs - ax) * (cs + ax));
  return x / (s + zI0OverI1((a * r) / c) / a);
}

/**
 * v(s, x) = E[V(s) | K(s) = x] = x / (s + (r/c) I0(z)/I1(z)), r = sqrt(c^2 s^2 - x^2), z = a r / c,
 * evaluated as x / (s + zI0OverI1(z)/a), which never overflows and is finite on the light cone.
 * |v| <= c. Light-cone layer: if |x| >= c s - eps (s/T) c the point is treated as the atom and
 * v = sign(x) c (sign(0) = 0, so v(0, 0) = 0; at s = 0 every x != 0 gets +-c).
 */
export function kacVelocity(s: number, x: number, p: KacVelocityParams = defaultKacConfig): number {
  if (!(s >= 0)) throw new RangeError(`kacVelocity: s must be >= 0 (got ${s})`);
  return velocityCore(s, x, p.a, p.c, p.c * s - p.eps * (s / p.T) * p.c);
}

// ---------------------------------------------------------------------------------------------
// Schedules and the conditional target
// ---------------------------------------------------------------------------------------------

/** Signal schedule f(t): linear 1 - t/T, exp e^{-t}, const 1. */
export function kacF(t: number, cfg: KacConfig = defaultKacConfig): number {
  return cfg.signal === 'linear' ? 1 - t / cfg.T : cfg.signal === 'exp' ? Math.exp(-t) : 1;
}

/** f'(t): linear -1/T, exp -e^{-t}, const 0. */
export function kacDF(t: number, cfg: KacConfig = defaultKacConfig): number {
  return cfg.signal === 'linear' ? -1 / cfg.T : cfg.signal === 'exp' ? -Math.exp(-t) : 0;
}

/** Kac clock g(t): `t` -> t, `t2` -> T (t/T)^2. */
export function kacG(t: number, cfg: KacConfig = defaultKacConfig): number {
  if (cfg.clock === 't') return t;
  const u = t / cfg.T;
  return cfg.T * u * u;
}

/** g'(t): `t` -> 1, `t2` -> 2 t / T. */
export function kacDG(t: number, cfg: KacConfig = defaultKacConfig): number {
  return cfg.clock === 't' ? 1 : (2 * t) / cfg.T;
}

/** Conditional flow-matching target u_t(x | x0) = f'(t) x0 + g'(t) v(g(t), x - f(t) x0). */
export function kacTarget(t: number, x: number, x0: number, cfg: KacConfig = defaultKacConfig): number {
  return kacDF(t, cfg) * x0 + kacDG(t, cfg) * kacVelocity(kacG(t, cfg), x - kacF(t, cfg) * x0, cfg);
}

/**
 * Prior sample x_T: n i.i.d. draws of K(g(T)) (atoms included; no Gaussian anywhere). Exact for the
 * linear signal, where f(T) = 0. With `signal: 'exp'`, f(T) = e^{-T} != 0, and this prior (the
 * reference code's choice) ignores the leftover e^{-T} x0 term. With `signal: 'const'` (f = 1) this
 * is ONLY the K part of the prior X_T = x0 + K(g(T)): the caller must add x0 drawn from the data
 * (`kacPriorFromData` does both).
 */
export function kacPrior(
  n: number,
  rng: Philox,
  cfg: KacConfig = defaultKacConfig,
  out: Float32Array = new Float32Array(n),
): Float32Array {
  if (out.length !== n) throw new RangeError(`kacPrior: out has length ${out.length}, expected ${n}`);
  const s = kacG(cfg.T, cfg);
  const as = cfg.a * s;
  const e = Math.exp(-as);
  const cs = cfg.c * s;
  for (let i = 0; i < n; i++) out[i] = kacSampleCore(as, e, cs, rng);
  return out;
}

/**
 * Prior sample from data: x_T = f(T) x0 + K(g(T)) per coordinate, K drawn exactly (atoms included),
 * consuming `rng` exactly as `kacPrior(x0.length, rng, cfg)` does. For `const` (f = 1) this is the
 * prior of the 2-D experiment, x0 + K(T); for `linear` (f(T) = 0) it equals `kacPrior`.
 */
export function kacPriorFromData(x0: Float32Array | Float64Array, rng: Philox, cfg: KacConfig = defaultKacConfig): Float32Array {
  const s = kacG(cfg.T, cfg);
  const as = cfg.a * s;
  const e = Math.exp(-as);
  const cs = cfg.c * s;
  const f = kacF(cfg.T, cfg);
  const out = new Float32Array(x0.length);
  for (let i = 0; i < out.length; i++) out[i] = f * x0[i]! + kacSampleCore(as, e, cs, rng);
  return out;
}

/**
 * One conditional-flow-matching batch. `x0` holds t.length examples of `perExample` coordinates
 * each (data scaled to [-1, 1]); example i uses time t[i] in [0, T]. Per coordinate:
 *
 *     K ~ K(g(t)) exactly,  xt = f(t) x0 + K,  target = f'(t) x0 + g'(t) v(g(t), K)
 *
 * (x - f x0 is K itself, so it is not recomputed from a rounded xt). Computed in float64, stored as
 * float32. Consumes `rng` coordinate by coordinate in order, so a checkpointed rng replays it.
 */
export function kacTrainingBatch(
  x0: Float32Array,
  perExample: number,
  t: Float64Array,
  rng: Philox,
  cfg: KacConfig = defaultKacConfig,
): { xt: Float32Array; target: Float32Array } {
  if (!Number.isInteger(perExample) || perExample <= 0) {
    throw new RangeError(`kacTrainingBatch: perExample must be a positive integer (got ${perExample})`);
  }
  if (x0.length !== perExample * t.length) {
    throw new RangeError(
      `kacTrainingBatch: x0.length (${x0.length}) must equal perExample (${perExample}) * t.length (${t.length})`,
    );
  }
  const { a, c, T, eps } = cfg;
  const xt = new Float32Array(x0.length);
  const target = new Float32Array(x0.length);
  for (let i = 0; i < t.length; i++) {
    const ti = t[i]!;
    if (!(ti >= 0 && ti <= T)) throw new RangeError(`kacTrainingBatch: t[${i}] = ${ti} is outside [0, T = ${T}]`);
    const f = kacF(ti, cfg);
    const df = kacDF(ti, cfg);
    const s = kacG(ti, cfg);
    const dg = kacDG(ti, cfg);
    const as = a * s;
    const e = Math.exp(-as);
    const cs = c * s;
    const layer = cs - eps * (s / T) * c;
    const base = i * perExample;
    for (let j = base; j < base + perExample; j++) {
      const x0j = x0[j]!;
      const k = s === 0 ? 0 : kacSampleCore(as, e, cs, rng);
      xt[j] = f * x0j + k;
      target[j] = df * x0j + dg * velocityCore(s, k, a, c, layer);
    }
  }
  return { xt, target };
}
