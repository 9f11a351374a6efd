// What a browser needs of the kernels, checked without a GPU: src/kernels imports only its own files,
// and every kernel the tuner can pick (software and real-GPU candidates, split-K, im2col, direct 3x3)
// stays within WebGPU's default limits, which every browser grants: 256 invocations per workgroup
// (x, y <= 256, z <= 64), 16 KiB of workgroup memory, 8 storage buffers per stage. (Checked on a real
// device with default limits for the UNet's own kernels during the web audit; this keeps new variants
// from growing past them.)
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type AdapterCaps, anyVariantKey, convProblem } from '../src/engine/autotune';
import type { GemmSpec } from '../src/kernels/gemm';
import type { Conv3Spec } from '../src/kernels/conv3';
import type { Kernel } from '../src/kernels/kernel';
import { groupNormBackwardDxKernel, groupNormBackwardParamsKernel, groupNormForwardKernel } from '../src/kernels/norm';

const KERNELS = join(__dirname, '..', 'src', 'kernels');

describe('kernels for the browser', () => {
  it('src/kernels imports nothing but its own files', () => {
    for (const file of readdirSync(KERNELS).filter((f) => f.endsWith('.ts'))) {
      const src = readFileSync(join(KERNELS, file), 'utf8');
      for (const m of src.matchAll(/\b(?:import|export)\b[^;]*?\bfrom\s*['"]([^'"]+)['"]/g)) expect(m[1], `${file} imports ${m[1]}`).toMatch(/^\.\/[\w-]+$/);
      expect(src, file).not.toMatch(/\bimport\s*\(|\brequire\s*\(|\bprocess\.|\bBuffer\./);
    }
  });

  it("every candidate GEMM/convolution kernel is within WebGPU's default limits", () => {
    // a 3x3 convolution with a bias (the UNet's most-bound kernels): 32 -> 64 channels on 28x28, batch 8
    const [n, cin, cout, h, w] = [8, 32, 64, 28, 28];
    const P = h * w;
    const implicit: GemmSpec = {
      name: 'conv',
      batch: n,
      M: cout,
      N: P,
      K: cin * 9,
      a: { kind: 'strided', buffer: 'W', offset: '0u', aligned4: true, rowStride: cin * 9, colStride: 1 },
      b: { kind: 'gather', buffers: ['X'], fn: 'fn gx(b: u32, r: u32, c: u32) -> f32 { return X[b * 9u + r + c]; }', call: 'gx' },
      out: { buffer: 'Y', offset: `b * ${cout * P}u`, aligned4: true, rowStride: P },
      epilogue: { buffers: ['bias'], expr: 'v + bias[m]' },
    };
    const direct: Conv3Spec = {
      name: 'conv',
      batch: n,
      M: cout,
      C: cin,
      H: h,
      W: w,
      input: { buffer: 'X', offset: `b * ${cin * P}u` },
      weight: { buffer: 'W', index: (m, c, tap) => `(${m} * ${cin}u + ${c}) * 9u + ${tap}` },
      out: { buffer: 'Y', offset: `b * ${cout * P}u` },
      epilogue: implicit.epilogue,
    };
    const col = { name: 'im2col', input: 'X', out: 'col_', n, C: cin, H: h, W: w, kh: 3, kw: 3, sh: 1, sw: 1, ph: 1, pw: 1, ho: h, wo: w };
    const im2col = { col, gemm: { ...implicit, b: { kind: 'strided', buffer: 'col_', offset: `b * ${P}u`, aligned4: true, rowStride: n * P, colStride: 1 } } as GemmSpec };
    // and a long-K, small-output product (weight gradient: split-K candidates)
    const dw: GemmSpec = { ...implicit, name: 'dw', batch: 1, M: 16, N: 16, K: 4096, epilogue: undefined };
    const adapters: AdapterCaps[] = [
      { software: true, subgroupSize: 8 },
      { software: true, subgroupSize: null },
      { software: false, subgroupSize: null },
    ];
    let checked = 0;
    for (const caps of adapters) {
      // rows of 14 (not a multiple of 4): only kernels that can read them may be candidates
      const direct14 = { ...direct, H: 14, W: 14 };
      const problems = [
        convProblem({ name: 'conv', family: 'conv.fwd', implicit, direct, im2col }),
        convProblem({ name: 'conv', family: 'conv.fwd', implicit, direct: direct14 }),
        convProblem({ name: 'dw', family: 'conv.dw', implicit: dw }),
      ];
      for (const problem of problems) {
        for (const v of problem.candidates(caps)) {
          const plan = problem.plan(v);
          expect(plan, anyVariantKey(v)).not.toBeNull();
          for (const { kernel } of plan!.launches) {
            const what = `${kernel.name} with ${anyVariantKey(v)}`;
            const size = kernel.code.match(/@workgroup_size\(([^)]*)\)/)![1].split(',').map((s) => Number(s.trim()));
            const [x, y = 1, z = 1] = size;
            expect(x * y * z, what).toBeLessThanOrEqual(256);
            expect(Math.max(x, y), what).toBeLessThanOrEqual(256);
            expect(z, what).toBeLessThanOrEqual(64);
            let shared = 0;
            for (const m of kernel.code.matchAll(/var<workgroup>\s+\w+\s*:\s*array<(f32|u32|i32|vec4f), (\d+)>/g)) shared += (m[1] === 'vec4f' ? 16 : 4) * Number(m[2]);
            expect(kernel.code.match(/var<workgroup>/g)?.length ?? 0, `${what}: every workgroup variable is counted`).toBe([...kernel.code.matchAll(/var<workgroup>\s+\w+\s*:\s*array<(f32|u32|i32|vec4f), (\d+)>/g)].length);
            expect(shared, what).toBeLessThanOrEqual(16384);
            expect(kernel.code.match(/var<storage,/g)?.length ?? 0, what).toBeLessThanOrEqual(8);
            checked++;
          }
        }
      }
    }
    expect(checked).toBeGreaterThan(30);
  });

  it("GroupNorm's kernels are within WebGPU's default limits for every variant", () => {
    const kernels: Kernel[] = [];
    for (const silu of [false, true]) {
      for (const [gamma, beta] of [[true, true], [false, false], [false, true]]) {
        const spec = { batch: 300, channels: 70200, groups: 300, spatial: 1, eps: 1e-5, gamma, beta, silu };
        kernels.push(groupNormForwardKernel(spec), groupNormBackwardDxKernel(spec), groupNormBackwardParamsKernel(spec));
      }
    }
    for (const kernel of kernels) {
      const [x, y = 1, z = 1] = kernel.code.match(/@workgroup_size\(([^)]*)\)/)![1].split(',').map((s) => Number(s.trim()));
      expect(x * y * z, kernel.name).toBeLessThanOrEqual(256);
      expect(kernel.code.match(/var<storage,/g)!.length, kernel.name).toBeLessThanOrEqual(8);
      // 90,000 (sample, group) rows and 70,200 channels: more than one grid dimension holds, so the grid folds into y
      expect(Math.max(...kernel.workgroups), kernel.name).toBeLessThanOrEqual(65535);
      expect(kernel.workgroups[0] * kernel.workgroups[1], kernel.name).toBeGreaterThanOrEqual(kernel.name.endsWith('grad_params') ? 70200 : 90000);
    }
  });
});
