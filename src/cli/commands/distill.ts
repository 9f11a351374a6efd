// distillkac distill: endpoint distillation of a teacher into few-step students, stage by stage.
import { join } from 'node:path';
import { loadDataFor } from '../../data/index';
import { AB2_STARTS, type Ab2Start, DEFAULT_GUIDANCE, SOLVERS } from '../../models/sampling';
import { type ModelRunConfig, createModel, modelFromWeights, studentSteps } from '../../models/weights';
import { loadWeights } from '../../train/checkpoint';
import { distillStages } from '../../train/distill-stages';
import { checkTMin, commonFlags, gpuFor, optimOf, parseSchedule, positiveInts, runControl, runFlags } from '../common';
import { UsageError, command } from '../flags';
import { gridWriter } from '../grids';

export const distill = command({
  summary: 'Distill a teacher into few-step students by endpoint supervision, stage by stage.',
  flags: {
    teacher: { type: 'path', required: true, help: 'teacher weights (ema.safetensors from train, or a checkpoint)' },
    schedule: { type: 'list', default: ['100', '20', '4', '2', '1'], help: 'teacher steps, then each stage\'s student steps' },
    'teacher-solver': { type: 'string', choices: SOLVERS, default: 'ab2', help: 'solver of the original teacher' },
    'teacher-ab2-start': { type: 'string', choices: AB2_STARTS, default: 'euler', help: 'first sub-step of an AB-2 teacher in each student interval: euler (1 NFE) or heun (2 NFE, second order); recorded in the students\' config when heun' },
    guidance: { type: 'float', default: DEFAULT_GUIDANCE, help: 'guidance weight w baked into the students (1 = none)' },
    source: { type: 'string', choices: ['data', 'rollout'], default: 'data', help: 'x_t from forward-noised data or teacher rollouts' },
    't-min': { type: 'float', min: 0, default: 1e-5, help: 'end time of sampling' },
    ...runFlags({ steps: 400, batch: 32, lr: 2e-4, warmup: 20 }),
    out: { type: 'path', help: 'output folder: stage k writes to <out>/stage<k>-<steps>step (default: runs/distill)' },
    steps: { type: 'list', default: ['400'], help: 'training steps per stage: one count for every stage, or one per stage (e.g. 150,200,300,400)' },
    ...commonFlags,
  },
  async run(f) {
    const schedule = parseSchedule(f.schedule);
    const ab2Start = f['teacher-ab2-start'] as Ab2Start;
    if (ab2Start !== 'euler' && f['teacher-solver'] !== 'ab2') throw new UsageError(`--teacher-ab2-start ${ab2Start}: only an AB-2 teacher (--teacher-solver ab2) has a start step to choose`);
    const stageSteps = positiveInts('steps', f.steps);
    if (stageSteps.length !== 1 && stageSteps.length !== schedule.length - 1) {
      throw new UsageError(`--steps: ${stageSteps.length} counts for ${schedule.length - 1} stages; give one count for every stage or one per stage`);
    }
    const stepsOfStage = (k: number) => stageSteps.length === 1 ? stageSteps[0] : stageSteps[k - 1];
    const teacher = loadWeights(f.teacher);
    const own = studentSteps(teacher);
    if (own && f.guidance !== 1) {
      throw new UsageError(`--teacher: ${f.teacher} is a distilled ${own}-step student, with its teacher's guidance already baked in; distill from the teacher's weights, or pass --guidance 1 to continue from this student`);
    }
    checkTMin(f['t-min'], teacher);
    const data = loadDataFor(teacher);
    const gpu = await gpuFor(f);
    const optim = optimOf(f, stepsOfStage(1));
    const root = f.out ?? join('runs', 'distill');
    const guidance = { scale: f.guidance, nullClass: data.numClasses };
    const shape = [data.channels, data.height, data.width];
    const runCfg: ModelRunConfig = { model: teacher.run.model, kac: teacher.run.kac, data: teacher.run.data };
    const results = await distillStages({
      root, data, createModel: () => createModel(runCfg.model),
      // teacherAb2Start is recorded only when it is not the default, so stages made before the option
      // existed (the committed students: Euler start) keep matching their config on --resume
      config: { ...runCfg, guidance: guidance.scale, teacherSolver: f['teacher-solver'], ...(ab2Start !== 'euler' ? { teacherAb2Start: ab2Start } : {}), source: f.source, tMin: f['t-min'], batch: f.batch, seed: f.seed, optim: { ...optim, steps: undefined } },
      kac: runCfg.kac, tMin: f['t-min'], optim, batch: f.batch, seed: f.seed,
      schedule, stageSteps: stepsOfStage, teacherWeights: teacher.weights, teacherSolver: f['teacher-solver'], teacherAb2Start: ab2Start, guidance,
      source: f.source, ...runControl(f),
    });
    for (const [i, r] of results.entries()) {
      const student = modelFromWeights(loadWeights(r.weightsPath));
      await gridWriter(r.dir, shape, data.numClasses, runCfg, r.steps, 'euler', f.batch, f['t-min'])(student, stepsOfStage(i + 1));
      student.dispose();
      console.log(`${r.steps}-step student: ${r.weightsPath}`);
    }
    gpu.destroy();
  },
});
