/**
 * Writing images: `savePng` encodes 8-bit pixels to a PNG file; `imageGrid` (image-grid.ts, pure, also
 * drawn by the browser page) tiles a batch of NCHW images with values in [-1, 1] into one 8-bit HWC image.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { encode } from 'fast-png';

export { type GridImage, imageGrid, unitToByte } from './image-grid';

/**
 * Writes `pixels` (HWC interleaved, 8 bits per sample; channels 1 = gray, 2 = gray+alpha,
 * 3 = RGB, 4 = RGBA) to a PNG file, creating the parent folder if needed.
 */
export function savePng(path: string, pixels: Uint8Array, width: number, height: number, channels: number): void {
  if (!Number.isSafeInteger(width) || !Number.isSafeInteger(height) || width < 1 || height < 1) {
    throw new RangeError(`savePng(${path}): width and height must be positive integers (got ${width} x ${height})`);
  }
  if (![1, 2, 3, 4].includes(channels)) throw new RangeError(`savePng(${path}): channels must be 1, 2, 3 or 4 (got ${channels})`);
  if (pixels.length !== width * height * channels) {
    throw new RangeError(`savePng(${path}): ${pixels.length} bytes given, ${width} x ${height} x ${channels} = ${width * height * channels} expected`);
  }
  const png = encode({ width, height, data: pixels, depth: 8, channels });
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, png);
}
