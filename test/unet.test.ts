// The velocity networks: the UNet (shapes per preset, zero initial output, gradients reaching every
// parameter, the null class, attention against a float64 reference, overfitting one batch, stable
// parameter names), the sinusoidal time embedding against its float64 formula, and the 2-D MLP.
// The numerical checks (embedding, attention, MLP against float64) run once per available backend;
// the wiring checks (shapes, zero output, gradients reaching every parameter, the null class,
// overfitting) on one (the CLI's, whose kernels the CLI tests then find compiled), since every op they use is checked on every backend in ops.test.ts
// and autodiff.test.ts, and a whole UNet on the OpenGL backend trains in soak.test.ts. Pipeline
// compilation dominates the cost on the software GPUs (a cold cache compiles a few hundred pipelines),
// so the wiring tests share one model shape and batch, and wide presets are built at a narrower width.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dawnGpu } from '../src/engine/runtime/dawn';
import { AdamW, type Gpu, Tensor, manualSeed, noGrad, randn, scope, setDefaultGpu, tensor } from '../src/engine/index';
import { timestepEmbedding, timestepEmbeddingReference } from '../src/models/embeddings';
import { VelocityMlp } from '../src/models/mlp2d';
import { AttentionBlock, UNet, type UNetConfig, unetFlops, unetPresets } from '../src/models/unet';
import * as R from './reference';
import { BACKENDS, CLI_BACKEND } from './helpers/gpu';

/** The test model: the tiny preset at batch 4, the shapes of the CLI, soak and PyTorch-twin tests, so
 *  that their processes find its kernels in Mesa's shader cache instead of compiling them again. */
const SMALL_TEST: UNetConfig = unetPresets.tiny;
const B = 4;
const S = SMALL_TEST.imageSize;
/** timeout of tests whose first run compiles many pipelines */
const COLD_COMPILE_MS = 600_000;

async function host(t: Tensor): Promise<Float64Array> {
  return Float64Array.from(await t.toArray());
}

function setParam(p: Tensor, values: ArrayLike<number>): void {
  p.gpu.upload(p.buffer, Float32Array.from(values));
}

describe('UNet structure (no GPU work beyond initialisation)', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await dawnGpu({ backend: BACKENDS[0] });
    setDefaultGpu(gpu);
  });
  afterAll(() => {
    setDefaultGpu(null);
    gpu.destroy();
  });

  it('has stable dotted parameter names, identical across constructions', () => {
    const a = new UNet(unetPresets.tiny);
    const b = new UNet(unetPresets.tiny);
    const names = a.namedParameters().map(([n, p]) => `${n}:${p.shape.join('x')}`);
    expect(b.namedParameters().map(([n, p]) => `${n}:${p.shape.join('x')}`)).toEqual(names);
    const plain = a.namedParameters().map(([n]) => n);
    expect(new Set(plain).size).toBe(plain.length);
    for (const n of plain) expect(n).toMatch(/^[A-Za-z][A-Za-z0-9]*(\.[0-9]+|\.[A-Za-z][A-Za-z0-9]*)*$/);
    // the layout promised to checkpoints (tiny: levels 28, 14 and 7, one res block each)
    expect(plain.slice(0, 7)).toEqual(['timeMlp1.weight', 'timeMlp1.bias', 'timeMlp2.weight', 'timeMlp2.bias', 'classEmb.weight', 'inConv.weight', 'inConv.bias']);
    for (const n of ['down.0.norm1.weight', 'down.0.conv1.weight', 'down.0.emb.weight', 'down.0.conv2.bias', 'down.1.conv.weight', 'down.2.skip.weight',
      'mid1.conv1.weight', 'mid2.norm2.bias', 'up.0.skip.weight', 'up.2.conv.weight', 'up.5.conv.weight', 'up.7.conv2.weight', 'outNorm.weight', 'outConv.weight', 'outConv.bias']) {
      expect(plain).toContain(n);
    }
    expect(plain[plain.length - 1]).toBe('outConv.bias');
    expect(a.namedParameters().find(([n]) => n === 'classEmb.weight')![1].shape).toEqual([11, 32]);
    const base = new UNet(unetPresets.base).namedParameters().map(([n]) => n);
    for (const n of ['downAttn.6.qkv.weight', 'midAttn.proj.bias', 'upAttn.0.norm.weight']) expect(base).toContain(n);
    expect(base.some((n) => n.startsWith('downAttn.0'))).toBe(false);
  });

  it('counts parameters and FLOPs consistently', () => {
    const counts = Object.fromEntries(Object.entries(unetPresets).map(([k, c]) => [k, new UNet(c).numParameters()]));
    expect(counts.tiny).toBeLessThan(counts.small);
    expect(counts.small).toBeLessThan(counts.base);
    expect(unetFlops(unetPresets.tiny, 4)).toBeCloseTo(4 * unetFlops(unetPresets.tiny, 1), 0);
    // with one level every conv runs at full resolution, so convs cost 2 * H * W * (their weights);
    // norms, activations and the embedding MLP add a few percent
    const one: UNetConfig = { ...unetPresets.tiny, channelMults: [1], baseChannels: 32 };
    const convWeights = new UNet(one).namedParameters().filter(([n, p]) => n.endsWith('.weight') && p.ndim === 4).reduce((a, [, p]) => a + p.size, 0);
    const convFlops = 2 * 28 * 28 * convWeights;
    expect(unetFlops(one, 1) / convFlops).toBeGreaterThan(1);
    expect(unetFlops(one, 1) / convFlops).toBeLessThan(1.1);
  });

  it('rejects sizes the down/up path cannot invert and groups that do not divide', () => {
    expect(() => new UNet({ ...unetPresets.tiny, channelMults: [1, 2, 2, 2] })).toThrow(/even/);
    expect(() => new UNet({ ...unetPresets.tiny, groups: 5 })).toThrow(/groups/);
    expect(() => new UNet({ ...unetPresets.tiny, channelMults: [1, 2, 2] })).not.toThrow();
  });
});

describe.each(BACKENDS)('velocity networks on %s', (backend) => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await dawnGpu({ backend });
    setDefaultGpu(gpu);
    manualSeed(2024);
  });
  afterAll(() => {
    setDefaultGpu(null);
    gpu.destroy();
  });

  it('time embedding matches the float64 formula', async () => {
    const ts = [0, 1e-5, 1e-3, 0.0371, 0.25, 0.5, 0.7777, 0.999, 1];
    const t32 = Float32Array.from(ts);
    for (const dim of [16, 64]) {
      for (const scale of [1000, 1]) {
        const got = await host(scope(() => timestepEmbedding(tensor(t32), dim, { scale })));
        const want = timestepEmbeddingReference(Float64Array.from(t32), dim, { scale });
        // the argument s t w reaches 1000, where one float32 ulp is 6e-5
        R.assertClose(got, want, { rtol: 0, atol: scale === 1000 ? 5e-4 : 2e-6 }, `time embedding dim ${dim} scale ${scale}`);
      }
    }
    const e = await host(timestepEmbedding(tensor([0]), 8));
    expect([...e]).toEqual([0, 0, 0, 0, 1, 1, 1, 1]);
  });

  it('computes single-head attention like a float64 reference', async () => {
    const [b, c, h, w] = [2, 8, 3, 3];
    const block = new AttentionBlock(c, 4);
    const rng = R.makeRng(11);
    const params = [block.norm.weight, block.norm.bias, block.qkv.weight, block.qkv.bias!, block.proj.weight, block.proj.bias!];
    const values = params.map((p) => Float32Array.from({ length: p.size }, () => (rng() - 0.5) * 1.5));
    params.forEach((p, k) => setParam(p, values[k]));
    const xs = Float32Array.from({ length: b * c * h * w }, () => rng() * 2 - 1);
    const got = await host(noGrad(() => scope(() => block.forward(tensor(xs, [b, c, h, w])))));

    const nd = (shape: number[], v: Float32Array) => new R.NDArray(shape, Float64Array.from(v));
    const X = nd([b, c, h, w], xs);
    const [gw, gb, qw, qb, pw, pb] = params.map((p, k) => nd([...p.shape], values[k]));
    const n = h * w;
    const hN = R.groupNorm(X, 4, gw, gb, 1e-5);
    const qkv = R.reshape(R.conv2d(hN, qw, qb), [b, 3 * c, n]);
    const q = R.slice(qkv, [0, 0, 0], [b, c, n]);
    const k = R.slice(qkv, [0, c, 0], [b, 2 * c, n]);
    const v = R.slice(qkv, [0, 2 * c, 0], [b, 3 * c, n]);
    const scores = R.mul(R.matmul(R.permute(q, [0, 2, 1]), k), R.NDArray.scalar(1 / Math.sqrt(c)));
    const attn = R.softmax(scores, 2); // [b, query, key]
    const out = R.reshape(R.matmul(v, R.permute(attn, [0, 2, 1])), [b, c, h, w]);
    const want = R.add(X, R.conv2d(out, pw, pb));
    R.assertClose(got, want.data, { rtol: 1e-4, atol: 1e-4 }, 'attention block');
  });

  it('2-D velocity MLP: [x, t] -> 3 x 256 ReLU -> 2, like a float64 reference', async () => {
    const mlp = new VelocityMlp();
    expect(mlp.namedParameters().map(([n, p]) => `${n}:${p.shape.join('x')}`)).toEqual([
      'layers.0.weight:256x3', 'layers.0.bias:256', 'layers.1.weight:256x256', 'layers.1.bias:256',
      'layers.2.weight:256x256', 'layers.2.bias:256', 'layers.3.weight:2x256', 'layers.3.bias:2',
    ]);
    const rng = R.makeRng(5);
    const n = 5;
    const xs = Float32Array.from({ length: 2 * n }, () => rng() * 4 - 2);
    const ts = Float32Array.from({ length: n }, () => rng());
    const got = await host(noGrad(() => scope(() => mlp.forward(tensor(xs, [n, 2]), tensor(ts)))));
    let hcur = new R.NDArray([n, 3], Array.from({ length: 3 * n }, (_, i) => (i % 3 < 2 ? xs[Math.floor(i / 3) * 2 + (i % 3)] : ts[Math.floor(i / 3)])));
    const layers = mlp.layers;
    for (let l = 0; l < layers.length; l++) {
      const W = new R.NDArray([...layers[l].weight.shape], await host(layers[l].weight));
      const bias = new R.NDArray([...layers[l].bias!.shape], await host(layers[l].bias!));
      hcur = R.add(R.matmul(hcur, R.transpose(W)), bias);
      if (l < layers.length - 1) hcur = R.relu(hcur);
    }
    R.assertClose(got, hcur.data, { rtol: 1e-4, atol: 1e-5 }, 'VelocityMlp');
    // gradients reach every layer
    scope(() => mlp.forward(tensor(xs, [n, 2]), tensor(ts)).square().mean().backward());
    for (const [name, p] of mlp.namedParameters()) expect(p.grad, name).not.toBeNull();
  });
});

describe(`UNet wiring [${CLI_BACKEND}]`, () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await dawnGpu({ backend: CLI_BACKEND });
    setDefaultGpu(gpu);
    manualSeed(2024);
  });
  afterAll(() => {
    setDefaultGpu(null);
    gpu.destroy();
  });

  it('gives [B, C, H, W] for every preset, exactly 0 at initialisation', async () => {
    for (const [name, preset] of Object.entries(unetPresets)) {
      // the preset's structure (levels, res blocks, attention) at most the small preset's width: a
      // narrower layer compiles the same kernels as the small preset's instead of hundreds of new ones
      const narrow = preset.baseChannels > unetPresets.small.baseChannels;
      const cfg = narrow ? { ...preset, baseChannels: unetPresets.small.baseChannels, groups: unetPresets.small.groups } : preset;
      const model = new UNet(cfg);
      const shape = [B, cfg.inChannels, cfg.imageSize, cfg.imageSize];
      const out = noGrad(() =>
        scope(() => model.forward(randn(shape), tensor([0.3, 0.9, 0.05, 0.5]), tensor(new Int32Array([3, cfg.numClasses, 0, 9])))),
      );
      expect(out.shape, name).toEqual(shape);
      const v = await out.toArray();
      expect(v.every((x) => x === 0), `${name}: initial velocity is exactly 0`).toBe(true);
      out.dispose();
      for (const p of model.parameters()) p.dispose();
    }
  }, COLD_COMPILE_MS);

  describe('one small UNet', () => {
    let model: UNet;
    let x: Tensor;
    let t: Tensor;
    let y: Tensor;
    let target: Tensor;
    beforeAll(() => {
      manualSeed(7);
      model = new UNet(SMALL_TEST);
      // perturb the zero-initialised final conv so gradients flow into the body
      const w = model.outConv.weight;
      const rng = R.makeRng(3);
      setParam(w, Array.from({ length: w.size }, () => (rng() - 0.5) * 0.2));
      x = randn([B, 1, S, S]);
      t = tensor([0.05, 0.4, 0.6, 0.95]);
      y = tensor(new Int32Array([0, 7, SMALL_TEST.numClasses, 2]));
      target = randn([B, 1, S, S]);
    });

    it('sends a finite, non-zero gradient to every parameter', async () => {
      model.zeroGrad();
      scope(() => model.forward(x, t, y).sub(target).square().mean().backward());
      const dead: string[] = [];
      for (const [name, p] of model.namedParameters()) {
        expect(p.grad, name).not.toBeNull();
        const g = await p.grad!.toArray();
        expect(g.every(Number.isFinite), `${name}: finite gradient`).toBe(true);
        if (g.every((v) => v === 0)) dead.push(name);
      }
      expect(dead).toEqual([]);
      // the class table gets gradient exactly in the rows used (0, 2, 7 and the null row 10)
      const g = await model.classEmb.weight.grad!.toArray();
      const d = model.classEmb.weight.shape[1];
      const used = [...Array(SMALL_TEST.numClasses + 1).keys()].filter((r) => g.slice(r * d, (r + 1) * d).some((v) => v !== 0));
      expect(used).toEqual([0, 2, 7, 10]);
      model.zeroGrad();
    }, COLD_COMPILE_MS);

    it('uses the class embedding row numClasses as the null class', async () => {
      const nc = SMALL_TEST.numClasses;
      const nulls = tensor(new Int32Array(B).fill(nc));
      const rows = await model.classEmb.weight.toArray();
      const d = model.classEmb.weight.shape[1];
      await noGrad(() =>
        scope(async () => {
          // conditioning: emb(t, y) - emb(t, null) = table[y] - table[null]
          const eNull = await host(model.embedding(t, null));
          const eNc = await host(model.embedding(t, nulls));
          expect([...eNc]).toEqual([...eNull]);
          const eY = await host(model.embedding(t, y));
          const labels = await y.toArray();
          const diff = new Float64Array(B * d);
          const want = new Float64Array(B * d);
          for (let b = 0; b < B; b++) {
            for (let j = 0; j < d; j++) {
              diff[b * d + j] = eY[b * d + j] - eNull[b * d + j];
              want[b * d + j] = rows[labels[b] * d + j] - rows[nc * d + j];
            }
          }
          R.assertClose(diff, want, { rtol: 1e-5, atol: 1e-5 }, 'emb(t, y) - emb(t, null)');
          // the whole network: y = numClasses is y = null; changing the null row moves only those outputs
          const outNull = await host(model.forward(x, t, null));
          expect([...(await host(model.forward(x, t, nulls)))]).toEqual([...outNull]);
          const outY = await host(model.forward(x, t, y));
          const saved = rows.slice(nc * d, (nc + 1) * d);
          const table = Float32Array.from(rows);
          for (let j = 0; j < d; j++) table[nc * d + j] += 0.5;
          setParam(model.classEmb.weight, table);
          const outNull2 = await host(model.forward(x, t, null));
          const outY2 = await host(model.forward(x, t, y));
          table.set(saved, nc * d);
          setParam(model.classEmb.weight, table);
          const per = S * S;
          for (let b = 0; b < B; b++) {
            const same = (a: Float64Array, c: Float64Array) => a.slice(b * per, (b + 1) * per).every((v, i) => v === c[b * per + i]);
            expect(same(outNull, outNull2), `null output ${b} moves with the null row`).toBe(false);
            expect(same(outY, outY2), `output ${b} (label ${labels[b]})`).toBe(labels[b] !== nc);
          }
        }),
      );
    });

    it('overfits a single batch', async () => {
      // a random target: pure memorisation. Measured: the loss falls ~250x in 60 steps, ~1000x in 100
      const opt = new AdamW(model.parameters(), { lr: 3e-3 });
      const losses: number[] = [];
      const steps = 60;
      for (let step = 0; step < steps; step++) {
        const loss = scope(() => {
          const l = model.forward(x, t, y).sub(target).square().mean();
          l.backward();
          return l;
        });
        opt.step();
        opt.zeroGrad();
        if (step % 10 === 0 || step === steps - 1) losses.push(await loss.item());
        loss.dispose();
      }
      const [first, last] = [losses[0], losses[losses.length - 1]];
      expect(Number.isFinite(last), `losses ${losses.map((l) => l.toFixed(4)).join(' ')}`).toBe(true);
      expect(last, `losses ${losses.map((l) => l.toFixed(4)).join(' ')}`).toBeLessThan(first / 20);
    });
  });
});
