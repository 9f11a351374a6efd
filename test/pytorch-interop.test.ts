// The PyTorch twin (interop/pytorch) against our engine and CLI: its forward pass equals ours on both
// committed MNIST checkpoints; its float64 Kac velocity and target equal kac.ts; a 2-process torchrun
// (gloo, CPU) trains a tiny teacher whose checkpoint our CLI samples and distils, with samples equal to
// the twin's from the same (our Philox) prior; a checkpoint of `distillkac train` resumes under
// train_ddp.py; bad input is refused with a message naming the problem.
// Python: $PYTHON, default /usr/bin/python3 (Debian's python3-torch, `scripts/setup.sh --tests`).
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dawnGpu } from '../src/engine/runtime/dawn';
import { type Gpu, noGrad, setDefaultGpu, tensor } from '../src/engine/index';
import { Philox } from '../src/engine/philox';
import { decodeSafetensors, encodeSafetensors } from '../src/io/safetensors';
import { batchSeed, generateSamples } from '../src/models/generate';
import { kacConfig, kacPrior, kacTarget, kacVelocity } from '../src/models/kac';
import { loadWeights, readCheckpoint } from '../src/train/checkpoint';
import { modelFromWeights } from '../src/models/weights';
import { UNet, unetPresets } from '../src/models/unet';
import { encodeCheckpoint } from '../src/io/checkpoint-format';
import { CLI_BACKEND } from './helpers/gpu';

const ROOT = join(__dirname, '..');
const INTEROP = join(ROOT, 'interop', 'pytorch');
const BIN = join(ROOT, 'bin', 'distillkac.mjs');
const MNIST = join(ROOT, 'checkpoints', 'mnist');
const PYTHON = process.env.PYTHON ?? '/usr/bin/python3';
const LONG = 1_200_000;

const hasTorch = spawnSync(PYTHON, ['-c', 'import torch, numpy'], { encoding: 'utf8' }).status === 0;
const backend = CLI_BACKEND;

/** Run the twin (`python -m distillkac_torch ...` or a script in interop/pytorch); throws with its stderr on failure. */
function py(args: string[], opts: { ok?: boolean; env?: Record<string, string> } = {}) {
  const r = spawnSync(PYTHON, args, {
    cwd: INTEROP, encoding: 'utf8', timeout: LONG,
    env: { ...process.env, OMP_NUM_THREADS: '1', PYTHONDONTWRITEBYTECODE: '1', ...opts.env },
  });
  if ((opts.ok ?? true) && r.status !== 0) throw new Error(`${PYTHON} ${args.join(' ')} exited ${r.status}:\n${r.stderr}\n${r.stdout}`);
  return r;
}
const twin = (args: string[], ok = true) => py(['-m', 'distillkac_torch', ...args], { ok });
/** Our CLI, on the adapter of our in-process side (CLI_BACKEND: the CLI's own default on a software GPU). */
function cli(args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args, '--quiet', ...(backend ? ['--backend', backend] : [])], { encoding: 'utf8', timeout: LONG });
  if (r.status !== 0) throw new Error(`distillkac ${args.join(' ')} exited ${r.status}:\n${r.stderr}\n${r.stdout}`);
  return r;
}
const readF32 = (path: string, name: string) => decodeSafetensors(readFileSync(path)).tensors[name].data as Float32Array;
function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe('PyTorch twin (interop/pytorch)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dk-torch-'));
  let gpu: Gpu | null = null;
  beforeAll(async () => {
    if (!hasTorch) throw new Error(`${PYTHON} cannot import torch and numpy: run \`bash scripts/setup.sh --tests\` as root (it installs Debian's python3-torch), or point PYTHON at an interpreter with torch`);
    if (!backend) throw new Error('no WebGPU backend available (install the software GPU with `bash scripts/setup.sh`)');
    gpu = await dawnGpu({ backend });
    setDefaultGpu(gpu);
  });
  afterAll(() => {
    setDefaultGpu(null);
    gpu?.destroy();
  });

  it('computes the Kac velocity and training target in float64 as kac.ts does', () => {
    const kac = kacConfig();
    const rng = new Philox(7);
    const s: number[] = [], x: number[] = [], t: number[] = [], xt: number[] = [], x0: number[] = [];
    for (let i = 0; i < 400; i++) {
      const si = i % 50 === 0 ? 0 : rng.uniform() * kac.T;
      s.push(si);
      // inside the cone, on the light-cone layer and outside it
      x.push((rng.uniform() * 2 - 1) * kac.c * si * (i % 7 === 0 ? 1 : 0.999));
      t.push(i % 40 === 0 ? 0 : rng.uniform() * kac.T);
      x0.push(rng.uniform() * 2 - 1);
      xt.push((1 - t[i] / kac.T) * x0[i] + (rng.uniform() * 2 - 1) * kac.c * t[i]);
    }
    writeFileSync(join(dir, 'kac-in.json'), JSON.stringify({ kac, s, x, t, xt, x0, priorCount: 200_000, seed: 1 }));
    twin(['kac', '--inputs', join(dir, 'kac-in.json'), '--out', join(dir, 'kac-out.json')]);
    const res = JSON.parse(readFileSync(join(dir, 'kac-out.json'), 'utf8'));
    const dv = maxAbsDiff(res.velocity, s.map((si, i) => kacVelocity(si, x[i], kac)));
    const dt = maxAbsDiff(res.target, t.map((ti, i) => kacTarget(ti, xt[i], x0[i], kac)));
    console.log(`Kac float64: velocity max |diff| ${dv.toExponential(2)}, target ${dt.toExponential(2)}`);
    expect(dv).toBeLessThanOrEqual(1e-12);
    expect(dt).toBeLessThanOrEqual(1e-12);
    // the twin's own prior draw (torch generator) has the law of ours: mean 0, Var K(T), atoms e^{-aT}
    const ours = kacPrior(200_000, new Philox(1), kac);
    const mean = ours.reduce((a, v) => a + v, 0) / ours.length;
    const variance = ours.reduce((a, v) => a + (v - mean) ** 2, 0) / (ours.length - 1);
    const atoms = ours.filter((v) => Math.abs(v) >= Math.fround(kac.c * kac.T)).length / ours.length;
    console.log(`prior: twin mean ${res.prior.mean.toFixed(4)} var ${res.prior.var.toFixed(4)} atoms ${res.prior.atomFraction.toExponential(2)}; ours ${mean.toFixed(4)} ${variance.toFixed(4)} ${atoms.toExponential(2)}`);
    expect(Math.abs(res.prior.mean)).toBeLessThan(0.01);
    expect(Math.abs(res.prior.var - variance) / variance).toBeLessThan(0.02);
    expect(res.prior.maxAbs).toBeLessThanOrEqual(Math.fround(kac.c * kac.T));
  });

  for (const name of ['teacher-small', 'student-1step']) {
    it(`forward pass equals our engine's on ${name}.safetensors (x, t, labels incl. the null class)`, async () => {
      const path = join(MNIST, `${name}.safetensors`);
      const w = loadWeights(path);
      const model = modelFromWeights(w);
      const b = 4;
      const rng = new Philox(11);
      const x = Float32Array.from({ length: b * 784 }, () => (rng.uniform() * 2 - 1) * 3);
      const t = Float32Array.from([1, 0.5, 1e-5, 0]);
      const labels = Int32Array.from([0, 10, 7, 3]);
      const out = await noGrad(async () => {
        const y = model.forward(tensor(x, [b, 1, 28, 28]), tensor(t, [b]), tensor(labels, [b]));
        return (await y.toArray()) as Float32Array;
      });
      model.dispose();
      const inPath = join(dir, `${name}-in.safetensors`);
      writeFileSync(inPath, encodeSafetensors({ x: { dtype: 'F32', shape: [b, 1, 28, 28], data: x }, t: { dtype: 'F32', shape: [b], data: t }, labels: { dtype: 'I32', shape: [b], data: labels } }));
      twin(['forward', '--checkpoint', path, '--inputs', inPath, '--out', join(dir, `${name}-out.safetensors`)]);
      const theirs = readF32(join(dir, `${name}-out.safetensors`), 'out');
      const d = maxAbsDiff(theirs, out);
      const scale = out.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      console.log(`${name}: forward max |diff| ${d.toExponential(2)} (outputs up to ${scale.toFixed(2)})`);
      expect(scale).toBeGreaterThan(0.1);
      expect(d).toBeLessThanOrEqual(1e-4);
    }, LONG);
  }

  it('every preset has our parameter names and shapes; with attention, the forward pass equals ours', async () => {
    const theirs = JSON.parse(py(['-c', 'import json; from distillkac_torch import *; print(json.dumps({p: {k: list(v.shape) for k, v in UNet(unet_config_for(p)).state_dict().items()} for p in PRESETS}))']).stdout);
    for (const [preset, cfg] of Object.entries(unetPresets)) {
      const m = new UNet(cfg);
      const ours = Object.fromEntries(m.namedParameters().map(([k, t]) => [k, t.shape]));
      m.dispose();
      expect(theirs[preset], preset).toEqual(ours);
    }
    // the base preset's structure (attention at 7x7 and in the middle) at the width unet.test.ts builds
    // it with (so the kernels are shared), all weights perturbed
    const cfg = { ...unetPresets.base, baseChannels: unetPresets.small.baseChannels, groups: unetPresets.small.groups };
    const model = new UNet(cfg);
    const state = await model.stateDict();
    const rng = new Philox(5);
    for (const v of Object.values(state)) for (let i = 0; i < v.data.length; i++) v.data[i] += (rng.uniform() - 0.5) * 0.2;
    model.loadStateDict(state);
    const b = 4;
    const x = Float32Array.from({ length: b * 784 }, () => (rng.uniform() * 2 - 1) * 3);
    const t = Float32Array.from([1, 0.3, 1e-5, 0.8]);
    const labels = Int32Array.from([10, 2, 7, 10]);
    const out = await noGrad(async () => (await model.forward(tensor(x, [b, 1, 28, 28]), tensor(t, [b]), tensor(labels, [b])).toArray()) as Float32Array);
    model.dispose();
    const ckpt = join(dir, 'attn.safetensors');
    writeFileSync(ckpt, encodeCheckpoint({ kind: 'teacher-weights', step: 0, config: { model: { kind: 'unet', preset: 'base', unet: cfg }, kac: kacConfig(), data: { kind: 'mnist' } }, state: null, tensors: state }));
    writeFileSync(join(dir, 'attn-in.safetensors'), encodeSafetensors({ x: { dtype: 'F32', shape: [b, 1, 28, 28], data: x }, t: { dtype: 'F32', shape: [b], data: t }, labels: { dtype: 'I32', shape: [b], data: labels } }));
    twin(['forward', '--checkpoint', ckpt, '--inputs', join(dir, 'attn-in.safetensors'), '--out', join(dir, 'attn-out.safetensors')]);
    const d = maxAbsDiff(readF32(join(dir, 'attn-out.safetensors'), 'out'), out);
    console.log(`UNet with attention: forward max |diff| ${d.toExponential(2)} (outputs up to ${out.reduce((m, v) => Math.max(m, Math.abs(v)), 0).toFixed(2)})`);
    expect(d).toBeLessThanOrEqual(1e-4);
  }, LONG);

  // ---- training with torch.distributed, read by our CLI ------------------------------------------
  const ddpOut = join(dir, 'ddp');
  // every run of ours uses the tiny preset at batch 4 (a guided sample of 2 is a batch of 4 too), the
  // shapes of unet.test.ts and cli.test.ts, so the processes share compiled kernels through Mesa's
  // shader cache
  const TINY = ['--preset', 'tiny', '--batch', '4', '--warmup', '5', '--log-every', '5'];
  const torchrun = (nproc: number, args: string[]) =>
    py(['torchrun_compat.py', '--nproc_per_node', String(nproc), '--master_addr', '127.0.0.1', '--master_port', String(29_500 + (process.pid % 1000)), 'train_ddp.py', ...args], { ok: false });

  it('a 2-process torchrun (gloo, CPU) trains a tiny teacher for 20 steps and writes our checkpoints', () => {
    const r = torchrun(2, [...TINY, '--steps', '20', '--checkpoint-every', '10', '--out', ddpOut]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/2 process\(es\) on cpu, preset tiny .* global batch 4 \(2 per rank\)/);
    expect(readdirSync(ddpOut).filter((f) => f.startsWith('ckpt-')).sort()).toEqual(['ckpt-00000010.safetensors', 'ckpt-00000020.safetensors']);
    const log = readFileSync(join(ddpOut, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(log.map((l) => l.step)).toEqual([5, 10, 15, 20]);
    expect(log.every((l) => Number.isFinite(l.loss))).toBe(true);
    // our loader reads it: config of a tiny teacher, the state training needs to resume
    const ck = loadWeights(join(ddpOut, 'ckpt-00000020.safetensors'));
    expect(ck.ckpt.kind).toBe('teacher');
    expect(ck.ckpt.step).toBe(20);
    expect(ck.ckpt.state).toEqual({ optimStep: 20, emaUpdates: 20 });
    expect(ck.run.model.preset).toBe('tiny');
    expect(Object.keys(ck.ckpt.tensors).filter((k) => k.startsWith('optim.v.')).length).toBe(Object.keys(ck.weights).length);
  }, LONG);

  /** Our prior for `sample --seed seed` (one batch): Philox(batchSeed(seed, 0)), as generateSamples draws it. */
  function ourPrior(labels: Int32Array, seed: number, path: string): void {
    const kac = loadWeights(join(ddpOut, 'ckpt-00000020.safetensors')).run.kac;
    const prior = kacPrior(labels.length * 784, new Philox(batchSeed(seed, 0)), kac);
    writeFileSync(path, encodeSafetensors({ prior: { dtype: 'F32', shape: [labels.length, 1, 28, 28], data: prior }, labels: { dtype: 'I32', shape: [labels.length], data: labels } }));
  }

  it('distillkac sample accepts the DDP checkpoint; its samples equal the twin\'s from the same prior (AB-2, guidance 1.5)', () => {
    const ckpt = join(ddpOut, 'ckpt-00000020.safetensors');
    cli(['sample', '--checkpoint', ckpt, '--count', '2', '--steps', '6', '--solver', 'ab2', '--guidance', '1.5', '--seed', '3', '--out', join(dir, 'ddp.png'), '--dump', join(dir, 'ddp-ours.safetensors')]);
    const labels = decodeSafetensors(readFileSync(join(dir, 'ddp-ours.safetensors'))).tensors.labels.data as Int32Array;
    expect([...labels]).toEqual([0, 1]);
    ourPrior(labels, 3, join(dir, 'prior-3.safetensors'));
    twin(['sample', '--checkpoint', ckpt, '--prior', join(dir, 'prior-3.safetensors'), '--steps', '6', '--solver', 'ab2', '--guidance', '1.5', '--out', join(dir, 'ddp-twin.safetensors')]);
    const ours = readF32(join(dir, 'ddp-ours.safetensors'), 'samples');
    const d = maxAbsDiff(readF32(join(dir, 'ddp-twin.safetensors'), 'samples'), ours);
    console.log(`DDP teacher, AB-2 x 6, w = 1.5: samples max |diff| ${d.toExponential(2)}`);
    expect(ours.some((v) => v !== 0)).toBe(true);
    expect(d).toBeLessThanOrEqual(1e-4);
  }, LONG);

  it('Euler, midpoint and Heun (generateSamples, as the CLI) equal the twin\'s from the same prior', async () => {
    const ckpt = join(ddpOut, 'ckpt-00000020.safetensors');
    const w = loadWeights(ckpt);
    const model = modelFromWeights(w);
    const labels = Int32Array.from([4, 10]);
    ourPrior(labels, 5, join(dir, 'prior-5.safetensors'));
    for (const [solver, guidance] of [['euler', 2], ['midpoint', 1], ['heun', 1.5]] as const) {
      const { samples } = await generateSamples({ model, labels, sampleShape: [1, 28, 28], steps: 3, solver, kac: w.run.kac, seed: 5, tMin: 1e-5, guidance: { scale: guidance, nullClass: 10 } });
      const out = join(dir, `twin-${solver}.safetensors`);
      twin(['sample', '--checkpoint', ckpt, '--prior', join(dir, 'prior-5.safetensors'), '--steps', '3', '--solver', solver, '--guidance', String(guidance), '--out', out]);
      const d = maxAbsDiff(readF32(out, 'samples'), samples);
      console.log(`${solver} x 3, w = ${guidance}: samples max |diff| ${d.toExponential(2)}`);
      expect(d).toBeLessThanOrEqual(1e-4);
    }
    model.dispose();
  }, LONG);

  it('distillkac distill accepts the DDP checkpoint as its teacher', () => {
    const out = join(dir, 'distill');
    cli(['distill', '--teacher', join(ddpOut, 'ema.safetensors'), '--schedule', '2,1', '--steps', '2', '--batch', '4', '--warmup', '1', '--checkpoint-every', '2', '--log-every', '1', '--out', out]);
    const student = loadWeights(join(out, 'stage1-1step', 'ema.safetensors'));
    expect(student.run.model.preset).toBe('tiny');
    expect(student.ckpt.kind).toBe('student-weights');
  }, LONG);

  it('a checkpoint written by distillkac train resumes under train_ddp.py (and the twin reads it)', () => {
    const out = join(dir, 'ours-then-ddp');
    const flags = ['--preset', 'tiny', '--batch', '4', '--warmup', '2', '--checkpoint-every', '2', '--log-every', '1'];
    cli(['train', ...flags, '--steps', '2', '--grids', 'false', '--out', out]);
    const before = readCheckpoint(join(out, 'ckpt-00000002.safetensors'));
    const r = torchrun(2, [...flags, '--steps', '4', '--resume', '--out', out]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain(`resuming from ${join(out, 'ckpt-00000002.safetensors')} at step 2`);
    const after = readCheckpoint(join(out, 'ckpt-00000004.safetensors'));
    expect(after.state).toEqual({ optimStep: 4, emaUpdates: 4 });
    expect(after.config).toEqual(before.config);
    // two more AdamW steps at lr 1e-3 move each weight by a few lr at most from where ours left it
    const names = Object.keys(before.tensors).filter((k) => k.startsWith('model.'));
    const moved = Math.max(...names.map((k) => maxAbsDiff(after.tensors[k].data, before.tensors[k].data)));
    console.log(`resumed 2 steps under DDP: max weight change ${moved.toExponential(2)}`);
    expect(moved).toBeGreaterThan(0);
    expect(moved).toBeLessThan(1e-2);
    expect(readFileSync(join(out, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).step)).toEqual([1, 2, 3, 4]);
    const info = JSON.parse(twin(['info', '--checkpoint', join(out, 'ckpt-00000004.safetensors')]).stdout);
    expect([info.kind, info.step, info.config.model.preset]).toEqual(['teacher', 4, 'tiny']);
  }, LONG);

  it('and the other way round: distillkac train --resume continues a train_ddp.py checkpoint', () => {
    const out = join(dir, 'ddp-then-ours');
    cpSync(ddpOut, out, { recursive: true });
    cli(['train', ...TINY, '--steps', '22', '--checkpoint-every', '2', '--grids', 'false', '--resume', '--out', out]);
    const after = readCheckpoint(join(out, 'ckpt-00000022.safetensors'));
    expect(after.state).toEqual({ optimStep: 22, emaUpdates: 22 });
    expect(after.config).toEqual(readCheckpoint(join(ddpOut, 'ckpt-00000020.safetensors')).config);
  }, LONG);

  // ---- bad input ------------------------------------------------------------------------------------
  it('refuses a checkpoint of another preset, naming the setting', () => {
    const r = torchrun(1, ['--preset', 'small', '--batch', '8', '--warmup', '5', '--log-every', '5', '--steps', '30', '--resume', '--out', ddpOut]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/model\.preset: "tiny" in the checkpoint, "small" now/);
    const s = py(['-c', `import sys; from distillkac_torch import *; m = UNet(unet_config_for('small'));
try:
    load_weights_into(m, model_weights(load_checkpoint(sys.argv[1])), sys.argv[1])
except CheckpointError as e:
    print(e)`, join(ddpOut, 'ema.safetensors')]);
    expect(s.stdout).toMatch(/timeMlp1\.weight has shape \[32, 8\] in the checkpoint but \[48, 12\] in the model \(another preset/);
  }, LONG);

  it('refuses a checkpoint with a missing tensor, naming it', () => {
    const full = readCheckpoint(join(ddpOut, 'ema.safetensors'));
    const bytes = readFileSync(join(ddpOut, 'ema.safetensors'));
    const { tensors, metadata } = decodeSafetensors(bytes);
    delete tensors['down.0.conv1.weight'];
    const bad = join(dir, 'missing.safetensors');
    writeFileSync(bad, encodeSafetensors(tensors as Parameters<typeof encodeSafetensors>[0], metadata));
    expect(full.tensors['down.0.conv1.weight']).toBeDefined();
    const r = twin(['forward', '--checkpoint', bad, '--inputs', join(dir, 'student-1step-in.safetensors'), '--out', join(dir, 'never.safetensors')], false);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/missing\.safetensors: tensors do not match the model; missing: down\.0\.conv1\.weight/);
    expect(existsSync(join(dir, 'never.safetensors'))).toBe(false);
  }, LONG);

  it('refuses a world size that does not divide the batch', () => {
    const r = torchrun(2, ['--preset', 'tiny', '--batch', '5', '--steps', '2', '--out', join(dir, 'odd')]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/--batch 5 is not divisible by the world size 2 .*e\.g\. 6/);
    expect(existsSync(join(dir, 'odd'))).toBe(false);
  }, LONG);
});
