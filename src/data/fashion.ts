// Fashion-MNIST (Zalando; 60,000 train and 10,000 test images, 28x28 grayscale, 10 classes) from
// the IDX gz files of Debian's package `dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { type Dataset, DataError } from './dataset';
import { loadIdx } from './idx';

/** Where Debian's `dataset-fashion-mnist` installs the files (env DISTILLKAC_FASHION_DIR overrides it). */
export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

/** How to get the files, for error messages and the docs. */
export const FASHION_INSTALL_HINT = 'install them with `apt-get install dataset-fashion-mnist` (as root), or `bash scripts/setup.sh --fashion`';

export const FASHION_CLASS_NAMES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];

export interface FashionOptions {
  /** 'train': the 60,000 training images; 'test': the 10,000 test images. Default 'train'. */
  split?: 'train' | 'test';
  /** folder of the four IDX gz files; default FASHION_MNIST_DIR or env DISTILLKAC_FASHION_DIR */
  dir?: string;
}

export function fashionMnistDir(): string {
  return process.env.DISTILLKAC_FASHION_DIR || FASHION_MNIST_DIR;
}

/** The images and labels files of a split, and whether both are present. */
export function fashionMnistFiles(split: 'train' | 'test' = 'train', dir = fashionMnistDir()): { images: string; labels: string; present: boolean } {
  const prefix = split === 'train' ? 'train' : 't10k';
  const images = join(dir, `${prefix}-images-idx3-ubyte.gz`);
  const labels = join(dir, `${prefix}-labels-idx1-ubyte.gz`);
  return { images, labels, present: existsSync(images) && existsSync(labels) };
}

/**
 * Fashion-MNIST in file order (no shuffling), pixels scaled to [-1, 1]. A missing file raises a
 * DataError naming it and how to install the package.
 */
export function loadFashionMnist(opts: FashionOptions = {}): Dataset {
  const split = opts.split ?? 'train';
  if (split !== 'train' && split !== 'test') throw new RangeError(`loadFashionMnist: split must be 'train' or 'test' (got ${JSON.stringify(split)})`);
  const files = fashionMnistFiles(split, opts.dir ?? fashionMnistDir());
  for (const f of [files.images, files.labels]) {
    if (!existsSync(f)) throw new DataError(f, 'is missing (Fashion-MNIST is read from Debian\'s package dataset-fashion-mnist)', FASHION_INSTALL_HINT);
  }
  const d = loadIdx(files.images, files.labels, { numClasses: 10, name: `fashion-mnist-${split}` });
  if (d.height !== 28 || d.width !== 28) throw new DataError(files.images, `holds ${d.height}x${d.width} images, not Fashion-MNIST's 28x28`, 'reinstall dataset-fashion-mnist');
  return { ...d, classNames: [...FASHION_CLASS_NAMES] };
}
