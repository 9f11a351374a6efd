// A folder of PNG images, one subfolder per class, and the checked PNG decoder it reads them with.
import { readdirSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { decode as decodePng } from 'fast-png';
import { type Dataset, DataError, byteToUnit, describe, readFileChecked } from './dataset';

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
