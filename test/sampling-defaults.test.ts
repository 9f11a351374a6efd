// A student is sampled on the grid it was distilled on: the same steps and the same end time t_min
// (the distillation grid t_n = T - n (T - t_min) / M_S of models/distill.ts), unguided (its guidance
// is baked in). A teacher gets 100 AB-2 steps to t_min = 1e-5 with the default guidance.
import { describe, expect, it } from 'vitest';
import { defaultKacConfig } from '../src/models/kac';
import { intervalLength, intervalStart } from '../src/models/distillation-loss';
import { batchSeed, checkSeed, generateSamples, maxSeed } from '../src/models/generate';
import { DEFAULT_GUIDANCE } from '../src/models/sampling';
import { type LoadedWeights, samplingDefaults } from '../src/models/weights';

const weights = (extra: Record<string, unknown>): LoadedWeights =>
  ({ path: 'fake', ckpt: {} as LoadedWeights['ckpt'], weights: {}, run: { model: {} as never, kac: defaultKacConfig, data: { kind: 'mnist' }, ...extra } }) as LoadedWeights;

describe('samplingDefaults', () => {
  it("samples a student on its own distillation grid, including a non-default t_min", () => {
    for (const tMin of [1e-5, 1e-3, 0.05]) {
      const student = weights({ schedule: [100, 20, 4], stage: 2, tMin, guidance: 1.5 });
      const d = samplingDefaults(student);
      expect(d.steps).toBe(4);
      expect(d.solver).toBe('euler');
      expect(d.guidance).toBe(1);
      const grid = { T: defaultKacConfig.T, tMin, steps: 4 };
      // the sampler's uniform grid from T to d.tMin: t_k = T - k (T - d.tMin) / steps
      for (let n = 0; n <= 4; n++) {
        expect(defaultKacConfig.T - (n * (defaultKacConfig.T - d.tMin)) / d.steps).toBeCloseTo(n < 4 ? intervalStart(grid, n) : tMin, 14);
      }
      expect((defaultKacConfig.T - d.tMin) / d.steps).toBeCloseTo(intervalLength(grid), 14);
    }
  });

  it('explicit arguments win; a teacher gets 100 AB-2 steps to 1e-5 with the default guidance', () => {
    expect(samplingDefaults(weights({ schedule: [8, 2], stage: 1, tMin: 0.01 }), 3, 'heun', 1.2, 1e-4)).toEqual({ steps: 3, solver: 'heun', guidance: 1.2, tMin: 1e-4 });
    expect(samplingDefaults(weights({}))).toEqual({ steps: 100, solver: 'ab2', guidance: DEFAULT_GUIDANCE, tMin: 1e-5 });
    // a teacher's config may hold other fields, never a distillation t_min
    expect(samplingDefaults(weights({ tMin: 0.3 })).tMin).toBe(1e-5);
  });
});

describe('sample seeds', () => {
  it('accepts exactly the seeds whose batch seeds stay safe integers, and refuses others before any GPU work', async () => {
    for (const count of [1, 20, 400, 100_000]) {
      const max = maxSeed(count);
      expect(Number.isSafeInteger(batchSeed(max, count - 1))).toBe(true);
      expect(Number.isSafeInteger(batchSeed(max + 1, count - 1))).toBe(false);
      expect(() => checkSeed(max, count)).not.toThrow();
      expect(() => checkSeed(max + 1, count)).toThrow(`seed must be an integer in 0..${max}, got ${max + 1}`);
    }
    for (const bad of [-1, 1.5, NaN, Infinity]) expect(() => checkSeed(bad, 1)).toThrow(/^seed must be an integer in 0\.\.\d+, got /);
    // the model is never touched: no device is needed to get the error
    const opts = { model: null as never, labels: new Int32Array(2), sampleShape: [1, 2, 2], steps: 1, solver: 'euler' as const, kac: defaultKacConfig, seed: 2 ** 53 };
    await expect(generateSamples(opts)).rejects.toThrow(/^seed must be an integer in 0\.\.\d+, got 9007199254740992$/);
  });
});
