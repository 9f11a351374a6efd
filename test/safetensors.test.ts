import { describe, expect, it } from 'vitest';
import {
  SafetensorsError,
  decodeSafetensors,
  encodeSafetensors,
  type SafetensorsErrorCode,
} from '../src/io/safetensors';
import { makeRng } from './reference';

// ---------------------------------------------------------------------------
// helpers

const ascii = (s: string): number[] => Array.from(s, (ch) => {
  const c = ch.charCodeAt(0);
  if (c > 0x7e) throw new Error('ascii only');
  return c;
});

/** Builds a file from a header string (padded with spaces to a multiple of 8) and data bytes. */
function buildFile(header: string, data: ArrayLike<number> = [], opts: { pad?: boolean; lengthOverride?: number } = {}): Uint8Array {
  const h = new TextEncoder().encode(header);
  const padded = opts.pad === false ? h.length : Math.ceil(h.length / 8) * 8;
  const out = new Uint8Array(8 + padded + data.length);
  const len = opts.lengthOverride ?? padded;
  new DataView(out.buffer).setUint32(0, len % 2 ** 32, true);
  new DataView(out.buffer).setUint32(4, Math.floor(len / 2 ** 32), true);
  out.set(h, 8);
  out.fill(0x20, 8 + h.length, 8 + padded);
  out.set(Array.from(data), 8 + padded);
  return out;
}

function expectError(fn: () => unknown, code: SafetensorsErrorCode, file = 'test.safetensors'): SafetensorsError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(SafetensorsError);
  const err = caught as SafetensorsError;
  expect(err.code).toBe(code);
  expect(err.message.startsWith(`${file}: `)).toBe(true);
  expect(err.file).toBe(file);
  return err;
}

const bitsOf32 = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));


// ---------------------------------------------------------------------------
// Independent float16 reference: every finite half value decoded by the IEEE formula, then
// nearest-value search with ties to the even bit pattern and the IEEE overflow rule.

function halfValue(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 31;
  const m = h & 1023;
  if (e === 31) return m ? NaN : s * Infinity;
  return e === 0 ? s * m * Math.pow(2, -24) : s * (1 + m / 1024) * Math.pow(2, e - 15);
}
/** Positive finite halves 0x0000..0x7bff are increasing in value with their bit pattern. */
const POS_HALVES = Array.from({ length: 0x7c00 }, (_, h) => halfValue(h));

function refFloat16Bits(x: number): number {
  if (Number.isNaN(x)) return 0x7e00;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  // 65520 = 65504 + half an ulp (32/2): at and above it, round-to-nearest-even gives infinity.
  if (a >= 65520) return sign | 0x7c00;
  let lo = 0;
  let hi = 0x7bff;
  while (lo < hi) {
    // largest h with POS_HALVES[h] <= a
    const mid = (lo + hi + 1) >> 1;
    if (POS_HALVES[mid]! <= a) lo = mid;
    else hi = mid - 1;
  }
  if (lo === 0x7bff) return sign | lo;
  const below = POS_HALVES[lo]!;
  const above = POS_HALVES[lo + 1]!;
  const dBelow = a - below;
  const dAbove = above - a;
  const pick = dBelow < dAbove ? lo : dAbove < dBelow ? lo + 1 : lo % 2 === 0 ? lo : lo + 1;
  return sign | pick;
}

function f16TestValues(): Float32Array {
  const vals: number[] = [0, -0, 1, -1, 0.1, 1 / 3, 65504, -65504, 65519.99, 65520, 65536, 1e9, Infinity, -Infinity, 1e-8, 2 ** -24, 2 ** -25, 2 ** -25 * 1.0000001, 3 * 2 ** -26, 2 ** -14, 2 ** -14 - 2 ** -25];
  // every midpoint between consecutive positive halves, and its float32 neighbours
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  for (let h = 0; h < 0x7bff; h++) {
    const mid = (POS_HALVES[h]! + POS_HALVES[h + 1]!) / 2;
    f[0] = mid;
    if (f[0] !== mid) throw new Error('midpoint not representable in float32');
    vals.push(mid, -mid);
    const bits = u[0]!;
    u[0] = bits + 1;
    vals.push(f[0]!);
    u[0] = bits - 1;
    vals.push(f[0]!);
  }
  // random float32 bit patterns over the whole range
  const r = makeRng(7);
  for (let i = 0; i < 20000; i++) {
    u[0] = Math.floor(r() * 2 ** 32);
    if (!Number.isNaN(f[0])) vals.push(f[0]!);
  }
  // random values of moderate magnitude
  for (let i = 0; i < 20000; i++) vals.push((r() - 0.5) * 2 ** Math.floor(r() * 40 - 28));
  return Float32Array.from(vals);
}

// ---------------------------------------------------------------------------

describe('safetensors round trips', () => {
  it('F32, I32 and U8 round-trip exactly (bit patterns, scalars, empty tensors)', () => {
    const f = new Float32Array([0, -0, 1.5, -2.25, Math.PI, 1e-40, 3.4e38, Infinity, -Infinity, NaN]);
    const i = new Int32Array([0, 1, -1, 2147483647, -2147483648, 123456]);
    const u = new Uint8Array([0, 1, 127, 128, 255, 42]);
    const file = encodeSafetensors({
      'layer.weight': { dtype: 'F32', shape: [2, 5], data: f },
      idx: { dtype: 'I32', shape: [6], data: i },
      bytes: { dtype: 'U8', shape: [2, 3], data: u },
      scalar: { dtype: 'F32', shape: [], data: new Float32Array([7]) },
      empty: { dtype: 'F32', shape: [0, 3], data: new Float32Array(0) },
    });
    const { tensors, metadata } = decodeSafetensors(file, { name: 'rt.safetensors' });
    expect(metadata).toEqual({});
    expect(Object.keys(tensors).sort()).toEqual(['bytes', 'empty', 'idx', 'layer.weight', 'scalar']);
    expect(tensors['layer.weight']!.dtype).toBe('F32');
    expect(tensors['layer.weight']!.shape).toEqual([2, 5]);
    expect(bitsOf32(tensors['layer.weight']!.data as Float32Array)).toEqual(bitsOf32(f));
    expect(tensors.idx!.data).toBeInstanceOf(Int32Array);
    expect(Array.from(tensors.idx!.data)).toEqual(Array.from(i));
    expect(tensors.bytes!.data).toBeInstanceOf(Uint8Array);
    expect(Array.from(tensors.bytes!.data)).toEqual(Array.from(u));
    expect(tensors.scalar!.shape).toEqual([]);
    expect(Array.from(tensors.scalar!.data)).toEqual([7]);
    expect(tensors.empty!.shape).toEqual([0, 3]);
    expect(tensors.empty!.data.length).toBe(0);
    // re-encoding the decoded tensors gives the same bytes
    expect(encodeSafetensors(tensors as never)).toEqual(file);
  });

  it('random F32 tensors round-trip exactly, including from subarray views', () => {
    const r = makeRng(11);
    const big = new Float32Array(1001);
    for (let k = 0; k < big.length; k++) big[k] = (r() - 0.5) * 1e6;
    const view = big.subarray(1, 1001); // odd byte offset into the buffer: 4
    const file = encodeSafetensors({ w: { dtype: 'F32', shape: [10, 100], data: view } });
    const out = decodeSafetensors(file).tensors.w!.data as Float32Array;
    expect(bitsOf32(out)).toEqual(bitsOf32(view));
  });

  it('F16 is written with round-to-nearest-even, matching an independent reference, and read back exactly', () => {
    const vals = f16TestValues();
    const file = encodeSafetensors({ h: { dtype: 'F16', shape: [vals.length], data: vals } });
    const dataStart = file.length - 2 * vals.length;
    const dv = new DataView(file.buffer, file.byteOffset + dataStart);
    let mismatches = 0;
    for (let k = 0; k < vals.length; k++) {
      const got = dv.getUint16(2 * k, true);
      const want = refFloat16Bits(vals[k]!);
      if (got !== want && mismatches++ < 5) expect({ value: vals[k], got: got.toString(16) }).toEqual({ value: vals[k], got: want.toString(16) });
    }
    expect(mismatches).toBe(0);
    const back = decodeSafetensors(file).tensors.h!;
    expect(back.dtype).toBe('F16');
    expect(back.data).toBeInstanceOf(Float32Array);
    for (let k = 0; k < vals.length; k++) {
      const want = halfValue(refFloat16Bits(vals[k]!));
      const got = back.data[k]!;
      if (!Object.is(got, want)) expect({ k, got }).toEqual({ k, got: want });
    }
  });

  it('F16 NaN stays NaN; every half bit pattern decodes to its IEEE value', () => {
    const file = encodeSafetensors({ h: { dtype: 'F16', shape: [2], data: new Float32Array([NaN, -NaN]) } });
    const back = decodeSafetensors(file).tensors.h!.data;
    expect(Number.isNaN(back[0])).toBe(true);
    expect(Number.isNaN(back[1])).toBe(true);
    // hand-built file with all 65536 patterns
    const data = new Uint8Array(2 * 65536);
    for (let h = 0; h < 65536; h++) {
      data[2 * h] = h & 0xff;
      data[2 * h + 1] = h >> 8;
    }
    const all = decodeSafetensors(buildFile(`{"h":{"dtype":"F16","shape":[65536],"data_offsets":[0,131072]}}`, data)).tensors.h!.data;
    for (let h = 0; h < 65536; h++) {
      const want = halfValue(h);
      if (!(Object.is(all[h], want) || (Number.isNaN(want) && Number.isNaN(all[h])))) expect({ h, got: all[h] }).toEqual({ h, got: want });
    }
  });

  it('reads a hand-built BF16 file', () => {
    // bf16 = top 16 bits of float32: 1.0 = 0x3f80, -2.5 = 0xc020, 3.140625 = 0x4049,
    // 1e-40-ish subnormal 0x0001 = 2^-133, +inf = 0x7f80, 0.0 = 0x0000, -0.0 = 0x8000
    const words = [0x3f80, 0xc020, 0x4049, 0x0001, 0x7f80, 0x0000, 0x8000, 0x7fc0];
    const data = words.flatMap((w) => [w & 0xff, w >> 8]);
    const file = buildFile('{"b":{"dtype":"BF16","shape":[2,4],"data_offsets":[0,16]}}', data);
    const t = decodeSafetensors(file).tensors.b!;
    expect(t.dtype).toBe('BF16');
    expect(t.shape).toEqual([2, 4]);
    expect(t.data).toBeInstanceOf(Float32Array);
    const got = Array.from(t.data);
    expect(got.slice(0, 7)).toEqual([1, -2.5, 3.140625, 2 ** -133, Infinity, 0, -0]);
    expect(Object.is(got[6], -0)).toBe(true);
    expect(Number.isNaN(got[7])).toBe(true);
  });

  it('writes BF16 with round-to-nearest-even', () => {
    // 1 + 2^-8 is exactly halfway between bf16 1.0 (0x3f80) and 1.0078125 (0x3f81): ties to even -> 0x3f80
    // 1 + 3 * 2^-8 is halfway between 0x3f81 and 0x3f82: ties to even -> 0x3f82
    const file = encodeSafetensors({ b: { dtype: 'BF16', shape: [3], data: new Float32Array([1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -8 + 2 ** -20]) } });
    const dv = new DataView(file.buffer, file.length - 6);
    expect([dv.getUint16(0, true), dv.getUint16(2, true), dv.getUint16(4, true)]).toEqual([0x3f80, 0x3f82, 0x3f81]);
  });

  it('I64 is written sign-extended and read back as Int32Array; out-of-range I64 is an error', () => {
    const file = encodeSafetensors({ n: { dtype: 'I64', shape: [3], data: new Int32Array([-1, 5, -2147483648]) } });
    const tail = Array.from(file.subarray(file.length - 24));
    expect(tail).toEqual([255, 255, 255, 255, 255, 255, 255, 255, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 128, 255, 255, 255, 255]);
    const t = decodeSafetensors(file).tensors.n!;
    expect(t.dtype).toBe('I64');
    expect(t.data).toBeInstanceOf(Int32Array);
    expect(Array.from(t.data)).toEqual([-1, 5, -2147483648]);
    // 2^31 does not fit
    const big = buildFile('{"n":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}', [0, 0, 0, 128, 0, 0, 0, 0]);
    const err = expectError(() => decodeSafetensors(big, { name: 'test.safetensors' }), 'VALUE_OUT_OF_RANGE');
    expect(err.message).toContain('2147483648');
  });

  it('metadata round-trips; keys are written sorted', () => {
    const meta = { zeta: 'last', alpha: 'first', 'unicode é': 'ü "quoted" \\ \n' };
    const file = encodeSafetensors({ a: { dtype: 'U8', shape: [1], data: new Uint8Array([9]) } }, meta);
    const { metadata, tensors } = decodeSafetensors(file);
    expect(metadata).toEqual(meta);
    expect(Array.from(tensors.a!.data)).toEqual([9]);
    const header = new TextDecoder().decode(file.subarray(8, 8 + Number(new DataView(file.buffer).getBigUint64(0, true))));
    expect(header.indexOf('"alpha"')).toBeLessThan(header.indexOf('"unicode é"'));
    expect(header.indexOf('"unicode é"')).toBeLessThan(header.indexOf('"zeta"'));
    expect(header.startsWith('{"__metadata__":{')).toBe(true);
  });

  it('tensor names that are special in JS objects survive', () => {
    const file = encodeSafetensors({
      ['__proto__']: { dtype: 'U8', shape: [1], data: new Uint8Array([1]) },
      constructor: { dtype: 'U8', shape: [1], data: new Uint8Array([2]) },
    } as never);
    const { tensors } = decodeSafetensors(file);
    expect(Object.prototype.hasOwnProperty.call(tensors, '__proto__')).toBe(true);
    expect(Array.from(tensors['__proto__']!.data)).toEqual([1]);
    expect(Array.from(tensors['constructor' as string]!.data)).toEqual([2]);
  });
});

describe('safetensors golden bytes', () => {
  it('an empty file is {} padded to 8 bytes', () => {
    expect(Array.from(encodeSafetensors({}))).toEqual([8, 0, 0, 0, 0, 0, 0, 0, 0x7b, 0x7d, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20]);
    expect(decodeSafetensors(encodeSafetensors({}))).toEqual({ tensors: {}, metadata: {} });
  });

  it('a tiny file matches bytes written out by hand from the spec', () => {
    // header JSON, compact, __metadata__ first, then tensors by descending dtype alignment
    // (F32 before U8), then by name:
    const json =
      '{"__metadata__":{"format":"pt"},' +
      '"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},' +
      '"a":{"dtype":"U8","shape":[1,3],"data_offsets":[8,11]},' +
      '"b":{"dtype":"U8","shape":[],"data_offsets":[11,12]}}';
    expect(json.length).toBe(193);
    // 193 -> padded to 200 = 0xc8
    const expected = [
      0xc8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // u64 LE header length
      ...ascii(json),
      0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, // 7 spaces of padding
      0x00, 0x00, 0x80, 0x3f, // 1.0f LE
      0x00, 0x00, 0x20, 0xc0, // -2.5f LE
      0x01, 0x02, 0x03, // a
      0xff, // b
    ];
    const file = encodeSafetensors(
      {
        b: { dtype: 'U8', shape: [], data: new Uint8Array([255]) },
        a: { dtype: 'U8', shape: [1, 3], data: new Uint8Array([1, 2, 3]) },
        w: { dtype: 'F32', shape: [2], data: new Float32Array([1, -2.5]) },
      },
      { format: 'pt' },
    );
    expect(Array.from(file)).toEqual(expected);
    const back = decodeSafetensors(Uint8Array.from(expected));
    expect(back.metadata).toEqual({ format: 'pt' });
    expect(Array.from(back.tensors.w!.data)).toEqual([1, -2.5]);
    expect(Array.from(back.tensors.a!.data)).toEqual([1, 2, 3]);
    expect(Array.from(back.tensors.b!.data)).toEqual([255]);
  });

  it('orders tensors as the reference writer: I64, F32, I32, BF16, F16, U8, then by UTF-8 name', () => {
    const file = encodeSafetensors({
      u: { dtype: 'U8', shape: [1], data: new Uint8Array(1) },
      h: { dtype: 'F16', shape: [1], data: new Float32Array(1) },
      g: { dtype: 'BF16', shape: [1], data: new Float32Array(1) },
      i: { dtype: 'I32', shape: [1], data: new Int32Array(1) },
      f2: { dtype: 'F32', shape: [1], data: new Float32Array(1) },
      F1: { dtype: 'F32', shape: [1], data: new Float32Array(1) },
      '\u{1F600}': { dtype: 'F32', shape: [1], data: new Float32Array(1) },
      '\uFF21': { dtype: 'F32', shape: [1], data: new Float32Array(1) },
      l: { dtype: 'I64', shape: [1], data: new Int32Array(1) },
    });
    const n = new DataView(file.buffer).getUint32(0, true);
    expect(n % 8).toBe(0);
    const header = new TextDecoder().decode(file.subarray(8, 8 + n));
    const order = [...header.matchAll(/"([^"]+)":\{"dtype"/g)].map((m) => m[1]);
    // U+FF21 (UTF-8 ef bc a1) sorts before U+1F600 (f0 9f 98 80) byte-wise, though not by UTF-16 code units
    expect(order).toEqual(['l', 'F1', 'f2', '\uFF21', '\u{1F600}', 'i', 'g', 'h', 'u']);
    expect(header).toContain('"l":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}');
  });

  it('pads the header with spaces to a multiple of 8 and reads headers padded or not', () => {
    for (let extra = 0; extra < 9; extra++) {
      const name = 'x'.repeat(extra + 1);
      const file = encodeSafetensors({ [name]: { dtype: 'U8', shape: [1], data: new Uint8Array([3]) } });
      const n = new DataView(file.buffer).getUint32(0, true);
      expect(n % 8).toBe(0);
      expect(file[8 + n - 1] === 0x7d || file[8 + n - 1] === 0x20).toBe(true);
    }
    const unpadded = buildFile('{"x":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', [3], { pad: false });
    expect(Array.from(decodeSafetensors(unpadded).tensors.x!.data)).toEqual([3]);
  });
});

describe('safetensors validation', () => {
  const name = 'test.safetensors';
  const dec = (b: Uint8Array) => () => decodeSafetensors(b, { name });
  const ok = '{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}';

  it('reads an ArrayBuffer (a browser fetch) like the bytes it holds; other inputs are named', () => {
    const file = encodeSafetensors({ w: { dtype: 'F32', shape: [2], data: new Float32Array([1.5, -2]) } });
    const copy = file.slice().buffer;
    expect(Array.from(decodeSafetensors(copy).tensors.w.data)).toEqual([1.5, -2]);
    expectError(() => decodeSafetensors('not bytes' as unknown as Uint8Array, { name: 'test.safetensors' }), 'INVALID_INPUT');
  });

  it('rejects files too small for the length field', () => {
    expectError(dec(new Uint8Array(0)), 'TOO_SMALL');
    expectError(dec(new Uint8Array(7)), 'TOO_SMALL');
  });

  it('rejects absurd header lengths without allocating', () => {
    expectError(dec(buildFile(ok, new Uint8Array(8), { lengthOverride: 2 ** 40 })), 'HEADER_TOO_LARGE');
    expectError(dec(buildFile(ok, new Uint8Array(8), { lengthOverride: 100_000_001 })), 'HEADER_TOO_LARGE');
    expectError(dec(buildFile(ok, new Uint8Array(8), { lengthOverride: 1000 })), 'HEADER_OUT_OF_BOUNDS');
    const e = expectError(dec(Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])), 'HEADER_TOO_LARGE');
    expect(e.message).toMatch(/header length/);
  });

  it('rejects headers that are not UTF-8, not an object, or not JSON', () => {
    const f = buildFile(ok, new Uint8Array(8));
    f[9] = 0xff;
    expectError(dec(f), 'INVALID_UTF8');
    expectError(dec(buildFile(' {}')), 'INVALID_HEADER_START');
    expectError(dec(buildFile('[]')), 'INVALID_HEADER_START');
    expectError(dec(buildFile('{"x":')), 'INVALID_JSON');
    expectError(dec(buildFile('{"x":{}} x')), 'INVALID_JSON');
    expectError(dec(buildFile('{' + '"a":['.repeat(300))), 'INVALID_JSON');
    expectError(dec(buildFile('{"a":"\\ud800"}')), 'INVALID_JSON');
    const f2 = buildFile('{}');
    f2[10] = 0; // NUL instead of space padding
    expectError(dec(f2), 'INVALID_JSON');
  });

  it('rejects duplicate keys', () => {
    expectError(dec(buildFile('{"x":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"x":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}', [1, 2])), 'DUPLICATE_KEY');
    expectError(dec(buildFile('{"x":{"dtype":"U8","dtype":"U8","shape":[1],"data_offsets":[0,1]}}', [1])), 'DUPLICATE_KEY');
    expectError(dec(buildFile('{"__metadata__":{"a":"1","a":"2"}}')), 'DUPLICATE_KEY');
  });

  it('rejects malformed entries and metadata', () => {
    const D = (s: string, data: number[] = []) => dec(buildFile(s, data));
    expectError(D('{"x":1}'), 'INVALID_ENTRY');
    expectError(D('{"x":{"shape":[1],"data_offsets":[0,1]}}', [0]), 'INVALID_ENTRY');
    expectError(D('{"x":{"dtype":"U8","data_offsets":[0,1]}}', [0]), 'INVALID_ENTRY');
    expectError(D('{"x":{"dtype":"U8","shape":[1]}}', [0]), 'INVALID_ENTRY');
    expectError(D('{"x":{"dtype":"U8","shape":[1],"data_offsets":[0]}}', [0]), 'INVALID_ENTRY');
    expectError(D('{"x":{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}}', [0]), 'INVALID_ENTRY');
    expectError(D('{"x":{"dtype":"U8","shape":[1.0],"data_offsets":[0,1]}}', [0]), 'INVALID_ENTRY');
    expectError(D('{"x":{"dtype":"U8","shape":[1e0],"data_offsets":[0,1]}}', [0]), 'INVALID_ENTRY');
    expectError(D('{"x":{"dtype":"U8","shape":["1"],"data_offsets":[0,1]}}', [0]), 'INVALID_ENTRY');
    expectError(D('{"x":{"dtype":"U8","shape":[9007199254740993],"data_offsets":[0,1]}}', [0]), 'INVALID_ENTRY');
    expectError(D('{"x":{"dtype":"U8","shape":[1],"data_offsets":[0.5,1]}}', [0]), 'INVALID_ENTRY');
    expectError(D('{"x":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}}', [0, 0, 0, 0, 0, 0, 0, 0]), 'UNSUPPORTED_DTYPE');
    expectError(D('{"x":{"dtype":"float32","shape":[1],"data_offsets":[0,4]}}', [0, 0, 0, 0]), 'UNSUPPORTED_DTYPE');
    expectError(D('{"__metadata__":{"a":1}}'), 'INVALID_METADATA');
    expectError(D('{"__metadata__":[]}'), 'INVALID_METADATA');
    expect(decodeSafetensors(buildFile('{"__metadata__":null}')).metadata).toEqual({});
    // unknown extra fields in an entry are ignored, as by the reference reader
    expect(Array.from(decodeSafetensors(buildFile('{"x":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"extra":true}}', [5])).tensors.x!.data)).toEqual([5]);
  });

  it('rejects size/offset mismatches, overlaps, gaps and trailing bytes', () => {
    const D = (s: string, data: number[]) => dec(buildFile(s, data));
    const e1 = expectError(D('{"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}', new Array(8).fill(0)), 'SIZE_MISMATCH');
    expect(e1.message).toContain('"x"');
    expectError(D('{"x":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,8]}}', new Array(8).fill(0)), 'SIZE_MISMATCH');
    expectError(D('{"x":{"dtype":"U8","shape":[16],"data_offsets":[0,16]}}', new Array(8).fill(0)), 'OFFSET_OUT_OF_BOUNDS');
    expectError(D('{"x":{"dtype":"U8","shape":[1000000000000],"data_offsets":[0,1000000000000]}}', [0]), 'OFFSET_OUT_OF_BOUNDS');
    expectError(D('{"x":{"dtype":"U8","shape":[0],"data_offsets":[2,1]}}', [0, 0]), 'OFFSET_OUT_OF_BOUNDS');
    expectError(D('{"x":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"y":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}}', [0, 0, 0]), 'OVERLAP');
    expectError(D('{"x":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"y":{"dtype":"U8","shape":[0],"data_offsets":[1,1]}}', [0, 0]), 'OVERLAP');
    expectError(D('{"x":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"y":{"dtype":"U8","shape":[1],"data_offsets":[2,3]}}', [0, 0, 0]), 'GAP');
    expectError(D('{"x":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}', [0, 0]), 'GAP');
    const e2 = expectError(D('{"x":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', [0, 0]), 'GAP');
    expect(e2.message).toMatch(/trailing/);
    expectError(D('{}', [0]), 'GAP');
    // tensors may appear in any order in the header, and zero-size tensors may share an offset
    const t = decodeSafetensors(buildFile('{"y":{"dtype":"U8","shape":[1],"data_offsets":[1,2]},"z":{"dtype":"U8","shape":[0],"data_offsets":[1,1]},"x":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"e":{"dtype":"U8","shape":[0],"data_offsets":[1,1]}}', [7, 8])).tensors;
    expect(Object.keys(t)).toEqual(['x', 'e', 'z', 'y']);
    expect(Array.from(t.y!.data)).toEqual([8]);
  });

  it('error messages name the file, the problem and what to do', () => {
    const e = expectError(dec(buildFile(ok, new Uint8Array(4))), 'OFFSET_OUT_OF_BOUNDS');
    expect(e.message).toContain('test.safetensors');
    expect(e.message).toContain('"x"');
    expect(e.message).toMatch(/truncated/);
    expect(e.name).toBe('SafetensorsError');
    expect(e).toBeInstanceOf(Error);
    // default name
    expect(() => decodeSafetensors(new Uint8Array(3))).toThrow(/^safetensors data: /);
  });

  it('the writer rejects inconsistent input', () => {
    const enc = (t: unknown, m?: unknown) => () => encodeSafetensors(t as never, m as never, { name });
    expectError(enc({ x: { dtype: 'F32', shape: [3], data: new Float32Array(2) } }), 'INVALID_INPUT');
    expectError(enc({ x: { dtype: 'F32', shape: [2], data: new Int32Array(2) } }), 'INVALID_INPUT');
    expectError(enc({ x: { dtype: 'I32', shape: [2], data: new Float32Array(2) } }), 'INVALID_INPUT');
    expectError(enc({ x: { dtype: 'F64', shape: [2], data: new Float64Array(2) } }), 'INVALID_INPUT');
    expectError(enc({ x: { dtype: 'U8', shape: [-2], data: new Uint8Array(2) } }), 'INVALID_INPUT');
    expectError(enc({ x: { dtype: 'U8', shape: [1.5], data: new Uint8Array(2) } }), 'INVALID_INPUT');
    expectError(enc({ __metadata__: { dtype: 'U8', shape: [1], data: new Uint8Array(1) } }), 'INVALID_INPUT');
    expectError(enc({ '\ud800': { dtype: 'U8', shape: [1], data: new Uint8Array(1) } }), 'INVALID_INPUT');
    expectError(enc({}, { a: 1 }), 'INVALID_INPUT');
  });
});
