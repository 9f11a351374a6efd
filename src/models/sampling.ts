// The damped-wave sampler: integrate dx/dt = u(x, t) backwards from t = T to t_min on a uniform
// grid with Euler, AB-2, midpoint or Heun, with classifier-free guidance in velocity space.
//
// Guidance convention (method.md section 3):  u_w = u(x, t, null) + w * (u(x, t, y) - u(x, t, null)).
// w = 1 is no guidance (one forward pass); otherwise both branches run in ONE batched forward pass.
// (The other convention in circulation, (1 + w') u_cond - w' u_uncond, is this with w = 1 + w'.)
import { Tensor, concat, ew, noGrad, scope, tensor } from '../engine/index';
import { f32 } from '../kernels/kernel';
import { Philox } from '../engine/philox';
import { type KacConfig, defaultKacConfig, kacPrior } from './kac';
import { type Ab2Start, type Solver, type StepTime, runStep, solverStep, tensorStepOps } from './solvers';

/** A velocity network u_theta(x, t, y): x [B, ...], t [B] float32, y [B] int32. */
export interface VelocityModel {
  forward(x: Tensor, t: Tensor, y: Tensor): Tensor;
}

export { AB2_STARTS, NFE_PER_STEP, SOLVERS, type Ab2Start, type Solver } from './solvers';

/** The guidance weight used when none is given (teacher sampling, distillation, evaluation). Measured
 *  on the small MNIST teacher, AB-2 with 20 steps, 100 digits: w = 1.2 gave FD-LeNet 15.1 and 95%
 *  class consistency, w = 2 gave 26.3 and 98%; 1.5 trades a little of one for the other. */
export const DEFAULT_GUIDANCE = 1.5;

export interface Guidance {
  /** guidance weight w (1 = none) */
  scale: number;
  /** the label meaning "no class" (the unconditional branch) */
  nullClass: number;
}

/** The guided velocity at per-example times `t` (float32 [B]). */
export function guidedVelocity(model: VelocityModel, x: Tensor, t: Tensor, labels: Tensor, guidance?: Guidance): Tensor {
  return guidedVelocityParts(model, x, t, labels, guidance).u;
}

/** The guided velocity `u` and, when guided, the two branches it mixes (conditional, unconditional). */
export function guidedVelocityParts(model: VelocityModel, x: Tensor, t: Tensor, labels: Tensor, guidance?: Guidance): { u: Tensor; cond?: Tensor; uncond?: Tensor } {
  if (!guidance || guidance.scale === 1) return { u: model.forward(x, t, labels) };
  const b = x.shape[0];
  const nulls = tensor(new Int32Array(b).fill(guidance.nullClass), [b]);
  const both = model.forward(concat([x, x]), concat([t, t]), concat([labels, nulls]));
  const rest = x.shape.slice(1);
  const cond = both.slice([0], [b]).reshape([b, ...rest]);
  const uncond = both.slice([b], [2 * b]).reshape([b, ...rest]);
  return { u: ew('cfg', `n + ${f32(guidance.scale)} * (c - n)`, { n: uncond, c: cond }), cond, uncond };
}

/**
 * Largest |u| per sampling step, over the batch's coordinates and every velocity the step evaluates
 * (2 for midpoint, Heun and a Heun-started AB-2 step): `integrated` is the field the solver
 * integrates (for a guided step the guided combination), `cond`/`uncond` its two branches (guided
 * runs only). Measured on the GPU (one max reduction per evaluation) and read back once, after the
 * last step.
 */
export interface VelocityMaxima {
  integrated: number[];
  cond?: number[];
  uncond?: number[];
}

/** Per-step maximum of several batches' maxima (the same steps, e.g. the batches of generateSamples). */
export function mergeVelocityMaxima(a: VelocityMaxima | undefined, b: VelocityMaxima): VelocityMaxima {
  if (!a) return b;
  const m = (p?: number[], q?: number[]) => (p && q ? p.map((v, i) => Math.max(v, q[i]!)) : undefined);
  return { integrated: m(a.integrated, b.integrated)!, cond: m(a.cond, b.cond), uncond: m(a.uncond, b.uncond) };
}

export interface IntegrateOptions {
  model: VelocityModel;
  /** start point [B, ...] (not modified) */
  x: Tensor;
  /** per-example start times */
  tStart: Float64Array | number[];
  /** step size (positive: integrates towards smaller t) */
  dt: number;
  steps: number;
  solver: Solver;
  labels: Tensor;
  guidance?: Guidance;
  /** called after each step with the step index */
  onStep?: (step: number) => void;
  /** AB-2's first step: Euler (default) or Heun */
  ab2Start?: Ab2Start;
  /** also measure the largest |u| of each step (`velocityMax` of the result) */
  stats?: boolean;
}

/** Integrate from tStart down to tStart - steps * dt; returns the end point and the NFE spent. */
export async function integrate(opts: IntegrateOptions): Promise<{ x: Tensor; nfe: number; velocityMax?: VelocityMaxima }> {
  const { model, labels, guidance, dt, solver } = opts;
  const guided = guidance !== undefined && guidance.scale !== 1;
  const b = opts.x.shape[0];
  if (opts.tStart.length !== b) throw new Error(`integrate: ${opts.tStart.length} start times for a batch of ${b}`);
  const times = (k: number, offset = 0) => tensor(Float32Array.from(opts.tStart, (t0) => t0 - k * dt - offset), [b]);
  // per-step maxima stay on the GPU ([1] or [3] each: integrated, cond, uncond) until the end
  const maxima: Tensor[] = [];
  const absMax = (v: Tensor) => v.abs().max().reshape([1]);
  let x = opts.x;
  let prevU: Tensor | null = null;
  let nfe = 0;
  try {
    await noGrad(async () => {
      for (let k = 0; k < opts.steps; k++) {
        const next = scope(() => {
          const at = (when: StepTime) => (when === 'start' ? times(k) : when === 'mid' ? times(k, dt / 2) : times(k + 1));
          let stepMax: Tensor | null = null;
          const u = (xs: Tensor, t: Tensor) => {
            const parts = guidedVelocityParts(model, xs, t, labels, guidance);
            if (opts.stats) {
              const m = parts.cond && parts.uncond ? concat([absMax(parts.u), absMax(parts.cond), absMax(parts.uncond)]) : absMax(parts.u);
              stepMax = stepMax ? stepMax.maximum(m) : m;
            }
            return parts.u;
          };
          const { nfe: used, ...out } = runStep(solverStep(solver, tensorStepOps, dt, x, prevU, opts.ab2Start), (xs, when) => u(xs, at(when)));
          nfe += used;
          return { ...out, stepMax: stepMax as Tensor | null };
        });
        if (x !== opts.x) x.dispose();
        prevU?.dispose();
        x = next.x;
        prevU = next.u;
        if (next.stepMax) maxima.push(next.stepMax);
        opts.onStep?.(k);
        // bound the recorded work so memory and latency stay flat on long runs
        if (k % 8 === 7) await x.gpu.sync();
      }
    });
  } catch (e) {
    // a failed step (or an onStep that throws to stop) frees the state it holds, not the caller's x
    if (x !== opts.x) x.dispose();
    (prevU as Tensor | null)?.dispose();
    for (const m of maxima) m.dispose();
    throw e;
  }
  (prevU as Tensor | null)?.dispose(); // (assigned inside the closure above)
  if (!opts.stats) return { x, nfe };
  // one read-back for the whole run
  const cat = maxima.length ? concat(maxima) : null;
  const all = cat ? Array.from(await cat.toArray()) : [];
  cat?.dispose();
  for (const m of maxima) m.dispose();
  const w = guided ? 3 : 1;
  const column = (j: number) => Array.from({ length: maxima.length }, (_, k) => all[k * w + j]!);
  return { x, nfe, velocityMax: guided ? { integrated: column(0), cond: column(1), uncond: column(2) } : { integrated: column(0) } };
}

export interface SampleOptions {
  model: VelocityModel;
  /** one label per sample (int32 values; nullClass = unconditional) */
  labels: Int32Array;
  /** shape of one sample, e.g. [1, 28, 28] */
  sampleShape: number[];
  steps: number;
  solver?: Solver;
  guidance?: Guidance;
  kac?: KacConfig;
  /** end time of the integration (default 1e-5) */
  tMin?: number;
  seed: number;
  onStep?: (step: number) => void;
  /** AB-2's first step (default Euler) */
  ab2Start?: Ab2Start;
  /** measure the largest |u| per step (`velocityMax`) */
  stats?: boolean;
}

/** Draw x_T from the Kac prior (exact, per coordinate) and integrate to t_min. */
export async function sample(opts: SampleOptions): Promise<{ samples: Tensor; nfe: number; velocityMax?: VelocityMaxima }> {
  const kac = opts.kac ?? defaultKacConfig;
  const tMin = opts.tMin ?? 1e-5;
  if (!Number.isInteger(opts.steps) || opts.steps < 1) throw new Error(`sample: steps must be a positive integer, got ${opts.steps}`);
  if (!(tMin >= 0 && tMin < kac.T)) throw new Error(`sample: t-min must be in [0, T) = [0, ${kac.T}), got ${tMin}`);
  // the prior of a 'const' signal needs data (x_T = x0 + K): kacPriorFromData, as the 2-D experiment does
  if (kac.signal === 'const') throw new Error("sample: a model with signal 'const' has a prior that depends on the data; sample it with kacPriorFromData and integrate()");
  // a class embedding returns zeros for an index past its table: check here, where labels are on the host
  const maxLabel = opts.guidance ? opts.guidance.nullClass : Infinity;
  const bad = opts.labels.findIndex((l) => l < 0 || l > maxLabel);
  if (bad >= 0) throw new Error(`sample: label ${opts.labels[bad]} (at ${bad}) is not a class in 0..${Number.isFinite(maxLabel) ? `${maxLabel - 1} (${maxLabel} = unconditional)` : 'the model\'s classes'}`);
  const n = opts.labels.length;
  const per = opts.sampleShape.reduce((a, d) => a * d, 1);
  const prior = kacPrior(n * per, new Philox(opts.seed), kac);
  const x = tensor(prior, [n, ...opts.sampleShape]);
  const labels = tensor(opts.labels, [n]);
  try {
    const { x: out, nfe, velocityMax } = await integrate({
      model: opts.model,
      x,
      tStart: new Float64Array(n).fill(kac.T),
      dt: (kac.T - tMin) / opts.steps,
      steps: opts.steps,
      solver: opts.solver ?? 'euler',
      labels,
      guidance: opts.guidance,
      onStep: opts.onStep,
      ab2Start: opts.ab2Start,
      stats: opts.stats,
    });
    return { samples: out, nfe, velocityMax };
  } finally {
    x.dispose();
    labels.dispose();
  }
}
