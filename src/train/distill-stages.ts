// Distillation stages: each trains a student (initialised from its teacher) on teacher endpoints;
// a schedule such as 100 -> 20 -> 4 -> 2 -> 1 chains stages, each stage's EMA student becoming the
// next stage's teacher. Every stage checkpoints, resumes, and is skipped once finished.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { type Module, Tensor, ew, tensor } from '../engine/index';
import { Philox } from '../engine/philox';
import { type KacConfig, kacPrior, kacTrainingBatch } from '../models/kac';
import { type DistillTeacher, type StudentGrid, endpointLoss, intervalStart, teacherEndpoint } from '../models/distillation-loss';
import { type Ab2Start, type Guidance, type Solver, type VelocityModel, integrate } from '../models/sampling';
import { type HostTensors, assertSameConfig, readCheckpoint } from './checkpoint';
import type { Dataset } from '../data/index';
import { type LoopResult, type RunOptions, trainLoop } from './loop';
import { batchIndices } from './teacher';

/** Where a stage's x_t comes from: forward-noised data (default) or a teacher rollout from the prior. */
export type StartSource = 'data' | 'rollout';

export interface StudentOptions<M extends Module & VelocityModel> extends RunOptions<M> {
  data: Dataset;
  config: Record<string, unknown>;
  kac: KacConfig;
  tMin: number;
  batch: number;
  seed: number;
  teacher: DistillTeacher;
  studentSteps: number;
  init: HostTensors;
  source?: StartSource;
}

/** x_{t_n} by running the teacher from the prior; example j stops after its own number of steps.
 *  Steps are taken one at a time, so an AB-2 teacher rolls out with Euler here. */
async function rolloutStart(teacher: DistillTeacher, kac: KacConfig, tMin: number, shape: number[], stepsPer: Int32Array, labels: Tensor, rng: Philox): Promise<Tensor> {
  const b = stepsPer.length;
  const per = shape.reduce((a, d) => a * d, 1);
  let x = tensor(kacPrior(b * per, rng, kac), [b, ...shape]);
  const dt = (kac.T - tMin) / teacher.steps;
  const most = Math.max(...stepsPer);
  for (let s = 0; s < most; s++) {
    const { x: moved } = await integrate({ model: teacher.model, x, tStart: new Float64Array(b).fill(kac.T - s * dt), dt, steps: 1, solver: teacher.solver === 'ab2' ? 'euler' : teacher.solver, labels, guidance: teacher.guidance });
    const mask = tensor(Float32Array.from(stepsPer, (k) => (s < k ? 1 : 0)), [b, ...shape.map(() => 1)]);
    const next = ew('rollout.select', 'select(x, m2, m != 0.0)', { x, m2: moved, m: mask });
    x.dispose();
    moved.dispose();
    mask.dispose();
    x = next;
  }
  return x;
}

export function trainStudent<M extends Module & VelocityModel>(opts: StudentOptions<M>): Promise<LoopResult<M>> {
  const { data, kac, tMin, batch, seed, teacher, studentSteps, source, ...run } = opts;
  const shape = [data.channels, data.height, data.width];
  const per = shape.reduce((a, d) => a * d, 1);
  const grid: StudentGrid = { T: kac.T, tMin: opts.tMin, steps: opts.studentSteps };
  const sub = teacher.steps / opts.studentSteps;
  if (!Number.isInteger(sub) || sub < 1) throw new Error(`distillation: teacher steps ${teacher.steps} must be a multiple of student steps ${opts.studentSteps}`);
  return trainLoop({
    ...run,
    kind: 'student',
    label: opts.label ?? `student ${opts.studentSteps}-step`,
    loss: async (model, step) => {
      const idx = batchIndices(data.n, opts.batch, step, opts.seed);
      const rng = new Philox(opts.seed, step);
      const n = Int32Array.from(idx, () => Math.floor(rng.uniform() * opts.studentSteps));
      const t = Float64Array.from(n, (k) => intervalStart(grid, k));
      const labels = tensor(Int32Array.from(idx, (k) => data.labels[k]), [idx.length]);
      let xt: Tensor;
      if ((opts.source ?? 'data') === 'data') {
        const x0 = new Float32Array(idx.length * per);
        idx.forEach((k, j) => x0.set(data.images.subarray(k * per, (k + 1) * per), j * per));
        xt = tensor(kacTrainingBatch(x0, per, t, rng, kac).xt, [idx.length, ...shape]);
      } else {
        xt = await rolloutStart(teacher, kac, opts.tMin, shape, Int32Array.from(n, (k) => k * sub), labels, rng);
      }
      const z = await teacherEndpoint(teacher, grid, xt, t, labels);
      return endpointLoss(model, grid, xt, t, labels, z);
    },
  });
}

export interface StagesOptions<M extends Module & VelocityModel> extends Omit<StudentOptions<M>, 'outDir' | 'teacher' | 'studentSteps' | 'init' | 'label'> {
  /** root folder; stage k writes to `<root>/stage<k>-<steps>step` */
  root: string;
  /** e.g. [100, 20, 4, 2, 1]: the first entry is the teacher's step count */
  schedule: number[];
  /** training steps of stage k (1-based); default: optim.steps for every stage */
  stageSteps?: (stage: number) => number;
  teacherWeights: HostTensors;
  teacherSolver: Solver;
  /** how the original AB-2 teacher starts each student interval (default 'euler') */
  teacherAb2Start?: Ab2Start;
  guidance: Guidance;
}

export interface StageResult {
  steps: number;
  dir: string;
  weightsPath: string;
}

/** SHA-256 of a set of weights (names, shapes and values). */
export function weightsDigest(weights: HostTensors): string {
  const h = createHash('sha256');
  for (const name of Object.keys(weights).sort()) {
    const { shape, data } = weights[name];
    h.update(`${name}[${shape.join(',')}]`);
    h.update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  }
  return h.digest('hex');
}

/** Run (or resume, or skip when finished) every stage of the schedule in order. */
export async function distillStages<M extends Module & VelocityModel>(opts: StagesOptions<M>): Promise<StageResult[]> {
  const { root, schedule, stageSteps, teacherWeights, teacherSolver, teacherAb2Start, guidance, ...studentOpts } = opts;
  if (schedule.length < 2) throw new Error('distillation schedule needs a teacher step count and at least one student step count, e.g. 100,20,4,2,1');
  schedule.slice(1).forEach((s, i) => {
    if (!Number.isInteger(s) || s < 1 || schedule[i] % s !== 0) throw new Error(`distillation schedule ${schedule.join(' -> ')}: each count must divide the one before it`);
  });
  const results: StageResult[] = [];
  let weights = opts.teacherWeights;
  const teacherModel: M = opts.createModel();
  teacherModel.loadStateDict(weights);
  teacherModel.requiresGrad(false);
  let teacher: DistillTeacher = { model: teacherModel, steps: schedule[0], solver: opts.teacherSolver, guidance: opts.guidance, ab2Start: teacherAb2Start };
  for (let k = 1; k < schedule.length; k++) {
    const steps = schedule[k];
    const dir = join(opts.root, `stage${k}-${steps}step`);
    const weightsPath = join(dir, 'ema.safetensors');
    const optim = { ...opts.optim, steps: opts.stageSteps?.(k) ?? opts.optim.steps };
    // the teacher's weights are part of a stage's settings: a retrained teacher gets new students
    const config = { ...opts.config, stage: k, schedule, teacherSteps: teacher.steps, teacherSha256: weightsDigest(weights) };
    const earlier = existsSync(weightsPath) ? readCheckpoint(weightsPath) : null;
    // a finished stage is reused only when it was made with the same settings
    if (earlier) assertSameConfig(earlier.config, config, `stage ${k} (${weightsPath})`);
    const done = earlier !== null && earlier.step >= optim.steps;
    if (!done) {
      await trainStudent({ ...studentOpts, optim, outDir: dir, teacher, studentSteps: steps, init: weights, config });
    } else if (!opts.quiet) {
      console.error(`stage ${k} (${steps} steps) already finished: ${weightsPath}`);
    }
    weights = readCheckpoint(weightsPath).tensors;
    results.push({ steps, dir, weightsPath });
    const student = opts.createModel();
    student.loadStateDict(weights);
    student.requiresGrad(false);
    (teacher.model as M).dispose();
    teacher = { model: student, steps, solver: 'euler' };
  }
  (teacher.model as M).dispose();
  return results;
}
