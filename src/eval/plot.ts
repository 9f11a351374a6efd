// A tiny RGB rasteriser for result figures: pixels, alpha-blended dots, Bresenham lines (solid or
// dashed), a 3x5 bitmap font (digits, A-Z, a few symbols; lower case is drawn as upper case), and
// axes with linear or log scales and tick marks. Written to PNG with savePng. No dependencies.
import { savePng } from '../train/images';

export type RGB = readonly [number, number, number];
export const WHITE: RGB = [255, 255, 255];
export const BLACK: RGB = [0, 0, 0];
export const GREY: RGB = [150, 150, 150];

// 3x5 glyphs, rows top to bottom, '1' = ink.
const FONT: Record<string, string> = {
  '0': '111101101101111', '1': '010110010010111', '2': '111001111100111', '3': '111001111001111', '4': '101101111001001',
  '5': '111100111001111', '6': '111100111101111', '7': '111001001010010', '8': '111101111101111', '9': '111101111001111',
  A: '010101111101101', B: '110101110101110', C: '011100100100011', D: '110101101101110', E: '111100110100111',
  F: '111100110100100', G: '011100101101011', H: '101101111101101', I: '111010010010111', J: '001001001101010',
  K: '101101110101101', L: '100100100100111', M: '101111111101101', N: '110101101101101', O: '010101101101010',
  P: '110101110100100', Q: '010101101110011', R: '110101110101101', S: '011100010001110', T: '111010010010010',
  U: '101101101101111', V: '101101101101010', W: '101101111111101', X: '101101010101101', Y: '101101010010010',
  Z: '111001010100111', '.': '000000000000010', '-': '000000111000000', '+': '000010111010000', '|': '010010010010010',
  '=': '000111000111000', '(': '001010010010001', ')': '100010010010100', '/': '001001010100100', ':': '000010000010000',
  ',': '000000000010100', ' ': '000000000000000', '_': '000000000000111', '^': '010101000000000', '<': '001010100010001',
  '>': '100010001010100', '*': '000101010101000', '%': '101001010100101', '[': '011010010010011', ']': '110010010010110',
};

export class Canvas {
  readonly data: Uint8Array;
  constructor(
    readonly width: number,
    readonly height: number,
    bg: RGB = WHITE,
  ) {
    if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) throw new RangeError(`Canvas: bad size ${width} x ${height}`);
    this.data = new Uint8Array(width * height * 3);
    for (let i = 0; i < width * height; i++) this.data.set(bg, 3 * i);
  }

  /** Blend `rgb` into pixel (x, y) with opacity alpha; off-canvas and non-finite coordinates are ignored. */
  set(x: number, y: number, rgb: RGB, alpha = 1): void {
    x = Math.round(x);
    y = Math.round(y);
    if (!(x >= 0 && x < this.width && y >= 0 && y < this.height)) return;
    const i = 3 * (y * this.width + x);
    for (let k = 0; k < 3; k++) this.data[i + k] = Math.round(this.data[i + k]! * (1 - alpha) + rgb[k]! * alpha);
  }

  get(x: number, y: number): RGB {
    const i = 3 * (y * this.width + x);
    return [this.data[i]!, this.data[i + 1]!, this.data[i + 2]!];
  }

  fillRect(x: number, y: number, w: number, h: number, rgb: RGB, alpha = 1): void {
    for (let j = 0; j < h; j++) for (let i = 0; i < w; i++) this.set(x + i, y + j, rgb, alpha);
  }

  /** A square dot of side 2r + 1 centred at (x, y). */
  dot(x: number, y: number, rgb: RGB, r = 0, alpha = 1): void {
    if (!Number.isFinite(x) || !Number.isFinite(y)) return;
    this.fillRect(Math.round(x) - r, Math.round(y) - r, 2 * r + 1, 2 * r + 1, rgb, alpha);
  }

  /**
   * Bresenham line; `dash` = [on, off] pixel counts, starting `phase` pixels into the pattern;
   * `width` draws parallel copies. Returns the phase after the last pixel, so a polyline can carry
   * its dash pattern across short segments.
   */
  line(x0: number, y0: number, x1: number, y1: number, rgb: RGB, opts: { dash?: [number, number]; width?: number; alpha?: number; phase?: number } = {}): number {
    if (![x0, y0, x1, y1].every(Number.isFinite)) return opts.phase ?? 0;
    x0 = Math.round(x0);
    y0 = Math.round(y0);
    x1 = Math.round(x1);
    y1 = Math.round(y1);
    const dx = Math.abs(x1 - x0);
    const dy = -Math.abs(y1 - y0);
    const sx = x0 < x1 ? 1 : -1;
    const sy = y0 < y1 ? 1 : -1;
    const w = opts.width ?? 1;
    const steep = -dy > dx;
    let err = dx + dy;
    let n = opts.phase ?? 0;
    for (;;) {
      const on = !opts.dash || n % (opts.dash[0] + opts.dash[1]) < opts.dash[0];
      if (on) for (let k = 0; k < w; k++) this.set(steep ? x0 + k : x0, steep ? y0 : y0 + k, rgb, opts.alpha ?? 1);
      if (x0 === x1 && y0 === y1) break;
      n++;
      const e2 = 2 * err;
      if (e2 >= dy) {
        err += dy;
        x0 += sx;
      }
      if (e2 <= dx) {
        err += dx;
        y0 += sy;
      }
    }
    return n;
  }

  /** Draws `s` with the 3x5 font, top-left at (x, y), each font pixel `scale` x `scale`. Returns the width drawn. */
  text(x: number, y: number, s: string, rgb: RGB = BLACK, scale = 2): number {
    let cx = x;
    for (const ch of s.toUpperCase()) {
      const g = FONT[ch] ?? FONT['?'] ?? '111101001010010';
      for (let r = 0; r < 5; r++) for (let c = 0; c < 3; c++) if (g[3 * r + c] === '1') this.fillRect(cx + c * scale, y + r * scale, scale, scale, rgb);
      cx += 4 * scale;
    }
    return cx - x;
  }

  save(path: string): void {
    savePng(path, this.data, this.width, this.height, 3);
  }
}

/** Pixel width of `s` in the 3x5 font at `scale`. */
export const textWidth = (s: string, scale = 2): number => s.length * 4 * scale - scale;

export interface Scale {
  min: number;
  max: number;
  log?: boolean;
}

export interface AxesOptions {
  xTicks?: number[];
  yTicks?: number[];
  title?: string;
  xLabel?: string;
  yLabel?: string;
  /** tick label text (default: compact number format) */
  format?: (v: number, log: boolean) => string;
}

/** Compact tick label: 1E-3 style on log axes, short decimals otherwise. */
export function tickLabel(v: number, log: boolean): string {
  if (log) {
    const e = Math.round(Math.log10(v));
    if (Math.abs(v - 10 ** e) < 1e-9 * Math.abs(v)) return e === 0 ? '1' : e === 1 ? '10' : e === 2 ? '100' : `1E${e}`;
  }
  if (v === 0) return '0';
  return String(Number(v.toPrecision(3)));
}

/** A plot box on a canvas: maps data to pixels (y up), clipping to the box. */
export class Axes {
  constructor(
    readonly canvas: Canvas,
    readonly left: number,
    readonly top: number,
    readonly width: number,
    readonly height: number,
    readonly x: Scale,
    readonly y: Scale,
  ) {
    for (const s of [x, y]) if (!(s.max > s.min) || (s.log && !(s.min > 0))) throw new RangeError(`Axes: bad scale ${JSON.stringify(s)}`);
  }

  private static frac(v: number, s: Scale): number {
    return s.log ? (Math.log(v) - Math.log(s.min)) / (Math.log(s.max) - Math.log(s.min)) : (v - s.min) / (s.max - s.min);
  }

  px(v: number): number {
    return this.left + Axes.frac(v, this.x) * (this.width - 1);
  }

  py(v: number): number {
    return this.top + (1 - Axes.frac(v, this.y)) * (this.height - 1);
  }

  inside(px: number, py: number): boolean {
    return px >= this.left && px <= this.left + this.width - 1 && py >= this.top && py <= this.top + this.height - 1;
  }

  /** Frame, ticks, tick labels, title and axis labels. */
  frame(opts: AxesOptions = {}): void {
    const c = this.canvas;
    const fmt = opts.format ?? tickLabel;
    const r = this.left + this.width - 1;
    const b = this.top + this.height - 1;
    c.line(this.left, this.top, r, this.top, BLACK);
    c.line(this.left, b, r, b, BLACK);
    c.line(this.left, this.top, this.left, b, BLACK);
    c.line(r, this.top, r, b, BLACK);
    for (const v of opts.xTicks ?? []) {
      const p = this.px(v);
      if (!(p >= this.left - 0.5 && p <= r + 0.5)) continue;
      c.line(p, b, p, b - 5, BLACK);
      c.line(p, this.top, p, this.top + 3, BLACK);
      const s = fmt(v, !!this.x.log);
      c.text(Math.round(p - textWidth(s) / 2), b + 5, s, BLACK);
    }
    for (const v of opts.yTicks ?? []) {
      const p = this.py(v);
      if (!(p >= this.top - 0.5 && p <= b + 0.5)) continue;
      c.line(this.left, p, this.left + 5, p, BLACK);
      c.line(r, p, r - 3, p, BLACK);
      const s = fmt(v, !!this.y.log);
      c.text(this.left - 5 - textWidth(s), Math.round(p - 5), s, BLACK);
    }
    if (opts.title) c.text(this.left, this.top - 16, opts.title, BLACK);
    if (opts.xLabel) c.text(r - textWidth(opts.xLabel), b + 20, opts.xLabel, BLACK);
    if (opts.yLabel) c.text(this.left + 8, this.top + 6, opts.yLabel, BLACK);
  }

  /** Points (x, y interleaved) as dots, clipped to the box. */
  scatter(points: ArrayLike<number>, rgb: RGB, opts: { r?: number; alpha?: number } = {}): void {
    for (let i = 0; i + 1 < points.length; i += 2) {
      const px = this.px(points[i]!);
      const py = this.py(points[i + 1]!);
      if (this.inside(px, py)) this.canvas.dot(px, py, rgb, opts.r ?? 0, opts.alpha ?? 1);
    }
  }

  /** A polyline through (xs[i], ys[i]); values outside the y range are clamped to the box edge. */
  polyline(xs: ArrayLike<number>, ys: ArrayLike<number>, rgb: RGB, opts: { dash?: [number, number]; width?: number; markers?: boolean } = {}): void {
    const b = this.top + this.height - 1;
    const clampY = (v: number) => Math.min(b, Math.max(this.top, v));
    const pt = (i: number): [number, number] | null => {
      const x = xs[i]!;
      let y = ys[i]!;
      if (!Number.isFinite(x) || Number.isNaN(y)) return null;
      if (this.y.log && !(y > 0)) y = this.y.min;
      const px = this.px(x);
      if (px < this.left - 0.5 || px > this.left + this.width - 0.5) return null;
      return [px, clampY(Number.isFinite(y) ? this.py(y) : y > 0 ? this.top : b)];
    };
    let prev: [number, number] | null = null;
    let phase = 0;
    for (let i = 0; i < xs.length; i++) {
      const p = pt(i);
      if (p && prev) phase = this.canvas.line(prev[0], prev[1], p[0], p[1], rgb, { dash: opts.dash, width: opts.width, phase });
      if (p && opts.markers) this.canvas.dot(p[0], p[1], rgb, 1);
      prev = p;
    }
  }

  /** A horizontal line at data value y across the box. */
  hline(y: number, rgb: RGB, dash: [number, number] = [6, 4]): void {
    const p = this.py(y);
    if (p >= this.top && p <= this.top + this.height - 1) this.canvas.line(this.left, p, this.left + this.width - 1, p, rgb, { dash });
  }
}

/** Powers of ten within [min, max]. */
export function decades(min: number, max: number): number[] {
  const out: number[] = [];
  for (let e = Math.ceil(Math.log10(min) - 1e-9); e <= Math.floor(Math.log10(max) + 1e-9); e++) out.push(Number(`1e${e}`));
  return out;
}
