// The distillkac command: train, distill, sample, eval, bench, report, demo.
import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { type Gpu, manualSeed, noGrad } from '../engine/index';
import { initGpu } from '../engine/runtime/dawn';
import { encodeSafetensors } from '../io/safetensors';
import { KAC_CLOCKS, KAC_SIGNALS, type KacConfig, kacConfig } from '../models/kac';
import { DEFAULT_GUIDANCE, NFE_PER_STEP, SOLVERS, type Solver, sample } from '../models/sampling';
import { DEFAULT_SAMPLE_BATCH, generateSamples, maxSeed } from '../models/generate';
import { writeFileAtomic } from '../train/checkpoint';
import { distillStages } from '../train/distill-stages';
import { type FlagSpecs, UsageError, helpText, parseFlags } from './flags';
import { type DataSpec, type LoadedWeights, type ModelRunConfig, createModel, loadData, loadDataFor, loadWeights, modelFromWeights, saveGrid, samplesDir, studentSteps, unetConfigFor } from '../train/run';
import { trainTeacher } from '../train/teacher';
import { samplingDefaults } from '../models/weights';
import { evaluate, metricsTable } from '../eval/evaluate';
import { defaultClassifierPath } from '../eval/classifier';
import { writeReport } from '../eval/report';
import { ENGINES, type EngineName } from '../../bench/engines';

/** Samples one sample/eval command draws at most (all of them are held on the host). */
const MAX_SAMPLE_COUNT = 100_000;

const common: FlagSpecs = {
  backend: { type: 'string', choices: ['default', 'vulkan', 'opengl'], help: 'WebGPU backend (env DISTILLKAC_BACKEND)' },
  quiet: { type: 'bool', default: false, help: 'no progress bar' },
};

const dataFlags: FlagSpecs = {
  data: { type: 'string', choices: ['mnist', 'idx', 'png'], default: 'mnist', help: 'built-in MNIST, IDX files, or a folder of PNGs in class subfolders' },
  images: { type: 'path', help: 'IDX images file (*-idx3-ubyte[.gz]) for --data idx' },
  labels: { type: 'path', help: 'IDX labels file (*-idx1-ubyte[.gz]) for --data idx' },
  dir: { type: 'path', help: 'folder of class subfolders of PNGs for --data png' },
};

const optimFlags = (d: { steps: number; batch: number; lr: number; warmup: number }): FlagSpecs => ({
  steps: { type: 'int', min: 1, default: d.steps, help: 'training steps' },
  batch: { type: 'int', min: 1, default: d.batch, help: 'batch size' },
  lr: { type: 'float', min: 0, default: d.lr, help: 'AdamW learning rate' },
  warmup: { type: 'int', min: 0, default: d.warmup, help: 'learning-rate warmup steps' },
  'weight-decay': { type: 'float', min: 0, default: 0, help: 'AdamW weight decay' },
  'max-grad-norm': { type: 'float', min: 0, default: 1, help: 'global gradient-norm clip' },
  'ema-decay': { type: 'float', min: 0, max: 1, default: 0.999, help: 'EMA decay of the sampling weights' },
  'ema-warmup': { type: 'int', min: 0, default: 10, help: 'EMA decay ramp min(decay, (1+n)/(warmup+n))' },
  seed: { type: 'int', min: 0, max: Number.MAX_SAFE_INTEGER, default: 0, help: 'seed of every random choice in the run' },
  tune: { type: 'bool', default: false, help: `after the first step, time every kernel candidate of the run's matmul/convolution shapes and keep the fastest (saved to <out>/gemm-choices.json, used on resume); minutes of compiling on a software GPU, so for runs of an hour or more` },
  out: { type: 'path', help: 'output folder (checkpoints, log.jsonl, samples/, ema.safetensors)' },
  resume: { type: 'bool', default: false, help: 'continue from the newest checkpoint in --out' },
  'checkpoint-every': { type: 'int', min: 1, default: 250, help: 'steps between checkpoints (and sample grids)' },
  'log-every': { type: 'int', min: 1, default: 10, help: 'steps between log lines' },
});

const SPECS: Record<string, { summary: string; flags: FlagSpecs }> = {
  train: {
    summary: 'Train the Kac-flow teacher (class-conditional, with label dropout for guidance).',
    flags: {
      preset: { type: 'string', choices: ['tiny', 'small', 'base'], default: 'tiny', help: 'UNet size' },
      ...dataFlags,
      ...optimFlags({ steps: 1500, batch: 32, lr: 1e-3, warmup: 100 }),
      out: { type: 'path', help: 'output folder (checkpoints, log.jsonl, samples/, ema.safetensors) (default: runs/teacher-<preset>)' },
      'label-dropout': { type: 'float', min: 0, max: 1, default: 0.1, help: 'probability of the null class' },
      grids: { type: 'bool', default: true, help: 'write a sample grid (EMA weights) at each checkpoint (--grids false: none)' },
      'kac-a': { type: 'float', min: 0, default: 9, help: 'Kac switching rate a' },
      'kac-c': { type: 'float', min: 0, default: 3, help: 'Kac speed c' },
      'kac-T': { type: 'float', min: 0, default: 1, help: 'time horizon T' },
      eps: { type: 'float', min: 0, default: 1e-4, help: 'light-cone layer eps' },
      signal: { type: 'string', choices: KAC_SIGNALS.filter((s) => s !== 'const'), default: 'linear', help: 'signal schedule f (const needs a data-dependent prior: the 2-D experiment only)' },
      clock: { type: 'string', choices: KAC_CLOCKS, default: 't', help: 'Kac clock g' },
      ...common,
    },
  },
  distill: {
    summary: 'Distill a teacher into few-step students by endpoint supervision, stage by stage.',
    flags: {
      teacher: { type: 'path', required: true, help: 'teacher weights (ema.safetensors from train, or a checkpoint)' },
      schedule: { type: 'list', default: ['100', '20', '4', '2', '1'], help: 'teacher steps, then each stage\'s student steps' },
      'teacher-solver': { type: 'string', choices: SOLVERS, default: 'ab2', help: 'solver of the original teacher' },
      guidance: { type: 'float', default: DEFAULT_GUIDANCE, help: 'guidance weight w baked into the students (1 = none)' },
      source: { type: 'string', choices: ['data', 'rollout'], default: 'data', help: 'x_t from forward-noised data or teacher rollouts' },
      't-min': { type: 'float', min: 0, default: 1e-5, help: 'end time of sampling' },
      ...optimFlags({ steps: 400, batch: 32, lr: 2e-4, warmup: 20 }),
      out: { type: 'path', help: 'output folder: stage k writes to <out>/stage<k>-<steps>step (default: runs/distill)' },
      steps: { type: 'list', default: ['400'], help: 'training steps per stage: one count for every stage, or one per stage (e.g. 150,200,300,400)' },
      ...common,
    },
  },
  sample: {
    summary: 'Generate digits from a teacher or student and save a PNG grid (and optionally the raw samples).',
    flags: {
      checkpoint: { type: 'path', required: true, help: 'weights file (ema.safetensors or a checkpoint)' },
      steps: { type: 'int', min: 1, help: 'sampling steps (default: a student\'s own steps; 100 for a teacher)' },
      solver: { type: 'string', choices: SOLVERS, help: 'ODE solver (default: euler for students, ab2 for teachers)' },
      guidance: { type: 'float', help: `guidance weight w: u_null + w (u_cond - u_null); 1 = none (default: ${DEFAULT_GUIDANCE} for a teacher, 1 for a student, which has its teacher's baked in)` },
      labels: { type: 'list', default: ['all'], help: 'classes to draw, cycled over --count: 0,1,... or all' },
      count: { type: 'int', min: 1, max: MAX_SAMPLE_COUNT, default: 100, help: 'number of samples' },
      seed: { type: 'int', min: 0, max: maxSeed(MAX_SAMPLE_COUNT), default: 0, help: 'seed of the prior draw' },
      'batch-size': { type: 'int', min: 1, default: DEFAULT_SAMPLE_BATCH, help: 'samples per GPU batch' },
      out: { type: 'path', default: 'samples.png', help: 'PNG grid' },
      dump: { type: 'path', help: 'also write samples [K,C,H,W] (F32, in [-1,1]) and labels [K] (I32) as safetensors' },
      't-min': { type: 'float', min: 0, help: 'end time (default: a student\'s own t-min from distill, 1e-5 for a teacher)' },
      ...common,
    },
  },
  eval: {
    summary: 'Measure FD-LeNet, class consistency and images/s for the teacher at several NFE and each student.',
    flags: {
      teacher: { type: 'path', required: true, help: 'teacher weights' },
      students: { type: 'list', help: 'student weights files (comma-separated)' },
      count: { type: 'int', min: 10, max: MAX_SAMPLE_COUNT, default: 2000, help: 'generated digits per row (2000 for comparable FD-LeNet)' },
      'teacher-nfe': { type: 'list', default: ['1', '2', '4', '20', '100'], help: 'NFE of the teacher rows' },
      'teacher-solvers': { type: 'list', default: ['euler', 'ab2'], help: 'solvers of the teacher rows' },
      guidance: { type: 'float', default: DEFAULT_GUIDANCE, help: 'guidance weight of the teacher rows' },
      classifier: { type: 'path', default: defaultClassifierPath(), help: 'LeNet classifier weights' },
      seed: { type: 'int', min: 0, max: maxSeed(MAX_SAMPLE_COUNT), default: 0, help: 'seed of the prior draws' },
      'batch-size': { type: 'int', min: 1, default: DEFAULT_SAMPLE_BATCH, help: 'samples per GPU batch (teacher rows run twice that with guidance)' },
      out: { type: 'path', default: 'runs/eval', help: 'output folder (metrics.json, table.md, grids/)' },
      resume: { type: 'bool', default: false, help: 'keep the rows already in --out that were measured with the same weights and settings' },
      ...common,
    },
  },
  report: {
    summary: 'Write an HTML report (metrics table, sample grids, loss curves) for a run folder.',
    flags: {
      run: { type: 'path', default: 'runs/demo', help: 'run folder holding eval/ and training logs' },
    },
  },
  bench: {
    summary: 'Benchmark our kernels against TensorFlow.js (WebGPU) and jax-js on the same adapter.',
    flags: {
      quick: { type: 'bool', default: false, help: 'fewer cases and iterations' },
      json: { type: 'path', help: 'write the results as JSON' },
      md: { type: 'path', help: 'write the results as markdown tables (with the command line)' },
      engines: { type: 'list', choices: ENGINES, help: 'engines to time (default: all three)' },
      cases: { type: 'list', help: 'only cases whose name or shape contains one of these (e.g. matmul,reduction)' },
      'tune-cache': { type: 'path', help: 'load tuned GEMM/conv kernel choices from and save them to this file (training uses it through env DISTILLKAC_GEMM_CACHE)' },
      ...common,
    },
  },
  demo: {
    summary: 'The whole pipeline on built-in MNIST: train the tiny teacher, distill to 4 and 1 steps, sample, evaluate, report.',
    flags: {
      out: { type: 'path', default: 'runs/demo', help: 'output folder' },
      'teacher-steps': { type: 'int', min: 1, default: 1200, help: 'teacher training steps' },
      'distill-steps': { type: 'int', min: 1, default: 100, help: 'training steps per distillation stage' },
      schedule: { type: 'list', default: ['20', '4', '1'], help: 'teacher steps, then each stage\'s student steps' },
      count: { type: 'int', min: 10, default: 200, help: 'generated digits per evaluation row' },
      resume: { type: 'bool', default: true, help: 'reuse finished stages of an earlier demo in --out (--resume false: start over, in a new --out)' },
      ...common,
    },
  },
};

async function gpuFor(flags: Record<string, unknown>): Promise<Gpu> {
  return initGpu({ backend: flags.backend as 'default' | 'vulkan' | 'opengl' | undefined });
}

function dataSpec(f: Record<string, unknown>): DataSpec {
  for (const [flag, kind] of [['images', 'idx'], ['labels', 'idx'], ['dir', 'png']]) {
    if (f[flag] !== undefined && f.data !== kind) throw new UsageError(`--${flag} is only read with --data ${kind} (--data is ${f.data}); add --data ${kind}`);
  }
  switch (f.data) {
    case 'idx':
      if (!f.images || !f.labels) throw new UsageError('--data idx needs --images and --labels');
      // absolute, so that distill and sample find the data from any folder
      return { kind: 'idx', images: resolve(String(f.images)), labels: resolve(String(f.labels)) };
    case 'png':
      if (!f.dir) throw new UsageError('--data png needs --dir');
      return { kind: 'png', dir: resolve(String(f.dir)) };
    default:
      return { kind: 'mnist' };
  }
}

/** The optimizer flags; `steps` is passed in because distill takes one count per stage. */
const optimOf = (f: Record<string, unknown>, steps: number) => ({
  steps,
  lr: f.lr as number,
  warmupSteps: f.warmup as number,
  weightDecay: f['weight-decay'] as number,
  maxGradNorm: f['max-grad-norm'] as number,
  emaDecay: f['ema-decay'] as number,
  emaWarmup: f['ema-warmup'] as number,
});

/** Sample a labelled grid of `count` digits with a model's EMA weights (called at checkpoints).
 *  `count` is the training batch size, so sampling reuses the kernels compiled for training (a new
 *  batch size compiles new convolution kernels: tens of seconds on a software GPU). */
function gridWriter(outDir: string, shape: number[], numClasses: number, run: ModelRunConfig, steps: number, solver: Solver, count: number, tMin?: number) {
  return async (model: Parameters<typeof sample>[0]['model'], step: number) => {
    const labels = Int32Array.from({ length: count }, (_, i) => i % numClasses);
    const { samples } = await sample({ model, labels, sampleShape: shape, steps, solver, kac: run.kac, tMin, seed: 1234 });
    saveGrid(join(samplesDir(outDir), `step-${String(step).padStart(8, '0')}.png`), (await samples.toArray()) as Float32Array, labels.length, shape, numClasses);
    samples.dispose();
  };
}

async function cmdTrain(f: Record<string, unknown>): Promise<void> {
  const spec = dataSpec(f);
  let kac: KacConfig;
  try {
    kac = kacConfig({ a: f['kac-a'] as number, c: f['kac-c'] as number, T: f['kac-T'] as number, eps: f.eps as number, signal: f.signal as 'linear', clock: f.clock as 't' });
  } catch (e) {
    throw new UsageError((e as Error).message.replace(/^KacConfig\.(a|c|T)\b/, '--kac-$1').replace(/^KacConfig\.eps\b/, '--eps'));
  }
  const data = loadData(spec);
  const run: ModelRunConfig = {
    model: { kind: 'unet', preset: f.preset as string, unet: unetConfigFor(f.preset as string, data) },
    kac,
    data: spec,
  };
  const outDir = (f.out as string | undefined) ?? join('runs', `teacher-${f.preset}`);
  const gpu = await gpuFor(f);
  manualSeed(f.seed as number);
  const optim = optimOf(f, f.steps as number);
  const config = { ...run, batch: f.batch, labelDropout: f['label-dropout'], seed: f.seed, optim: { ...optim, steps: undefined } };
  const shape = [data.channels, data.height, data.width];
  const res = await trainTeacher({
    outDir, data, createModel: () => createModel(run.model), config, kac: run.kac, optim, batch: f.batch as number,
    labelDropout: f['label-dropout'] as number, seed: f.seed as number, resume: f.resume as boolean, quiet: f.quiet as boolean, tune: f.tune as boolean,
    logEvery: f['log-every'] as number, checkpointEvery: f['checkpoint-every'] as number,
    onCheckpoint: f.grids ? gridWriter(outDir, shape, data.numClasses, run, 20, 'ab2', f.batch as number) : undefined,
  });
  console.log(`teacher trained: ${res.step} steps, ${Number.isNaN(res.lastLoss) ? 'no step left to run (resumed at the last step)' : `last loss ${res.lastLoss.toPrecision(4)}`}; weights ${res.weightsPath}; sample grids in ${samplesDir(outDir)}`);
  gpu.destroy();
}

/** --schedule: the teacher's step count, then each stage's, each dividing the one before it. */
function parseSchedule(list: string[]): number[] {
  const schedule = list.map((s) => {
    const v = Number(s);
    if (!Number.isInteger(v) || v < 1) throw new UsageError(`--schedule: '${s}' is not a positive integer`);
    return v;
  });
  if (schedule.length < 2) throw new UsageError('--schedule needs the teacher\'s step count and at least one student step count, e.g. 100,20,4,2,1');
  schedule.slice(1).forEach((s, i) => {
    if (schedule[i] % s !== 0) throw new UsageError(`--schedule ${schedule.join(',')}: ${s} does not divide ${schedule[i]}; each count must divide the one before it`);
  });
  return schedule;
}

async function cmdDistill(f: Record<string, unknown>): Promise<void> {
  const schedule = parseSchedule(f.schedule as string[]);
  const stageSteps = (f.steps as string[]).map((s) => {
    const v = Number(s);
    if (!Number.isInteger(v) || v < 1) throw new UsageError(`--steps: '${s}' is not a positive integer`);
    return v;
  });
  if (stageSteps.length !== 1 && stageSteps.length !== schedule.length - 1) {
    throw new UsageError(`--steps: ${stageSteps.length} counts for ${schedule.length - 1} stages; give one count for every stage or one per stage`);
  }
  const stepsOfStage = (k: number) => stageSteps.length === 1 ? stageSteps[0] : stageSteps[k - 1];
  const teacher = loadWeights(f.teacher as string);
  const own = studentSteps(teacher);
  if (own && f.guidance !== 1) {
    throw new UsageError(`--teacher: ${f.teacher} is a distilled ${own}-step student, with its teacher's guidance already baked in; distill from the teacher's weights, or pass --guidance 1 to continue from this student`);
  }
  checkTMin(f['t-min'] as number, teacher);
  const data = loadDataFor(teacher);
  const gpu = await gpuFor(f);
  const optim = optimOf(f, stepsOfStage(1));
  const root = (f.out as string | undefined) ?? join('runs', 'distill');
  const guidance = { scale: f.guidance as number, nullClass: data.numClasses };
  const shape = [data.channels, data.height, data.width];
  const runCfg: ModelRunConfig = { model: teacher.run.model, kac: teacher.run.kac, data: teacher.run.data };
  const results = await distillStages({
    root, data, createModel: () => createModel(runCfg.model),
    config: { ...runCfg, guidance: guidance.scale, teacherSolver: f['teacher-solver'], source: f.source, tMin: f['t-min'], batch: f.batch, seed: f.seed, optim: { ...optim, steps: undefined } },
    kac: runCfg.kac, tMin: f['t-min'] as number, optim, batch: f.batch as number, seed: f.seed as number,
    schedule, stageSteps: stepsOfStage, teacherWeights: teacher.weights, teacherSolver: f['teacher-solver'] as Solver, guidance,
    source: f.source as 'data' | 'rollout', resume: f.resume as boolean, quiet: f.quiet as boolean, tune: f.tune as boolean,
    logEvery: f['log-every'] as number, checkpointEvery: f['checkpoint-every'] as number,
  });
  for (const [i, r] of results.entries()) {
    const student = modelFromWeights(loadWeights(r.weightsPath));
    await gridWriter(r.dir, shape, data.numClasses, runCfg, r.steps, 'euler', f.batch as number, f['t-min'] as number)(student, stepsOfStage(i + 1));
    student.dispose();
    console.log(`${r.steps}-step student: ${r.weightsPath}`);
  }
  gpu.destroy();
}

/** --t-min is where sampling ends, so it must lie below the time horizon T where it starts. */
function checkTMin(tMin: number, w: LoadedWeights): void {
  if (!(tMin < w.run.kac.T)) throw new UsageError(`--t-min: ${tMin} is not below the time horizon T = ${w.run.kac.T} of ${w.path}`);
}

/** Labels for --labels (a list of classes or 'all'), cycled to `count`. */
export function labelsFor(spec: string[], count: number, numClasses: number): Int32Array {
  const classes = spec.length === 1 && spec[0] === 'all' ? Array.from({ length: numClasses }, (_, i) => i) : spec.map((s) => {
    const v = /^\d+$/.test(s) ? Number(s) : NaN; // not 0x3 or 1e0
    if (!Number.isInteger(v) || v < 0 || v > numClasses) throw new UsageError(`--labels: '${s}' is not a class in 0..${numClasses - 1} (${numClasses} = unconditional)`);
    return v;
  });
  return Int32Array.from({ length: count }, (_, i) => classes[i % classes.length]);
}

async function cmdSample(f: Record<string, unknown>): Promise<void> {
  const w = loadWeights(f.checkpoint as string);
  for (const flag of ['out', 'dump']) {
    const path = f[flag] as string | undefined;
    if (path && existsSync(path) && statSync(path).isDirectory()) throw new UsageError(`--${flag}: ${path} is a folder; give a file name, e.g. ${join(path, flag === 'out' ? 'samples.png' : 'samples.safetensors')}`);
  }
  if (f.dump && resolve(f.dump as string) === resolve(f.out as string)) throw new UsageError(`--dump and --out are both ${f.out}; give the samples file another name`);
  const { steps, solver, guidance, tMin } = samplingDefaults(w, f.steps as number | undefined, f.solver as Solver | undefined, f.guidance as number | undefined, f['t-min'] as number | undefined);
  checkTMin(tMin, w);
  const own = studentSteps(w);
  if (own && guidance !== 1) console.warn(`note: ${f.checkpoint} is a ${own}-step student with its teacher's guidance baked in; --guidance ${guidance} guides it again, with an unconditional branch it was not distilled for`);
  const unet = w.run.model.unet;
  const shape = [unet.inChannels, unet.imageSize, unet.imageSize];
  const count = f.count as number;
  const labels = labelsFor(f.labels as string[], count, unet.numClasses);
  const gpu = await gpuFor(f);
  const model = modelFromWeights(w);
  const started = performance.now();
  // the same function as the browser page (web/main.ts): the same seed gives the same samples
  const { samples: all, nfe } = await generateSamples({ model, labels, sampleShape: shape, steps, solver, kac: w.run.kac, tMin, seed: f.seed as number, guidance: { scale: guidance, nullClass: unet.numClasses }, batchSize: f['batch-size'] as number });
  const secs = (performance.now() - started) / 1000;
  saveGrid(f.out as string, all, count, shape);
  if (f.dump) {
    writeFileAtomic(f.dump as string, encodeSafetensors({ samples: { dtype: 'F32', shape: [count, ...shape], data: all }, labels: { dtype: 'I32', shape: [count], data: labels } }, { checkpoint: String(f.checkpoint), steps: String(steps), solver, guidance: String(guidance), seed: String(f.seed) }));
  }
  console.log(`${count} samples, ${steps} steps (${solver}, NFE ${nfe}), guidance ${guidance}: ${f.out}${f.dump ? ` and ${f.dump}` : ''} (${(count / secs).toFixed(1)} images/s)`);
  model.dispose();
  gpu.destroy();
}

async function cmdEval(f: Record<string, unknown>): Promise<void> {
  const teacher = loadWeights(f.teacher as string);
  const own = studentSteps(teacher);
  if (own) throw new UsageError(`--teacher: ${f.teacher} is a distilled ${own}-step student; pass the teacher's weights, and students with --students`);
  const students = ((f.students as string[] | undefined) ?? []).map(loadWeights);
  for (const s of students) {
    if (!studentSteps(s)) throw new UsageError(`--students: ${s.path} is not a distilled student (no distillation stage in its config); pass the ema.safetensors of a distill stage`);
  }
  const nfe = (f['teacher-nfe'] as string[]).map((s) => {
    const v = Number(s);
    if (!Number.isInteger(v) || v < 1) throw new UsageError(`--teacher-nfe: '${s}' is not a positive integer`);
    return v;
  });
  const solvers = (f['teacher-solvers'] as string[]).map((s) => {
    if (!SOLVERS.includes(s as Solver)) throw new UsageError(`--teacher-solvers: '${s}' is not one of ${SOLVERS.join(', ')}`);
    return s as Solver;
  });
  if (!students.length && !solvers.some((s) => nfe.some((n) => Number.isInteger(n / NFE_PER_STEP[s])))) {
    throw new UsageError(`nothing to measure: --teacher-nfe ${nfe.join(',')} is no whole number of ${solvers.join(', ')} steps (midpoint and heun take 2 NFE a step), and no --students`);
  }
  if (!existsSync(f.classifier as string)) throw new Error(`cannot read classifier ${f.classifier} (--classifier): no such file`);
  const gpu = await gpuFor(f);
  const rows = await evaluate({
    teacher, students, classifierPath: f.classifier as string, count: f.count as number, teacherNfe: nfe, teacherSolvers: solvers,
    guidance: f.guidance as number, seed: f.seed as number, outDir: f.out as string, batch: f['batch-size'] as number, resume: f.resume as boolean,
    onRow: (r, reused) => f.quiet || console.error(`${r.model} ${r.solver} NFE ${r.nfe}: FD-LeNet ${r.fdLenet.toFixed(2)}, class consistency ${(100 * r.classConsistency).toFixed(1)}%, ${r.imagesPerSec.toFixed(1)} images/s${reused ? ' (kept from the earlier run)' : ''}`),
  });
  console.log(metricsTable(rows));
  console.log(`written: ${join(f.out as string, 'metrics.json')}, ${join(f.out as string, 'table.md')}`);
  gpu.destroy();
}

async function cmdReport(f: Record<string, unknown>): Promise<void> {
  if (!existsSync(f.run as string)) throw new UsageError(`--run: no such folder ${f.run}; give the --out folder of a demo (holding eval/ and the training logs)`);
  console.log(`report: ${writeReport(f.run as string)}`);
}

async function cmdBench(f: Record<string, unknown>): Promise<void> {
  const { runBench } = await import('../../bench/run');
  await runBench({
    quick: f.quick as boolean,
    json: f.json as string | undefined,
    md: f.md as string | undefined,
    engines: f.engines as EngineName[] | undefined,
    cases: f.cases as string[] | undefined,
    backend: f.backend as string | undefined,
    tuneCache: f['tune-cache'] as string | undefined,
  });
}

/** The README's first command: everything on built-in MNIST with settings sized for two CPU cores. */
async function cmdDemo(f: Record<string, unknown>): Promise<void> {
  const root = f.out as string;
  const common = [...(f.backend ? ['--backend', String(f.backend)] : []), ...(f.quiet ? ['--quiet'] : [])];
  const step = async (what: string, argv: string[]) => {
    console.error(`\n== ${what}: distillkac ${argv.join(' ')}`);
    const code = await main(argv);
    if (code !== 0) throw new Error(`${what} failed (exit code ${code})`);
  };
  parseSchedule(f.schedule as string[]); // before training the teacher, not after
  const started = performance.now();
  const teacherDir = join(root, 'teacher');
  await step('1/4 train the tiny teacher', ['train', '--preset', 'tiny', '--steps', String(f['teacher-steps']), '--out', teacherDir, ...(f.resume ? ['--resume'] : []), ...common]);
  const schedule = f.schedule as string[];
  await step('2/4 distill', ['distill', '--teacher', join(teacherDir, 'ema.safetensors'), '--schedule', schedule.join(','), '--steps', String(f['distill-steps']), '--out', join(root, 'distill'), ...(f.resume ? ['--resume'] : []), ...common]);
  const students = schedule.slice(1).map((s, k) => join(root, 'distill', `stage${k + 1}-${s}step`, 'ema.safetensors'));
  // batches of the training batch size reuse the kernels compiled for training (each new batch shape
  // compiles every kernel again: minutes on a software GPU)
  await step('3/4 evaluate', ['eval', '--teacher', join(teacherDir, 'ema.safetensors'), '--students', students.join(','), '--count', String(f.count), '--batch-size', '32', '--teacher-nfe', [...new Set([1, ...schedule.map(Number)])].sort((a, b) => a - b).join(','), '--out', join(root, 'eval'), ...common]);
  await step('4/4 report', ['report', '--run', root]);
  console.log(`\ndemo finished in ${((performance.now() - started) / 60000).toFixed(1)} min. Open ${join(root, 'report.html')}`);
}

const COMMANDS: Record<string, (f: Record<string, unknown>) => Promise<void>> = {
  train: cmdTrain, distill: cmdDistill, sample: cmdSample, eval: cmdEval, report: cmdReport, bench: cmdBench, demo: cmdDemo,
};

const USAGE = `usage: distillkac <command> [flags]   (distillkac <command> --help for its flags)

commands:
${Object.entries(SPECS).map(([k, v]) => `  ${k.padEnd(9)} ${v.summary}`).join('\n')}
`;

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === '--help' || command === 'help') {
    console.log(USAGE);
    return command ? 0 : 2;
  }
  const spec = SPECS[command];
  if (!spec) {
    console.error(`distillkac: unknown command '${command}'\n\n${USAGE}`);
    return 2;
  }
  if (rest.includes('--help')) {
    console.log(helpText(command, spec.summary, spec.flags));
    return 0;
  }
  let flags: Record<string, unknown>;
  try {
    flags = parseFlags(rest, spec.flags);
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`distillkac ${command}: ${e.message}`);
      return 2;
    }
    throw e;
  }
  try {
    await COMMANDS[command](flags);
    return 0;
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`distillkac ${command}: ${e.message}`);
      return 2;
    }
    console.error(`distillkac ${command}: ${(e as Error).message}`);
    return 1;
  }
}
