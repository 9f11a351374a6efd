// The velocity bound, measured (issue 18): the largest |u| the sampler integrated at each step
// (VelocityMaxima, measured on the GPU by integrate) against the bounds of method.md: c for the Kac
// velocity v itself, (|w| + |1 - w|) c for its guided mix, and the bound of the exact marginal field
// of our process, |f'(t)| max|x0| + g'(t) c with data in [-1, 1] (times the same guidance factor).
import { type KacConfig, kacDF, kacDG } from '../models/kac';
import type { VelocityMaxima } from '../models/sampling';

export interface VelocityStep {
  step: number;
  /** the step's start and end times */
  t0: number;
  t1: number;
  integrated: number;
  cond?: number;
  uncond?: number;
  /** exact field bound over the step: (|w| + |1 - w|) (|f'| + g' c), the larger at its two ends */
  bound: number;
}

export interface VelocitySummary {
  c: number;
  /** the guidance weight of the integrated field (1 for a student: its guidance is baked in) */
  w: number;
  /** |w| + |1 - w| */
  guidedFactor: number;
  steps: VelocityStep[];
  /** the largest integrated |u| over all steps, and its step */
  max: number;
  maxStep: number;
}

/** |w| + |1 - w|: the factor the guided mix can add to a bound of both branches. */
export const guidedFactor = (w: number) => Math.abs(w) + Math.abs(1 - w);

/** Per-step maxima with their bounds, for a run of `steps` steps from T to tMin with guidance w. */
export function velocitySummary(vm: VelocityMaxima, kac: KacConfig, tMin: number, w: number): VelocitySummary {
  const n = vm.integrated.length;
  const dt = (kac.T - tMin) / n;
  const factor = guidedFactor(w);
  const fieldBound = (t: number) => factor * (Math.abs(kacDF(t, kac)) + kacDG(t, kac) * kac.c);
  const steps = vm.integrated.map((integrated, k) => {
    const t0 = kac.T - k * dt;
    const t1 = kac.T - (k + 1) * dt;
    return { step: k, t0, t1, integrated, ...(vm.cond ? { cond: vm.cond[k]!, uncond: vm.uncond![k]! } : {}), bound: Math.max(fieldBound(t0), fieldBound(t1)) };
  });
  let maxStep = 0;
  steps.forEach((s, k) => {
    if (s.integrated > steps[maxStep]!.integrated) maxStep = k;
  });
  return { c: kac.c, w, guidedFactor: factor, steps, max: n ? steps[maxStep]!.integrated : 0, maxStep };
}

const f = (v: number | undefined) => (v === undefined ? '-' : v.toFixed(3));

/** A markdown table, one line per step (or only the steps in `pick`). */
export function velocityTable(s: VelocitySummary, pick?: (step: number) => boolean): string {
  const guided = s.steps.some((r) => r.cond !== undefined);
  const lines = [
    `| step | t | max \\|u\\| integrated${guided ? ' | max \\|u_cond\\| | max \\|u_null\\|' : ''} | c | (\\|w\\| + \\|1 - w\\|) c | field bound (\\|f'\\| + g' c)·(\\|w\\| + \\|1 - w\\|) |`,
    `| ---: | --- | ---:${guided ? ' | ---: | ---:' : ''} | ---: | ---: | ---: |`,
  ];
  for (const r of s.steps) {
    if (pick && !pick(r.step)) continue;
    lines.push(`| ${r.step} | ${r.t0.toFixed(4)} -> ${r.t1.toFixed(4)} | ${f(r.integrated)}${guided ? ` | ${f(r.cond)} | ${f(r.uncond)}` : ''} | ${s.c} | ${f(s.guidedFactor * s.c)} | ${f(r.bound)} |`);
  }
  lines.push('', `largest integrated |u|: ${f(s.max)} at step ${s.maxStep} (${(s.max / s.c).toFixed(2)} c; guided bound (|w| + |1 - w|) c = ${f(s.guidedFactor * s.c)} with w = ${s.w})`);
  return `${lines.join('\n')}\n`;
}
