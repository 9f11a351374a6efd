// The benchmark cases: every engine computes the same thing (small instances of each case run on
// ours, TensorFlow.js and jax-js on one adapter read back the same scalar), the FLOP and byte counts
// behind GFLOP/s and GB/s, and the UNet shapes following the model's presets.
import { beforeAll, describe, expect, it } from 'vitest';
import { type BenchCase, benchCases, checkAgrees, convBackwardCase, convForwardCase, elementwiseCase, matmulCase, reductionCase, unetBenchShapes } from '../bench/cases';
import { ENGINES, type Env, openEnv } from '../bench/engines';
import { type AdapterReport, markdownReport } from '../bench/run';
import { unetStepCase } from '../bench/unet-step';
import { type UNetConfig, plan, unetPresets } from '../src/models/unet';
import { BACKENDS } from './helpers/gpu';

const prod = (s: number[]) => s.reduce((a, b) => a * b, 1);
const dims = (s: string) => s.split('x').map(Number);

describe('bench cases: counts and shapes', () => {
  const all = [...benchCases(false), ...benchCases(false, true)];

  it('matmul: 2*M*N*K per product (times the batch)', () => {
    for (const c of all.filter((x) => x.case.startsWith('matmul'))) {
      const [a, b] = c.shape.split(' @ ').map(dims);
      const [m, k] = a.slice(-2);
      const n = b[b.length - 1];
      expect(b[b.length - 2]).toBe(k);
      expect(c.flops, c.shape).toBe(2 * prod(a.slice(0, -2)) * m * n * k);
    }
  });

  it('conv2d: 2*N*Cout*H*W*Cin*9 forward, three convolutions forward+backward', () => {
    for (const c of all.filter((x) => x.case.startsWith('conv2d'))) {
      const [n, ch, h, w] = dims(c.shape.split(' ')[0]);
      const fwd = 2 * n * ch * h * w * ch * 9;
      expect(c.flops, c.shape).toBe(c.case === 'conv2d fwd+bwd' ? 3 * fwd : fwd);
    }
  });

  it('elementwise chain: one read and one write per element and step, plus the final sum; reduction: one read', () => {
    for (const c of all.filter((x) => x.case.startsWith('elementwise'))) expect(c.bytes! * c.chain).toBe(8 * Number(c.shape) * c.chain + 4 * Number(c.shape));
    for (const c of all.filter((x) => x.case.startsWith('reduction'))) expect(c.bytes).toBe(4 * Number(c.shape));
  });

  it('the UNet shapes are those of the presets (small: convs and embedding; base: attention)', () => {
    const small = plan(unetPresets.small);
    const u = unetBenchShapes();
    expect(u.embDim).toBe(small.embDim);
    for (const { c, h } of u.convs) expect(small.down.some((s) => s.kind === 'res' && s.cout === c && s.size === h)).toBe(true);
    const convs = all.filter((x) => x.case.startsWith('conv2d')).map((x) => x.shape.split(' ')[0]);
    for (const s of convs) expect(u.convs.map(({ c, h }) => `64x${c}x${h}x${h}`)).toContain(s);
    expect(all.find((x) => x.case === 'matmul unet emb')!.shape).toBe(`64x${small.embDim} @ ${small.embDim}x${small.embDim}`);
    const attn = plan(unetPresets.base).down.find((s) => s.kind === 'res' && s.attn)!;
    const n = attn.size * attn.size;
    expect(all.find((x) => x.case === 'matmul unet attn')!.shape).toBe(`64x${attn.kind === 'res' ? attn.cout : 0}x${n} @ 64x${n}x${n}`);
  });
});

describe('bench: training-step reporting and the loss check', () => {
  it('the step case is the small UNet at batch 64 (quick: 8), checked by its loss', () => {
    const full = benchCases(false).find((c) => c.case.startsWith('train step'))!;
    const quick = benchCases(true).find((c) => c.case.startsWith('train step'))!;
    expect([full.shape, full.images, quick.shape, quick.images]).toEqual(['unet small batch 64', 64, 'unet small batch 8', 8]);
    expect(Object.keys(full.impl).sort()).toEqual([...ENGINES].sort());
    expect(full.check?.what).toBe('loss');
  });

  it('checkAgrees: relative to ours (absolute below 1), every value, same count', () => {
    expect(checkAgrees([0.5, 2000], [0.50005, 2000.1], 1e-4)).toBe(true);
    expect(checkAgrees([0.5, 2000], [0.5002, 2000], 1e-4)).toBe(false);
    expect(checkAgrees([0.5, 2000], [0.5, 2000.3], 1e-4)).toBe(false);
    expect(checkAgrees([0.5, 2000], [0.5], 1e-4)).toBe(false);
  });

  it('markdown: images/s of every engine, ours / peer, dispatches per step, spread and losses', () => {
    const base = { case: 'train step', shape: 'unet small batch 8', images: 8 };
    const report = {
      adapter: { backend: 'opengl', description: 'llvmpipe', vendor: 'mesa', architecture: '', featureLevel: 'compatibility' },
      peak: { fmaGflops: 100, copyGBps: 10 },
      results: [
        { ...base, engine: 'ours', ms: 100, samples: 5, msMin: 100, msMedian: 120, msMax: 150, imagesPerSec: 80, dispatches: 1002, checkValues: [0.9, 0.8], kernels: [{ name: 'conv2d', dispatches: 1002, ms: null }] },
        { ...base, engine: 'tfjs', ms: 400, samples: 5, imagesPerSec: 20, checkValues: [0.9, 0.8] },
        { ...base, engine: 'jax-js', ms: NaN, error: 'loss disagrees' },
      ],
      peakDetails: [], unavailable: {}, gemmChoices: '', date: 'd', quick: true, cpus: 2, loadavg: [1, 1],
    } as unknown as AdapterReport;
    const md = markdownReport([report], 'cmd');
    expect(md).toContain('| 100.00 [5] | 400.00 [5] | - | 80.0 img/s | 20.0 img/s | failed |');
    expect(md).toContain('| 120.00, 150.00 |');
    expect(md).toContain('80.0 images/s** (100.0 ms per step, 1002 dispatches per step); tfjs 20.0 images/s (ours 4.00x); jax-js failed: loss disagrees.');
    expect(md).toContain('Loss of steps 1 and 2: ours 0.9000000, 0.8000000; tfjs 0.9000000, 0.8000000.');
  });
});

describe.skipIf(BACKENDS.length === 0)(`bench cases: every engine computes the same thing [${BACKENDS[0]}]`, () => {
  let env: Env;
  beforeAll(async () => {
    env = await openEnv(BACKENDS[0], ENGINES);
    expect(env.unavailable).toEqual({});
  });

  const small: BenchCase[] = [
    matmulCase('matmul', [16, 16], [16, 16], 3),
    matmulCase('matmul batched', [3, 8, 5], [3, 5, 5], 2),
    convForwardCase(2, 4, 6, 2),
    // a large step, so that dw (not only y and dx) shows in the sum
    convBackwardCase(2, 4, 6, 2, 0.05),
    elementwiseCase(1000, 2),
    reductionCase(1000, 2),
  ];
  it.each(small.map((c) => [`${c.case} ${c.shape}`, c] as const))('%s', async (_, c) => {
    const got: Record<string, number> = {};
    for (const engine of ENGINES) {
      const run = await c.impl[engine]!(env);
      got[engine] = await run.iter();
      // a second iteration starts from the same inputs
      expect(await run.iter()).toBe(got[engine]);
      run.dispose();
    }
    const scale = Math.max(1, Math.abs(got.ours));
    expect(Math.abs(got.tfjs - got.ours), JSON.stringify(got)).toBeLessThan(1e-3 * scale);
    expect(Math.abs(got['jax-js'] - got.ours), JSON.stringify(got)).toBeLessThan(1e-3 * scale);
  });

  // every layer kind of the UNet (1x1 skip, stride-2 conv, upsampling, skip concatenation), small
  const tinyUnet: UNetConfig = { inChannels: 1, imageSize: 8, numClasses: 3, baseChannels: 4, channelMults: [1, 2], numResBlocks: 1, attentionAtLowest: false, groups: 2 };
  it('train step: the three engines compute the same losses over two steps (same weights, same batch)', async () => {
    const c = unetStepCase('train step', tinyUnet, 2, 'test');
    const got: Record<string, number[]> = {};
    for (const engine of ENGINES) {
      const run = await c.impl[engine]!(env);
      got[engine] = [await run.iter(), await run.iter()];
      run.dispose();
    }
    const [l1, l2] = got.ours;
    // the update moves the loss far beyond the tolerance, so step 2 checks gradients and AdamW too
    expect(Math.abs(l2 - l1), JSON.stringify(got)).toBeGreaterThan(100 * c.check!.rtol * Math.max(1, l1));
    expect(checkAgrees(got.ours, got.tfjs, c.check!.rtol), JSON.stringify(got)).toBe(true);
    expect(checkAgrees(got.ours, got['jax-js'], c.check!.rtol), JSON.stringify(got)).toBe(true);
    // a minute on an idle machine, mostly compiling pipelines (jax-js compiles its jitted step);
    // several on a loaded one
  }, 600_000);
});
