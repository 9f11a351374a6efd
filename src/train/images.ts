// Image files a run writes: PNG grids of samples (encoded by io/png.ts, browser-safe).
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { imageGrid } from '../io/image-grid';
import { encodePng } from '../io/png';

/** Writes 8-bit pixels (see encodePng) to a PNG file, creating the parent folder if needed. */
export function savePng(path: string, pixels: Uint8Array, width: number, height: number, channels: number): void {
  const png = encodePng(pixels, width, height, channels, `savePng(${path})`);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, png);
}

/** Save samples [N, C, H, W] in [-1, 1] as a PNG grid. */
export function saveGrid(path: string, samples: Float32Array, n: number, shape: number[], cols = 10): void {
  const [c, h, w] = shape;
  const g = imageGrid(samples, n, c, h, w, Math.min(cols, n));
  savePng(path, g.data, g.width, g.height, g.channels);
}

export const samplesDir = (outDir: string) => join(outDir, 'samples');
