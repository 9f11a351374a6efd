// The benchmark cases: every engine computes the same thing (small instances of each case run on
// ours, TensorFlow.js and jax-js on one adapter read back the same scalar), the FLOP and byte counts
// behind GFLOP/s and GB/s, and the UNet shapes following the model's presets.
import { beforeAll, describe, expect, it } from 'vitest';
import { type BenchCase, benchCases, convBackwardCase, convForwardCase, elementwiseCase, matmulCase, reductionCase, unetBenchShapes } from '../bench/cases';
import { ENGINES, type Env, openEnv } from '../bench/engines';
import { plan, unetPresets } from '../src/models/unet';
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
});
