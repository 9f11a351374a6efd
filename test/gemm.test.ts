// Every GEMM variant (register-blocked along n or m, workgroup-tiled, split-K) against float64 CPU
// references, on odd shapes that exercise tile edges, vec4 and scalar load paths, transposed operands,
// broadcast batches, and conv2d as implicit GEMM (forward with bias, input and weight gradients).
import { afterEach, expect, it, vi } from 'vitest';
import { type GemmVariant, gemmPlan, variantKey } from '../src/kernels/gemm';
import type { Conv3Variant } from '../src/kernels/conv3';
import type { Conv3BlockVariant } from '../src/kernels/conv3-block';
import type { Conv3WeightGradVariant } from '../src/kernels/conv3-weight-grad';
import { type Variant, anyVariantKey, forceGemmVariant, exportGemmChoices, importGemmChoices, clearGemmChoices, pendingGemmClasses, tuneGemms } from '../src/engine/autotune';
import { conv2d, matmulRaw, scope, tensor } from '../src/engine/index';
import { NDArray, conv2d as refConv2d, makeRng, matmul as refMatmul, transpose as refTranspose } from './reference';
import { expectTensorClose, forEachBackend, randF32, upload } from './helpers/gpu';

// One of each code path (tile sizes only change unrolling): the default tiles on CPUs (8x8, with
// subgroups on lavapipe) and on GPUs (tiled 4x4), odd tiles (scalar loads and stores, edge clamping),
// lanes along m, workgroup tiles, split-K.
const VARIANTS: GemmVariant[] = [
  { kind: 'reg', lanes: 'n', tm: 8, tn: 8, wg: 8, splitK: 1 },
  { kind: 'reg', lanes: 'n', tm: 3, tn: 5, wg: 4, splitK: 1 },
  { kind: 'reg', lanes: 'm', tm: 4, tn: 8, wg: 16, splitK: 1 },
  { kind: 'reg', lanes: 'm', tm: 5, tn: 3, wg: 2, splitK: 1 },
  { kind: 'tiled', rm: 4, rn: 4, tk: 16, splitK: 1 },
  { kind: 'tiled', rm: 2, rn: 1, tk: 4, splitK: 1 },
  // split-K on small tiles: the split and its reduction do not depend on the tile (big tiles compile
  // for seconds each on a software GPU and are checked without split above)
  { kind: 'reg', lanes: 'n', tm: 4, tn: 8, wg: 8, splitK: 4 },
  { kind: 'reg', lanes: 'm', tm: 4, tn: 8, wg: 16, splitK: 3 },
  { kind: 'tiled', rm: 2, rn: 2, tk: 8, splitK: 5 },
  // the shared operand through subgroup broadcasts (adapters with subgroups of 8 lanes: lavapipe)
  { kind: 'reg', lanes: 'n', tm: 8, tn: 8, wg: 8, splitK: 1, sg: true },
  { kind: 'reg', lanes: 'm', tm: 5, tn: 8, wg: 8, splitK: 3, sg: true },
];

/** [aShape, bShape, transA, transB]: a is stored [.., K, M] when transA, b [.., N, K] when transB.
 *  Every shape compiles a kernel per variant (sizes are baked into the WGSL), so each one covers
 *  several paths at once. */
const MATMULS: [number[], number[], boolean, boolean][] = [
  [[1, 1], [1, 1], false, false],
  [[7, 33], [33, 1], false, false], // N = 1; K = 33 gives split-K variants two chunks
  [[2, 1, 7, 12], [3, 12, 20], false, false], // batch dims broadcast on both sides, vec4 along n, tile edges
  [[40, 12], [20, 40], true, true], // A^T (contiguous along m), B^T (contiguous along k, vec4 along k)
  [[9, 33], [257, 33], false, true], // B^T with K not a multiple of 4 (scalar loads); long N: several workgroups along n
];

function refMatmulT(a: NDArray, b: NDArray, transA: boolean, transB: boolean): NDArray {
  return refMatmul(transA ? refTranspose(a) : a, transB ? refTranspose(b) : b);
}

interface ConvCase {
  x: [number, number, number, number];
  w: [number, number, number, number];
  stride?: number;
  padding?: number;
  groups?: number;
  bias: boolean;
}

const CONVS: ConvCase[] = [
  { x: [2, 3, 9, 7], w: [5, 3, 3, 3], padding: 1, bias: true }, // implicit GEMM gathers, im2col, odd width
  { x: [1, 4, 8, 8], w: [6, 2, 3, 3], stride: 2, padding: 1, groups: 2, bias: false }, // stride, groups, aligned output
  { x: [3, 8, 4, 4], w: [12, 8, 1, 1], bias: true }, // pointwise: strided operands, vec4 paths
  { x: [2, 3, 5, 8], w: [5, 3, 3, 3], padding: 1, bias: true }, // direct 3x3 (width % 4 == 0), im2col aligned
  { x: [1, 4, 6, 12], w: [6, 2, 3, 3], padding: 1, groups: 2, bias: false }, // direct 3x3, groups
];

/** The cases that reach a variant's own kernels (the others fall back to the default variant, which
 *  compiles the same kernels for every variant): direct 3x3 needs stride 1 (the vec4-row kernel
 *  also width % 4 == 0), im2col groups of 1 and a real window; GEMM variants see every gather path
 *  in the first three. */
function convCasesFor(v: Variant): ConvCase[] {
  if (v.kind === 'direct3') return [CONVS[3], CONVS[4]];
  if (v.kind === 'block3') return [CONVS[0], CONVS[4]];
  if (v.kind === 'dw3') return [CONVS[0], CONVS[3]];
  if (v.kind === 'im2col') return [CONVS[0], CONVS[3]];
  return CONVS.slice(0, 3);
}

/** im2col + GEMM (conv2d with groups of 1 only). */
const IM2COL_VARIANTS: Variant[] = [
  { kind: 'im2col', gemm: { kind: 'reg', lanes: 'n', tm: 8, tn: 8, wg: 8, splitK: 1 } },
  { kind: 'im2col', gemm: { kind: 'reg', lanes: 'm', tm: 5, tn: 3, wg: 2, splitK: 3 } },
  { kind: 'im2col', gemm: { kind: 'reg', lanes: 'n', tm: 8, tn: 4, wg: 8, splitK: 1, sg: true } },
];

/** Direct 3x3 convolution variants (conv2d only; other problems ignore them). */
const CONV3_VARIANTS: Conv3Variant[] = [
  { kind: 'direct3', tm: 8, q: 1, wg: 8 },
  { kind: 'direct3', tm: 3, q: 2, wg: 2 },
  { kind: 'direct3', tm: 4, q: 1, wg: 64 },
  // weights through subgroup broadcasts: 27 weights per channel step over 8 lanes (the last round clamped)
  { kind: 'direct3', tm: 3, q: 2, wg: 8, sg: true },
];

/** Spatially blocked direct 3x3 convolution: a software candidate, and small blocks that leave
 *  partial channel blocks, partial rows and columns, and lanes spanning images and groups. */
const BLOCK3_VARIANTS: Conv3BlockVariant[] = [
  { kind: 'block3', tm: 4, rows: 4, cols: 7, wg: 8 },
  { kind: 'block3', tm: 3, rows: 2, cols: 5, wg: 4 },
];

/** Direct 3x3 weight gradients (conv2d's dw with groups of 1 only): the software default, and small
 *  blocks over 4-row chunks (partial channel blocks, a last chunk cut short). */
const DW3_VARIANTS: Conv3WeightGradVariant[] = [
  { kind: 'dw3', tm: 12, tc: 2, rows: 8, wg: 8 },
  { kind: 'dw3', tm: 2, tc: 2, rows: 4, wg: 4 },
];

/** float64 gradients of sum(y * seed) for y = conv2d(x, w) (no bias). */
function refConvGrads(x: NDArray, w: NDArray, seed: NDArray, c: ConvCase): { dx: NDArray; dw: NDArray } {
  const s = c.stride ?? 1;
  const p = c.padding ?? 0;
  const groups = c.groups ?? 1;
  const [N, Cin, H, W] = x.shape;
  const [Cout, CinG, kh, kw] = w.shape;
  const [, , Ho, Wo] = seed.shape;
  const CoutG = Cout / groups;
  const dx = new NDArray(x.shape);
  const dw = new NDArray(w.shape);
  for (let n = 0; n < N; n++)
    for (let co = 0; co < Cout; co++) {
      const g = Math.floor(co / CoutG);
      for (let oy = 0; oy < Ho; oy++)
        for (let ox = 0; ox < Wo; ox++) {
          const gv = seed.data[((n * Cout + co) * Ho + oy) * Wo + ox];
          for (let cg = 0; cg < CinG; cg++)
            for (let ky = 0; ky < kh; ky++)
              for (let kx = 0; kx < kw; kx++) {
                const iy = oy * s - p + ky;
                const ix = ox * s - p + kx;
                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                const xi = ((n * Cin + g * CinG + cg) * H + iy) * W + ix;
                const wi = ((co * CinG + cg) * kh + ky) * kw + kx;
                dx.data[xi] += gv * w.data[wi];
                dw.data[wi] += gv * x.data[xi];
              }
        }
    }
  return { dx, dw };
}

const CONV_VARIANTS = new Set(['reg.n.8x8.wg8.sk1', 'reg.n.8x8.wg8.sk1.sg', 'im2col+reg.n.8x4.wg8.sk1.sg', 'reg.m.5x3.wg2.sk1', 'tiled.2x1.tk4.sk1', 'reg.m.4x8.wg16.sk3', 'direct3.8x4.wg8', 'direct3.3x8.wg2', 'direct3.4x4.wg64', 'direct3.3x8.wg8.sg', 'im2col+reg.n.8x8.wg8.sk1', 'im2col+reg.m.5x3.wg2.sk3', 'dw3.12x2.r8.wg8', 'dw3.2x2.r4.wg4', 'block3.4x4x7.wg8', 'block3.3x2x5.wg4']);

const TOL = { rtol: 1e-4, atol: 1e-5, scaled: true };

// Large unrolled kernels compile slowly on the software GPUs, more so on a loaded machine.
vi.setConfig({ testTimeout: 600_000 });

/** The subgroup size a variant needs (null: none). */
const subgroupLanes = (v: Variant): number | null => {
  const g = v.kind === 'im2col' ? v.gemm : v;
  return (g.kind === 'reg' || g.kind === 'direct3') && g.sg ? g.wg : null;
};

forEachBackend('gemm variants', (getGpu) => {
  afterEach(() => forceGemmVariant(null));
  /** Skip variants whose subgroups this adapter does not have. */
  const skipUnsupported = (variant: Variant, skip: (note: string) => void) => {
    const lanes = subgroupLanes(variant);
    if (lanes !== null && getGpu().adapter.subgroupSize !== lanes) skip(`needs subgroups of ${lanes} lanes`);
  };

  const all: Variant[] = [...VARIANTS, ...CONV3_VARIANTS, ...BLOCK3_VARIANTS, ...DW3_VARIANTS, ...IM2COL_VARIANTS];
  for (const variant of all) {
    if (variant.kind === 'reg' || variant.kind === 'tiled') it(`matmul ${variantKey(variant)}`, async (ctx) => {
      skipUnsupported(variant, ctx.skip);
      forceGemmVariant(variant);
      const rng = makeRng(7);
      await scope(async () => {
        for (const [as, bs, ta, tb] of MATMULS) {
          const a = randF32(as, rng);
          const b = randF32(bs, rng);
          const y = matmulRaw(upload(a), upload(b), ta, tb);
          await expectTensorClose(y, refMatmulT(a, b, ta, tb), TOL, `${variantKey(variant)} [${as}]${ta ? 'T' : ''} x [${bs}]${tb ? 'T' : ''}`);
        }
      });
    });

    // conv2d reuses the same generators; check its gather paths on one variant of each kind
    if (!CONV_VARIANTS.has(anyVariantKey(variant))) continue;
    it(`conv2d forward and gradients ${anyVariantKey(variant)}`, async (ctx) => {
      skipUnsupported(variant, ctx.skip);
      forceGemmVariant(variant);
      const rng = makeRng(11);
      await scope(async () => {
        for (const c of convCasesFor(variant)) {
          const x = randF32(c.x, rng);
          const w = randF32(c.w, rng);
          const bias = c.bias ? randF32([c.w[0]], rng) : null;
          const opts = { stride: c.stride, padding: c.padding, groups: c.groups };
          const expected = refConv2d(x, w, bias, opts);
          const xt = upload(x, { requiresGrad: true });
          const wt = upload(w, { requiresGrad: true });
          const y = conv2d(xt, wt, bias ? upload(bias) : null, opts);
          const label = `${anyVariantKey(variant)} conv x[${c.x}] w[${c.w}]`;
          await expectTensorClose(y, expected, TOL, `${label} forward`);
          const seed = randF32(expected.shape, rng);
          y.backward(upload(seed));
          const { dx, dw } = refConvGrads(x, w, seed, c);
          await expectTensorClose(xt.grad!, dx, TOL, `${label} dx`);
          await expectTensorClose(wt.grad!, dw, TOL, `${label} dw`);
        }
      });
    });
  }

  // more than 65535 workgroups along one grid dimension: a batch of 70000 products (grid z), and
  // 600000 rows (grid y for lanes along n, 75000 workgroups of 8 rows)
  // (one variant of each kind: lanes along n and m, workgroup tiles, subgroups, direct 3x3)
  for (const variant of [VARIANTS[0], VARIANTS[3], VARIANTS[5], VARIANTS[9], CONV3_VARIANTS[0]] as Variant[]) {
    it(`launch grids beyond 65535 workgroups per dimension ${anyVariantKey(variant)}`, async (ctx) => {
      skipUnsupported(variant, ctx.skip);
      forceGemmVariant(variant);
      await scope(async () => {
        const B = 70_000;
        const a = Float32Array.from({ length: 2 * B }, (_, i) => (i % 5) - 2);
        const b = Float32Array.from({ length: 2 * B }, (_, i) => (i % 3) - 1);
        const y = await matmulRaw(tensor(a, [B, 1, 2]), tensor(b, [B, 2, 1])).toArray();
        const expected = Float32Array.from({ length: B }, (_, k) => a[2 * k] * b[2 * k] + a[2 * k + 1] * b[2 * k + 1]);
        expect(Array.from(y).findIndex((v, k) => v !== expected[k]), 'first wrong batch').toBe(-1);
        const M = 600_000;
        const col = Float32Array.from({ length: M }, (_, i) => (i % 7) - 3);
        const outer = await matmulRaw(tensor(col, [M, 1]), tensor([1, 2, 3], [1, 3])).toArray();
        expect(Array.from(outer).findIndex((v, i) => v !== col[Math.floor(i / 3)] * ((i % 3) + 1)), 'first wrong row').toBe(-1);
        // conv2d over 70000 images (implicit GEMM batch, or the direct 3x3 kernel's grid z)
        const x = tensor(Float32Array.from({ length: B * 16 }, (_, i) => (i % 4) + 1), [B, 1, 4, 4]);
        const c = await conv2d(x, tensor(new Float32Array(9).fill(1), [1, 1, 3, 3]), null, { padding: 1 }).toArray();
        // every row of each 4x4 image is 1 2 3 4: a 3x3 box sum with zero padding covers 2 or 3 rows
        // of the column sums 3 6 9 7
        const image = Array.from({ length: 16 }, (_, i) => (i < 4 || i >= 12 ? 2 : 3) * [3, 6, 9, 7][i % 4]);
        expect(Array.from(c).findIndex((v, i) => v !== image[i % 16]), 'first wrong conv output').toBe(-1);
      });
    });
  }

  it('profiling mode times each kernel by name (timestamp queries where available) without changing results', async () => {
    const gpu = getGpu();
    const rng = makeRng(5);
    await scope(async () => {
      const a = randF32([24, 20], rng);
      const b = randF32([20, 16], rng);
      gpu.startProfiling();
      const y = matmulRaw(upload(a), upload(b));
      await expectTensorClose(y, refMatmul(a, b), TOL, 'matmul while profiling');
      const prof = await gpu.readProfile();
      gpu.stopProfiling();
      const mm = prof.find((p) => p.name.startsWith('matmul'));
      expect(mm?.dispatches).toBe(1);
      if (gpu.canTimeKernels) expect(mm!.ms).toBeGreaterThan(0);
      else expect(mm!.ms).toBeNull();
      expect(gpu.profiling).toBe(false);
      // the normal path is back: still correct
      await expectTensorClose(matmulRaw(upload(a), upload(b)), refMatmul(a, b), TOL, 'matmul after profiling');
    });
  });

  it('split-K plans add a reduction launch and a scratch buffer', () => {
    const spec = {
      name: 't',
      batch: 2,
      M: 5,
      N: 6,
      K: 300,
      a: { kind: 'strided' as const, buffer: 'A', offset: '0u', aligned4: true, rowStride: 300, colStride: 1 },
      b: { kind: 'strided' as const, buffer: 'B', offset: '0u', aligned4: true, rowStride: 6, colStride: 1 },
      out: { buffer: 'C', offset: 'b * 30u', aligned4: false, rowStride: 6 },
    };
    const plan = gemmPlan(spec, { kind: 'reg', lanes: 'n', tm: 4, tn: 4, wg: 8, splitK: 4 });
    expect(plan.launches.length).toBe(2);
    expect(plan.scratch?.[0].bytes).toBe(4 * 2 * 5 * 6 * 4);
    expect(gemmPlan(spec, { kind: 'reg', lanes: 'n', tm: 4, tn: 4, wg: 8, splitK: 1 }).launches.length).toBe(1);
  });

  it('the autotuner times candidates for pending shape classes and caches the choice', async () => {
    clearGemmChoices();
    const rng = makeRng(3);
    await scope(async () => {
      const a = randF32([16, 12], rng);
      const b = randF32([12, 8], rng);
      const at = upload(a);
      const bt = upload(b);
      matmulRaw(at, bt);
      expect(pendingGemmClasses(at.gpu).length).toBeGreaterThan(0);
      // three candidates: each one compiles a kernel, and the choice among them is what is checked
      const results = await tuneGemms(at.gpu, { minMs: 0, maxCandidates: 3 });
      expect(results.length).toBeGreaterThan(0);
      expect(results[0].timings.length).toBe(3);
      expect(pendingGemmClasses(at.gpu)).toEqual([]);
      // the tuned choice is used and still correct
      await expectTensorClose(matmulRaw(at, bt), refMatmul(a, b), TOL, 'tuned matmul');
      expect(pendingGemmClasses(at.gpu)).toEqual([]);
      const json = exportGemmChoices();
      clearGemmChoices();
      expect(importGemmChoices(json)).toBeGreaterThan(0);
      matmulRaw(at, bt);
      expect(pendingGemmClasses(at.gpu)).toEqual([]);
      expect(importGemmChoices('not json')).toBe(0);
    });
  });
});
