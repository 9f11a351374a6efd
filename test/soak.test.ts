// The soak of bench/soak.ts, 500 steps (issue 7: "CI runs a 500-step version as a test"): the same
// function (src/train/soak.ts) trains the tiny teacher through the real training loop at batch 4 (one
// shape throughout, so kernels compile once) and samples memory every 10 steps. After 100 warm-up
// steps the GPU pool must be exactly flat: the same live bytes at every sample, pooled bytes never
// above the first steady sample, no new buffers.
//
// RSS is sampled after a full garbage collection (without it, RSS followed the V8 heap's sawtooth
// between 792 and 844 MiB over 1,000 steps with no trend). Even then native memory sits on two levels
// ~15 MiB apart from sample to sample, so growth is the floor (minimum) of the second half of the 40
// steady samples minus the floor of the first half; measured here: 0 to +0.3 MiB. The bound, 24 MiB, is above
// that two-level jump even if one half never visits the lower level, and catches a leak of ~120 KiB
// per step (one batch-16 host batch is 150 KiB); the V8 heap in use after collection (13 MiB, flat to
// within 1 MiB) must grow by less than 4 MiB, which catches JS-side leaks of ~20 KiB per step.
//
// Runs on the OpenGL adapter where present (llvmpipe's GL path computes 1.6-3x faster than lavapipe
// here, docs/platform.md): 0.23-0.35 s/step at batch 4 on a loaded 2-core machine, 500 steps in
// 2.5-3 minutes with Mesa's shader disk cache warm. A cold cache (a fresh machine) adds the UNet's
// shader compilation: 8.5 minutes under a load average of 8 here, hence the long timeout.
import { describe, expect, it } from 'vitest';
import { dawnGpu } from '../src/engine/runtime/dawn';
import { setDefaultGpu } from '../src/engine/index';
import { type SoakSample, judgeSoak, soak } from '../src/train/soak';
import { CLI_BACKEND } from './helpers/gpu';

const MiB = 2 ** 20;
const backend = CLI_BACKEND;

describe('soak verdict', () => {
  const series = (f: (k: number) => Partial<SoakSample>): SoakSample[] =>
    Array.from({ length: 20 }, (_, k) => ({
      step: k * 10, liveBytes: 1000, pooledBytes: 5000, buffersCreated: 7, rssBytes: 500 * MiB, heapUsedBytes: 0, heapTotalBytes: 0, elapsedSec: k, ...f(k),
    }));
  it('is FLAT for a flat series and names what grew otherwise', () => {
    expect(judgeSoak(series(() => ({})), 50, 16 * MiB).verdict).toMatch(/^FLAT: GPU pool flat over steps 50-190 .* RSS flat/);
    const leak = judgeSoak(series((k) => ({ liveBytes: 1000 + (k > 10 ? 256 : 0) })), 50, 16 * MiB);
    expect([leak.poolFlat, leak.liveDriftBytes]).toEqual([false, 256]);
    expect(leak.verdict).toMatch(/^GROWING: GPU pool NOT flat .* drift 256 B/);
    expect(judgeSoak(series((k) => ({ buffersCreated: 7 + k })), 50, 16 * MiB).poolFlat).toBe(false);
    const rss = judgeSoak(series((k) => ({ rssBytes: (500 + 2 * k) * MiB })), 50, 16 * MiB);
    expect([rss.poolFlat, rss.rssFlat, rss.rssGrowthBytes]).toEqual([true, false, 16 * MiB]);
    expect(rss.verdict).toMatch(/RSS GROWING: floor of the second half minus the first \+16\.00 MiB/);
  });
});

describe.skipIf(!backend)(`soak, 500 steps [${backend}]`, () => {
  it('the tiny teacher trains 500 steps with an exactly flat GPU pool, RSS growth below 24 MiB and V8 heap growth below 4 MiB', async () => {
    const gpu = await dawnGpu({ backend });
    setDefaultGpu(gpu);
    try {
      const r = await soak({ gpu, steps: 500, every: 10, batch: 4, warmupSteps: 100, rssBoundBytes: 24 * MiB });
      console.log(`soak [${backend}]: ${r.secPerStep.toFixed(3)} s/step; ${r.verdict}`);
      expect(r.steady.length).toBe(40);
      const [first] = r.steady;
      for (const s of r.steady) {
        expect(s.liveBytes, `live bytes at step ${s.step}`).toBe(first.liveBytes);
        expect(s.pooledBytes, `pooled bytes at step ${s.step}`).toBeLessThanOrEqual(first.pooledBytes);
        expect(s.buffersCreated, `buffers created by step ${s.step}`).toBe(first.buffersCreated);
      }
      expect(r.poolFlat).toBe(true);
      expect(r.rssGrowthBytes).toBeLessThan(24 * MiB);
      expect(r.heapGrowthBytes).toBeLessThan(4 * MiB);
      expect(r.verdict).toMatch(/^FLAT: /);
    } finally {
      setDefaultGpu(null);
      gpu.destroy();
    }
  }, 20 * 60_000);
});
