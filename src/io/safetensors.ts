/**
 * Reader and writer for the Hugging Face safetensors format, on bytes only
 * (no Node modules: this file runs in browsers too).
 *
 * Layout of a file:
 *   - 8 bytes: N, an unsigned little-endian 64-bit integer, the header length;
 *   - N bytes: a UTF-8 JSON object, starting with `{`, optionally padded at the
 *     end with spaces (the reference writer pads it to a multiple of 8 bytes).
 *     Each key is a tensor name mapping to
 *     `{"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}`;
 *     the special key `__metadata__` maps to an object of string -> string;
 *   - the byte buffer: tensor data, little-endian, row-major (C order).
 *     `data_offsets` are relative to the start of this buffer, and the tensors
 *     must cover it entirely, without overlaps or holes.
 *
 * The writer follows the reference implementation byte for byte: tensors are
 * sorted by descending dtype alignment and then by name (byte-wise UTF-8
 * order), `__metadata__` (when given) comes first, the JSON is compact, and the
 * header is padded with spaces to a multiple of 8 bytes. Metadata keys, which
 * the reference keeps in a hash map of unspecified order, are written sorted.
 *
 * The reader validates the whole header against the actual byte length before
 * allocating anything for tensor data, and reports every problem as a
 * `SafetensorsError` naming the file, the problem and what to do about it.
 */

/** Dtypes this module reads. F16 and BF16 are returned as Float32Array, I64 as Int32Array. */
export type SafetensorsDtype = 'F32' | 'F16' | 'BF16' | 'I32' | 'I64' | 'U8';
/** Dtypes this module writes. */
export type SafetensorsWriteDtype = SafetensorsDtype;

/** A tensor handed to `encodeSafetensors`. */
export interface SafetensorsTensorInput {
  dtype: SafetensorsWriteDtype;
  shape: readonly number[];
  /**
   * F32/F16/BF16: Float32Array (or Float64Array, converted to float32 first);
   * I32/I64: Int32Array; U8: Uint8Array or Uint8ClampedArray.
   */
  data: Float32Array | Float64Array | Int32Array | Uint8Array | Uint8ClampedArray;
}

/** A tensor returned by `decodeSafetensors`. `dtype` is the dtype stored in the file. */
export interface SafetensorsTensor {
  dtype: SafetensorsDtype;
  shape: number[];
  data: Float32Array | Int32Array | Uint8Array;
}

export interface DecodedSafetensors {
  /** Tensors in file (offset) order (ties between empty tensors: by name). */
  tensors: Record<string, SafetensorsTensor>;
  metadata: Record<string, string>;
}

export interface DecodeSafetensorsOptions {
  /** Name of the file or source, used in error messages. */
  name?: string;
  /** Largest accepted header, in bytes. Default 100,000,000 (the reference implementation's limit). */
  maxHeaderBytes?: number;
}

export type SafetensorsErrorCode =
  | 'INVALID_INPUT'
  | 'TOO_SMALL'
  | 'HEADER_TOO_LARGE'
  | 'HEADER_OUT_OF_BOUNDS'
  | 'INVALID_UTF8'
  | 'INVALID_HEADER_START'
  | 'INVALID_JSON'
  | 'DUPLICATE_KEY'
  | 'INVALID_METADATA'
  | 'INVALID_ENTRY'
  | 'UNSUPPORTED_DTYPE'
  | 'SIZE_MISMATCH'
  | 'OFFSET_OUT_OF_BOUNDS'
  | 'OVERLAP'
  | 'GAP'
  | 'VALUE_OUT_OF_RANGE';

/** Every failure of this module. `message` = `${file}: ${problem}. ${hint}` */
export class SafetensorsError extends Error {
  override readonly name = 'SafetensorsError';
  constructor(
    /** The file or source name (opts.name), or a placeholder. */
    readonly file: string,
    readonly code: SafetensorsErrorCode,
    /** What is wrong. */
    readonly problem: string,
    /** What to do about it. */
    readonly hint: string,
  ) {
    super(`${file}: ${problem}. ${hint}`);
  }
}

const DEFAULT_MAX_HEADER = 100_000_000;
const JSON_MAX_DEPTH = 128;

const ITEM_SIZE: Record<SafetensorsDtype, number> = { F32: 4, F16: 2, BF16: 2, I32: 4, I64: 8, U8: 1 };
/** Position in the reference implementation's Dtype enum (ascending alignment); only the order matters. */
const DTYPE_RANK: Record<SafetensorsDtype, number> = { U8: 1, F16: 7, BF16: 8, I32: 9, F32: 11, I64: 13 };
/** Dtypes of the format that this module does not read. */
const KNOWN_UNSUPPORTED = new Set([
  'BOOL', 'I8', 'U16', 'I16', 'U32', 'U64', 'F64', 'C64',
  'F4', 'F6_E2M3', 'F6_E3M2', 'F8_E5M2', 'F8_E4M3', 'F8_E8M0',
]);
const SUPPORTED_LIST = 'F32, F16, BF16, I32, I64, U8';

function isSupportedDtype(s: string): s is SafetensorsDtype {
  return Object.prototype.hasOwnProperty.call(ITEM_SIZE, s);
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Defines an own enumerable property, safe for names such as `__proto__`. */
function setOwn<T>(obj: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

// ---------------------------------------------------------------------------
// float16 / bfloat16 conversions

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** float32 (given as a JS number, first rounded to float32) -> IEEE binary16 bits, round to nearest even. */
export function float32ToFloat16Bits(value: number): number {
  f32Scratch[0] = value;
  const x = u32Scratch[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) {
    if (mant === 0) return sign | 0x7c00; // infinity
    return sign | 0x7e00 | (mant >>> 13); // NaN, kept quiet
  }
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00; // overflow -> infinity
  if (e <= 0) {
    // subnormal half (or zero)
    if (e < -10) return sign; // below half the smallest subnormal: rounds to zero
    const m = mant | 0x800000;
    const shift = 14 - e; // 14..24
    let h = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1) === 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) === 1)) h++; // a carry into the exponent is correct
  return sign | h;
}

let f16Table: Float32Array | null = null;
function float16Table(): Float32Array {
  if (f16Table) return f16Table;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) t[h] = float16BitsToFloat32(h);
  f16Table = t;
  return t;
}

/** IEEE binary16 bits -> number (exact). */
export function float16BitsToFloat32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 31) return mant === 0 ? sign * Infinity : NaN;
  return sign * (1024 + mant) * 2 ** (exp - 25);
}

/** float32 -> bfloat16 bits, round to nearest even. */
export function float32ToBfloat16Bits(value: number): number {
  f32Scratch[0] = value;
  const x = u32Scratch[0]!;
  if ((x & 0x7f800000) === 0x7f800000 && (x & 0x7fffff) !== 0) return ((x >>> 16) | 0x40) & 0xffff; // quiet NaN
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

// ---------------------------------------------------------------------------
// A strict JSON parser (RFC 8259) that rejects duplicate keys and keeps the
// text of numbers, so integers can be told from `2.0` or `1e3`.

class JNum {
  constructor(readonly text: string, readonly value: number, readonly isInteger: boolean) {}
}
class JObj {
  readonly entries = new Map<string, JVal>();
}
type JVal = null | boolean | string | JNum | JObj | JVal[];

class JsonProblem extends Error {
  constructor(readonly code: 'INVALID_JSON' | 'DUPLICATE_KEY', readonly detail: string) {
    super(detail);
  }
}

function parseJson(text: string): JVal {
  let pos = 0;
  const len = text.length;
  const fail = (msg: string): never => {
    throw new JsonProblem('INVALID_JSON', `${msg} at character ${pos}`);
  };
  const skipWs = (): void => {
    while (pos < len) {
      const c = text.charCodeAt(pos);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) pos++;
      else break;
    }
  };
  const parseString = (): string => {
    // at opening quote
    pos++;
    let out = '';
    let chunkStart = pos;
    for (;;) {
      if (pos >= len) fail('unterminated string');
      const c = text.charCodeAt(pos);
      if (c === 0x22) {
        out += text.slice(chunkStart, pos);
        pos++;
        return out;
      }
      if (c < 0x20) fail('unescaped control character in string');
      if (c === 0x5c) {
        out += text.slice(chunkStart, pos);
        pos++;
        if (pos >= len) fail('unterminated escape');
        const e = text.charCodeAt(pos);
        pos++;
        switch (e) {
          case 0x22: out += '"'; break;
          case 0x5c: out += '\\'; break;
          case 0x2f: out += '/'; break;
          case 0x62: out += '\b'; break;
          case 0x66: out += '\f'; break;
          case 0x6e: out += '\n'; break;
          case 0x72: out += '\r'; break;
          case 0x74: out += '\t'; break;
          case 0x75: {
            const cu = readHex4();
            if (cu >= 0xd800 && cu <= 0xdbff) {
              if (text.charCodeAt(pos) !== 0x5c || text.charCodeAt(pos + 1) !== 0x75) fail('lone surrogate in \\u escape');
              pos += 2;
              const lo = readHex4();
              if (lo < 0xdc00 || lo > 0xdfff) fail('lone surrogate in \\u escape');
              out += String.fromCharCode(cu, lo);
            } else if (cu >= 0xdc00 && cu <= 0xdfff) {
              fail('lone surrogate in \\u escape');
            } else {
              out += String.fromCharCode(cu);
            }
            break;
          }
          default:
            pos--;
            fail('invalid escape');
        }
        chunkStart = pos;
        continue;
      }
      pos++;
    }
  };
  const readHex4 = (): number => {
    if (pos + 4 > len) fail('truncated \\u escape');
    let v = 0;
    for (let i = 0; i < 4; i++) {
      const c = text.charCodeAt(pos + i);
      let d: number;
      if (c >= 0x30 && c <= 0x39) d = c - 0x30;
      else if (c >= 0x61 && c <= 0x66) d = c - 0x57;
      else if (c >= 0x41 && c <= 0x46) d = c - 0x37;
      else return fail('invalid \\u escape');
      v = v * 16 + d;
    }
    pos += 4;
    return v;
  };
  const isDigit = (c: number): boolean => c >= 0x30 && c <= 0x39;
  const parseNumber = (): JNum => {
    const start = pos;
    let isInteger = true;
    if (text.charCodeAt(pos) === 0x2d) pos++;
    if (pos >= len) fail('truncated number');
    if (text.charCodeAt(pos) === 0x30) pos++;
    else if (isDigit(text.charCodeAt(pos))) while (pos < len && isDigit(text.charCodeAt(pos))) pos++;
    else fail('invalid number');
    if (text.charCodeAt(pos) === 0x2e) {
      isInteger = false;
      pos++;
      if (!isDigit(text.charCodeAt(pos))) fail('invalid number');
      while (pos < len && isDigit(text.charCodeAt(pos))) pos++;
    }
    const c = text.charCodeAt(pos);
    if (c === 0x65 || c === 0x45) {
      isInteger = false;
      pos++;
      const s = text.charCodeAt(pos);
      if (s === 0x2b || s === 0x2d) pos++;
      if (!isDigit(text.charCodeAt(pos))) fail('invalid number');
      while (pos < len && isDigit(text.charCodeAt(pos))) pos++;
    }
    const t = text.slice(start, pos);
    return new JNum(t, Number(t), isInteger);
  };
  const parseLiteral = (word: string, value: JVal): JVal => {
    if (text.startsWith(word, pos)) {
      pos += word.length;
      return value;
    }
    return fail('invalid literal');
  };
  const parseValue = (depth: number): JVal => {
    if (depth > JSON_MAX_DEPTH) fail(`nesting deeper than ${JSON_MAX_DEPTH}`);
    skipWs();
    if (pos >= len) fail('unexpected end of JSON');
    const c = text.charCodeAt(pos);
    if (c === 0x7b) {
      pos++;
      const obj = new JObj();
      skipWs();
      if (text.charCodeAt(pos) === 0x7d) {
        pos++;
        return obj;
      }
      for (;;) {
        skipWs();
        if (text.charCodeAt(pos) !== 0x22) fail('expected a string key');
        const keyPos = pos;
        const key = parseString();
        if (obj.entries.has(key)) {
          throw new JsonProblem('DUPLICATE_KEY', `duplicate key ${JSON.stringify(key)} at character ${keyPos}`);
        }
        skipWs();
        if (text.charCodeAt(pos) !== 0x3a) fail("expected ':'");
        pos++;
        obj.entries.set(key, parseValue(depth + 1));
        skipWs();
        const d = text.charCodeAt(pos);
        if (d === 0x2c) {
          pos++;
          continue;
        }
        if (d === 0x7d) {
          pos++;
          return obj;
        }
        fail("expected ',' or '}'");
      }
    }
    if (c === 0x5b) {
      pos++;
      const arr: JVal[] = [];
      skipWs();
      if (text.charCodeAt(pos) === 0x5d) {
        pos++;
        return arr;
      }
      for (;;) {
        arr.push(parseValue(depth + 1));
        skipWs();
        const d = text.charCodeAt(pos);
        if (d === 0x2c) {
          pos++;
          continue;
        }
        if (d === 0x5d) {
          pos++;
          return arr;
        }
        fail("expected ',' or ']'");
      }
    }
    if (c === 0x22) return parseString();
    if (c === 0x74) return parseLiteral('true', true);
    if (c === 0x66) return parseLiteral('false', false);
    if (c === 0x6e) return parseLiteral('null', null);
    if (c === 0x2d || isDigit(c)) return parseNumber();
    return fail('unexpected character');
  };
  const v = parseValue(0);
  skipWs();
  if (pos !== len) fail('unexpected data after the JSON object');
  return v;
}

// ---------------------------------------------------------------------------
// Byte-wise UTF-8 ordering of JS strings (what Rust's String ordering is).

function isWellFormedUtf16(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const d = s.charCodeAt(i + 1);
      if (!(d >= 0xdc00 && d <= 0xdfff)) return false;
      i++;
    } else if (c >= 0xdc00 && c <= 0xdfff) {
      return false;
    }
  }
  return true;
}

/** Compares well-formed strings by code point, which equals byte-wise UTF-8 order. */
function compareUtf8(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const ca = a.charCodeAt(i);
    const cb = b.charCodeAt(i);
    if (ca === cb) continue;
    // Surrogates (U+D800..DFFF) encode code points above U+FFFF, which sort after all BMP code units.
    const ka = ca >= 0xd800 && ca <= 0xdfff ? ca + 0x10000 : ca;
    const kb = cb >= 0xd800 && cb <= 0xdfff ? cb + 0x10000 : cb;
    return ka - kb;
  }
  return a.length - b.length;
}

// ---------------------------------------------------------------------------
// Writer

export interface EncodeSafetensorsOptions {
  /** Name used in error messages. */
  name?: string;
}

function shapeElements(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/**
 * Serializes tensors (and optional string metadata) into a safetensors file.
 * Writes F32, F16 and BF16 (round to nearest even from float32), I32, I64
 * (sign-extended from Int32Array) and U8.
 */
export function encodeSafetensors(
  tensors: Record<string, SafetensorsTensorInput>,
  metadata?: Record<string, string>,
  opts: EncodeSafetensorsOptions = {},
): Uint8Array {
  const file = opts.name ?? 'safetensors output';
  const bad = (problem: string, hint: string): never => {
    throw new SafetensorsError(file, 'INVALID_INPUT', problem, hint);
  };
  if (tensors === null || typeof tensors !== 'object') bad('tensors must be an object of name -> tensor', 'pass e.g. { w: { dtype: "F32", shape: [2], data: new Float32Array(2) } }');

  interface Prepared { name: string; dtype: SafetensorsDtype; shape: number[]; data: SafetensorsTensorInput['data']; nbytes: number }
  const items: Prepared[] = [];
  for (const name of Object.keys(tensors)) {
    const t = tensors[name]!;
    if (name === '__metadata__') bad('a tensor cannot be named "__metadata__"', 'rename the tensor; that key is reserved for metadata');
    if (!isWellFormedUtf16(name)) bad(`tensor name ${JSON.stringify(name)} contains a lone surrogate`, 'use names that are valid Unicode');
    if (t === null || typeof t !== 'object') bad(`tensor '${name}' is not an object`, 'give { dtype, shape, data }');
    const dtype = t.dtype as string;
    if (typeof dtype !== 'string' || !isSupportedDtype(dtype)) bad(`tensor '${name}' has unsupported dtype ${JSON.stringify(dtype)}`, `use one of ${SUPPORTED_LIST}`);
    const dt = dtype as SafetensorsDtype;
    if (!Array.isArray(t.shape)) bad(`tensor '${name}' has no shape array`, 'give shape as an array of non-negative integers');
    for (const d of t.shape) {
      if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) bad(`tensor '${name}' has invalid shape [${t.shape.join(', ')}]`, 'shape entries must be non-negative integers');
    }
    const count = shapeElements(t.shape);
    const data = t.data;
    const okType =
      dt === 'F32' || dt === 'F16' || dt === 'BF16'
        ? data instanceof Float32Array || data instanceof Float64Array
        : dt === 'I32' || dt === 'I64'
          ? data instanceof Int32Array
          : data instanceof Uint8Array || data instanceof Uint8ClampedArray;
    if (!okType) {
      const want = dt === 'U8' ? 'Uint8Array' : dt === 'I32' || dt === 'I64' ? 'Int32Array' : 'Float32Array';
      bad(`tensor '${name}' (${dt}) has data of type ${data?.constructor?.name ?? typeof data}`, `give a ${want}`);
    }
    if (data.length !== count) bad(`tensor '${name}' has shape [${t.shape.join(', ')}] (${count} elements) but ${data.length} data elements`, 'make the data length equal the product of the shape');
    items.push({ name, dtype: dt, shape: t.shape.slice(), data, nbytes: count * ITEM_SIZE[dt] });
  }
  // Reference order: descending dtype alignment, then name.
  items.sort((a, b) => DTYPE_RANK[b.dtype] - DTYPE_RANK[a.dtype] || compareUtf8(a.name, b.name));

  let json = '{';
  let first = true;
  if (metadata !== undefined) {
    if (metadata === null || typeof metadata !== 'object') bad('metadata must be an object of string -> string', 'pass e.g. { format: "pt" }');
    const keys = Object.keys(metadata).sort(compareUtf8);
    const parts: string[] = [];
    for (const k of keys) {
      const v = metadata[k];
      if (typeof v !== 'string') bad(`metadata value for ${JSON.stringify(k)} is ${typeof v}, not a string`, 'safetensors metadata holds strings only: convert with String() or JSON.stringify()');
      if (!isWellFormedUtf16(k) || !isWellFormedUtf16(v as string)) bad(`metadata entry ${JSON.stringify(k)} contains a lone surrogate`, 'use valid Unicode');
      parts.push(`${JSON.stringify(k)}:${JSON.stringify(v)}`);
    }
    json += `"__metadata__":{${parts.join(',')}}`;
    first = false;
  }
  let offset = 0;
  const offsets: number[] = [];
  for (const it of items) {
    if (!first) json += ',';
    first = false;
    json += `${JSON.stringify(it.name)}:{"dtype":"${it.dtype}","shape":[${it.shape.join(',')}],"data_offsets":[${offset},${offset + it.nbytes}]}`;
    offsets.push(offset);
    offset += it.nbytes;
  }
  json += '}';
  const headerRaw = new TextEncoder().encode(json);
  const headerLen = Math.ceil(headerRaw.length / 8) * 8;
  const total = 8 + headerLen + offset;
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  view.setUint32(0, headerLen % 2 ** 32, true);
  view.setUint32(4, Math.floor(headerLen / 2 ** 32), true);
  out.set(headerRaw, 8);
  out.fill(0x20, 8 + headerRaw.length, 8 + headerLen);
  const base = 8 + headerLen;
  items.forEach((it, i) => writeTensor(out, view, base + offsets[i]!, it.dtype, it.data));
  return out;
}

function writeTensor(out: Uint8Array, view: DataView, pos: number, dtype: SafetensorsDtype, data: SafetensorsTensorInput['data']): void {
  const n = data.length;
  switch (dtype) {
    case 'U8':
      out.set(data as Uint8Array, pos);
      return;
    case 'F32': {
      const f = data instanceof Float32Array ? data : Float32Array.from(data as Float64Array);
      if (LITTLE_ENDIAN) out.set(new Uint8Array(f.buffer, f.byteOffset, f.byteLength), pos);
      else for (let i = 0; i < n; i++) view.setFloat32(pos + 4 * i, f[i]!, true);
      return;
    }
    case 'I32': {
      const a = data as Int32Array;
      if (LITTLE_ENDIAN) out.set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength), pos);
      else for (let i = 0; i < n; i++) view.setInt32(pos + 4 * i, a[i]!, true);
      return;
    }
    case 'I64': {
      const a = data as Int32Array;
      for (let i = 0; i < n; i++) {
        const v = a[i]!;
        view.setInt32(pos + 8 * i, v, true);
        view.setInt32(pos + 8 * i + 4, v < 0 ? -1 : 0, true);
      }
      return;
    }
    case 'F16':
    case 'BF16': {
      const conv = dtype === 'F16' ? float32ToFloat16Bits : float32ToBfloat16Bits;
      for (let i = 0; i < n; i++) view.setUint16(pos + 2 * i, conv(data[i]!), true);
      return;
    }
  }
}

// ---------------------------------------------------------------------------
// Reader

interface Entry { name: string; dtype: SafetensorsDtype; shape: number[]; begin: number; end: number }

/**
 * Parses a safetensors file. Everything in the header is checked against the
 * actual byte length before any tensor memory is allocated.
 * F16 and BF16 tensors are returned as Float32Array, I64 as Int32Array
 * (a `SafetensorsError` if a value does not fit in int32).
 */
export function decodeSafetensors(input: Uint8Array | ArrayBuffer, opts: DecodeSafetensorsOptions = {}): DecodedSafetensors {
  const file = opts.name ?? 'safetensors data';
  const maxHeader = opts.maxHeaderBytes ?? DEFAULT_MAX_HEADER;
  const err = (code: SafetensorsErrorCode, problem: string, hint: string): never => {
    throw new SafetensorsError(file, code, problem, hint);
  };
  const notSafetensors = 'check that this is a complete .safetensors file and re-download or re-save it';

  if (!(input instanceof Uint8Array || input instanceof ArrayBuffer)) {
    err('INVALID_INPUT', 'input is neither a Uint8Array nor an ArrayBuffer', 'read the file into bytes first (fs.readFileSync, or await response.arrayBuffer() in a browser)');
  }
  // a plain Uint8Array view (an ArrayBuffer from fetch is accepted as is): Node's Buffer.slice shares
  // memory, and tensors must own theirs
  const bytes = input instanceof ArrayBuffer ? new Uint8Array(input) : new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
  if (bytes.length < 8) err('TOO_SMALL', `file is ${bytes.length} bytes, smaller than the 8-byte header length field`, `the file is empty or truncated; ${notSafetensors}`);

  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const lo = dv.getUint32(0, true);
  const hi = dv.getUint32(4, true);
  const claimed = hi * 2 ** 32 + lo; // may be inexact above 2^53, only used for messages then
  if (hi !== 0 || lo > maxHeader) {
    err('HEADER_TOO_LARGE', `header length field says ${claimed} bytes, more than the ${maxHeader}-byte limit`, `the first 8 bytes are corrupt or this is not a safetensors file; ${notSafetensors}`);
  }
  const n = lo;
  if (8 + n > bytes.length) {
    err('HEADER_OUT_OF_BOUNDS', `header length field says ${n} bytes but only ${bytes.length - 8} bytes follow it`, `the file is truncated or its first 8 bytes are corrupt; ${notSafetensors}`);
  }
  if (n === 0 || bytes[8] !== 0x7b) {
    err('INVALID_HEADER_START', n === 0 ? 'header is empty' : `header does not start with '{' (first byte 0x${bytes[8]!.toString(16).padStart(2, '0')})`, `this is not a safetensors file or it is corrupt; ${notSafetensors}`);
  }

  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes.subarray(8, 8 + n));
  } catch {
    return err('INVALID_UTF8', 'header is not valid UTF-8', `the header bytes are corrupt; ${notSafetensors}`);
  }

  let root: JVal;
  try {
    root = parseJson(text);
  } catch (e) {
    if (e instanceof JsonProblem) {
      if (e.code === 'DUPLICATE_KEY') return err('DUPLICATE_KEY', `header JSON has a ${e.detail}`, 'the format forbids duplicate keys; re-save the file with a conforming writer');
      return err('INVALID_JSON', `header is not valid JSON: ${e.detail}`, `the header is corrupt; ${notSafetensors}`);
    }
    if (e instanceof RangeError) return err('INVALID_JSON', 'header JSON is too deeply nested or too large to parse', notSafetensors);
    throw e;
  }
  if (!(root instanceof JObj)) return err('INVALID_JSON', 'header JSON is not an object', notSafetensors);

  const dataLen = bytes.length - 8 - n;
  const metadata: Record<string, string> = {};
  const entries: Entry[] = [];
  const badEntry = (name: string, what: string): never =>
    err('INVALID_ENTRY', `tensor ${JSON.stringify(name)}: ${what}`, 'each tensor entry needs "dtype" (string), "shape" (array of non-negative integers) and "data_offsets" ([begin, end] integers); re-save the file');
  const asCount = (v: JVal | undefined): number | undefined =>
    v instanceof JNum && v.isInteger && Number.isSafeInteger(v.value) && v.value >= 0 && !Object.is(v.value, -0) ? v.value : undefined;

  for (const [key, val] of root.entries) {
    if (key === '__metadata__') {
      if (val === null) continue;
      if (!(val instanceof JObj)) return err('INVALID_METADATA', '"__metadata__" is not an object', 'metadata must map strings to strings; re-save the file');
      for (const [mk, mv] of val.entries) {
        if (typeof mv !== 'string') return err('INVALID_METADATA', `"__metadata__" value for ${JSON.stringify(mk)} is not a string`, 'safetensors metadata values must be strings; re-save the file with string values');
        setOwn(metadata, mk, mv);
      }
      continue;
    }
    if (!(val instanceof JObj)) return badEntry(key, 'entry is not an object');
    const dt = val.entries.get('dtype');
    const sh = val.entries.get('shape');
    const off = val.entries.get('data_offsets');
    if (typeof dt !== 'string') return badEntry(key, '"dtype" is missing or not a string');
    if (!Array.isArray(sh)) return badEntry(key, '"shape" is missing or not an array');
    if (!Array.isArray(off) || off.length !== 2) return badEntry(key, '"data_offsets" is missing or not a [begin, end] pair');
    if (!isSupportedDtype(dt)) {
      if (KNOWN_UNSUPPORTED.has(dt)) return err('UNSUPPORTED_DTYPE', `tensor ${JSON.stringify(key)} has dtype ${dt}, which this reader does not support`, `supported dtypes are ${SUPPORTED_LIST}; convert the tensor (e.g. to F32) before saving`);
      return err('UNSUPPORTED_DTYPE', `tensor ${JSON.stringify(key)} has unknown dtype ${JSON.stringify(dt)}`, `supported dtypes are ${SUPPORTED_LIST}; the file is corrupt or from a newer format version`);
    }
    const shape: number[] = [];
    for (const d of sh) {
      const v = asCount(d);
      if (v === undefined) return badEntry(key, `shape entry ${d instanceof JNum ? d.text : JSON.stringify(d)} is not a non-negative integer`);
      shape.push(v);
    }
    const begin = asCount(off[0]);
    const end = asCount(off[1]);
    if (begin === undefined || end === undefined) return badEntry(key, '"data_offsets" entries are not non-negative integers');
    if (begin > end) return err('OFFSET_OUT_OF_BOUNDS', `tensor ${JSON.stringify(key)} has data_offsets [${begin}, ${end}] with begin > end`, `the header is corrupt; ${notSafetensors}`);
    if (end > dataLen) return err('OFFSET_OUT_OF_BOUNDS', `tensor ${JSON.stringify(key)} has data_offsets [${begin}, ${end}] but the data buffer is only ${dataLen} bytes`, `the file is truncated or the header is corrupt; ${notSafetensors}`);
    // Element count, checked against the span without overflowing.
    const item = ITEM_SIZE[dt];
    const span = end - begin;
    let elems = 1;
    let tooBig = false;
    if (!shape.includes(0)) {
      for (const d of shape) {
        elems *= d;
        if (elems * item > span) {
          tooBig = true;
          break;
        }
      }
    } else {
      elems = 0;
    }
    if (tooBig || elems * item !== span) {
      const desc = tooBig ? `more than ${span}` : String(elems * item);
      return err('SIZE_MISMATCH', `tensor ${JSON.stringify(key)} (${dt}, shape [${shape.join(', ')}]) needs ${desc} bytes but its data_offsets [${begin}, ${end}] span ${span} bytes`, `the header is corrupt; ${notSafetensors}`);
    }
    entries.push({ name: key, dtype: dt, shape, begin, end });
  }

  // The tensors must tile the data buffer exactly.
  const sorted = entries.slice().sort((a, b) => a.begin - b.begin || a.end - b.end || compareUtf8(a.name, b.name));
  let cursor = 0;
  let prev: Entry | undefined;
  for (const e of sorted) {
    if (e.begin < cursor) {
      return err('OVERLAP', `tensor ${JSON.stringify(e.name)} at bytes [${e.begin}, ${e.end}) overlaps tensor ${JSON.stringify(prev!.name)} at [${prev!.begin}, ${prev!.end})`, `the header is corrupt; ${notSafetensors}`);
    }
    if (e.begin > cursor) {
      return err('GAP', `bytes [${cursor}, ${e.begin}) of the data buffer belong to no tensor (before tensor ${JSON.stringify(e.name)})`, `the format requires tensors to cover the data buffer without holes; ${notSafetensors}`);
    }
    cursor = e.end;
    prev = e;
  }
  if (cursor !== dataLen) {
    return err('GAP', `tensors cover ${cursor} bytes but the data buffer has ${dataLen} bytes (trailing bytes belong to no tensor)`, `the file has extra data after the last tensor or the header is corrupt; ${notSafetensors}`);
  }

  // All checked: now allocate and convert.
  const base = 8 + n;
  const tensors: Record<string, SafetensorsTensor> = {};
  for (const e of sorted) {
    const start = base + e.begin;
    const count = (e.end - e.begin) / ITEM_SIZE[e.dtype];
    setOwn(tensors, e.name, { dtype: e.dtype, shape: e.shape, data: readTensor(bytes, dv, start, count, e, err) });
  }
  return { tensors, metadata };
}

function readTensor(
  bytes: Uint8Array,
  dv: DataView,
  start: number,
  count: number,
  e: Entry,
  err: (code: SafetensorsErrorCode, problem: string, hint: string) => never,
): Float32Array | Int32Array | Uint8Array {
  switch (e.dtype) {
    case 'U8':
      return bytes.slice(start, start + count);
    case 'F32': {
      if (LITTLE_ENDIAN) return new Float32Array(bytes.slice(start, start + 4 * count).buffer);
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = dv.getFloat32(start + 4 * i, true);
      return out;
    }
    case 'I32': {
      if (LITTLE_ENDIAN) return new Int32Array(bytes.slice(start, start + 4 * count).buffer);
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) out[i] = dv.getInt32(start + 4 * i, true);
      return out;
    }
    case 'F16': {
      const table = float16Table();
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = table[dv.getUint16(start + 2 * i, true)]!;
      return out;
    }
    case 'BF16': {
      const out = new Float32Array(count);
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < count; i++) bits[i] = dv.getUint16(start + 2 * i, true) << 16;
      return out;
    }
    case 'I64': {
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) {
        const lo = dv.getInt32(start + 8 * i, true);
        const hi = dv.getInt32(start + 8 * i + 4, true);
        if (hi !== lo >> 31) {
          const v = (BigInt(hi) << 32n) | BigInt(lo >>> 0);
          return err('VALUE_OUT_OF_RANGE', `tensor ${JSON.stringify(e.name)} (I64) element ${i} = ${v} does not fit in a 32-bit integer`, 'this reader returns I64 as Int32Array; save the tensor as I32 or F32 if its values are that large');
        }
        out[i] = lo;
      }
      return out;
    }
  }
}
