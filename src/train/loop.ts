// The training loop shared by the teacher and the distilled students: AdamW with warmup and
// clipping, EMA, a progress bar, a JSONL log, atomic checkpoints with resume, and a stop on a
// non-finite loss that names the step. Everything random in a step comes from Philox(seed, step),
// so a resumed run replays exactly the steps an uninterrupted run would have taken.
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { AdamW, EMA, type Gpu, GpuError, type Module, Tensor, keep, scope, warmupLr } from '../engine/index';
import { type Checkpoint, CheckpointError, type HostTensors, assertSameConfig, listCheckpoints, loadLatestCheckpoint, saveCheckpoint, writeFileAtomic, encodeCheckpoint } from './checkpoint';
import { exportGemmChoices, importGemmChoices, pendingGemmClasses, tuneGemms } from '../engine/autotune';
import { Progress } from './progress';

export interface OptimConfig {
  steps: number;
  lr: number;
  warmupSteps: number;
  weightDecay: number;
  /** global gradient-norm clip; absent: no clipping */
  maxGradNorm?: number;
  emaDecay: number;
  emaWarmup: number;
}

export interface LoopOptions<M extends Module> {
  kind: string;
  outDir: string;
  /** recorded in every checkpoint; resuming under another config is refused */
  config: unknown;
  optim: OptimConfig;
  createModel: () => M;
  /** the loss of one step; called inside a memory scope */
  loss: (model: M, step: number) => Tensor | Promise<Tensor>;
  /** initial weights (a student starts from its teacher) */
  init?: HostTensors;
  resume?: boolean;
  logEvery?: number;
  checkpointEvery?: number;
  quiet?: boolean;
  label?: string;
  /** called at each log step with the loss of that step */
  onLog?: (step: number, loss: number) => void;
  /** called after each checkpoint with a model holding the EMA weights (sample grids, ...) */
  onCheckpoint?: (emaModel: M, step: number) => Promise<void>;
  /** after the first step, time every kernel candidate of this run's GEMM and convolution shapes and
   *  keep the fastest (tuneGemms); the choices go to `<outDir>/gemm-choices.json`, which any run in
   *  outDir loads, so a resumed run uses the same kernels */
  tune?: boolean;
}

/** What a trainer (teacher, student) takes from its caller and hands to trainLoop unchanged. */
export type RunOptions<M extends Module> = Omit<LoopOptions<M>, 'kind' | 'loss'>;

export const GEMM_CHOICES_FILE = 'gemm-choices.json';

export class TrainingDivergedError extends Error {
  override name = 'TrainingDivergedError';
}

export interface LoopResult<M extends Module> {
  model: M;
  emaModel: M;
  step: number;
  lastLoss: number;
  weightsPath: string;
}

const prefixed = (prefix: string, t: Record<string, { shape: number[]; data: Float32Array }>): HostTensors =>
  Object.fromEntries(Object.entries(t).map(([k, v]) => [`${prefix}${k}`, v]));

function pick(tensors: HostTensors, prefix: string): HostTensors {
  const out: HostTensors = {};
  for (const [k, v] of Object.entries(tensors)) if (k.startsWith(prefix)) out[k.slice(prefix.length)] = v;
  return out;
}

export async function trainLoop<M extends Module>(opts: LoopOptions<M>): Promise<LoopResult<M>> {
  const { optim, outDir } = opts;
  const logEvery = opts.logEvery ?? 10;
  const checkpointEvery = opts.checkpointEvery ?? 500;
  mkdirSync(outDir, { recursive: true });
  const logPath = join(outDir, 'log.jsonl');

  const model = opts.createModel();
  if (opts.init) model.loadStateDict(opts.init);
  const names = model.namedParameters().map(([n]) => n);
  const opt = new AdamW(model.parameters(), { lr: optim.lr, weightDecay: optim.weightDecay, maxGradNorm: optim.maxGradNorm });
  const ema = new EMA(model, { decay: optim.emaDecay, warmup: optim.emaWarmup });
  let step = 0;

  const latest = opts.resume ? loadLatestCheckpoint(outDir) : null;
  const earlier = listCheckpoints(outDir);
  if (!opts.resume && earlier.length) {
    // a fresh run would overwrite some of these and have others deleted or resumed later in its place
    throw new CheckpointError(`${outDir} already holds checkpoints of an earlier run (${earlier.map((p) => basename(p)).join(', ')}); continue it with --resume, or use another output folder`);
  }
  if (latest) {
    const { ckpt } = latest;
    assertSameConfig(ckpt.config, opts.config, `checkpoint ${latest.path}`);
    const missing = names.flatMap((n) => ['model.', 'ema.', 'optim.m.', 'optim.v.'].map((p) => `${p}${n}`)).filter((k) => !ckpt.tensors[k]);
    const counters = ckpt.state as { optimStep?: unknown; emaUpdates?: unknown } | null;
    if (missing.length || !Number.isInteger(counters?.optimStep) || !Number.isInteger(counters?.emaUpdates)) {
      throw new CheckpointError(
        `${latest.path} is not a complete training checkpoint (${missing.length ? `missing ${missing.slice(0, 3).join(', ')}${missing.length > 3 ? ` and ${missing.length - 3} more` : ''}` : 'no optimizer/EMA counters in its state'}); ` +
          'resume needs a ckpt-*.safetensors written by training (ema.safetensors holds weights only): move this file away to resume from the one before, or start a new run',
      );
    }
    model.loadStateDict(pick(ckpt.tensors, 'model.'));
    ema.loadStateDict(pick(ckpt.tensors, 'ema.'));
    const state = ckpt.state as { optimStep: number; emaUpdates: number };
    opt.loadStateDict({
      step: state.optimStep,
      m: names.map((n) => ckpt.tensors[`optim.m.${n}`].data),
      v: names.map((n) => ckpt.tensors[`optim.v.${n}`].data),
    });
    ema.updates = state.emaUpdates;
    step = ckpt.step;
    // drop log lines of steps the checkpoint does not contain (they will be replayed)
    if (existsSync(logPath)) {
      const kept = readFileSync(logPath, 'utf8').split('\n').filter((l) => l && JSON.parse(l).step <= step);
      writeFileSync(logPath, kept.map((l) => `${l}\n`).join(''));
    }
    if (!opts.quiet) console.error(`resuming from ${latest.path} at step ${step}`);
  } else {
    if (opts.resume && !opts.quiet) console.error(`--resume: no checkpoint in ${outDir} yet; starting at step 0`);
    if (existsSync(logPath)) writeFileSync(logPath, '');
  }

  const gpu: Gpu = model.parameters()[0].gpu;
  const choicesPath = join(outDir, GEMM_CHOICES_FILE);
  if (existsSync(choicesPath)) importGemmChoices(readFileSync(choicesPath, 'utf8'));
  const tune = async () => {
    const classes = pendingGemmClasses(gpu).length;
    if (!classes) return;
    if (!opts.quiet) console.error(`tuning the kernels of ${classes} GEMM/convolution shapes (once per run; saved to ${choicesPath})`);
    const t0 = performance.now();
    await tuneGemms(gpu);
    writeFileAtomic(choicesPath, new TextEncoder().encode(exportGemmChoices()));
    if (!opts.quiet) console.error(`tuned in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  };
  const emaModel = opts.createModel();
  const progress = new Progress({ total: optim.steps, label: opts.label ?? opts.kind, quiet: opts.quiet, initial: step });
  let pending: { step: number; loss: Tensor }[] = [];
  let lastLoss = NaN;
  let lastGood: string | null = latest?.path ?? null;

  const checkLosses = async () => {
    for (const p of pending) {
      const v = await p.loss.item();
      p.loss.dispose();
      if (!Number.isFinite(v)) {
        for (const q of pending) q.loss.dispose();
        pending = [];
        throw new TrainingDivergedError(
          `loss became ${v} at step ${p.step + 1}; training stopped. ` +
            (lastGood ? `The last good checkpoint is ${lastGood}. ` : 'No checkpoint was written yet. ') +
            'Try a lower learning rate or a smaller maxGradNorm.',
        );
      }
      lastLoss = v;
    }
    pending = [];
  };

  const save = async () => {
    await checkLosses();
    const ckpt: Checkpoint = {
      kind: opts.kind,
      step,
      config: opts.config,
      state: { optimStep: opt.stepCount, emaUpdates: ema.updates },
      tensors: { ...prefixed('model.', await model.stateDict()), ...prefixed('ema.', await ema.stateDict()) },
    };
    const moments = await opt.stateDict();
    names.forEach((n, k) => {
      const shape = ckpt.tensors[`model.${n}`].shape;
      ckpt.tensors[`optim.m.${n}`] = { shape, data: moments.m[k] };
      ckpt.tensors[`optim.v.${n}`] = { shape, data: moments.v[k] };
    });
    lastGood = saveCheckpoint(outDir, ckpt);
    if (opts.onCheckpoint) {
      ema.copyTo(emaModel);
      await opts.onCheckpoint(emaModel, step);
    }
  };

  const started = performance.now();
  const startStep = step;
  try {
    while (step < optim.steps) {
      opt.lr = warmupLr(step, optim.lr, optim.warmupSteps);
      const loss = await scope(async () => {
        const l = await opts.loss(model, step);
        l.backward();
        opt.step();
        opt.zeroGrad();
        ema.update();
        return l;
      });
      pending.push({ step, loss: keep(loss) });
      step++;
      if (opts.tune && step === startStep + 1) await tune();
      if (step % logEvery === 0 || step === optim.steps) {
        await checkLosses();
        const gradNorm = opt.lastGradNorm ? await opt.lastGradNorm.item() : null;
        appendFileSync(logPath, `${JSON.stringify({ step, loss: lastLoss, lr: opt.lr, gradNorm, itPerSec: progress.rate, elapsedSec: (performance.now() - started) / 1000 })}\n`);
        progress.update(step, { loss: lastLoss });
        opts.onLog?.(step, lastLoss);
      }
      if (step % checkpointEvery === 0 || step === optim.steps) await save();
    }
    await checkLosses();
    progress.done();
    await gpu.sync();
  } catch (e) {
    // out of memory, device lost, ...: say where the run stands (GPU errors surface at the next readback)
    if (e instanceof GpuError) {
      e.message += ` [${opts.kind} training, detected at step ${step}; ${lastGood ? `the last good checkpoint is ${lastGood}` : 'no checkpoint was written yet'}]`;
    }
    throw e;
  }

  ema.copyTo(emaModel);
  const weightsPath = join(outDir, 'ema.safetensors');
  writeFileAtomic(weightsPath, encodeCheckpoint({ kind: `${opts.kind}-weights`, step, config: opts.config, state: null, tensors: await emaModel.stateDict() }));
  return { model, emaModel, step, lastLoss, weightsPath };
}
