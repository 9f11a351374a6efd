// The one shape every data source returns (`Dataset`), and the error every bad input raises:
// a `DataError` naming the file, the problem and the fix.
import { readFileSync, statSync } from 'node:fs';

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
export function byteToUnit(b: number): number {
  return b / 127.5 - 1;
}

export function describe(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}

export function readFileChecked(path: string, maxBytes: number, what: string): Uint8Array {
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
