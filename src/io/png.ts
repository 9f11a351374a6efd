// PNG encoding on bytes (no file access: the browser can use it too); train/images.ts writes files.
import { encode } from 'fast-png';

/**
 * Encodes `pixels` (HWC interleaved, 8 bits per sample; channels 1 = gray, 2 = gray+alpha,
 * 3 = RGB, 4 = RGBA) as PNG bytes. `what` names the caller in errors.
 */
export function encodePng(pixels: Uint8Array, width: number, height: number, channels: number, what = 'encodePng'): Uint8Array {
  if (!Number.isSafeInteger(width) || !Number.isSafeInteger(height) || width < 1 || height < 1) {
    throw new RangeError(`${what}: width and height must be positive integers (got ${width} x ${height})`);
  }
  if (![1, 2, 3, 4].includes(channels)) throw new RangeError(`${what}: channels must be 1, 2, 3 or 4 (got ${channels})`);
  if (pixels.length !== width * height * channels) {
    throw new RangeError(`${what}: ${pixels.length} bytes given, ${width} x ${height} x ${channels} = ${width * height * channels} expected`);
  }
  return encode({ width, height, data: pixels, depth: 8, channels });
}
