// GPU random tensors against the CPU Philox reference: uniform bits identical on every adapter,
// normals with the right moments, streams independent and reproducible from the global seed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { availableBackends, dawnGpu } from '../src/engine/runtime/dawn';
import { type Gpu, getRandomState, manualSeed, rand, randn, setDefaultGpu, setRandomState } from '../src/engine/index';
import { philoxKey, philoxUniformF32 } from '../src/engine/philox';

const backends = await availableBackends();

describe.each(backends)('random tensors on %s', (backend) => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await dawnGpu({ backend });
    setDefaultGpu(gpu);
  });
  afterAll(() => gpu.destroy());

  it('rand with a seed equals the CPU Philox mapping bit for bit', async () => {
    const seed = 2 ** 40 + 12345;
    const [lo, hi] = philoxKey(seed);
    const got = await rand([1000], { seed }).toArray();
    const want = Float32Array.from({ length: 1000 }, (_, i) => philoxUniformF32(lo, hi, i));
    expect(Array.from(got)).toEqual(Array.from(want));
    const scaled = await rand([1000], { seed, lo: -2, hi: 6 }).toArray();
    scaled.forEach((v, i) => expect(v).toBeCloseTo(-2 + 8 * want[i], 5));
  });

  it('randn has mean 0 and variance 1, and mean/std options apply', async () => {
    const v = Array.from(await randn([200_000], { seed: 7 }).toArray());
    const m = v.reduce((a, b) => a + b, 0) / v.length;
    const s2 = v.reduce((a, b) => a + (b - m) ** 2, 0) / v.length;
    expect(Math.abs(m)).toBeLessThan(0.01);
    expect(Math.abs(s2 - 1)).toBeLessThan(0.015);
    const w = Array.from(await randn([50_000], { seed: 7, mean: 3, std: 0.5 }).toArray());
    expect(w.reduce((a, b) => a + b, 0) / w.length).toBeCloseTo(3, 1);
  });

  it('the global generator gives new streams per call and replays from a saved state', async () => {
    manualSeed(99);
    const a = await rand([64]).toArray();
    const state = getRandomState();
    const b = await rand([64]).toArray();
    expect(Array.from(a)).not.toEqual(Array.from(b));
    setRandomState(state);
    expect(Array.from(await rand([64]).toArray())).toEqual(Array.from(b));
  });
});
