// Tiling a batch of NCHW images with values in [-1, 1] into one 8-bit HWC image: the PNG grids of the
// CLI (png.ts) and the canvas of the browser page. Pure (no file access).

export interface GridImage {
  /** HWC interleaved bytes. */
  data: Uint8Array;
  width: number;
  height: number;
  channels: number;
}

/** Maps a value in [-1, 1] to a byte (clamped; NaN -> 0). */
export function unitToByte(v: number): number {
  const b = Math.round((v + 1) * 127.5);
  return b > 255 ? 255 : b >= 0 ? b : 0; // NaN fails `b >= 0`
}

/**
 * Tiles n images (NCHW, values in [-1, 1]) into a grid of `cols` columns with `pad` pixels of
 * `padValue` (a byte, default 255: white) around and between tiles. Returns HWC bytes with c
 * channels, ready for `savePng`.
 */
export function imageGrid(images: Float32Array, n: number, c: number, h: number, w: number, cols: number, pad = 2, padValue = 255): GridImage {
  for (const [k, v] of Object.entries({ n, c, h, w, cols, pad })) {
    if (!Number.isSafeInteger(v) || v < (k === 'pad' || k === 'n' ? 0 : 1)) throw new RangeError(`imageGrid: ${k} must be a ${k === 'pad' || k === 'n' ? 'non-negative' : 'positive'} integer (got ${v})`);
  }
  if (images.length < n * c * h * w) throw new RangeError(`imageGrid: ${images.length} values given, ${n} x ${c} x ${h} x ${w} = ${n * c * h * w} needed`);
  const ncols = Math.max(1, Math.min(cols, n));
  const rows = Math.max(1, Math.ceil(n / cols));
  const width = ncols * w + (ncols + 1) * pad;
  const height = rows * h + (rows + 1) * pad;
  const data = new Uint8Array(width * height * c).fill(padValue);
  const plane = h * w;
  for (let i = 0; i < n; i++) {
    const x0 = pad + (i % cols) * (w + pad);
    const y0 = pad + Math.floor(i / cols) * (h + pad);
    const base = i * c * plane;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const o = ((y0 + y) * width + x0 + x) * c;
        for (let ch = 0; ch < c; ch++) data[o + ch] = unitToByte(images[base + ch * plane + y * w + x]!);
      }
    }
  }
  return { data, width, height, channels: c };
}
