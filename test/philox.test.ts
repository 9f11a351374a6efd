import { describe, expect, it } from 'vitest';
import {
  Philox,
  PHILOX_SEQUENTIAL_DOMAIN,
  mulhi32,
  philox4x32,
  philoxKey,
  philoxUniformF32,
  type PhiloxState,
} from '../src/engine/philox.js';

// Independent reference: Philox4x32-10 written from the paper with BigInt arithmetic (exact 64-bit
// products, no 16-bit splitting), to cross-check the Number-based implementation on random inputs.
function philoxRef(ctr: readonly number[], key: readonly number[]): number[] {
  const M = 0xffffffffn;
  let c = ctr.map((v) => BigInt(v >>> 0));
  let k = key.map((v) => BigInt(v >>> 0));
  for (let r = 0; r < 10; r++) {
    const p0 = 0xd2511f53n * c[0]!;
    const p1 = 0xcd9e8d57n * c[2]!;
    c = [((p1 >> 32n) ^ c[1]! ^ k[0]!) & M, p1 & M, ((p0 >> 32n) ^ c[3]! ^ k[1]!) & M, p0 & M];
    k = [(k[0]! + 0x9e3779b9n) & M, (k[1]! + 0xbb67ae85n) & M];
  }
  return c.map((v) => Number(v));
}

// A tiny independent xorshift to generate test inputs (not the generator under test).
function xorshift32(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

describe('philox4x32 (Random123 Philox4x32-10)', () => {
  // Known-answer vectors from Random123's tests/kat_vectors.
  it('matches the Random123 known-answer vectors', () => {
    expect(philox4x32([0, 0, 0, 0], [0, 0])).toEqual([0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
    expect(
      philox4x32([0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff], [0xffffffff, 0xffffffff]),
    ).toEqual([0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]);
    expect(
      philox4x32([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0]),
    ).toEqual([0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]);
  });

  it('mulhi32 equals the BigInt 64-bit product high word', () => {
    const next = xorshift32(12345);
    const edge = [0, 1, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff];
    const pairs: [number, number][] = [];
    for (const a of edge) for (const b of edge) pairs.push([a, b]);
    for (let i = 0; i < 2000; i++) pairs.push([next(), next()]);
    for (const [a, b] of pairs) {
      expect(mulhi32(a, b)).toBe(Number((BigInt(a) * BigInt(b)) >> 32n));
    }
  });

  it('agrees with a BigInt reference on random counters and keys', () => {
    const next = xorshift32(987654321);
    for (let i = 0; i < 300; i++) {
      const ctr = [next(), next(), next(), next()] as [number, number, number, number];
      const key = [next(), next()] as [number, number];
      expect(philox4x32(ctr, key)).toEqual(philoxRef(ctr, key));
    }
  });
});

describe('Philox stream', () => {
  it('hands out block words in order with the documented counter layout', () => {
    const seed = 0x1234_5678_9abcn; // > 2^32: exercises the key's high word
    const key = philoxKey(seed);
    expect(key).toEqual([0x56789abc, 0x1234]);
    const rng = new Philox(seed, 7);
    const words: number[] = [];
    for (let i = 0; i < 12; i++) words.push(rng.nextU32());
    const expected: number[] = [];
    for (let b = 0; b < 3; b++) expected.push(...philoxRef([b, 0, 7, PHILOX_SEQUENTIAL_DOMAIN], key));
    expect(words).toEqual(expected);
  });

  it('number and bigint seeds give the same stream; seeds and streams differ', () => {
    const a = new Philox(42);
    const b = new Philox(42n);
    const c = new Philox(43);
    const d = new Philox(42, 1);
    const wa = [a.nextU32(), a.nextU32()];
    expect([b.nextU32(), b.nextU32()]).toEqual(wa);
    expect([c.nextU32(), c.nextU32()]).not.toEqual(wa);
    expect([d.nextU32(), d.nextU32()]).not.toEqual(wa);
    expect(() => new Philox(-1)).toThrow();
    expect(() => new Philox(1.5)).toThrow();
    expect(() => new Philox(1n << 64n)).toThrow();
  });

  it('carries the 64-bit block counter into the high word', () => {
    const start: PhiloxState = {
      version: 1,
      seed: '5',
      stream: 0,
      counter: String(0xffffffff),
      lane: 4,
      spareNormal: null,
    };
    const rng = Philox.fromState(start);
    const key = philoxKey(5);
    const w: number[] = [];
    for (let i = 0; i < 8; i++) w.push(rng.nextU32());
    expect(w.slice(0, 4)).toEqual(philoxRef([0xffffffff, 0, 0, 1], key));
    expect(w.slice(4)).toEqual(philoxRef([0, 1, 0, 1], key));
    expect(rng.state().counter).toBe(String(2 ** 32 + 1));
  });

  it('state() survives JSON and resumes bit-identically (mid-block, with a spare normal)', () => {
    const rng = new Philox(2024n, 3);
    rng.nextU32(); // leave the stream mid-block
    rng.uniform();
    rng.normal(); // leaves a spare normal cached
    const json = JSON.stringify(rng.state());
    const parsed = JSON.parse(json) as PhiloxState;
    expect(parsed.spareNormal).not.toBeNull();
    const resumed = Philox.fromState(parsed);
    const draw = (p: Philox): number[] => [p.normal(), p.nextU32(), p.uniform(), p.normal(), p.normal(), p.uniformOpen()];
    for (let i = 0; i < 50; i++) expect(draw(resumed)).toEqual(draw(rng));
    expect(resumed.state()).toEqual(rng.state());
    expect(() => Philox.fromState({ ...parsed, version: 2 } as unknown as PhiloxState)).toThrow();
    expect(() => Philox.fromState({ ...parsed, lane: 5 })).toThrow();
  });

  it('uniform, uniformOpen and normal have the right ranges and moments', () => {
    const rng = new Philox(99);
    const n = 200_000;
    let s1 = 0;
    let s2 = 0;
    let min = 1;
    let max = 0;
    let openOk = true;
    for (let i = 0; i < n; i++) {
      const u = rng.uniform();
      s1 += u;
      s2 += u * u;
      min = Math.min(min, u);
      max = Math.max(max, u);
      const o = rng.uniformOpen();
      if (!(o > 0 && o < 1)) openOk = false;
    }
    expect(openOk).toBe(true);
    expect(min).toBeGreaterThanOrEqual(0);
    expect(max).toBeLessThan(1);
    // mean 1/2 (sd of the mean 0.29/sqrt(n) = 6.5e-4), variance 1/12
    expect(Math.abs(s1 / n - 0.5)).toBeLessThan(5 * 6.5e-4);
    expect(Math.abs(s2 / n - (s1 / n) ** 2 - 1 / 12)).toBeLessThan(2e-3);
    // 53-bit resolution: values are multiples of 2^-53
    const u = rng.uniform();
    expect(Number.isInteger(u * 2 ** 53)).toBe(true);

    let m1 = 0;
    let m2 = 0;
    let m4 = 0;
    for (let i = 0; i < n; i++) {
      const z = rng.normal();
      m1 += z;
      m2 += z * z;
      m4 += z ** 4;
    }
    expect(Math.abs(m1 / n)).toBeLessThan(5 / Math.sqrt(n));
    expect(Math.abs(m2 / n - 1)).toBeLessThan(5 * Math.sqrt(2 / n));
    expect(Math.abs(m4 / n - 3)).toBeLessThan(5 * Math.sqrt(96 / n));
  });
});

describe('philoxUniformF32 (GPU element-wise mapping)', () => {
  it('is (first word of philox([index,0,0,0], [lo,hi])) >>> 8, times 2^-24', () => {
    const [lo, hi] = philoxKey(0xdead_beef_cafen);
    for (const index of [0, 1, 2, 1000, 123456789, 0xffffffff]) {
      const w = philoxRef([index, 0, 0, 0], [lo, hi])[0]!;
      const u = philoxUniformF32(lo, hi, index);
      expect(u).toBe(Math.floor(w / 256) / 16777216);
      expect(Math.fround(u)).toBe(u);
      expect(u >= 0 && u < 1).toBe(true);
    }
    expect(() => philoxUniformF32(lo, hi, -1)).toThrow();
    expect(() => philoxUniformF32(lo, hi, 2 ** 32)).toThrow();
  });

  it('is uniform over many indices and disjoint from the sequential stream', () => {
    const n = 100_000;
    const bins = new Array<number>(20).fill(0);
    for (let i = 0; i < n; i++) bins[Math.floor(philoxUniformF32(7, 0, i) * 20)]!++;
    let chi2 = 0;
    for (const b of bins) chi2 += (b - n / 20) ** 2 / (n / 20);
    expect(chi2).toBeLessThan(45); // chi^2_19: 99.9th percentile is 43.8
    const rng = new Philox(7);
    const seqFirst = rng.nextU32();
    expect(seqFirst).not.toBe(philoxRef([0, 0, 0, 0], [7, 0])[0]);
  });
});
