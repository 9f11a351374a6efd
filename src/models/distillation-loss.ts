// Endpoint-only distillation (method.md section 4). A student with M_S steps learns to land where a
// frozen teacher with M_T = N * M_S steps lands: supervised only at the two ends of each long
// interval. The student takes ONE Euler step over the interval; the teacher takes N sub-steps.
import { Tensor, noGrad, tensor } from '../engine/index';
import { type Ab2Start, type Guidance, type Solver, type VelocityModel, integrate } from './sampling';

/** The frozen teacher as seen by a distillation stage. */
export interface DistillTeacher {
  model: VelocityModel;
  /** the teacher's own number of steps over [t_min, T] (M_T) */
  steps: number;
  solver: Solver;
  /** guidance applied to the teacher (the original Kac teacher); a distilled student has it baked in */
  guidance?: Guidance;
  /** how an AB-2 teacher starts each interval (no velocity history crosses interval boundaries):
   *  'euler' (default, as the committed students were made) or 'heun' */
  ab2Start?: Ab2Start;
}

export interface StudentGrid {
  T: number;
  tMin: number;
  /** M_S */
  steps: number;
}

/** Student interval length Delta and the start time t_n = T - n Delta of interval n. */
export const intervalLength = (g: StudentGrid) => (g.T - g.tMin) / g.steps;
export const intervalStart = (g: StudentGrid, n: number) => g.T - n * intervalLength(g);

/** z: where the teacher lands after N = M_T / M_S sub-steps from x_t (no gradient). */
export async function teacherEndpoint(teacher: DistillTeacher, grid: StudentGrid, xt: Tensor, t: Float64Array, labels: Tensor): Promise<Tensor> {
  if (teacher.steps % grid.steps !== 0) {
    throw new Error(`distillation: the teacher's ${teacher.steps} steps are not a multiple of the student's ${grid.steps}`);
  }
  const sub = teacher.steps / grid.steps;
  const { x } = await noGrad(() =>
    integrate({ model: teacher.model, x: xt, tStart: t, dt: intervalLength(grid) / sub, steps: sub, solver: teacher.solver, labels, guidance: teacher.guidance, ab2Start: teacher.ab2Start }),
  );
  return x;
}

/** mean |x_t - Delta * s_theta(x_t, t, y) - z|^2: the student's single Euler step against the teacher's endpoint. */
export function endpointLoss(student: VelocityModel, grid: StudentGrid, xt: Tensor, t: Float64Array, labels: Tensor, z: Tensor): Tensor {
  const delta = intervalLength(grid);
  const v = student.forward(xt, tensor(Float32Array.from(t), [t.length]), labels);
  return xt.sub(v.mul(delta)).sub(z).square().mean();
}
