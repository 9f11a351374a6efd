/**
 * Philox4x32-10 counter-based random number generator (Salmon, Moraes, Dror, Shaw, "Parallel random
 * numbers: as easy as 1, 2, 3", SC'11; the Random123 library).
 *
 * Why counter-based: every output is a pure function of (counter, key), so the same stream can be
 * reproduced on the GPU (WGSL has 32-bit integers only, hence the 16-bit-split `mulhi` below, which a
 * kernel can copy line by line), resumed from a tiny JSON checkpoint, and split into independent
 * streams without any state sharing.
 */

/** A 32-bit unsigned integer stored in a JS number (0 <= x < 2^32). */
export type U32 = number;

const PHILOX_M0 = 0xd2511f53;
const PHILOX_M1 = 0xcd9e8d57;
const PHILOX_W0 = 0x9e3779b9; // golden ratio
const PHILOX_W1 = 0xbb67ae85; // sqrt(3) - 1
const TWO_POW_32 = 4294967296;

/**
 * High 32 bits of the 64-bit product of two u32 values. The product needs up to 64 bits, more than
 * a float64 holds exactly, so it is split into 16-bit halves (Hacker's Delight `mulhu`); every
 * intermediate stays below 2^32, so a WGSL kernel (u32 arithmetic only) can copy it line by line.
 */
export function mulhi32(a: U32, b: U32): U32 {
  const aH = a >>> 16;
  const aL = a & 0xffff;
  const bH = b >>> 16;
  const bL = b & 0xffff;
  const t = aH * bL + ((aL * bL) >>> 16); // < 2^32
  const w = aL * bH + (t & 0xffff); // < 2^32
  return (aH * bH + (t >>> 16) + (w >>> 16)) >>> 0;
}

/** Low 32 bits of the product of two u32 values. */
export function mullo32(a: U32, b: U32): U32 {
  return Math.imul(a, b) >>> 0;
}

/**
 * One Philox4x32-10 block: 10 rounds of the Random123 round function, bumping the key between
 * rounds. Matches Random123's `philox4x32(ctr, key)` with R = 10 (tested against its KAT vectors).
 */
export function philox4x32(
  counter: readonly [U32, U32, U32, U32],
  key: readonly [U32, U32],
): [U32, U32, U32, U32] {
  const out = new Uint32Array(4);
  philoxInto(counter[0], counter[1], counter[2], counter[3], key[0], key[1], out);
  return [out[0]!, out[1]!, out[2]!, out[3]!];
}

/** Allocation-free core of `philox4x32`: writes the four output words into `out`. */
function philoxInto(
  c0: U32,
  c1: U32,
  c2: U32,
  c3: U32,
  k0: U32,
  k1: U32,
  out: Uint32Array,
): void {
  c0 >>>= 0;
  c1 >>>= 0;
  c2 >>>= 0;
  c3 >>>= 0;
  k0 >>>= 0;
  k1 >>>= 0;
  for (let round = 0; round < 10; round++) {
    if (round > 0) {
      k0 = (k0 + PHILOX_W0) >>> 0;
      k1 = (k1 + PHILOX_W1) >>> 0;
    }
    const hi0 = mulhi32(PHILOX_M0, c0);
    const lo0 = Math.imul(PHILOX_M0, c0) >>> 0;
    const hi1 = mulhi32(PHILOX_M1, c2);
    const lo1 = Math.imul(PHILOX_M1, c2) >>> 0;
    c0 = (hi1 ^ c1 ^ k0) >>> 0;
    c1 = lo1;
    c2 = (hi0 ^ c3 ^ k1) >>> 0;
    c3 = lo0;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

/**
 * Splits a seed into the Philox key [lo, hi]. Accepts a non-negative safe integer (number) or a
 * bigint in [0, 2^64). Use this to hand the same key to a GPU kernel (see `philoxUniformF32`).
 */
export function philoxKey(seed: number | bigint): [U32, U32] {
  if (typeof seed === 'bigint') {
    if (seed < 0n || seed >= 1n << 64n) {
      throw new RangeError(`Philox seed must be in [0, 2^64) (got ${seed})`);
    }
    return [Number(seed & 0xffffffffn), Number(seed >> 32n)];
  }
  if (!Number.isSafeInteger(seed) || seed < 0) {
    throw new RangeError(`Philox seed must be a non-negative safe integer or a bigint (got ${seed})`);
  }
  return [seed % TWO_POW_32, Math.floor(seed / TWO_POW_32)];
}

/**
 * Element-wise uniform for GPU kernels: maps (key, element index) to a float32-representable
 * uniform in [0, 1). The exact mapping, which a WGSL kernel must reproduce bit for bit:
 *
 *     w = philox4x32(counter = [index, 0, 0, 0], key = [seedLo, seedHi])[0]   // first output word
 *     u = f32(w >> 8) * 2^-24                                                 // top 24 bits
 *
 * `w >> 8` has 24 bits, so `u` is exact in float32 (and float64): values k * 2^-24, k in [0, 2^24).
 * `index` is a u32 (the element number); `seedLo`/`seedHi` are the two halves of `philoxKey(seed)`.
 * Note that counter words 1..3 are 0 here, whereas the sequential `Philox` class always sets
 * counter word 3 to 1, so the two never draw the same block even with the same seed.
 */
export function philoxUniformF32(seedLo: U32, seedHi: U32, index: U32): number {
  if (!Number.isInteger(index) || index < 0 || index >= TWO_POW_32) {
    throw new RangeError(`philoxUniformF32: index must be a u32 (got ${index})`);
  }
  const w = philox4x32([index, 0, 0, 0], [seedLo >>> 0, seedHi >>> 0])[0];
  return (w >>> 8) * 5.9604644775390625e-8; // 2^-24
}

/** JSON-serialisable snapshot of a `Philox` stream; `Philox.fromState` resumes it bit-identically. */
export interface PhiloxState {
  /** Format tag, so a checkpoint from a future layout is rejected instead of misread. */
  version: 1;
  /** Seed as a decimal string (it may exceed 2^53). */
  seed: string;
  /** Stream id (counter word 2). */
  stream: number;
  /** Index of the next block to generate, decimal string of a 64-bit integer. */
  counter: string;
  /** Next word to hand out from the last generated block (4: block used up). */
  lane: number;
  /** Second Box-Muller normal kept for the next `normal()` call, or null. */
  spareNormal: number | null;
}

/** Counter word 3 of every block drawn by the `Philox` class (keeps it apart from `philoxUniformF32`). */
export const PHILOX_SEQUENTIAL_DOMAIN = 1;

/**
 * Sequential stream on top of Philox4x32-10. Block `n` of stream `stream` is
 * `philox4x32([n mod 2^32, floor(n / 2^32), stream, 1], philoxKey(seed))`; its four words are
 * handed out in order (word 0 first). The block counter is 64 bits (two u32 halves).
 */
export class Philox {
  readonly seed: bigint;
  readonly stream: number;
  private readonly key: [U32, U32];
  private ctrLo = 0;
  private ctrHi = 0;
  private readonly buf = new Uint32Array(4);
  private lane = 4;
  private spare: number | null = null;

  constructor(seed: number | bigint, stream = 0) {
    this.key = philoxKey(seed);
    this.seed = BigInt(seed);
    if (!Number.isInteger(stream) || stream < 0 || stream >= TWO_POW_32) {
      throw new RangeError(`Philox stream must be a u32 (got ${stream})`);
    }
    this.stream = stream;
  }

  /** Next 32 random bits. */
  nextU32(): U32 {
    if (this.lane === 4) {
      philoxInto(this.ctrLo, this.ctrHi, this.stream, PHILOX_SEQUENTIAL_DOMAIN, this.key[0], this.key[1], this.buf);
      this.ctrLo = (this.ctrLo + 1) >>> 0;
      if (this.ctrLo === 0) this.ctrHi = (this.ctrHi + 1) >>> 0;
      this.lane = 0;
    }
    return this.buf[this.lane++]!;
  }

  /** Uniform float64 in [0, 1) from 53 random bits (27 from one word, 26 from the next). */
  uniform(): number {
    const a = this.nextU32() >>> 5;
    const b = this.nextU32() >>> 6;
    return (a * 67108864 + b) * 1.1102230246251565e-16; // (a * 2^26 + b) * 2^-53
  }

  /** Uniform float64 in the open interval (0, 1): `uniform()` redrawn on the (2^-53 likely) zero. */
  uniformOpen(): number {
    let u = this.uniform();
    while (u === 0) u = this.uniform();
    return u;
  }

  /**
   * Standard normal by Box-Muller. Each pair of uniforms gives two normals; the second is kept for
   * the next call (and saved in `state()`).
   */
  normal(): number {
    if (this.spare !== null) {
      const z = this.spare;
      this.spare = null;
      return z;
    }
    const u1 = this.uniformOpen();
    const u2 = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u1));
    const theta = 2 * Math.PI * u2;
    this.spare = r * Math.sin(theta);
    return r * Math.cos(theta);
  }

  /** JSON-serialisable snapshot (numbers and strings only). */
  state(): PhiloxState {
    const counter = (BigInt(this.ctrHi) << 32n) | BigInt(this.ctrLo);
    return {
      version: 1,
      seed: this.seed.toString(),
      stream: this.stream,
      counter: counter.toString(),
      lane: this.lane,
      spareNormal: this.spare,
    };
  }

  /** Rebuilds a stream from `state()`; the continuation is bit-identical to the original's. */
  static fromState(state: PhiloxState): Philox {
    if (state === null || typeof state !== 'object' || state.version !== 1) {
      throw new Error(`Philox.fromState: unsupported state (expected version 1)`);
    }
    const p = new Philox(BigInt(state.seed), state.stream);
    const counter = BigInt(state.counter);
    if (counter < 0n || counter >= 1n << 64n) {
      throw new RangeError(`Philox.fromState: counter out of range (${state.counter})`);
    }
    if (!Number.isInteger(state.lane) || state.lane < 0 || state.lane > 4) {
      throw new RangeError(`Philox.fromState: lane must be 0..4 (got ${state.lane})`);
    }
    if (state.lane < 4) {
      if (counter === 0n) throw new RangeError('Philox.fromState: lane < 4 needs a generated block');
      const prev = counter - 1n;
      philoxInto(
        Number(prev & 0xffffffffn),
        Number(prev >> 32n),
        p.stream,
        PHILOX_SEQUENTIAL_DOMAIN,
        p.key[0],
        p.key[1],
        p.buf,
      );
    }
    p.ctrLo = Number(counter & 0xffffffffn);
    p.ctrHi = Number(counter >> 32n);
    p.lane = state.lane;
    if (state.spareNormal !== null && typeof state.spareNormal !== 'number') {
      throw new TypeError('Philox.fromState: spareNormal must be a number or null');
    }
    p.spare = state.spareNormal;
    return p;
  }
}
