// Issue 18: does the distillation target change when the AB-2 teacher's interval starts with a Heun
// step instead of Euler? For each student grid of 100 -> 20 -> 4 -> 2 -> 1 (the 100-step AB-2
// teacher's sub-steps over each student interval), start points x_{t_n} forward-noised from real
// digits as distillation makes them (one example per interval, cycled), guided teacher (w = 1.5):
// the endpoint of AB-2 with an Euler start and with a Heun start against a fine reference (Heun on
// the 200-step grid), plus an estimate of the reference's own error (|Heun 100-grid - Heun
// 200-grid| / 3, Heun being second order).
//
//   npx tsx scripts/ab2-start-error.ts [--teacher checkpoints/mnist/teacher-small.safetensors]
//       [--batch 20] [--grids 20,4,2,1] [--backend opengl] [--out results/mnist-method/ab2-start.json]
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { initGpu } from '../src/engine/runtime/dawn';
import type { Backend, Tensor } from '../src/engine/index';
import { tensor } from '../src/engine/index';
import { Philox } from '../src/engine/philox';
import { loadDataFor } from '../src/data/index';
import { kacTrainingBatch } from '../src/models/kac';
import { DEFAULT_GUIDANCE, type Ab2Start, type Solver, integrate } from '../src/models/sampling';
import { modelFromWeights } from '../src/models/weights';
import { loadWeights } from '../src/train/checkpoint';

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : fallback;
};
const teacherPath = arg('teacher', 'checkpoints/mnist/teacher-small.safetensors');
const B = Number(arg('batch', '20'));
const grids = arg('grids', '20,4,2,1').split(',').map(Number);
const out = arg('out', 'results/mnist-method/ab2-start.json');
const teacherSteps = 100;
const tMin = 1e-5;

const gpu = await initGpu({ backend: arg('backend', 'opengl') as Backend });
const w = loadWeights(teacherPath);
const model = modelFromWeights(w);
const data = loadDataFor(w);
const kac = w.run.kac;
const per = data.channels * data.height * data.width;
const shape = [data.channels, data.height, data.width];
const guidance = { scale: DEFAULT_GUIDANCE, nullClass: data.numClasses };

const rms = (a: Float32Array, b: Float32Array) => Math.sqrt(a.reduce((s, v, i) => s + (v - b[i]!) ** 2, 0) / a.length);
const maxAbs = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

const rows: Record<string, unknown>[] = [];
for (const ms of grids) {
  const started = performance.now();
  const N = teacherSteps / ms;
  const delta = (kac.T - tMin) / ms;
  const n = Int32Array.from({ length: B }, (_, j) => j % ms);
  const t = Float64Array.from(n, (k) => kac.T - k * delta);
  const x0 = data.images.slice(0, B * per);
  const labelsArr = data.labels.slice(0, B);
  const xt = tensor(kacTrainingBatch(x0, per, t, new Philox(18, ms), kac).xt, [B, ...shape]);
  const labels = tensor(Int32Array.from(labelsArr), [B]);
  const run = async (solver: Solver, steps: number, ab2Start: Ab2Start = 'euler') => {
    const r = await integrate({ model, x: xt, tStart: t, dt: delta / steps, steps, solver, labels, guidance, ab2Start });
    const a = (await r.x.toArray()) as Float32Array;
    r.x.dispose();
    return { x: a, nfe: r.nfe };
  };
  const start = (await xt.toArray()) as Float32Array;
  const euler = await run('ab2', N, 'euler');
  const heun = await run('ab2', N, 'heun');
  const ref = await run('heun', 2 * N);
  const coarse = await run('heun', N);
  const row = {
    studentSteps: ms, subSteps: N, batch: B,
    displacementRms: rms(start, ref.x),
    refErrorEstimateRms: rms(coarse.x, ref.x) / 3,
    ab2EulerStart: { nfe: euler.nfe, errRms: rms(euler.x, ref.x), errMax: maxAbs(euler.x, ref.x) },
    ab2HeunStart: { nfe: heun.nfe, errRms: rms(heun.x, ref.x), errMax: maxAbs(heun.x, ref.x) },
    targetChange: { rms: rms(euler.x, heun.x), mse: rms(euler.x, heun.x) ** 2, max: maxAbs(euler.x, heun.x) },
    seconds: (performance.now() - started) / 1000,
  };
  rows.push(row);
  console.log(JSON.stringify(row));
  xt.dispose();
  labels.dispose();
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify({ command: `npx tsx scripts/ab2-start-error.ts ${process.argv.slice(2).join(' ')}`.trim(), teacher: teacherPath, guidance: guidance.scale, teacherSteps, tMin, rows }, null, 2)}\n`);
}
model.dispose();
gpu.destroy();
