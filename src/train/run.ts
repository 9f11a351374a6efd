// What a run is made of, rebuilt from the config stored in its checkpoints: the model, the Kac
// process, the data. The CLI and the report share these, so a weights file is self-describing.
import { join } from 'node:path';
import { type UNetConfig, unetPresets } from '../models/unet';
import { readCheckpoint } from './checkpoint';
import { type Dataset, DataError, loadBuiltinMnist, loadIdx, loadPngFolder } from '../data/dataset';
import { imageGrid, savePng } from '../io/png';
import { type DataSpec, type LoadedWeights, weightsFromCheckpoint } from '../models/weights';

// the pure part (also used by the browser page) lives in weights.ts
export { type DataSpec, type LoadedWeights, type ModelRunConfig, createModel, modelFromWeights, studentSteps, weightsFromCheckpoint } from '../models/weights';

export function unetConfigFor(preset: string, data: Pick<Dataset, 'channels' | 'height' | 'width' | 'numClasses'>): UNetConfig {
  const base = unetPresets[preset as keyof typeof unetPresets];
  if (!base) throw new Error(`unknown preset '${preset}': use ${Object.keys(unetPresets).join(', ')}`);
  if (data.height !== data.width) throw new Error(`images must be square, got ${data.height}x${data.width}`);
  return { ...base, inChannels: data.channels, imageSize: data.height, numClasses: data.numClasses };
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

/**
 * The data a weights file was trained on, read again from where its config says, and checked against
 * the model the weights fix: files changed since (a class folder added or removed, other image sizes)
 * would otherwise feed labels the model has no class for, or make another class the null class.
 */
export function loadDataFor(w: LoadedWeights, split: 'train' | 'test' = 'train'): Dataset {
  const data = loadData(w.run.data, split);
  const unet = w.run.model.unet;
  const diffs: string[] = [];
  if (data.numClasses !== unet.numClasses) diffs.push(`${data.numClasses} classes, the model ${unet.numClasses}`);
  if (data.channels !== unet.inChannels) diffs.push(`${data.channels} channels, the model ${unet.inChannels}`);
  if (data.height !== unet.imageSize || data.width !== unet.imageSize) diffs.push(`${data.height}x${data.width} images, the model ${unet.imageSize}x${unet.imageSize}`);
  if (diffs.length) {
    const spec = w.run.data;
    const where = spec.kind === 'png' ? spec.dir : spec.kind === 'idx' ? spec.images : 'built-in MNIST';
    throw new DataError(where, `no longer matches the model of ${w.path}: the data has ${diffs.join('; ')}`, 'restore the data the weights were trained on, or train a new teacher on this data');
  }
  return data;
}

/** Read a weights file (or full checkpoint) with the run config it was made with. */
export function loadWeights(path: string): LoadedWeights {
  return weightsFromCheckpoint(readCheckpoint(path), path);
}

/** Save samples [N, C, H, W] in [-1, 1] as a PNG grid. */
export function saveGrid(path: string, samples: Float32Array, n: number, shape: number[], cols = 10): void {
  const [c, h, w] = shape;
  const g = imageGrid(samples, n, c, h, w, Math.min(cols, n));
  savePng(path, g.data, g.width, g.height, g.channels);
}

export const samplesDir = (outDir: string) => join(outDir, 'samples');
