// Training loop, checkpoints and distillation on a small synthetic image task: the loss falls, a
// resumed run is bit-identical to an uninterrupted one, a corrupt newest checkpoint falls back to
// the previous one, a NaN loss stops training naming the step, and endpoint distillation of a
// teacher into itself at N = 1 has zero loss.
import { existsSync, mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dawnGpu } from '../src/engine/runtime/dawn';
import { type Gpu, type Tensor, ew, manualSeed, noGrad, setDefaultGpu, tensor } from '../src/engine/index';
import type { VelocityModel } from '../src/models/sampling';
import { defaultKacConfig } from '../src/models/kac';
import { endpointLoss, teacherEndpoint } from '../src/models/distillation-loss';
import { encodeCheckpoint, listCheckpoints, loadLatestCheckpoint, readCheckpoint } from '../src/train/checkpoint';
import { GEMM_CHOICES_FILE } from '../src/train/loop';
import { clearGemmChoices, exportGemmChoices } from '../src/engine/autotune';
import { teacherBatch, teacherLoss, trainTeacher } from '../src/train/teacher';
import { distillStages, trainStudent, weightsDigest } from '../src/train/distill-stages';
import { ToyVelocity, toyData, toyOptim as optim } from './helpers/toy';

describe('training loop and distillation', () => {
  let gpu: Gpu;
  const data = toyData();
  beforeAll(async () => {
    gpu = await dawnGpu();
    setDefaultGpu(gpu);
  });
  afterAll(() => gpu.destroy());

  const run = (outDir: string, steps: number, resume = false, lr = 3e-3, tune = false) => {
    manualSeed(3); // model init comes from the global generator
    return trainTeacher({
      outDir, data, createModel: () => new ToyVelocity(), config: { toy: 1 }, kac: defaultKacConfig,
      optim: optim(steps, lr), batch: 16, labelDropout: 0.1, seed: 11, resume, quiet: true, logEvery: 5, checkpointEvery: 10, tune,
    });
  };

  it('--tune times the run\'s kernel shapes after the first step, saves the choices, and a resumed run loads them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dk-tune-'));
    clearGemmChoices();
    await run(dir, 10, false, 3e-3, true);
    const saved = JSON.parse(readFileSync(join(dir, GEMM_CHOICES_FILE), 'utf8')) as Record<string, Record<string, unknown>>;
    const classes = Object.values(saved).flatMap((m) => Object.keys(m));
    expect(classes.some((c) => c.startsWith('conv.fwd'))).toBe(true);
    expect(classes.some((c) => c.startsWith('conv.dw'))).toBe(true);
    clearGemmChoices();
    await run(dir, 20, true); // without tune: the saved choices are loaded, not re-tuned or forgotten
    expect(Object.values(JSON.parse(exportGemmChoices())).flatMap((m) => Object.keys(m as object)).sort()).toEqual([...classes].sort());
  });

  it('the teacher loss falls on held-out batches and the JSONL log records every logged step', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dk-teacher-'));
    manualSeed(3);
    const untrained = new ToyVelocity();
    const res = await run(dir, 150);
    const log = readFileSync(join(dir, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(log.map((r) => r.step)).toEqual(Array.from({ length: 30 }, (_, i) => 5 * (i + 1)));
    // the same 10 batches, never trained on (steps far beyond the run), for both models
    const evalLoss = async (m: ToyVelocity) => {
      let total = 0;
      for (let k = 0; k < 10; k++) {
        const b = teacherBatch(data, 32, 100_000 + k, 11, defaultKacConfig, 0.1);
        total += await noGrad(() => teacherLoss(m, b, [1, 4, 4])).item();
      }
      return total / 10;
    };
    expect(await evalLoss(res.emaModel)).toBeLessThan(0.8 * (await evalLoss(untrained)));
    expect(readCheckpoint(join(dir, 'ema.safetensors')).kind).toBe('teacher-weights');
  });

  it('resuming from a checkpoint gives bit-identical parameters', async () => {
    const straight = mkdtempSync(join(tmpdir(), 'dk-a-'));
    const resumed = mkdtempSync(join(tmpdir(), 'dk-b-'));
    const a = await run(straight, 30);
    await run(resumed, 20);
    // a run killed while writing a checkpoint leaves a partial file; the next save removes it
    const partial = join(resumed, 'ckpt-00000030.safetensors.tmp-999999999');
    writeFileSync(partial, 'partial');
    const b = await run(resumed, 30, true);
    expect(existsSync(partial)).toBe(false);
    const pa = await a.model.stateDict();
    const pb = await b.model.stateDict();
    for (const k of Object.keys(pa)) expect(Buffer.from(pb[k].data.buffer).equals(Buffer.from(pa[k].data.buffer))).toBe(true);
    expect(listCheckpoints(resumed).length).toBe(2); // the previous one is kept
  });

  it('a corrupt newest checkpoint falls back to the previous one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dk-c-'));
    await run(dir, 20);
    const [newest] = listCheckpoints(dir);
    writeFileSync(newest, readFileSync(newest).subarray(0, 100));
    const warnings: string[] = [];
    const found = loadLatestCheckpoint(dir, (m) => warnings.push(m));
    expect(found!.ckpt.step).toBe(10);
    expect(warnings[0]).toMatch(/skipping unreadable checkpoint ckpt-00000020/);
  });

  it('resuming from a checkpoint without optimizer moments is refused by name', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dk-partial-'));
    await run(dir, 10);
    const [newest] = listCheckpoints(dir);
    const ckpt = readCheckpoint(newest);
    const tensors = Object.fromEntries(Object.entries(ckpt.tensors).filter(([k]) => !k.startsWith('optim.')));
    writeFileSync(newest, encodeCheckpoint({ ...ckpt, tensors }));
    await expect(run(dir, 20, true)).rejects.toThrow(/ckpt-00000010.safetensors is not a complete training checkpoint \(missing optim\.m\./);
  });

  it('a non-finite loss stops training, names the step, and keeps the last good checkpoint', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dk-nan-'));
    await expect(run(dir, 40, false, 1e30)).rejects.toThrow(/loss became (NaN|Infinity|-Infinity) at step \d+; training stopped/);
    for (const f of readdirSync(dir).filter((n) => n.startsWith('ckpt-'))) {
      const ck = readCheckpoint(join(dir, f));
      for (const t of Object.values(ck.tensors)) expect(t.data.every(Number.isFinite)).toBe(true);
    }
  });

  it('endpoint loss is zero when the student is the teacher and N = 1 with Euler', async () => {
    manualSeed(5);
    const model = new ToyVelocity();
    const grid = { T: 1, tMin: 1e-5, steps: 4 };
    const xt = tensor(Float32Array.from({ length: 8 * 16 }, (_, i) => Math.sin(i)), [8, 1, 4, 4]);
    const t = Float64Array.from({ length: 8 }, (_, i) => 1 - (i % 4) * ((1 - 1e-5) / 4));
    const labels = tensor(Int32Array.from({ length: 8 }, (_, i) => i % 3), [8]);
    const z = await teacherEndpoint({ model, steps: 4, solver: 'euler' }, grid, xt, t, labels);
    expect(await endpointLoss(model, grid, xt, t, labels, z).item()).toBeLessThan(1e-12);
    const z2 = await teacherEndpoint({ model, steps: 8, solver: 'euler' }, grid, xt, t, labels);
    expect(await endpointLoss(model, grid, xt, t, labels, z2).item()).toBeGreaterThan(1e-8);
  });

  it('the distillation target: N guided AB-2 teacher sub-steps of Delta/N from each t_n, against a float64 host reference', async () => {
    const lam = [0.7, -0.4, 0.2];
    const teacher: VelocityModel = {
      forward: (x: Tensor, t: Tensor, y: Tensor) =>
        ew('probe', `select(select(${lam[0]}, ${lam[1]}, y == 1i), ${lam[2]}, y == 2i) * sin(x) * (1.0 + t) + 0.3 * t`, { x, t: t.reshape([t.shape[0], 1]), y: y.reshape([y.shape[0], 1]) }),
    };
    const w = 1.7;
    const ug = (x: number, t: number, y: number) => {
      const u = (l: number) => lam[l]! * Math.sin(x) * (1 + t) + 0.3 * t;
      return u(2) + w * (u(y) - u(2));
    };
    const grid = { T: 1, tMin: 1e-5, steps: 3 };
    const delta = (1 - 1e-5) / 3;
    const t = Float64Array.from([1, 1 - delta, 1 - 2 * delta, 1 - delta]);
    const x0 = [0.5, -1.2, 2.0, 0.1];
    const ys = [0, 1, 0, 1];
    const xt = tensor(Float32Array.from(x0), [4, 1]);
    const labels = tensor(Int32Array.from(ys), [4]);
    const z = await teacherEndpoint({ model: teacher, steps: 12, solver: 'ab2', guidance: { scale: w, nullClass: 2 } }, grid, xt, t, labels);
    const got = await z.toArray();
    const dt = delta / 4;
    for (let i = 0; i < 4; i++) {
      let x = x0[i]!;
      let prev: number | null = null;
      for (let k = 0; k < 4; k++) {
        const u = ug(x, t[i]! - k * dt, ys[i]!);
        x -= prev === null ? dt * u : dt * (1.5 * u - 0.5 * prev);
        prev = u;
      }
      expect(got[i]).toBeCloseTo(x, 5);
    }
    // the student's loss: one Euler step over the whole interval, MSE against the endpoint
    let ref = 0;
    for (let i = 0; i < 4; i++) ref += (x0[i]! - delta * (lam[ys[i]!]! * Math.sin(x0[i]!) * (1 + t[i]!) + 0.3 * t[i]!) - got[i]!) ** 2;
    expect(await endpointLoss(teacher, grid, xt, t, labels, z).item()).toBeCloseTo(ref / 4, 6);
  });

  it('a distillation stage trains from the teacher weights and writes its student', async () => {
    const tdir = mkdtempSync(join(tmpdir(), 'dk-t-'));
    const teacher = await run(tdir, 20);
    const sdir = mkdtempSync(join(tmpdir(), 'dk-s-'));
    const res = await trainStudent({
      outDir: sdir, data, createModel: () => new ToyVelocity(), config: { toy: 1 }, kac: defaultKacConfig, tMin: 1e-5,
      optim: optim(10), batch: 8, seed: 2, teacher: { model: teacher.emaModel, steps: 8, solver: 'ab2', guidance: { scale: 1.3, nullClass: 2 } },
      studentSteps: 2, init: await teacher.emaModel.stateDict(), quiet: true, logEvery: 5, checkpointEvery: 10,
    });
    expect(Number.isFinite(res.lastLoss)).toBe(true);
    expect(readCheckpoint(res.weightsPath).kind).toBe('student-weights');
  });

  it('a multi-stage schedule trains each stage for its own step count, chains teachers, and skips finished stages', async () => {
    const teacher = await run(mkdtempSync(join(tmpdir(), 'dk-t-')), 20);
    const root = mkdtempSync(join(tmpdir(), 'dk-stages-'));
    const stageSteps = [4, 3, 2];
    const teacherWeights = await teacher.emaModel.stateDict();
    const stages = (config: Record<string, unknown> = { toy: 1 }, weights = teacherWeights) => distillStages({
      root, data, createModel: () => new ToyVelocity(), config, kac: defaultKacConfig, tMin: 1e-5,
      optim: optim(99), stageSteps: (k) => stageSteps[k - 1], batch: 8, seed: 2, schedule: [8, 4, 2, 1],
      teacherWeights: weights, teacherSolver: 'ab2', guidance: { scale: 1.3, nullClass: 2 },
      quiet: true, logEvery: 1, checkpointEvery: 10,
    });
    const first = await stages();
    expect(first.map((r) => r.steps)).toEqual([4, 2, 1]);
    first.forEach((r, i) => {
      const ckpt = readCheckpoint(r.weightsPath);
      expect(ckpt.step).toBe(stageSteps[i]);
      expect(ckpt.config).toMatchObject({ stage: i + 1, teacherSteps: [8, 4, 2][i] });
    });
    const written = first.map((r) => statSync(r.weightsPath).mtimeMs);
    const again = await stages();
    expect(again.map((r) => statSync(r.weightsPath).mtimeMs)).toEqual(written);
    // a finished stage made with other settings (e.g. another guidance weight) is not passed off as this run's
    await expect(stages({ toy: 2 })).rejects.toThrow(/stage 1 \(.*\) was made with another configuration/);
    expect(first.map((r) => statSync(r.weightsPath).mtimeMs)).toEqual(written);
    // nor is one distilled from another teacher (a retrained one, same size and settings)
    const retrained = Object.fromEntries(Object.entries(teacherWeights).map(([k, t]) => [k, { ...t, data: t.data.map((v) => v + 1e-3) }]));
    await expect(stages({ toy: 1 }, retrained)).rejects.toThrow(/stage 1 \(.*\) was made with another configuration:\n  teacherSha256: "[0-9a-f]{64}" in the checkpoint/);
    expect(first.map((r) => statSync(r.weightsPath).mtimeMs)).toEqual(written);
    expect(readCheckpoint(first[1].weightsPath).config).toMatchObject({ teacherSha256: weightsDigest(readCheckpoint(first[0].weightsPath).tensors) });
  });
});
