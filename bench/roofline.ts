// What the adapter can do: attainable FMA throughput and copy bandwidth, from microkernels run
// through our runtime. Each is the best over a few shapes (the fastest form differs between software
// and real GPUs), with the launch grown until one dispatch takes long enough to time by wall clock.
import type { Gpu } from '../src/engine/index';
import type { Kernel } from '../src/kernels/kernel';

export interface Peaks {
  fmaGflops: number;
  copyGBps: number;
  /** every configuration tried */
  details: { kernel: string; value: number; unit: 'GFLOP/s' | 'GB/s'; ms: number }[];
}

/** Best wall-clock ms of `kernel` over `trials` (after one warm-up), `reps` launches per submit. */
async function timeKernel(gpu: Gpu, kernel: Kernel, buffers: GPUBuffer[], reps: number, trials: number): Promise<number> {
  gpu.dispatch(kernel, buffers);
  await gpu.sync();
  let best = Infinity;
  for (let t = 0; t < trials; t++) {
    const t0 = performance.now();
    for (let r = 0; r < reps; r++) gpu.dispatch(kernel, buffers);
    await gpu.sync();
    best = Math.min(best, (performance.now() - t0) / reps);
  }
  return best;
}

/** Floating-point operations of one launch of `fmaKernel(wg, chains, _, iters, groups)`: every
 *  invocation of the launched grid (gx * gy workgroups, which past 65535 groups is more than
 *  `groups`; there is no bounds check) runs 8 * chains * iters. */
export function fmaFlops(kernel: Kernel, wg: number, chains: number, iters: number): number {
  const [gx, gy, gz] = kernel.workgroups;
  return 8 * chains * iters * wg * gx * gy * gz;
}

/** `chains` independent vec4 FMA chains per invocation, `iters` steps each: 8 * chains * iters flops.
 *  The loop body repeats the step `unroll` times: on llvmpipe every loop iteration re-masks its
 *  loop-carried values, so the rolled loop measures that overhead rather than FMA throughput
 *  (unrolled by 4: 180 instead of 131 GFLOP/s on OpenGL, 74 instead of 44 on lavapipe). */
export function fmaKernel(wg: number, chains: number, unroll: number, iters: number, groups: number): Kernel {
  if (iters % unroll !== 0) throw new Error(`peak.fma: ${iters} steps do not split into bodies of ${unroll}`);
  const C = Array.from({ length: chains }, (_, i) => i);
  const step = C.map((i) => `a${i} = fma(a${i}, m, c);`).join('\n    ');
  const gx = Math.min(groups, 65535);
  return {
    name: `peak.fma wg${wg} x${chains} unroll${unroll}`,
    workgroups: [gx, Math.ceil(groups / gx), 1],
    code: `@group(0) @binding(0) var<storage, read_write> out: array<vec4f>;
@compute @workgroup_size(${wg})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let s = f32(gid.x & 1023u) * 1e-7;
  ${C.map((i) => `var a${i} = vec4f(s + ${i}.0, s, s * 2.0, 1.0);`).join('\n  ')}
  let m = vec4f(0.9999, 0.9998, 0.9997, 0.9996) + vec4f(s);
  let c = vec4f(1e-4);
  for (var i = 0u; i < ${iters / unroll}u; i++) {
    ${Array.from({ length: unroll }, () => step).join('\n    ')}
  }
  out[(gid.x + gid.y * ${gx * wg}u) & 65535u] = ${C.map((i) => `a${i}`).join(' + ')};
}`,
  };
}

/** dst = src over `vec4s` vec4s, `per` consecutive vec4s per invocation (or scalars when !vec4). */
export function copyKernel(vec4s: number, per: number, vec4: boolean): Kernel {
  const wg = 256;
  const n = vec4 ? vec4s : vec4s * 4;
  const t = vec4 ? 'vec4f' : 'f32';
  const groups = Math.ceil(n / per / wg);
  const gx = Math.min(groups, 65535);
  const P = Array.from({ length: per }, (_, i) => i);
  return {
    name: `peak.copy ${t} x${per}`,
    workgroups: [gx, Math.ceil(groups / gx), 1],
    code: `@group(0) @binding(0) var<storage, read> src: array<${t}>;
@group(0) @binding(1) var<storage, read_write> dst: array<${t}>;
@compute @workgroup_size(${wg})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = (gid.x + gid.y * ${gx * wg}u) * ${per}u;
  if (i < ${n}u) {
    ${P.map((p) => `let v${p} = src[i + ${p}u];`).join(' ')}
    ${P.map((p) => `dst[i + ${p}u] = v${p};`).join(' ')}
  }
}`,
  };
}

export async function measurePeaks(gpu: Gpu, opts: { quick?: boolean; log?: (s: string) => void } = {}): Promise<Peaks> {
  const details: Peaks['details'] = [];
  const trials = opts.quick ? 2 : 4;
  const out = gpu.device.createBuffer({ size: 65536 * 16, usage: GPUBufferUsage.STORAGE });
  let fma = 0;
  // [workgroup size, chains, unroll]
  const configs: [number, number, number][] = [
    [64, 8, 4],
    [64, 4, 4],
    [64, 8, 1],
    [64, 4, 8],
    [128, 8, 4],
    [256, 8, 1],
    [64, 16, 4],
  ];
  for (const [wg, chains, unroll] of opts.quick ? configs.slice(0, 3) : configs) {
    const iters = 512;
    // grow the grid until a launch takes >= 25 ms (or the grid is huge)
    let groups = 16;
    let ms = 0;
    for (;;) {
      ms = await timeKernel(gpu, fmaKernel(wg, chains, unroll, iters, groups), [out], 1, 1);
      if (ms >= 25 || groups >= 1 << 22) break;
      groups *= Math.min(16, Math.max(2, Math.ceil(25 / Math.max(ms, 0.05))));
    }
    const kernel = fmaKernel(wg, chains, unroll, iters, groups);
    ms = await timeKernel(gpu, kernel, [out], 1, trials);
    const gflops = fmaFlops(kernel, wg, chains, iters) / ms / 1e6;
    details.push({ kernel: kernel.name, value: gflops, unit: 'GFLOP/s', ms });
    opts.log?.(`  ${kernel.name}: ${gflops.toFixed(1)} GFLOP/s`);
    fma = Math.max(fma, gflops);
  }
  out.destroy();

  const bytes = (opts.quick ? 32 : 64) * 2 ** 20;
  const src = gpu.device.createBuffer({ size: bytes, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
  const dst = gpu.device.createBuffer({ size: bytes, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
  let copy = 0;
  for (const [per, vec4] of [[1, true], [4, true], [1, false], [4, false]] as [number, boolean][]) {
    const kernel = copyKernel(bytes / 16, per, vec4);
    const ms = await timeKernel(gpu, kernel, [src, dst], 2, trials);
    const gbps = (2 * bytes) / ms / 1e6;
    details.push({ kernel: `${kernel.name} ${bytes >> 20} MiB`, value: gbps, unit: 'GB/s', ms });
    opts.log?.(`  ${kernel.name} ${bytes >> 20} MiB: ${gbps.toFixed(1)} GB/s (read + write)`);
    copy = Math.max(copy, gbps);
  }
  // For reference only (not a kernel): the driver's own buffer copy.
  {
    gpu.copy(src, 0, dst, 0, bytes);
    await gpu.sync();
    let best = Infinity;
    for (let t = 0; t < trials; t++) {
      const t0 = performance.now();
      gpu.copy(src, 0, dst, 0, bytes);
      gpu.copy(src, 0, dst, 0, bytes);
      await gpu.sync();
      best = Math.min(best, (performance.now() - t0) / 2);
    }
    const gbps = (2 * bytes) / best / 1e6;
    details.push({ kernel: `copyBufferToBuffer ${bytes >> 20} MiB (reference, not a kernel)`, value: gbps, unit: 'GB/s', ms: best });
    opts.log?.(`  copyBufferToBuffer ${bytes >> 20} MiB: ${gbps.toFixed(1)} GB/s (driver copy, reference only)`);
  }
  src.destroy();
  dst.destroy();
  return { fmaGflops: fma, copyGBps: copy, details };
}
