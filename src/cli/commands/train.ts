// distillkac train: the class-conditional Kac-flow teacher.
import { join } from 'node:path';
import { manualSeed } from '../../engine/index';
import { loadData } from '../../data/index';
import { KAC_CLOCKS, KAC_SIGNALS, type KacConfig, kacConfig } from '../../models/kac';
import { UNET_PRESET_NAMES, unetConfigFor } from '../../models/unet';
import { type ModelRunConfig, createModel } from '../../models/weights';
import { samplesDir } from '../../train/images';
import { trainTeacher } from '../../train/teacher';
import { commonFlags, dataFlags, dataSpec, gpuFor, optimOf, runControl, runFlags } from '../common';
import { UsageError, command } from '../flags';
import { gridWriter } from '../grids';

export const train = command({
  summary: 'Train the Kac-flow teacher (class-conditional, with label dropout for guidance).',
  flags: {
    preset: { type: 'string', choices: UNET_PRESET_NAMES, default: 'tiny', help: 'UNet size: tiny, small, base (sized for MNIST 28x28), cifar-small, cifar-paper (sized for RGB 32x32; any preset fits any data)' },
    ...dataFlags,
    ...runFlags({ steps: 1500, batch: 32, lr: 1e-3, warmup: 100 }),
    out: { type: 'path', help: 'output folder (checkpoints, log.jsonl, samples/, ema.safetensors) (default: runs/teacher-<preset>)' },
    'label-dropout': { type: 'float', min: 0, max: 1, default: 0.1, help: 'probability of the null class' },
    grids: { type: 'bool', default: true, help: 'write a sample grid (EMA weights) at each checkpoint (--grids false: none)' },
    'kac-a': { type: 'float', min: 0, default: 9, help: 'Kac switching rate a' },
    'kac-c': { type: 'float', min: 0, default: 3, help: 'Kac speed c' },
    'kac-T': { type: 'float', min: 0, default: 1, help: 'time horizon T' },
    eps: { type: 'float', min: 0, default: 1e-4, help: 'light-cone layer eps' },
    signal: { type: 'string', choices: KAC_SIGNALS.filter((s) => s !== 'const'), default: 'linear', help: 'signal schedule f (const needs a data-dependent prior: the 2-D experiment only)' },
    clock: { type: 'string', choices: KAC_CLOCKS, default: 't', help: 'Kac clock g' },
    ...commonFlags,
  },
  async run(f) {
    const spec = dataSpec(f);
    let kac: KacConfig;
    try {
      kac = kacConfig({ a: f['kac-a'], c: f['kac-c'], T: f['kac-T'], eps: f.eps, signal: f.signal, clock: f.clock });
    } catch (e) {
      throw new UsageError((e as Error).message.replace(/^KacConfig\.(a|c|T)\b/, '--kac-$1').replace(/^KacConfig\.eps\b/, '--eps'));
    }
    const data = loadData(spec);
    const run: ModelRunConfig = {
      model: { kind: 'unet', preset: f.preset, unet: unetConfigFor(f.preset, data) },
      kac,
      data: spec,
    };
    const outDir = f.out ?? join('runs', `teacher-${f.preset}`);
    const gpu = await gpuFor(f);
    manualSeed(f.seed);
    const optim = optimOf(f, f.steps);
    const config = { ...run, batch: f.batch, labelDropout: f['label-dropout'], seed: f.seed, optim: { ...optim, steps: undefined } };
    const shape = [data.channels, data.height, data.width];
    const res = await trainTeacher({
      outDir, data, createModel: () => createModel(run.model), config, kac: run.kac, optim, batch: f.batch,
      labelDropout: f['label-dropout'], seed: f.seed, ...runControl(f),
      onCheckpoint: f.grids ? gridWriter(outDir, shape, data.numClasses, run, 20, 'ab2', f.batch) : undefined,
    });
    console.log(`teacher trained: ${res.step} steps, ${Number.isNaN(res.lastLoss) ? 'no step left to run (resumed at the last step)' : `last loss ${res.lastLoss.toPrecision(4)}`}; weights ${res.weightsPath}; sample grids in ${samplesDir(outDir)}`);
    gpu.destroy();
  },
});
