// Flags and helpers that several commands share: the device, the data source, the optimizer.
import { resolve } from 'node:path';
import type { Gpu } from '../engine/index';
import { initGpu } from '../engine/runtime/dawn';
import type { DataSpec } from '../data/index';
import type { LoadedWeights } from '../models/weights';
import type { OptimConfig } from '../train/loop';
import { type Flags, UsageError, defineFlags } from './flags';

/** Samples one sample/eval command draws at most (all of them are held on the host). */
export const MAX_SAMPLE_COUNT = 100_000;

export const commonFlags = defineFlags({
  backend: { type: 'string', choices: ['default', 'vulkan', 'opengl'], help: 'WebGPU backend (env DISTILLKAC_BACKEND)' },
  quiet: { type: 'bool', default: false, help: 'no progress bar' },
});

export const dataFlags = defineFlags({
  data: { type: 'string', choices: ['mnist', 'fashion', 'idx', 'png', 'cifar10'], default: 'mnist', help: "built-in MNIST, Fashion-MNIST (Debian's dataset-fashion-mnist), IDX files, a folder of PNGs in class subfolders, or CIFAR-10's binary version (--dir)" },
  images: { type: 'path', help: 'IDX images file (*-idx3-ubyte[.gz]) for --data idx' },
  labels: { type: 'path', help: 'IDX labels file (*-idx1-ubyte[.gz]) for --data idx' },
  dir: { type: 'path', help: 'folder of class subfolders of PNGs for --data png; folder of data_batch_1.bin .. data_batch_5.bin, test_batch.bin for --data cifar10' },
});

const optimOnly = (d: { lr: number; warmup: number }) => defineFlags({
  lr: { type: 'float', min: 0, default: d.lr, help: 'AdamW learning rate' },
  warmup: { type: 'int', min: 0, default: d.warmup, help: 'learning-rate warmup steps' },
  'weight-decay': { type: 'float', min: 0, default: 0, help: 'AdamW weight decay' },
  'max-grad-norm': { type: 'float', min: 0, default: 1, help: 'global gradient-norm clip' },
  'ema-decay': { type: 'float', min: 0, max: 1, default: 0.999, help: 'EMA decay of the sampling weights' },
  'ema-warmup': { type: 'int', min: 0, default: 10, help: 'EMA decay ramp min(decay, (1+n)/(warmup+n))' },
});

/** The flags of a training run (train, distill; each may redeclare --steps and --out). */
export const runFlags = (d: { steps: number; batch: number; lr: number; warmup: number }) => defineFlags({
  steps: { type: 'int', min: 1, default: d.steps, help: 'training steps' },
  batch: { type: 'int', min: 1, default: d.batch, help: 'batch size' },
  ...optimOnly(d),
  seed: { type: 'int', min: 0, max: Number.MAX_SAFE_INTEGER, default: 0, help: 'seed of every random choice in the run' },
  tune: { type: 'bool', default: false, help: `after the first step, time every kernel candidate of the run's matmul/convolution shapes and keep the fastest (saved to <out>/gemm-choices.json, used on resume); minutes of compiling on a software GPU, so for runs of an hour or more` },
  out: { type: 'path', help: 'output folder (checkpoints, log.jsonl, samples/, ema.safetensors)' },
  resume: { type: 'bool', default: false, help: 'continue from the newest checkpoint in --out' },
  'checkpoint-every': { type: 'int', min: 1, default: 250, help: 'steps between checkpoints (and sample grids)' },
  'log-every': { type: 'int', min: 1, default: 10, help: 'steps between log lines' },
});

type OptimFlags = Flags<ReturnType<typeof optimOnly>>;

/** The optimizer flags; `steps` is passed in because distill takes one count per stage. */
export const optimOf = (f: OptimFlags, steps: number): OptimConfig => ({
  steps,
  lr: f.lr,
  warmupSteps: f.warmup,
  weightDecay: f['weight-decay'],
  maxGradNorm: f['max-grad-norm'],
  emaDecay: f['ema-decay'],
  emaWarmup: f['ema-warmup'],
});

type RunFlags = Pick<Flags<ReturnType<typeof runFlags>>, 'resume' | 'tune' | 'log-every' | 'checkpoint-every'> & Flags<typeof commonFlags>;

/** How a training command's flags drive trainLoop (passed through whole by the trainers). */
export const runControl = (f: RunFlags) => ({
  resume: f.resume,
  quiet: f.quiet,
  tune: f.tune,
  logEvery: f['log-every'],
  checkpointEvery: f['checkpoint-every'],
});

export function gpuFor(f: Flags<typeof commonFlags>): Promise<Gpu> {
  return initGpu({ backend: f.backend });
}

export function dataSpec(f: Flags<typeof dataFlags>): DataSpec {
  for (const [flag, kinds] of [['images', ['idx']], ['labels', ['idx']], ['dir', ['png', 'cifar10']]] as const) {
    if (f[flag] !== undefined && !(kinds as readonly string[]).includes(f.data)) throw new UsageError(`--${flag} is only read with --data ${kinds.join(' or ')} (--data is ${f.data}); add --data ${kinds[0]}`);
  }
  switch (f.data) {
    case 'idx':
      if (!f.images || !f.labels) throw new UsageError('--data idx needs --images and --labels');
      // absolute, so that distill and sample find the data from any folder
      return { kind: 'idx', images: resolve(f.images), labels: resolve(f.labels) };
    case 'png':
      if (!f.dir) throw new UsageError('--data png needs --dir');
      return { kind: 'png', dir: resolve(f.dir) };
    case 'cifar10':
      if (!f.dir) throw new UsageError('--data cifar10 needs --dir (the folder cifar-10-batches-bin of CIFAR-10\'s binary version)');
      return { kind: 'cifar10', dir: resolve(f.dir) };
    case 'fashion':
      return { kind: 'fashion' };
    default:
      return { kind: 'mnist' };
  }
}

/** A comma list of positive integers (--schedule, --steps, --teacher-nfe). */
export function positiveInts(flag: string, list: readonly string[]): number[] {
  return list.map((s) => {
    const v = Number(s);
    if (!Number.isInteger(v) || v < 1) throw new UsageError(`--${flag}: '${s}' is not a positive integer`);
    return v;
  });
}

/** --schedule: the teacher's step count, then each stage's, each dividing the one before it. */
export function parseSchedule(list: readonly string[]): number[] {
  const schedule = positiveInts('schedule', list);
  if (schedule.length < 2) throw new UsageError('--schedule needs the teacher\'s step count and at least one student step count, e.g. 100,20,4,2,1');
  schedule.slice(1).forEach((s, i) => {
    if (schedule[i] % s !== 0) throw new UsageError(`--schedule ${schedule.join(',')}: ${s} does not divide ${schedule[i]}; each count must divide the one before it`);
  });
  return schedule;
}

/** --t-min is where sampling ends, so it must lie below the time horizon T where it starts. */
export function checkTMin(tMin: number, w: LoadedWeights): void {
  if (!(tMin < w.run.kac.T)) throw new UsageError(`--t-min: ${tMin} is not below the time horizon T = ${w.run.kac.T} of ${w.path}`);
}
