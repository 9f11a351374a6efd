// Where training data comes from: one file per source, each returning a `Dataset`. To add a source,
// write a loader returning a Dataset (throwing DataError on bad input), add a kind to DataSpec
// (models/weights.ts, so checkpoints record it) and a case to loadData.
import type { DataSpec, LoadedWeights } from '../models/weights';
import { type Dataset, DataError } from './dataset';
import { loadCifar10 } from './cifar10';
import { loadFashionMnist } from './fashion';
import { loadIdx } from './idx';
import { loadBuiltinMnist } from './mnist';
import { loadPngFolder } from './png-folder';

export * from './cifar10';
export * from './dataset';
export * from './fashion';
export * from './idx';
export * from './mixture2d';
export * from './mnist';
export * from './png-folder';
export type { DataSpec };

export function loadData(spec: DataSpec, split: 'train' | 'test' = 'train'): Dataset {
  switch (spec.kind) {
    case 'mnist':
      return loadBuiltinMnist({ split });
    case 'fashion':
      return loadFashionMnist({ split });
    case 'idx':
      return loadIdx(spec.images, spec.labels);
    case 'png':
      return loadPngFolder(spec.dir);
    case 'cifar10':
      return loadCifar10(spec.dir, { split });
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
    const where = dataWhere(spec);
    throw new DataError(where, `no longer matches the model of ${w.path}: the data has ${diffs.join('; ')}`, 'restore the data the weights were trained on, or train a new teacher on this data');
  }
  return data;
}

/** Where a DataSpec's data lives, for messages. */
export function dataWhere(spec: DataSpec): string {
  switch (spec.kind) {
    case 'mnist':
      return 'built-in MNIST';
    case 'fashion':
      return 'Fashion-MNIST';
    case 'idx':
      return spec.images;
    case 'png':
    case 'cifar10':
      return spec.dir;
  }
}
