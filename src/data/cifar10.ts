// CIFAR-10's binary version (https://www.cs.toronto.edu/~kriz/cifar.html, "CIFAR-10 binary
// version", folder cifar-10-batches-bin): data_batch_1.bin .. data_batch_5.bin (train, 10,000
// records each) and test_batch.bin (test). Each record is 3,073 bytes: one label byte (0..9), then
// 3,072 pixel bytes, the 32x32 planes of R, G and B in turn, each row-major. That is NCHW already.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { type Dataset, DataError, byteToUnit, readFileChecked } from './dataset';

export const CIFAR10_SIZE = 32;
export const CIFAR10_CHANNELS = 3;
export const CIFAR10_PIXEL_BYTES = CIFAR10_CHANNELS * CIFAR10_SIZE * CIFAR10_SIZE; // 3,072
/** bytes per record: the label byte and the pixel bytes */
export const CIFAR10_RECORD_BYTES = 1 + CIFAR10_PIXEL_BYTES; // 3,073
export const CIFAR10_TRAIN_FILES = ['data_batch_1.bin', 'data_batch_2.bin', 'data_batch_3.bin', 'data_batch_4.bin', 'data_batch_5.bin'];
export const CIFAR10_TEST_FILES = ['test_batch.bin'];
export const CIFAR10_CLASS_NAMES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];
const FORMAT = 'a CIFAR-10 binary batch: records of 1 label byte (0..9) + 3,072 pixel bytes (R, G, B planes of 32x32)';
const DOWNLOAD_HINT = 'download https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz, extract it, and pass its folder cifar-10-batches-bin with --dir';
/** A batch file is 30,730,000 bytes; anything much larger is not one. */
const MAX_BATCH_BYTES = 64 << 20;

/** Records of one batch file's bytes, checked: labels 0..9 at every 3,073-byte stride and a whole number of records. */
export function parseCifar10Batch(bytes: Uint8Array, file: string): { labels: Uint8Array; pixels: Uint8Array; n: number } {
  const R = CIFAR10_RECORD_BYTES;
  if (bytes.length === 0) throw new DataError(file, 'is empty (0 bytes)', `expected ${FORMAT}; the file is truncated, re-download it`);
  const whole = Math.floor(bytes.length / R);
  // A label byte above 9 where a record should start means the records are not 3,073 bytes apart
  // (CIFAR-100's binary records are 3,074 bytes: a coarse and a fine label) or this is not CIFAR-10.
  for (let k = 0; k < whole; k++) {
    const label = bytes[k * R]!;
    if (label > 9) {
      const cifar100 = bytes.length % (R + 1) === 0 ? `; the file is a whole number of ${(R + 1).toLocaleString('en-US')}-byte records, as in CIFAR-100's binary format (2 label bytes)` : '';
      throw new DataError(
        file,
        `record ${k} at byte offset ${k * R} has label byte ${label}, not 0..9: the records are not ${R.toLocaleString('en-US')} bytes long (wrong record size)${cifar100}`,
        `expected ${FORMAT}; give CIFAR-10's binary version (not CIFAR-100, not the Python or MATLAB version)`,
      );
    }
  }
  const rest = bytes.length - whole * R;
  if (rest !== 0) {
    const wrongSize = bytes.length % (R + 1) === 0 ? ` (it is a whole number of ${(R + 1).toLocaleString('en-US')}-byte records: CIFAR-100's binary format?)` : '';
    throw new DataError(
      file,
      `is ${bytes.length} bytes, not a whole number of ${R.toLocaleString('en-US')}-byte records: record ${whole} starts at byte offset ${whole * R} but only ${rest} of its ${R} bytes are there (the file ends at byte offset ${bytes.length})${wrongSize}`,
      `expected ${FORMAT}; the file is truncated or of another format, re-download it`,
    );
  }
  const labels = new Uint8Array(whole);
  const pixels = new Uint8Array(whole * CIFAR10_PIXEL_BYTES);
  for (let k = 0; k < whole; k++) {
    labels[k] = bytes[k * R]!;
    pixels.set(bytes.subarray(k * R + 1, (k + 1) * R), k * CIFAR10_PIXEL_BYTES);
  }
  return { labels, pixels, n: whole };
}

/** The folder holding the batch files: `dir` itself, or its subfolder cifar-10-batches-bin. */
export function cifar10Folder(dir: string): string {
  const sub = join(dir, 'cifar-10-batches-bin');
  if (!existsSync(join(dir, CIFAR10_TEST_FILES[0]!)) && !existsSync(join(dir, CIFAR10_TRAIN_FILES[0]!)) && existsSync(sub)) return sub;
  return dir;
}

function classNames(folder: string): string[] {
  const meta = join(folder, 'batches.meta.txt');
  try {
    if (existsSync(meta) && statSync(meta).size < 4096) {
      const names = readFileSync(meta, 'utf8').split('\n').map((s) => s.trim()).filter(Boolean);
      if (names.length === 10) return names;
    }
  } catch {
    // the names are a convenience; the standard ones follow
  }
  return [...CIFAR10_CLASS_NAMES];
}

export interface Cifar10Options {
  /** 'train': data_batch_1..5.bin; 'test': test_batch.bin. Default 'train'. */
  split?: 'train' | 'test';
}

/**
 * CIFAR-10's binary version from `dir` (the folder cifar-10-batches-bin, or the folder holding it):
 * 3x32x32 RGB images in file order, pixels scaled to [-1, 1], 10 classes. Every failure is a
 * DataError naming the file (and, for a bad length or label, the byte offset).
 */
export function loadCifar10(dir: string, opts: Cifar10Options = {}): Dataset {
  const split = opts.split ?? 'train';
  if (split !== 'train' && split !== 'test') throw new RangeError(`loadCifar10: split must be 'train' or 'test' (got ${JSON.stringify(split)})`);
  const folder = cifar10Folder(dir);
  const files = (split === 'train' ? CIFAR10_TRAIN_FILES : CIFAR10_TEST_FILES).map((f) => join(folder, f));
  for (const f of files) {
    if (!existsSync(f)) throw new DataError(f, `is missing (CIFAR-10's ${split} split is ${split === 'train' ? 'data_batch_1.bin .. data_batch_5.bin' : 'test_batch.bin'})`, DOWNLOAD_HINT);
  }
  const batches = files.map((f) => parseCifar10Batch(readFileChecked(f, MAX_BATCH_BYTES, 'CIFAR-10 binary batch'), f));
  const n = batches.reduce((s, b) => s + b.n, 0);
  const images = new Float32Array(n * CIFAR10_PIXEL_BYTES);
  const labels = new Int32Array(n);
  let k = 0;
  for (const b of batches) {
    for (let i = 0; i < b.pixels.length; i++) images[k * CIFAR10_PIXEL_BYTES + i] = byteToUnit(b.pixels[i]!);
    labels.set(b.labels, k);
    k += b.n;
  }
  return { images, labels, n, channels: CIFAR10_CHANNELS, height: CIFAR10_SIZE, width: CIFAR10_SIZE, numClasses: 10, name: `cifar10-${split}`, classNames: classNames(folder) };
}
