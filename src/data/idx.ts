// MNIST-format IDX files (MNIST, Fashion-MNIST, ...), optionally gzipped.
import { basename, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { type Dataset, DataError, byteToUnit, describe, readFileChecked } from './dataset';

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
