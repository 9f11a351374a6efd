/**
 * Fuzzing the loaders with mutated and truncated inputs. Each input must either decode or throw
 * the loader's typed error (SafetensorsError / DataError) naming the input and the problem:
 * never another exception type, never a hang, never an output out of proportion to the input.
 * The mutations come from a seeded PRNG; a failure message gives the seed and case index, so
 * `mutate(base, rng)` can be replayed.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encode as encodePng } from 'fast-png';
import { SafetensorsError, decodeSafetensors, encodeSafetensors } from '../src/io/safetensors';
import { DataError, decodePngPixels, loadIdx, loadPngFolder, parseIdx } from '../src/data/index';
import { makeRng } from './reference';

const SEED = 20240611;

type Rng = () => number;
const int = (r: Rng, n: number) => Math.floor(r() * n);

/**
 * One random mutation of `base`. `hot` = [start, end) of a region mutated more often (a header).
 * `lengthField` = offset and size (bytes) of a length field to corrupt, if any.
 */
function mutate(base: Uint8Array, r: Rng, hot: [number, number], lengthField?: { at: number; size: number; littleEndian: boolean }): { bytes: Uint8Array; kind: string } {
  const b = Uint8Array.from(base);
  const pos = (inHot: boolean) => (inHot && hot[1] > hot[0] ? hot[0] + int(r, hot[1] - hot[0]) : int(r, b.length));
  const op = int(r, 11);
  switch (op) {
    case 0: {
      const n = 1 + int(r, 4);
      for (let i = 0; i < n; i++) b[pos(r() < 0.7)]! ^= 1 << int(r, 8);
      return { bytes: b, kind: `bit flips x${n}` };
    }
    case 1: {
      const n = 1 + int(r, 3);
      for (let i = 0; i < n; i++) b[pos(r() < 0.7)] = int(r, 256);
      return { bytes: b, kind: `byte changes x${n}` };
    }
    case 2:
      return { bytes: base.subarray(0, int(r, base.length)), kind: 'truncation' };
    case 3: {
      if (!lengthField) return { bytes: base.subarray(0, int(r, base.length)), kind: 'truncation' };
      const dv = new DataView(b.buffer);
      const { at, size, littleEndian } = lengthField;
      const cur = size === 8 ? dv.getUint32(at, littleEndian) : dv.getUint32(at, littleEndian);
      const choice = int(r, 4);
      const v = choice === 0 ? cur + int(r, 17) - 8 : choice === 1 ? int(r, 2 ** 32) : choice === 2 ? int(r, base.length * 2 + 16) : 2 ** 32 - 1 - int(r, 4);
      dv.setUint32(at, v >>> 0, littleEndian);
      if (size === 8 && r() < 0.2) dv.setUint32(at + 4, int(r, 2 ** 32), littleEndian);
      return { bytes: b, kind: `length field -> ${v >>> 0}` };
    }
    case 4: {
      // replace a digit with another digit (shifts offsets, shapes, lengths in text headers)
      const digits: number[] = [];
      for (let i = hot[0]; i < hot[1]; i++) if (b[i]! >= 0x30 && b[i]! <= 0x39) digits.push(i);
      if (digits.length === 0) return { bytes: b, kind: 'no-op' };
      const i = digits[int(r, digits.length)]!;
      b[i] = 0x30 + int(r, 10);
      return { bytes: b, kind: 'digit change' };
    }
    case 5: {
      // replace a byte in the hot region with a structural character
      const chars = '{}[]":,-.e0123456789 \\nu';
      b[pos(true)] = chars.charCodeAt(int(r, chars.length));
      return { bytes: b, kind: 'structural char' };
    }
    case 6: {
      // delete a run of bytes
      const at = pos(r() < 0.5);
      const n = 1 + int(r, 8);
      return { bytes: Uint8Array.from([...base.subarray(0, at), ...base.subarray(at + n)]), kind: `delete ${n} at ${at}` };
    }
    case 7: {
      // insert random bytes
      const at = pos(r() < 0.5);
      const ins = Array.from({ length: 1 + int(r, 8) }, () => int(r, 256));
      return { bytes: Uint8Array.from([...base.subarray(0, at), ...ins, ...base.subarray(at)]), kind: `insert ${ins.length} at ${at}` };
    }
    case 8: {
      // append garbage
      const extra = Array.from({ length: 1 + int(r, 64) }, () => int(r, 256));
      return { bytes: Uint8Array.from([...base, ...extra]), kind: `append ${extra.length}` };
    }
    case 9: {
      // many random changes at once
      const n = 5 + int(r, 30);
      for (let i = 0; i < n; i++) b[int(r, b.length)] = int(r, 256);
      return { bytes: b, kind: `heavy corruption x${n}` };
    }
    default: {
      // truncation plus a bit flip
      const t = Uint8Array.from(base.subarray(0, Math.max(1, int(r, base.length))));
      t[int(r, t.length)]! ^= 1 << int(r, 8);
      return { bytes: t, kind: 'truncation + flip' };
    }
  }
}

/** Runs `fn`, returning 'ok' or the expected error; any other exception fails with context. */
function expectOkOrTyped<E extends Error>(fn: () => unknown, errType: new (...a: never[]) => E, names: string[], context: string): 'ok' | E {
  try {
    fn();
    return 'ok';
  } catch (e) {
    if (!(e instanceof errType)) {
      throw new Error(`${context}: threw ${(e as Error)?.constructor?.name}: ${(e as Error)?.message ?? e}`);
    }
    if (!names.some((n) => e.message.startsWith(`${n}: `))) throw new Error(`${context}: error does not name the input: ${e.message}`);
    const problem = e.message.slice(e.message.indexOf(': ') + 2);
    if (problem.length < 10) throw new Error(`${context}: error message too vague: ${e.message}`);
    return e;
  }
}

function safetensorsBases(): Uint8Array[] {
  const r = makeRng(1);
  const floats = (n: number) => Float32Array.from({ length: n }, () => (r() - 0.5) * 100);
  return [
    encodeSafetensors(
      {
        'model.weight': { dtype: 'F32', shape: [3, 4], data: floats(12) },
        'model.bias': { dtype: 'F32', shape: [4], data: floats(4) },
        half: { dtype: 'F16', shape: [5], data: floats(5) },
        brain: { dtype: 'BF16', shape: [2, 2], data: floats(4) },
        ints: { dtype: 'I32', shape: [3], data: Int32Array.from([1, -2, 3]) },
        longs: { dtype: 'I64', shape: [2], data: Int32Array.from([-7, 9]) },
        bytes: { dtype: 'U8', shape: [2, 3], data: Uint8Array.from([1, 2, 3, 4, 5, 6]) },
        scalar: { dtype: 'F32', shape: [], data: floats(1) },
        empty: { dtype: 'U8', shape: [0, 4], data: new Uint8Array(0) },
      },
      { format: 'pt', note: 'fuzz base' },
    ),
    encodeSafetensors({ x: { dtype: 'U8', shape: [3], data: Uint8Array.from([7, 8, 9]) } }),
    encodeSafetensors({}),
    encodeSafetensors({}, { only: 'metadata' }),
    encodeSafetensors(Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`layers.${i}.w`, { dtype: 'F32' as const, shape: [2, 1 + (i % 3)], data: floats(2 * (1 + (i % 3))) }]))),
  ];
}

describe('fuzzing decodeSafetensors', () => {
  it('12,000 mutated or truncated files: each decodes or throws SafetensorsError naming the file', () => {
    const bases = safetensorsBases();
    for (const b of bases) decodeSafetensors(b); // the bases themselves are valid
    const r = makeRng(SEED);
    const N = 12000;
    let ok = 0;
    const codes = new Map<string, number>();
    let slowest = 0;
    for (let i = 0; i < N; i++) {
      const base = bases[i % bases.length]!;
      const headerLen = new DataView(base.buffer, base.byteOffset).getUint32(0, true);
      const { bytes, kind } = mutate(base, r, [0, 8 + headerLen], { at: 0, size: 8, littleEndian: true });
      const name = `fuzz-${SEED}-${i}.safetensors`;
      const t0 = performance.now();
      let out: ReturnType<typeof decodeSafetensors> | undefined;
      const res = expectOkOrTyped(() => (out = decodeSafetensors(bytes, { name })), SafetensorsError, [name], `case ${i} (seed ${SEED}, base ${i % bases.length}, ${kind})`);
      slowest = Math.max(slowest, performance.now() - t0);
      if (res === 'ok') {
        ok++;
        // output is proportionate to the input: at most 2x (F16/BF16 -> float32)
        let outBytes = 0;
        for (const t of Object.values(out!.tensors)) outBytes += t.data.byteLength;
        if (outBytes > 2 * bytes.length) throw new Error(`case ${i}: ${outBytes} output bytes from a ${bytes.length}-byte input`);
      } else {
        codes.set(res.code, (codes.get(res.code) ?? 0) + 1);
      }
    }
    // the fuzzer reaches many different checks, and some mutations (e.g. in tensor data) still decode
    expect(ok).toBeGreaterThan(100);
    expect(N - ok).toBeGreaterThan(N / 2);
    for (const code of ['TOO_SMALL', 'HEADER_TOO_LARGE', 'HEADER_OUT_OF_BOUNDS', 'INVALID_JSON', 'SIZE_MISMATCH', 'GAP', 'INVALID_ENTRY', 'UNSUPPORTED_DTYPE', 'OFFSET_OUT_OF_BOUNDS']) {
      expect(codes.get(code) ?? 0, `error code ${code} reached`).toBeGreaterThan(0);
    }
    expect(slowest).toBeLessThan(1000);
  });
});

function pngBases(): Uint8Array[] {
  const r = makeRng(2);
  const bytes = (n: number) => Uint8Array.from({ length: n }, () => int(r, 256));
  return [
    encodePng({ width: 8, height: 6, data: bytes(48), depth: 8, channels: 1 }),
    encodePng({ width: 5, height: 4, data: bytes(60), depth: 8, channels: 3 }),
    encodePng({ width: 4, height: 4, data: bytes(64), depth: 8, channels: 4 }),
    encodePng({ width: 3, height: 3, data: Uint16Array.from({ length: 18 }, () => int(r, 65536)), depth: 16, channels: 2 }),
    encodePng({ width: 9, height: 3, data: bytes(15), depth: 4, channels: 1, palette: Array.from({ length: 16 }, () => [int(r, 256), int(r, 256), int(r, 256)]) }),
    encodePng({ width: 10, height: 2, data: bytes(4), depth: 1, channels: 1 }),
    encodePng({ width: 7, height: 7, data: bytes(49), depth: 8, channels: 1 }, { interlace: 'Adam7' }),
  ];
}

describe('fuzzing PNG decoding', () => {
  it('4,000 mutated or truncated PNGs: each decodes or throws DataError naming the file', () => {
    const bases = pngBases();
    for (const b of bases) decodePngPixels(b, 'base.png');
    const r = makeRng(SEED + 1);
    const N = 4000;
    let ok = 0;
    let slowest = 0;
    for (let i = 0; i < N; i++) {
      const base = bases[i % bases.length]!;
      const { bytes, kind } = mutate(base, r, [8, Math.min(base.length, 41)], { at: 16 + 4 * int(r, 2), size: 4, littleEndian: false });
      const name = `fuzz-${SEED}-${i}.png`;
      const t0 = performance.now();
      let out: ReturnType<typeof decodePngPixels> | undefined;
      const res = expectOkOrTyped(() => (out = decodePngPixels(bytes, name, i % 3 === 0 ? 3 : undefined)), DataError, [name], `png case ${i} (seed ${SEED + 1}, ${kind})`);
      slowest = Math.max(slowest, performance.now() - t0);
      if (res === 'ok') {
        ok++;
        expect(out!.data.length).toBe(out!.width * out!.height * out!.channels);
        if (out!.data.length > 4096 * bytes.length) throw new Error(`png case ${i}: ${out!.data.length} output bytes from ${bytes.length} input bytes`);
      }
    }
    expect(ok).toBeGreaterThan(50);
    expect(N - ok).toBeGreaterThan(N / 4);
    expect(slowest).toBeLessThan(1000);
  });
});

describe('fuzzing IDX parsing', () => {
  it('4,000 mutated or truncated IDX pairs (raw and gzipped): each parses or throws DataError naming the file', () => {
    const r = makeRng(3);
    const idx = (dims: number[], data: Uint8Array) => {
      const out = new Uint8Array(4 + 4 * dims.length + data.length);
      out.set([0, 0, 8, dims.length]);
      dims.forEach((d, i) => new DataView(out.buffer).setUint32(4 + 4 * i, d, false));
      out.set(data, 4 + 4 * dims.length);
      return out;
    };
    const images = idx([5, 4, 3], Uint8Array.from({ length: 60 }, () => int(r, 256)));
    const labels = idx([5], Uint8Array.from([3, 1, 4, 1, 5]));
    const pairs: Array<[Uint8Array, Uint8Array, boolean]> = [
      [images, labels, false],
      [Uint8Array.from(gzipSync(images)), Uint8Array.from(gzipSync(labels)), true],
    ];
    for (const [a, b] of pairs) parseIdx(a, b, 'a', 'b');
    const rr = makeRng(SEED + 2);
    const N = 4000;
    let ok = 0;
    for (let i = 0; i < N; i++) {
      const [img, lab, gz] = pairs[i % 2]!;
      const mutateImages = rr() < 0.6;
      const target = mutateImages ? img : lab;
      const { bytes, kind } = mutate(target, rr, gz ? [0, 10] : [0, 4 + 4 * (mutateImages ? 3 : 1)], gz ? undefined : { at: 4 + 4 * int(rr, mutateImages ? 3 : 1), size: 4, littleEndian: false });
      const names = [`fuzz-${SEED}-${i}-images-idx3-ubyte${gz ? '.gz' : ''}`, `fuzz-${SEED}-${i}-labels-idx1-ubyte${gz ? '.gz' : ''}`];
      const res = expectOkOrTyped(
        () => parseIdx(mutateImages ? bytes : img, mutateImages ? lab : bytes, names[0]!, names[1]!, { maxBytes: 1 << 20 }),
        DataError,
        names,
        `idx case ${i} (seed ${SEED + 2}, ${mutateImages ? 'images' : 'labels'}${gz ? ' gz' : ''}, ${kind})`,
      );
      if (res === 'ok') ok++;
      else if (!res.message.startsWith(names[mutateImages ? 0 : 1]!) && !/labels but/.test(res.message)) {
        throw new Error(`idx case ${i}: error names the wrong file: ${res.message}`);
      }
    }
    expect(ok).toBeGreaterThan(20);
    expect(N - ok).toBeGreaterThan(N / 2);
  });
});

describe('fuzzing the file loaders end to end', () => {
  let tmp: string;
  beforeAll(() => {
    tmp = mkdtempSync(join(tmpdir(), 'distillkac-fuzz-'));
  });
  afterAll(() => {
    rmSync(tmp, { recursive: true, force: true });
  });

  it('loadPngFolder and loadIdx report corrupt files on disk by path', () => {
    const r = makeRng(SEED + 3);
    const bases = pngBases().slice(0, 1);
    let errors = 0;
    for (let i = 0; i < 60; i++) {
      const dir = join(tmp, `png-${i}`);
      mkdirSync(join(dir, 'a'), { recursive: true });
      writeFileSync(join(dir, 'a', '0.png'), bases[0]!);
      const bad = join(dir, 'a', '1.png');
      writeFileSync(bad, mutate(bases[0]!, r, [8, 41], { at: 16, size: 4, littleEndian: false }).bytes);
      const res = expectOkOrTyped(() => loadPngFolder(dir), DataError, [bad], `png folder case ${i}`);
      if (res !== 'ok') errors++;
    }
    expect(errors).toBeGreaterThan(10);
    const images = gzipSync(Uint8Array.from([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2, 1, 2, 3, 4, 5, 6, 7, 8]));
    const labels = Uint8Array.from([0, 0, 8, 1, 0, 0, 0, 2, 0, 1]);
    for (let i = 0; i < 60; i++) {
      const ip = join(tmp, `t${i}-images-idx3-ubyte.gz`);
      const lp = join(tmp, `t${i}-labels-idx1-ubyte`);
      writeFileSync(ip, mutate(Uint8Array.from(images), r, [0, 10]).bytes);
      writeFileSync(lp, labels);
      expectOkOrTyped(() => loadIdx(ip, lp), DataError, [ip, lp], `idx file case ${i}`);
    }
  });
});
