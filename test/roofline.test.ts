// The roofline microkernels do the work their GFLOP/s and GB/s figures count: every FMA step of
// every chain (unrolled or not) against a float32 simulation on the CPU, and every copied word.
import { expect, it } from 'vitest';
import { copyKernel, fmaFlops, fmaKernel } from '../bench/roofline';
import { forEachBackend } from './helpers/gpu';

/** The FMA kernel's output for invocation `g`: the sum of its chains after `iters` steps. */
function fmaReference(g: number, chains: number, iters: number): number[] {
  const f = Math.fround;
  const s = f(f(g & 1023) * f(1e-7));
  const m = [0.9999, 0.9998, 0.9997, 0.9996].map((v) => f(f(v) + s));
  const c = f(1e-4);
  const sum = [0, 0, 0, 0];
  for (let i = 0; i < chains; i++) {
    const a = [f(s + i), s, f(s * 2), 1];
    for (let k = 0; k < iters; k++) for (let j = 0; j < 4; j++) a[j] = f(f(a[j] * m[j]) + c);
    for (let j = 0; j < 4; j++) sum[j] = f(sum[j] + a[j]);
  }
  return sum;
}

it('peak.fma counts the flops of every workgroup it launches, also when the grid wraps past 65535', () => {
  // 196608 groups launch as 65535 x 4 = 262140 workgroups (no bounds check: all of them compute)
  for (const groups of [16, 65535, 65536, 196608, 1 << 20]) {
    const k = fmaKernel(64, 8, 4, 512, groups);
    const launched = k.workgroups[0] * k.workgroups[1] * k.workgroups[2];
    expect(launched).toBeGreaterThanOrEqual(groups);
    expect(k.code).not.toMatch(/return;|if \(/);
    expect(fmaFlops(k, 64, 8, 512)).toBe(8 * 8 * 512 * 64 * launched);
  }
});

forEachBackend('roofline microkernels', (getGpu) => {
  it.each([
    [64, 4, 1],
    [64, 8, 4],
    [128, 4, 8],
  ])('peak.fma wg%i x%i unroll%i runs every step of every chain', async (wg, chains, unroll) => {
    const gpu = getGpu();
    const groups = 3;
    const iters = 64;
    const out = gpu.alloc(65536 * 16);
    gpu.dispatch(fmaKernel(wg, chains, unroll, iters, groups), [out]);
    const got = new Float32Array(await gpu.read(out, wg * groups * 16));
    for (const g of [0, 1, wg, wg * groups - 1]) {
      const want = fmaReference(g, chains, iters);
      for (let j = 0; j < 4; j++) expect(Math.abs(got[4 * g + j] - want[j])).toBeLessThan(1e-4 * Math.abs(want[j]));
    }
    gpu.release(out);
  });

  it.each([
    [1, true],
    [4, false],
  ])('peak.copy x%i (vec4 %s) copies every word', async (per, vec4) => {
    const gpu = getGpu();
    const vec4s = 4096;
    const src = gpu.alloc(vec4s * 16);
    const dst = gpu.alloc(vec4s * 16);
    const data = Float32Array.from({ length: vec4s * 4 }, (_, i) => i * 0.5 - 7);
    gpu.upload(src, data);
    gpu.dispatch(copyKernel(vec4s, per, vec4), [src, dst]);
    expect(new Float32Array(await gpu.read(dst, vec4s * 16))).toEqual(data);
    gpu.release(src);
    gpu.release(dst);
  });
});
