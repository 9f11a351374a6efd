// Philox4x32-10 in WGSL, bit-identical to src/engine/philox.ts, so the same (seed, stream, index)
// gives the same uniform bits on every adapter (and on the CPU). 32x32->64 products use the
// 16-bit split of philox.ts's mulhi32, since WGSL has no wide multiply.
import { type Kernel, f32Bits, sizedIndex, sizedLaunch, sizedUniform, storage } from './kernel';

export const PHILOX_WGSL = /* wgsl */ `
fn mulhi32(a: u32, b: u32) -> u32 {
  let aH = a >> 16u; let aL = a & 0xffffu; let bH = b >> 16u; let bL = b & 0xffffu;
  let t = aH * bL + ((aL * bL) >> 16u);
  let w = aL * bH + (t & 0xffffu);
  return aH * bH + (t >> 16u) + (w >> 16u);
}
fn philox4x32(ctr: vec4u, key: vec2u) -> vec4u {
  var c = ctr; var k = key;
  for (var r = 0u; r < 10u; r++) {
    if (r > 0u) { k = k + vec2u(0x9e3779b9u, 0xbb67ae85u); }
    let hi0 = mulhi32(0xd2511f53u, c.x); let lo0 = 0xd2511f53u * c.x;
    let hi1 = mulhi32(0xcd9e8d57u, c.z); let lo1 = 0xcd9e8d57u * c.z;
    c = vec4u(hi1 ^ c.y ^ k.x, lo1, hi0 ^ c.w ^ k.y, lo0);
  }
  return c;
}
fn u24(w: u32) -> f32 { return f32(w >> 8u) * 5.9604644775390625e-8; }
`;

export type Distribution = 'uniform' | 'normal';

/** out[i] for i < n: uniform in [a, b) or normal(mean a, std b), from counter [i, stream, 0, 0] and
 *  the Philox key. Everything but the distribution is a uniform, so one pipeline serves all seeds,
 *  sizes and ranges. */
export function randomKernel(n: number, dist: Distribution, a: number, b: number, key: [number, number], stream: number): Kernel {
  const value =
    dist === 'uniform'
      ? 'P.a + (P.b - P.a) * u24(w.x)'
      : // Box-Muller; 1 - u keeps the log argument in (0, 1]
        'P.a + P.b * sqrt(-2.0 * log(1.0 - u24(w.x))) * cos(6.283185307179586 * u24(w.y))';
  const code = `${storage(0, 'out', 'read_write')}
${sizedUniform(1, 'P', ['keyLo: u32', 'keyHi: u32', 'stream: u32', 'a: f32', 'b: f32'])}
${PHILOX_WGSL}
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  ${sizedIndex('P')}
  let w = philox4x32(vec4u(t, P.stream, 0u, 0u), vec2u(P.keyLo, P.keyHi));
  out[t] = ${value};
}`;
  const { workgroups, params } = sizedLaunch(n, 256, [key[0], key[1], stream, f32Bits(a), f32Bits(b)]);
  return { name: `random.${dist}`, code, workgroups, params };
}
