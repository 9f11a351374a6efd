// What a run is made of, rebuilt from the config stored in its checkpoints: the model, the Kac
// process, the data. The CLI and the report share these, so a weights file is self-describing.
import { join } from 'node:path';
import type { Module } from '../engine/index';
import { type KacConfig, kacConfig } from '../models/kac';
import type { VelocityModel } from '../models/sampler';
import { UNet, type UNetConfig, unetPresets } from '../models/unet';
import { type Checkpoint, readCheckpoint } from './checkpoint';
import { type Dataset, loadBuiltinMnist, loadIdx, loadPngFolder } from './data';
import { imageGrid, savePng } from './png';

export type DataSpec = { kind: 'mnist' } | { kind: 'idx'; images: string; labels: string } | { kind: 'png'; dir: string };

/** The part of a run's config that fixes what its weights mean. */
export interface ModelRunConfig {
  model: { kind: 'unet'; preset: string; unet: UNetConfig };
  kac: KacConfig;
  data: DataSpec;
}

export function unetConfigFor(preset: string, data: Pick<Dataset, 'channels' | 'height' | 'width' | 'numClasses'>): UNetConfig {
  const base = unetPresets[preset as keyof typeof unetPresets];
  if (!base) throw new Error(`unknown preset '${preset}': use ${Object.keys(unetPresets).join(', ')}`);
  if (data.height !== data.width) throw new Error(`images must be square, got ${data.height}x${data.width}`);
  return { ...base, inChannels: data.channels, imageSize: data.height, numClasses: data.numClasses };
}

export function createModel(cfg: ModelRunConfig['model']): Module & VelocityModel {
  if (cfg.kind !== 'unet') throw new Error(`unknown model kind '${(cfg as { kind: string }).kind}'`);
  return new UNet(cfg.unet);
}

export function loadData(spec: DataSpec, split: 'train' | 'test' = 'train'): Dataset {
  switch (spec.kind) {
    case 'mnist':
      return loadBuiltinMnist({ split });
    case 'idx':
      return loadIdx(spec.images, spec.labels);
    case 'png':
      return loadPngFolder(spec.dir);
  }
}

/** A weights file (or full checkpoint) with the run config it was made with. */
export interface LoadedWeights {
  path: string;
  ckpt: Checkpoint;
  run: ModelRunConfig & Record<string, unknown>;
  /** model parameters: EMA weights when the file is a full checkpoint */
  weights: Checkpoint['tensors'];
}

export function loadWeights(path: string): LoadedWeights {
  const ckpt = readCheckpoint(path);
  const run = ckpt.config as ModelRunConfig & Record<string, unknown>;
  if (!run || typeof run !== 'object' || !run.model || !run.kac) {
    throw new Error(`${path}: the checkpoint has no model/kac configuration; it was not written by distillkac train or distill`);
  }
  const hasEma = Object.keys(ckpt.tensors).some((k) => k.startsWith('ema.'));
  const weights = hasEma
    ? Object.fromEntries(Object.entries(ckpt.tensors).filter(([k]) => k.startsWith('ema.')).map(([k, v]) => [k.slice(4), v]))
    : ckpt.tensors;
  return { path, ckpt, run: { ...run, kac: kacConfig(run.kac) }, weights };
}

/** Build the model of a weights file and load its weights (frozen). */
export function modelFromWeights(w: LoadedWeights): Module & VelocityModel {
  const model = createModel(w.run.model);
  try {
    model.loadStateDict(w.weights);
  } catch (e) {
    throw new Error(`${w.path}: ${(e as Error).message}`);
  }
  return model.requiresGrad(false);
}

/** The number of sampling steps a student was distilled for (undefined for a teacher). */
export function studentSteps(w: LoadedWeights): number | undefined {
  const schedule = w.run.schedule as number[] | undefined;
  const stage = w.run.stage as number | undefined;
  return schedule && stage !== undefined ? schedule[stage] : undefined;
}

/** Save samples [N, C, H, W] in [-1, 1] as a PNG grid. */
export function saveGrid(path: string, samples: Float32Array, n: number, shape: number[], cols = 10): void {
  const [c, h, w] = shape;
  const g = imageGrid(samples, n, c, h, w, Math.min(cols, n));
  savePng(path, g.data, g.width, g.height, g.channels);
}

export const samplesDir = (outDir: string) => join(outDir, 'samples');
