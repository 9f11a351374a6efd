// The 2-D experiment of method.md (last paragraph): a Kac flow and a VE-diffusion baseline, both
// trained label-free on the 3x3 near-Dirac mixture with the same network (VelocityMlp: 3 x 256 ReLU on
// [x, t]), Adam 5e-4, batch 256; 5,000 samples from each, integrated with the same solver and steps;
// metrics: mean NLL under the true mixture and the largest velocity seen along the trajectories.
//
// Processes (data at t = 0, noise at t = T):
//
//   Kac (signal 'const', clock 't'):  X_t = X_0 + K(t) per coordinate,  target g'(t) v(g(t), X_t - X_0),
//     prior X_T = X_0 + K(T) with X_0 drawn from the mixture. Every target has |u_d| <= c per
//     coordinate, so |u| <= c sqrt(2) in the Euclidean norm (the bound "c" of the paper is per coordinate).
//   VE (schedule 'geometric', the default):  X_t = X_0 + sigma(t) eps,  sigma(t) = sigma_min (sigma_max / sigma_min)^(t/T),
//     conditional flow-matching target u = sigma'(t) eps, the probability-flow ODE dx/dt = u,
//     prior N(0, sigma_max^2 I) (ignores the data's own spread, as usual for VE; sigma_max = 5 >> 1).
//     Defaults: sigma_max = 5, sigma_min = 1e-5. sigma_min is deliberately BELOW the usual 0.002-0.01:
//     the ODE ends at data * N(0, sigma_min^2), and with modes of std 1e-4 a leftover noise of 0.002
//     alone would cost ~400 nats of NLL per point. With sigma_min = 1e-5 the endpoint is the data up
//     to 1% extra variance.
//   VE (schedule 'brownian', an option):  sigma(t) = sigma_B sqrt(t) (the a, c -> inf limit of the Kac
//     process, sigma_B^2 = c^2 / a = 1), prior X_0 + sigma_B sqrt(T) eps like the Kac prior. Its
//     velocity (x - E[x0 | x]) / (2t) blows up like t^{-1/2} as t -> 0; the geometric schedule's does
//     not (sigma'/sigma = log(sigma_max/sigma_min) / T is constant; its velocity is largest at t = T).
//
// For reference, the exact (float64) marginal velocity fields of all three are implemented here
// (`kacMixtureVelocity`, `veMixtureVelocity`) and sampled with the same solver, so the measured
// numbers separate what the process implies from what the network learned.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { manualSeed, noGrad, scope, tensor } from '../engine/index';
import { Philox } from '../engine/philox';
import { type KacConfig, kacConfig, kacDensity, kacDG, kacG, kacSample, kacTrainingBatch, kacVelocity } from '../models/kac';
import { SEED_STRIDE } from '../models/generate';
import { VelocityMlp } from '../models/mlp2d';
import { type VeConfig, veConfig, veDSigma, veSigma } from '../models/ve';
import { type Solver, type StepTime, float64StepOps, runStepAsync, solverStep } from '../models/solvers';
import { MIXTURE2D_MEANS, MIXTURE2D_STD, mixture2d, mixture2dLogDensity } from '../data/index';
import { trainLoop } from '../train/loop';
import { Axes, BLACK, Canvas, type RGB, type Scale, decades } from '../eval/plot';

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/** The Kac flow of the 2-D experiment: f = 1, g(t) = t, a = 9, c = 3, T = 1, light-cone layer 1e-6 (reference code, 2-D). */
export const KAC_2D: Readonly<KacConfig> = Object.freeze(kacConfig({ signal: 'const', clock: 't', a: 9, c: 3, T: 1, eps: 1e-6 }));

// ---------------------------------------------------------------------------------------------
// Exact marginal velocity fields of the Dirac / Gaussian mixture (float64 references)
// ---------------------------------------------------------------------------------------------

type Means = ReadonlyArray<readonly [number, number]>;

/**
 * Exact marginal velocity of the Kac flow (f = 1, any clock) started from a mixture of Diracs at
 * `means` (equal weights; the 1e-4 spread of the data is ignored: it is below c t for t > 3e-5):
 *
 *     u_d(t, x) = g'(t) sum_k w_k v(g(t), x_d - mu_kd),   w_k ∝ prod_d q(g(t), x_d - mu_kd)
 *
 * where q is the law of K(s) per coordinate: the density inside the light cone, the atom e^{-as}/2
 * on it (|y| within the eps-layer of c s, where v = sign(y) c). An atom outweighs any density, so the
 * modes with the most atom coordinates win. A convex combination of conditional velocities:
 * |u_d| <= c g'(t) always.
 *
 * Off the support (outside every mode's cone, where the field is not defined by the process) the
 * nearest mode is used, and a coordinate beyond its cone moves with `outside`:
 * - 'atom' (default): like the atom, sign(y) c g'(t), so |u_d| <= c g' holds everywhere;
 * - 'radial': y g'(t) / g(t), which reaches the mode exactly at t = 0 (exceeds c by excess / s).
 * Only a discretised trajectory gets there: backwards in time the cone shrinks at speed c and
 * overtakes density points (which move slower), so in continuous time they merge into the atom;
 * a finite step overshoots by up to c dt. With 'atom' that overshoot is carried to t = 0 (an
 * O(c dt) endpoint error), with 'radial' it shrinks in proportion to g(t).
 * `x` holds n points (x, y) interleaved; returns the n x 2 velocities.
 */
export function kacMixtureVelocity(
  x: Float64Array,
  t: number,
  cfg: KacConfig = KAC_2D,
  means: Means = MIXTURE2D_MEANS,
  outside: 'atom' | 'radial' = 'atom',
  out = new Float64Array(x.length),
): Float64Array {
  if (cfg.signal !== 'const') throw new Error(`kacMixtureVelocity: needs signal 'const' (f = 1), got '${cfg.signal}'`);
  const s = kacG(t, cfg);
  const dg = kacDG(t, cfg);
  const { a, c } = cfg;
  const cs = c * s;
  const tol = cfg.eps * (s / cfg.T) * c;
  const logAtom = -a * s - Math.LN2;
  const m = means.length;
  const logw = new Float64Array(m);
  const atoms = new Int32Array(m);
  const vel = new Float64Array(2 * m);
  for (let i = 0; i < x.length; i += 2) {
    let bestAtoms = -1;
    let nearest = 0;
    let nearestExcess = Infinity;
    for (let k = 0; k < m; k++) {
      let lw = 0;
      let na = 0;
      let excess = -Infinity;
      for (let d = 0; d < 2; d++) {
        const y = x[i + d]! - means[k]![d]!;
        const ay = Math.abs(y);
        excess = Math.max(excess, ay - cs);
        vel[2 * k + d] = s > 0 ? kacVelocity(s, y, cfg) : 0;
        if (ay > cs + tol) lw = -Infinity;
        else if (ay >= cs - tol) {
          na++;
          lw += logAtom;
        } else lw += Math.log(kacDensity(a, c, s, y));
      }
      logw[k] = lw;
      atoms[k] = lw === -Infinity ? -1 : na;
      if (atoms[k]! > bestAtoms) bestAtoms = atoms[k]!;
      if (excess < nearestExcess) {
        nearestExcess = excess;
        nearest = k;
      }
    }
    let u0 = 0;
    let u1 = 0;
    if (bestAtoms < 0) {
      // outside every cone: move like the nearest mode's atom, towards it
      for (let d = 0; d < 2; d++) {
        const y = x[i + d]! - means[nearest]![d]!;
        const v = Math.abs(y) >= cs - tol ? (outside === 'radial' && s > 0 ? y / s : Math.sign(y) * c) : vel[2 * nearest + d]!;
        if (d === 0) u0 = v;
        else u1 = v;
      }
    } else {
      let max = -Infinity;
      for (let k = 0; k < m; k++) if (atoms[k] === bestAtoms && logw[k]! > max) max = logw[k]!;
      let z = 0;
      for (let k = 0; k < m; k++) {
        if (atoms[k] !== bestAtoms) continue;
        const w = Math.exp(logw[k]! - max);
        z += w;
        u0 += w * vel[2 * k]!;
        u1 += w * vel[2 * k + 1]!;
      }
      // a convex combination of values in [-c, c]; clamp its rounding (it lands an ulp above c on
      // atom lines shared by several modes) so that |u_d| <= c g'(t) holds exactly, as documented
      u0 = Math.min(c, Math.max(-c, u0 / z));
      u1 = Math.min(c, Math.max(-c, u1 / z));
    }
    out[i] = dg * u0;
    out[i + 1] = dg * u1;
  }
  return out;
}

/**
 * Exact marginal velocity of the VE probability-flow ODE for the Gaussian mixture (means `means`,
 * std `std`, equal weights): p_t = (1/9) sum_k N(mu_k, (std^2 + sigma(t)^2) I), and
 *
 *     u(t, x) = -sigma sigma' grad log p_t(x) = sigma sigma' / (std^2 + sigma^2) (x - m(x)),
 *     m(x) = sum_k w_k mu_k,  w_k ∝ exp(-|x - mu_k|^2 / (2 (std^2 + sigma^2)))
 */
export function veMixtureVelocity(x: Float64Array, t: number, ve: VeConfig, std = MIXTURE2D_STD, means: Means = MIXTURE2D_MEANS, out = new Float64Array(x.length)): Float64Array {
  const sig = veSigma(t, ve);
  const v = std * std + sig * sig;
  const scale = (sig * veDSigma(t, ve)) / v;
  const m = means.length;
  const e = new Float64Array(m);
  for (let i = 0; i < x.length; i += 2) {
    let max = -Infinity;
    for (let k = 0; k < m; k++) {
      const dx = x[i]! - means[k]![0]!;
      const dy = x[i + 1]! - means[k]![1]!;
      e[k] = -(dx * dx + dy * dy) / (2 * v);
      if (e[k]! > max) max = e[k]!;
    }
    let z = 0;
    let m0 = 0;
    let m1 = 0;
    for (let k = 0; k < m; k++) {
      const w = Math.exp(e[k]! - max);
      z += w;
      m0 += w * means[k]![0]!;
      m1 += w * means[k]![1]!;
    }
    out[i] = scale * (x[i]! - m0 / z);
    out[i + 1] = scale * (x[i + 1]! - m1 / z);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Training batches (host side, float64, stored as float32)
// ---------------------------------------------------------------------------------------------

export interface Batch2d {
  xt: Float32Array;
  t: Float32Array;
  target: Float32Array;
}

/** The data of step `step`: fresh mixture points, the same for the Kac and the VE run of a seed. */
export function dataBatch(batch: number, step: number, seed: number): Float32Array {
  return mixture2d(batch, seed * SEED_STRIDE + step).images;
}

/** Kac flow-matching batch (label-free): t ~ U[0, T], xt = x0 + K(g(t)), target g'(t) v(g(t), K). */
export function kacBatch2d(batch: number, step: number, seed: number, cfg: KacConfig = KAC_2D): Batch2d {
  const x0 = dataBatch(batch, step, seed);
  const rng = new Philox(seed, 1 + step);
  const t = new Float64Array(batch);
  for (let i = 0; i < batch; i++) t[i] = rng.uniform() * cfg.T;
  const { xt, target } = kacTrainingBatch(x0, 2, t, rng, cfg);
  return { xt, t: Float32Array.from(t), target };
}

/**
 * VE flow-matching batch: t ~ U[tLow, T] (tLow = 0 for geometric; brownian needs tLow > 0, its
 * target's variance sigma'(t)^2 is not integrable at 0), eps ~ N(0, I), xt = x0 + sigma(t) eps,
 * target sigma'(t) eps (param 'velocity') or eps (param 'eps').
 */
export function veBatch2d(batch: number, step: number, seed: number, ve: VeConfig, tLow = 0): Batch2d {
  const x0 = dataBatch(batch, step, seed);
  const rng = new Philox(seed, 1 + step);
  const xt = new Float32Array(2 * batch);
  const target = new Float32Array(2 * batch);
  const t = new Float32Array(batch);
  for (let i = 0; i < batch; i++) {
    const ti = tLow + rng.uniform() * (ve.T - tLow);
    t[i] = ti;
    const sig = veSigma(ti, ve);
    const ds = ve.param === 'velocity' ? veDSigma(ti, ve) : 1;
    for (let d = 0; d < 2; d++) {
      const e = rng.normal();
      xt[2 * i + d] = x0[2 * i + d]! + sig * e;
      target[2 * i + d] = ds * e;
    }
  }
  return { xt, t, target };
}

// ---------------------------------------------------------------------------------------------
// Training
// ---------------------------------------------------------------------------------------------

export interface Train2dOptions {
  steps: number;
  batch: number;
  lr: number;
  /** EMA decay of the weights used for sampling (0: sample with the raw weights) */
  emaDecay: number;
  seed: number;
  /** the host batch of a step */
  makeBatch: (step: number) => Batch2d;
  /** network width / depth (defaults 256 / 3, the paper's) */
  hidden?: number;
  depth?: number;
  logEvery?: number;
  onLog?: (step: number, loss: number) => void;
}

export interface Train2dResult {
  /** the network used for sampling (EMA weights, or the raw ones with emaDecay 0) */
  model: VelocityMlp;
  losses: { step: number; loss: number }[];
  seconds: number;
}

/** Plain Adam (no weight decay, no clipping, no warmup) on the MSE to the host targets, through
 *  the training loop of train/loop.ts (its checkpoints go to a temporary folder, removed after). */
export async function train2d(opts: Train2dOptions): Promise<Train2dResult> {
  const { makeBatch, onLog, ...settings } = opts;
  manualSeed(opts.seed);
  const losses: { step: number; loss: number }[] = [];
  const outDir = mkdtempSync(join(tmpdir(), 'distillkac-2d-'));
  const started = performance.now();
  try {
    const res = await trainLoop({
      kind: 'velocity-2d',
      outDir,
      config: settings,
      optim: { steps: opts.steps, lr: opts.lr, warmupSteps: 0, weightDecay: 0, emaDecay: opts.emaDecay, emaWarmup: 10 },
      createModel: () => new VelocityMlp({ hidden: opts.hidden, depth: opts.depth }),
      logEvery: opts.logEvery ?? 100,
      checkpointEvery: opts.steps,
      quiet: true,
      onLog: (step, loss) => {
        losses.push({ step, loss });
        onLog?.(step, loss);
      },
      loss: (model, step) => {
        const b = makeBatch(step);
        const n = b.t.length;
        return model.forward(tensor(b.xt, [n, 2]), tensor(b.t, [n])).sub(tensor(b.target, [n, 2])).square().mean();
      },
    });
    return { model: opts.emaDecay > 0 ? res.emaModel : res.model, losses, seconds: (performance.now() - started) / 1000 };
  } finally {
    rmSync(outDir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// Sampling on the host with velocity tracking
// ---------------------------------------------------------------------------------------------

/** A velocity field on n x 2 points (interleaved) at time t; returns n x 2 velocities. */
export type Field2d = (x: Float64Array, t: number) => Float64Array | Promise<Float64Array>;

/** A trained network as a field: float32 in, float32 out, the exact output the sampler uses. */
export function mlpField(model: VelocityMlp, scale: (t: number) => number = () => 1): Field2d {
  return async (x, t) => {
    const n = x.length >> 1;
    const u = noGrad(() => scope(() => model.forward(tensor(Float32Array.from(x), [n, 2]), tensor(new Float32Array(n).fill(t), [n]))));
    const host = await u.toArray();
    u.dispose();
    const k = scale(t);
    const out = new Float64Array(host.length);
    for (let i = 0; i < host.length; i++) out[i] = k * host[i]!;
    return out;
  };
}

export interface VelocityRecord {
  /** time of the evaluation (the float64 grid time; a network field sees it rounded to float32) */
  t: number;
  /** max over points of the Euclidean norm |u| */
  maxNorm: number;
  /** max over points and coordinates of |u_d| (the norm Kac bounds by c) */
  maxAbs: number;
  /** points with a non-finite velocity */
  nonFinite: number;
}

export function velocityRecord(t: number, u: Float64Array): VelocityRecord {
  let maxNorm = 0;
  let maxAbs = 0;
  let nonFinite = 0;
  for (let i = 0; i < u.length; i += 2) {
    const a = u[i]!;
    const b = u[i + 1]!;
    if (!Number.isFinite(a) || !Number.isFinite(b)) {
      nonFinite++;
      continue;
    }
    maxNorm = Math.max(maxNorm, Math.hypot(a, b));
    maxAbs = Math.max(maxAbs, Math.abs(a), Math.abs(b));
  }
  return { t, maxNorm, maxAbs, nonFinite };
}

export interface Integrate2dOptions {
  T: number;
  tMin: number;
  steps: number;
  solver: Solver;
}

/**
 * Integrates dx/dt = u(x, t) from T down to tMin on a uniform grid with the step rules of
 * models/solvers.ts, in float64 on the host, recording the largest velocity of every function evaluation.
 */
export async function integrate2d(field: Field2d, x0: Float64Array, opts: Integrate2dOptions): Promise<{ x: Float64Array; trace: VelocityRecord[]; nfe: number }> {
  const { steps, solver } = opts;
  if (!Number.isInteger(steps) || steps < 1) throw new Error(`integrate2d: steps must be a positive integer (got ${steps})`);
  const dt = (opts.T - opts.tMin) / steps;
  const trace: VelocityRecord[] = [];
  let x: Float64Array = Float64Array.from(x0);
  let prev: Float64Array | null = null;
  for (let k = 0; k < steps; k++) {
    const t = opts.T - k * dt;
    const at = (when: StepTime) => (when === 'start' ? t : when === 'mid' ? t - dt / 2 : t - dt);
    const next: { x: Float64Array; u: Float64Array | null } = await runStepAsync(solverStep(solver, float64StepOps, dt, x, prev), async (xs, when) => {
      const u = await field(xs, at(when));
      trace.push(velocityRecord(at(when), u));
      return u;
    });
    x = next.x;
    prev = next.u;
  }
  return { x, trace, nfe: trace.length };
}

/** Largest velocity on points drawn from the marginal p_t at each of `times` (the ODE preserves p_t). */
export async function marginalScan(field: Field2d, drawMarginal: (t: number, i: number) => Float64Array, times: number[]): Promise<VelocityRecord[]> {
  const out: VelocityRecord[] = [];
  for (let i = 0; i < times.length; i++) out.push(velocityRecord(times[i]!, await field(drawMarginal(times[i]!, i), times[i]!)));
  return out;
}

/**
 * n points of x0 + K(g(t)) (Kac, f = 1) in float64, x0 from the mixture or, with `dirac`, at the
 * exact mode centres (which the exact field assumes: its atoms sit exactly at mu +- c g(t), and
 * at small t the light-cone layer is far thinner than float32 rounding).
 */
export function kacMarginal(n: number, t: number, seed: number, cfg: KacConfig = KAC_2D, dirac = false, stream = 7): Float64Array {
  if (cfg.signal !== 'const') throw new Error(`kacMarginal: needs signal 'const' (f = 1), got '${cfg.signal}'`);
  const out = dirac ? diracPoints(n, seed) : Float64Array.from(mixture2d(n, seed).images);
  const rng = new Philox(seed, stream);
  const s = kacG(t, cfg);
  for (let i = 0; i < out.length; i++) out[i] = out[i]! + kacSample(cfg.a, cfg.c, s, rng);
  return out;
}

/** n points of x0 + sigma(t) eps, x0 from the mixture. */
export function veMarginal(n: number, t: number, seed: number, ve: VeConfig): Float64Array {
  const x0 = mixture2d(n, seed).images;
  const rng = new Philox(seed, 7);
  const sig = veSigma(t, ve);
  const out = new Float64Array(2 * n);
  for (let i = 0; i < 2 * n; i++) out[i] = x0[i]! + sig * rng.normal();
  return out;
}

/** n points at the exact mode centres, the component chosen uniformly. */
export function diracPoints(n: number, seed: number, means: Means = MIXTURE2D_MEANS): Float64Array {
  const rng = new Philox(seed, 5);
  const out = new Float64Array(2 * n);
  for (let i = 0; i < n; i++) {
    const k = Math.min(means.length - 1, Math.floor(rng.uniform() * means.length));
    out[2 * i] = means[k]![0]!;
    out[2 * i + 1] = means[k]![1]!;
  }
  return out;
}

/** The Kac prior x0 + K(g(T)) in float64: x0 from the mixture (or the exact centres with `dirac`). */
export function kacPrior2d(n: number, seed: number, cfg: KacConfig = KAC_2D, dirac = false): Float64Array {
  return kacMarginal(n, cfg.T, seed, cfg, dirac, 3);
}

/** The VE prior: N(0, sigma_max^2 I) for geometric, x0 + sigma_B sqrt(T) eps for brownian. */
export function vePrior2d(n: number, seed: number, ve: VeConfig): Float64Array {
  const rng = new Philox(seed, 3);
  const out = new Float64Array(2 * n);
  if (ve.schedule === 'geometric') {
    for (let i = 0; i < 2 * n; i++) out[i] = ve.sigmaMax * rng.normal();
  } else {
    const x0 = mixture2d(n, seed).images;
    const s = veSigma(ve.T, ve);
    for (let i = 0; i < 2 * n; i++) out[i] = x0[i]! + s * rng.normal();
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------------------------

export interface NllStats {
  /** mean NLL (the metric; = mixture2dNll) */
  mean: number;
  median: number;
  p10: number;
  p90: number;
  /** mean of min(NLL, cap): the few points far off the modes cannot dominate it */
  meanClipped: number;
  cap: number;
  /** NLL of a point exactly at a mode, and the expected NLL of true data samples (= atMode + 1) */
  atMode: number;
  /** fraction of samples within r of their nearest mode */
  within1e3: number;
  within1e2: number;
  within1e1: number;
  /** median distance to the nearest mode */
  medianDistance: number;
  /** samples per nearest mode (index 3 * row + col, as MIXTURE2D_MEANS) */
  modeCounts: number[];
  nonFinite: number;
}

const quantile = (sorted: Float64Array, q: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.round(q * (sorted.length - 1))))]!;

/** NLL statistics of n x 2 points under the true mixture. */
export function nllStats(points: Float64Array, cap = 100, std = MIXTURE2D_STD): NllStats {
  const n = points.length >> 1;
  const nll = new Float64Array(n);
  const dist = new Float64Array(n);
  const modeCounts = new Array<number>(MIXTURE2D_MEANS.length).fill(0);
  let sum = 0;
  let clipped = 0;
  let nonFinite = 0;
  let w3 = 0;
  let w2 = 0;
  let w1 = 0;
  for (let i = 0; i < n; i++) {
    const x = points[2 * i]!;
    const y = points[2 * i + 1]!;
    const v = -mixture2dLogDensity(x, y, std);
    nll[i] = v;
    if (!Number.isFinite(v)) nonFinite++;
    sum += v;
    clipped += Math.min(v, cap);
    let best = Infinity;
    let kb = 0;
    MIXTURE2D_MEANS.forEach((m, k) => {
      const d = Math.hypot(x - m[0], y - m[1]);
      if (d < best) {
        best = d;
        kb = k;
      }
    });
    dist[i] = best;
    if (Number.isFinite(best)) modeCounts[kb]!++;
    if (best < 1e-3) w3++;
    if (best < 1e-2) w2++;
    if (best < 1e-1) w1++;
  }
  nll.sort();
  dist.sort();
  return {
    mean: sum / n,
    median: quantile(nll, 0.5),
    p10: quantile(nll, 0.1),
    p90: quantile(nll, 0.9),
    meanClipped: clipped / n,
    cap,
    atMode: -mixture2dLogDensity(0, 0, std),
    within1e3: w3 / n,
    within1e2: w2 / n,
    within1e1: w1 / n,
    medianDistance: quantile(dist, 0.5),
    modeCounts,
    nonFinite,
  };
}

/** max over records of maxNorm / maxAbs, and where (t) the largest maxAbs was seen. */
export function traceSummary(trace: VelocityRecord[]): { maxNorm: number; maxAbs: number; tAtMaxAbs: number; nonFinite: number } {
  let maxNorm = 0;
  let maxAbs = 0;
  let tAt = NaN;
  let nonFinite = 0;
  for (const r of trace) {
    maxNorm = Math.max(maxNorm, r.maxNorm);
    if (r.maxAbs > maxAbs) {
      maxAbs = r.maxAbs;
      tAt = r.t;
    }
    nonFinite += r.nonFinite;
  }
  return { maxNorm, maxAbs, tAtMaxAbs: tAt, nonFinite };
}

// ---------------------------------------------------------------------------------------------
// The whole experiment
// ---------------------------------------------------------------------------------------------

export interface Experiment2dOptions {
  /** training steps of each network */
  steps: number;
  batch: number;
  lr: number;
  emaDecay: number;
  seed: number;
  /** generated points per model */
  samples: number;
  /** uniform sampling steps from T to tMin, the same for every model */
  sampleSteps: number;
  solver: Solver;
  tMin: number;
  kac: KacConfig;
  ve: VeConfig;
  /** times of the velocity scan on the marginals p_t, and points per time */
  scanTimes: number[];
  scanPoints: number;
  hidden?: number;
  depth?: number;
  log?: (msg: string) => void;
}

/** 25 times log-spaced from 1e-6 to 1 (the velocity scan on the marginals). */
export const DEFAULT_SCAN_TIMES: readonly number[] = Array.from({ length: 25 }, (_, k) => 10 ** (-6 + k / 4));

export function experiment2dOptions(partial: Partial<Experiment2dOptions> & { steps: number }): Experiment2dOptions {
  return {
    batch: 256,
    lr: 5e-4,
    emaDecay: 0.999,
    seed: 0,
    samples: 5000,
    sampleSteps: 100,
    solver: 'euler',
    tMin: 1e-5,
    kac: KAC_2D,
    ve: veConfig(),
    scanTimes: [...DEFAULT_SCAN_TIMES],
    scanPoints: 2000,
    ...partial,
  };
}

export interface ModelResult {
  /** kac / ve (trained), kac-exact / ve-exact / ve-brownian-exact (float64 fields) */
  name: string;
  nll: NllStats;
  /** over all function evaluations of the sampler */
  velocity: { maxNorm: number; maxAbs: number; tAtMaxAbs: number; nonFinite: number };
  trace: VelocityRecord[];
  scan: VelocityRecord[];
  samples: Float64Array;
  nfe: number;
  seconds: { train: number; sample: number; scan: number };
  losses?: { step: number; loss: number }[];
}

export interface Experiment2dResult {
  options: Experiment2dOptions;
  trained: { kac: ModelResult; ve: ModelResult };
  exact: { kac: ModelResult; kacRadial: ModelResult; ve: ModelResult; veBrownian: ModelResult };
  seconds: number;
}

async function evaluate(
  name: string,
  field: Field2d,
  prior: Float64Array,
  drawMarginal: (t: number, i: number) => Float64Array,
  o: Experiment2dOptions,
  T: number,
): Promise<Omit<ModelResult, 'seconds' | 'losses'> & { seconds: { sample: number; scan: number } }> {
  let t0 = performance.now();
  const { x, trace, nfe } = await integrate2d(field, prior, { T, tMin: o.tMin, steps: o.sampleSteps, solver: o.solver });
  const sample = (performance.now() - t0) / 1000;
  t0 = performance.now();
  const scan = await marginalScan(field, drawMarginal, o.scanTimes);
  const scanS = (performance.now() - t0) / 1000;
  return { name, nll: nllStats(x), velocity: traceSummary(trace), trace, scan, samples: x, nfe, seconds: { sample, scan: scanS } };
}

/**
 * Trains the Kac flow and the VE baseline (same data stream, network, optimizer, steps), samples
 * both with the same solver and grid, scans their velocities on the marginals, and does the same
 * with the exact fields (Kac with both off-support rules, the configured VE, and the brownian VE)
 * for reference.
 */
export async function runExperiment2d(o: Experiment2dOptions): Promise<Experiment2dResult> {
  const log = o.log ?? (() => {});
  const started = performance.now();
  const { kac, ve } = o;
  if (kac.signal !== 'const') throw new Error(`runExperiment2d: the Kac config must use signal 'const' (got '${kac.signal}')`);
  if (o.tMin <= 0 || o.tMin >= Math.min(kac.T, ve.T)) throw new Error(`runExperiment2d: tMin must be in (0, T) (got ${o.tMin})`);
  const n = o.samples;
  const m = o.scanPoints;
  const sampleSeed = o.seed + 1_000_000; // sampling draws never reuse a training step's data
  const scanSeed = (i: number) => o.seed + 2_000_000 + i;
  const veTLow = ve.schedule === 'brownian' ? o.tMin : 0;
  const veScale = ve.param === 'eps' ? (t: number) => veDSigma(t, ve) : () => 1;
  const train = async (name: string, makeBatch: (step: number) => Batch2d) => {
    log(`training ${name}: ${o.steps} steps, batch ${o.batch}, lr ${o.lr}`);
    return train2d({
      steps: o.steps, batch: o.batch, lr: o.lr, emaDecay: o.emaDecay, seed: o.seed, makeBatch, hidden: o.hidden, depth: o.depth,
      logEvery: Math.max(1, Math.min(100, Math.floor(o.steps / 10))),
      onLog: (step, loss) => log(`  ${name} step ${step} loss ${loss.toPrecision(4)}`),
    });
  };

  const kTrain = await train('kac', (step) => kacBatch2d(o.batch, step, o.seed, kac));
  log(`  kac trained in ${kTrain.seconds.toFixed(1)} s; sampling ${n} points, ${o.sampleSteps} ${o.solver} steps`);
  const kEval = await evaluate('kac', mlpField(kTrain.model), kacPrior2d(n, sampleSeed, kac), (t, i) => kacMarginal(m, t, scanSeed(i), kac), o, kac.T);
  log(`  kac: NLL ${kEval.nll.mean.toPrecision(5)}, max |u_d| ${kEval.velocity.maxAbs.toFixed(3)}, max |u| ${kEval.velocity.maxNorm.toFixed(3)} (sample ${kEval.seconds.sample.toFixed(1)} s)`);

  const vTrain = await train('ve', (step) => veBatch2d(o.batch, step, o.seed, ve, veTLow));
  log(`  ve trained in ${vTrain.seconds.toFixed(1)} s; sampling`);
  const vEval = await evaluate('ve', mlpField(vTrain.model, veScale), vePrior2d(n, sampleSeed, ve), (t, i) => veMarginal(m, t, scanSeed(i), ve), o, ve.T);
  log(`  ve: NLL ${vEval.nll.mean.toPrecision(5)}, max |u_d| ${vEval.velocity.maxAbs.toFixed(3)}, max |u| ${vEval.velocity.maxNorm.toFixed(3)} (sample ${vEval.seconds.sample.toFixed(1)} s)`);

  log('exact fields (float64, CPU)');
  const brown = veConfig({ ...ve, schedule: 'brownian' });
  const kx = await evaluate('kac-exact', (x, t) => kacMixtureVelocity(x, t, kac), kacPrior2d(n, sampleSeed, kac, true), (t, i) => kacMarginal(m, t, scanSeed(i), kac, true), o, kac.T);
  const kr = await evaluate('kac-exact-radial', (x, t) => kacMixtureVelocity(x, t, kac, MIXTURE2D_MEANS, 'radial'), kacPrior2d(n, sampleSeed, kac, true), (t, i) => kacMarginal(m, t, scanSeed(i), kac, true), o, kac.T);
  const vx = await evaluate(`ve-exact`, (x, t) => veMixtureVelocity(x, t, ve), vePrior2d(n, sampleSeed, ve), (t, i) => veMarginal(m, t, scanSeed(i), ve), o, ve.T);
  const bx = await evaluate('ve-brownian-exact', (x, t) => veMixtureVelocity(x, t, brown), vePrior2d(n, sampleSeed, brown), (t, i) => veMarginal(m, t, scanSeed(i), brown), o, brown.T);
  for (const r of [kx, kr, vx, bx]) log(`  ${r.name}: NLL ${r.nll.mean.toPrecision(5)}, max |u_d| ${r.velocity.maxAbs.toFixed(3)}, max |u| ${r.velocity.maxNorm.toFixed(3)}`);
  const exact = (r: typeof kx): ModelResult => ({ ...r, seconds: { train: 0, ...r.seconds } });
  return {
    options: o,
    trained: {
      kac: { ...kEval, seconds: { train: kTrain.seconds, ...kEval.seconds }, losses: kTrain.losses },
      ve: { ...vEval, seconds: { train: vTrain.seconds, ...vEval.seconds }, losses: vTrain.losses },
    },
    exact: { kac: exact(kx), kacRadial: exact(kr), ve: exact(vx), veBrownian: exact(bx) },
    seconds: (performance.now() - started) / 1000,
  };
}

// ---------------------------------------------------------------------------------------------
// The figure
// ---------------------------------------------------------------------------------------------

/** Colours of the figure (the README's legend). */
export const FIGURE_COLOURS = {
  kac: [20, 90, 210] as RGB,
  ve: [215, 35, 35] as RGB,
  kacExact: [120, 175, 245] as RGB,
  veExact: [245, 150, 100] as RGB,
  veBrownianExact: [150, 60, 180] as RGB,
  c: BLACK,
};

/**
 * 2 x 3 panels. Top: trained Kac samples, trained VE samples (the square [-1.5, 1.5]^2), max |u_d|
 * along the sampling trajectories vs t (log y). Bottom: the same samples zoomed to +-0.05 around
 * the mode (0, 0), and max |u_d| on the marginals p_t vs t (log-log), trained and exact fields.
 * The dotted black line is y = c.
 */
export function plotExperiment2d(r: Experiment2dResult, path: string): void {
  const P = 300;
  const ML = 70;
  const MT = 40;
  const MR = 30;
  const MB = 50;
  const W = 3 * (ML + P + MR);
  const H = 2 * (MT + P + MB);
  const cv = new Canvas(W, H);
  const box = (col: number, row: number, x: Scale, y: Scale) => new Axes(cv, col * (ML + P + MR) + ML, row * (MT + P + MB) + MT, P, P, x, y);
  const col = FIGURE_COLOURS;
  const c = r.options.kac.c;
  const lin = (a: number, b: number): Scale => ({ min: a, max: b });
  const scatterPanel = (k: number, row: number, res: ModelResult, rgb: RGB, half: number, title: string) => {
    const ax = box(k, row, lin(-half, half), lin(-half, half));
    ax.scatter(res.samples, rgb, { r: 1, alpha: row === 0 ? 0.25 : 0.35 });
    const ticks = row === 0 ? [-1, 0, 1] : [-half, 0, half];
    ax.frame({ xTicks: ticks, yTicks: ticks, title });
    for (const m of MIXTURE2D_MEANS) {
      const px = ax.px(m[0]);
      const py = ax.py(m[1]);
      if (ax.inside(px, py)) {
        cv.line(px - 4, py, px + 4, py, BLACK);
        cv.line(px, py - 4, px, py + 4, BLACK);
      }
    }
  };
  const { kac, ve } = r.trained;
  scatterPanel(0, 0, kac, col.kac, 1.5, 'KAC SAMPLES');
  scatterPanel(1, 0, ve, col.ve, 1.5, 'VE SAMPLES');
  scatterPanel(0, 1, kac, col.kac, 0.05, 'KAC, ZOOM AT (0,0)');
  scatterPanel(1, 1, ve, col.ve, 0.05, 'VE, ZOOM AT (0,0)');

  const yScale: Scale = { min: 1e-2, max: 1e4, log: true };
  const series = (ax: Axes, recs: VelocityRecord[], rgb: RGB, dash?: [number, number]) =>
    ax.polyline(recs.map((q) => q.t), recs.map((q) => q.maxAbs), rgb, { dash, width: 2 });
  const T = Math.max(r.options.kac.T, r.options.ve.T);
  const ts = r.options.scanTimes;
  // two panels of the same five curves: along the sampling trajectory, and on the marginals p_t
  const panels = [
    { col: 0, x: lin(0, T), pick: (q: { trace: VelocityRecord[]; scan: VelocityRecord[] }) => q.trace, xTicks: [0, 0.25 * T, 0.5 * T, 0.75 * T, T], title: 'MAX |U_D| ALONG SAMPLING' },
    { col: 1, x: { min: Math.min(...ts), max: Math.max(...ts), log: true }, pick: (q: { trace: VelocityRecord[]; scan: VelocityRecord[] }) => q.scan, xTicks: decades(Math.min(...ts), Math.max(...ts)).filter((_, i) => i % 2 === 0), title: 'MAX |U_D| ON MARGINALS P_T' },
  ];
  for (const p of panels) {
    const ax = box(2, p.col, p.x, yScale);
    ax.hline(c, BLACK, [2, 3]);
    series(ax, p.pick(r.exact.veBrownian), col.veBrownianExact, [4, 3]);
    series(ax, p.pick(r.exact.ve), col.veExact, [4, 3]);
    series(ax, p.pick(r.exact.kac), col.kacExact, [4, 3]);
    series(ax, p.pick(ve), col.ve);
    series(ax, p.pick(kac), col.kac);
    ax.frame({ xTicks: p.xTicks, yTicks: decades(yScale.min, yScale.max), title: p.title, xLabel: 'T' });
  }
  cv.save(path);
}
