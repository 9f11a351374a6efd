// The RGB path end to end: a few small files written in CIFAR-10's binary format are read as
// `--data cifar10` reads them, a few training steps of an RGB 32x32 UNet lower the loss on held-out
// batches and an RGB sample grid is written; the RGB presets are sized for 3x32x32 data.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decode } from 'fast-png';
import { afterAll, describe, expect, it } from 'vitest';
import { CIFAR10_RECORD_BYTES, CIFAR10_TRAIN_FILES, loadData } from '../src/data/index';
import { UNET_PRESET_NAMES, rgbUnetPresets, unetConfigFor, unetFlops, unetPresets } from '../src/models/unet';
import { listCheckpoints, readCheckpoint } from '../src/train/checkpoint';
import { teacherBatch, teacherLoss, trainTeacher } from '../src/train/teacher';
import { gridWriter } from '../src/cli/grids';
import { dawnGpu } from '../src/engine/runtime/dawn';
import { manualSeed, noGrad, setDefaultGpu } from '../src/engine/index';
import { defaultKacConfig } from '../src/models/kac';
import type { VelocityModel } from '../src/models/sampling';
import { type ModelRunConfig, createModel } from '../src/models/weights';
import { BACKENDS } from './helpers/gpu';
const tmp = mkdtempSync(join(tmpdir(), 'dk-rgb-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A CIFAR-10-format folder: per class a colour (R, G, B levels from the class) with a soft diagonal ramp. */
function writeCifarLike(dir: string, perFile: number): void {
  mkdirSync(dir, { recursive: true });
  const batch = (n: number, offset: number) => {
    const out = new Uint8Array(n * CIFAR10_RECORD_BYTES);
    for (let k = 0; k < n; k++) {
      const label = (offset + k) % 10;
      const rec = k * CIFAR10_RECORD_BYTES;
      out[rec] = label;
      const rgb = [40 + 20 * label, 230 - 18 * label, label % 2 ? 200 : 50];
      for (let c = 0; c < 3; c++) {
        for (let y = 0; y < 32; y++) for (let x = 0; x < 32; x++) out[rec + 1 + c * 1024 + y * 32 + x] = Math.min(255, rgb[c]! + ((x + y + k) % 8) * 3);
      }
    }
    return out;
  };
  CIFAR10_TRAIN_FILES.forEach((f, i) => writeFileSync(join(dir, f), batch(perFile, i * perFile)));
  writeFileSync(join(dir, 'test_batch.bin'), batch(10, 0));
}

describe('RGB 32x32 data', () => {
  it('the RGB presets build for 3x32x32 images (cifar-small sized for this machine, cifar-paper for GPUs); the MNIST presets are unchanged', () => {
    expect(UNET_PRESET_NAMES).toEqual(['tiny', 'small', 'base', 'cifar-small', 'cifar-paper']);
    expect(Object.keys(unetPresets)).toEqual(['tiny', 'small', 'base']);
    const rgb = { channels: 3, height: 32, width: 32, numClasses: 10 };
    for (const [name, cfg] of Object.entries(rgbUnetPresets)) {
      expect(unetConfigFor(name, rgb)).toEqual(cfg);
      expect([cfg.inChannels, cfg.imageSize]).toEqual([3, 32]);
    }
    // forward GFLOP at batch 32: cifar-small about the MNIST `small` preset's on 32x32x3, cifar-paper ~100x that
    const gflop = (name: string) => unetFlops(unetConfigFor(name, rgb), 32) / 1e9;
    expect(gflop('cifar-small')).toBeLessThan(3);
    expect(gflop('cifar-paper')).toBeGreaterThan(100 * gflop('cifar-small'));
    expect(() => unetConfigFor('cifar-huge', rgb)).toThrow(/unknown preset 'cifar-huge': use tiny, small, base, cifar-small, cifar-paper/);
  });

  it('trains a few steps on CIFAR-10-format RGB files: the loss falls on held-out batches and an RGB sample grid is written', async () => {
    // one adapter only (the first of DISTILLKAC_TEST_BACKENDS): this test is about the data path, not numerics
    const gpu = await dawnGpu({ backend: BACKENDS[0] });
    setDefaultGpu(gpu);
    try {
      const started = performance.now();
      const dir = join(tmp, 'cifar-10-batches-bin');
      writeCifarLike(dir, 8);
      const spec = { kind: 'cifar10', dir } as const;
      const data = loadData(spec);
      expect([data.n, data.channels, data.height, data.width]).toEqual([40, 3, 32, 32]);
      // the tiny preset sized for this RGB data, reduced to one level (32x32 throughout): the fewest
      // kernels to compile, which is most of this test's time on a software GPU with a cold shader cache
      const unet = { ...unetConfigFor('tiny', data), channelMults: [1] };
      const run: ModelRunConfig = { model: { kind: 'unet', preset: 'tiny', unet }, kac: defaultKacConfig, data: spec };
      const out = join(tmp, 'run');
      const shape = [3, 32, 32];
      const steps = 20;
      const batch = 8;
      manualSeed(2);
      const untrained = createModel(run.model);
      const heldOut = async (m: VelocityModel) => {
        let total = 0;
        for (let k = 0; k < 4; k++) total += await noGrad(() => teacherLoss(m, teacherBatch(data, batch, 100_000 + k, 7, defaultKacConfig, 0), shape)).item();
        return total / 4;
      };
      const before = await heldOut(untrained);
      untrained.dispose();
      manualSeed(2);
      const res = await trainTeacher({
        outDir: out, data, createModel: () => createModel(run.model), config: { ...run, batch }, kac: defaultKacConfig,
        optim: { steps, lr: 1e-2, warmupSteps: 3, weightDecay: 0, maxGradNorm: 1, emaDecay: 0.9, emaWarmup: 5 },
        batch, labelDropout: 0.1, seed: 7, quiet: true, logEvery: 1, checkpointEvery: steps,
        onCheckpoint: gridWriter(out, shape, data.numClasses, run, 4, 'euler', batch),
      });
      const after = await heldOut(res.model);
      console.log(`RGB 32x32 training: held-out loss ${before.toFixed(3)} -> ${after.toFixed(3)} after ${steps} steps of batch ${batch}; ${((performance.now() - started) / 1000).toFixed(1)} s [${BACKENDS[0]}]`);
      expect(after).toBeLessThan(0.8 * before);
      const log = readFileSync(join(out, 'log.jsonl'), 'utf8').trim().split('\n');
      expect(log).toHaveLength(steps);
      const [ckpt] = listCheckpoints(out);
      expect(readCheckpoint(ckpt!).config).toMatchObject({ data: spec, model: { unet: { inChannels: 3, imageSize: 32, numClasses: 10 } } });
      const png = decode(readFileSync(join(out, 'samples', `step-${String(steps).padStart(8, '0')}.png`)));
      expect(png.channels).toBe(3);
      expect(png.width).toBeGreaterThanOrEqual(batch * 32);
      expect(png.height).toBeGreaterThanOrEqual(32);
      const px = png.data as Uint8Array;
      expect(Math.max(...px) - Math.min(...px)).toBeGreaterThan(50); // samples, not a blank image
      res.model.dispose();
      res.emaModel.dispose();
    } finally {
      setDefaultGpu(null);
      gpu.destroy();
    }
  }, 600_000);
});
