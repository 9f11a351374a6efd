// The four ODE solvers, each step rule written once and run on two kinds of state: GPU tensors
// (float32, sampling.ts) and float64 host arrays (the 2-D experiment). All integrate
// dx/dt = u(x, t) backwards, x <- x - dt u, on a uniform grid.
import { Tensor, ew } from '../engine/index';
import { f32 } from '../kernels/kernel';

export type Solver = 'euler' | 'ab2' | 'midpoint' | 'heun';
export const SOLVERS: readonly Solver[] = ['euler', 'ab2', 'midpoint', 'heun'];

/** Function evaluations per step (a guided evaluation counts once: both branches share a batch). */
export const NFE_PER_STEP: Record<Solver, number> = { euler: 1, ab2: 1, midpoint: 2, heun: 2 };

/** The moves a step rule makes, implemented by each kind of state. */
export interface StepOps<S> {
  /** x - h u */
  euler(x: S, h: number, u: S): S;
  /** x - (h / 2) u: the midpoint rule's half step */
  half(x: S, h: number, u: S): S;
  /** x - h (1.5 u - 0.5 p): Adams-Bashforth 2 with the previous step's velocity p */
  ab2(x: S, h: number, u: S, p: S): S;
  /** x - (h / 2) (u + v): Heun's trapezoid with the velocity v at the Euler end point */
  heun(x: S, h: number, u: S, v: S): S;
}

/** How AB-2 takes a step without a previous velocity (the first step of an integration): `euler`
 *  (first order, 1 NFE, the default) or `heun` (second order, 2 NFE; its start velocity becomes the
 *  next step's previous velocity, as an exact history would). */
export type Ab2Start = 'euler' | 'heun';
export const AB2_STARTS: readonly Ab2Start[] = ['euler', 'heun'];

/** Where in the step [t, t - dt] a velocity is asked for. */
export type StepTime = 'start' | 'mid' | 'end';

/**
 * One step of `solver` from x at the step's start: yields each point whose velocity it needs (one
 * NFE each) and receives that velocity; returns the new x and the velocity AB-2 keeps for the next
 * step (`prev`, null on the first step: AB-2 then starts with an Euler step, or a Heun step when
 * `ab2Start` is 'heun'). A generator, so the GPU path drives it synchronously inside a memory scope
 * and the host path with awaits.
 */
export function* solverStep<S>(solver: Solver, ops: StepOps<S>, dt: number, x: S, prev: S | null, ab2Start: Ab2Start = 'euler'): Generator<{ x: S; at: StepTime }, { x: S; u: S | null }, S> {
  const u = yield { x, at: 'start' };
  switch (solver) {
    case 'euler':
      return { x: ops.euler(x, dt, u), u: null };
    case 'ab2':
      if (prev) return { x: ops.ab2(x, dt, u, prev), u };
      if (ab2Start === 'heun') return { x: ops.heun(x, dt, u, yield { x: ops.euler(x, dt, u), at: 'end' }), u };
      return { x: ops.euler(x, dt, u), u };
    case 'midpoint':
      return { x: ops.euler(x, dt, yield { x: ops.half(x, dt, u), at: 'mid' }), u: null };
    case 'heun':
      return { x: ops.heun(x, dt, u, yield { x: ops.euler(x, dt, u), at: 'end' }), u: null };
  }
}

/** Runs one step with a synchronous velocity; returns the step's result and its NFE. */
export function runStep<S>(step: Generator<{ x: S; at: StepTime }, { x: S; u: S | null }, S>, velocity: (x: S, at: StepTime) => S): { x: S; u: S | null; nfe: number } {
  let nfe = 0;
  for (let r = step.next(); ; nfe++) {
    if (r.done) return { ...r.value, nfe };
    r = step.next(velocity(r.value.x, r.value.at));
  }
}

/** The same with a velocity that may be asynchronous (a host field evaluated on the GPU). */
export async function runStepAsync<S>(step: Generator<{ x: S; at: StepTime }, { x: S; u: S | null }, S>, velocity: (x: S, at: StepTime) => S | Promise<S>): Promise<{ x: S; u: S | null; nfe: number }> {
  let nfe = 0;
  for (let r = step.next(); ; nfe++) {
    if (r.done) return { ...r.value, nfe };
    r = step.next(await velocity(r.value.x, r.value.at));
  }
}

/** The step moves on GPU tensors: each one fused elementwise kernel. */
export const tensorStepOps: StepOps<Tensor> = {
  euler: (x, h, u) => ew('euler', `x - ${f32(h)} * u`, { x, u }),
  half: (x, h, u) => ew('half', `x - ${f32(h / 2)} * u`, { x, u }),
  ab2: (x, h, u, p) => ew('ab2', `x - ${f32(h)} * (1.5 * u - 0.5 * p)`, { x, u, p }),
  heun: (x, h, u, v) => ew('heun', `x - ${f32(h / 2)} * (u + v)`, { x, u, v }),
};

/** x - h c, elementwise, in float64. */
function axpy(x: Float64Array, h: number, c: Float64Array): Float64Array {
  const o = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) o[i] = x[i]! - h * c[i]!;
  return o;
}

/** f(u_i, v_i) elementwise, in float64. */
function zip(u: Float64Array, v: Float64Array, f: (a: number, b: number) => number): Float64Array {
  const c = new Float64Array(u.length);
  for (let i = 0; i < u.length; i++) c[i] = f(u[i]!, v[i]!);
  return c;
}

/** The step moves on float64 host arrays (the 2-D experiment's exact and learned fields). */
export const float64StepOps: StepOps<Float64Array> = {
  euler: (x, h, u) => axpy(x, h, u),
  half: (x, h, u) => axpy(x, h / 2, u),
  ab2: (x, h, u, p) => axpy(x, h, zip(u, p, (a, b) => 1.5 * a - 0.5 * b)),
  heun: (x, h, u, v) => axpy(x, h, zip(u, v, (a, b) => 0.5 * (a + b))),
};
