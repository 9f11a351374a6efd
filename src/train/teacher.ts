// Teacher training by conditional flow matching on the Kac process (method.md section 2):
// t ~ U[0, T] per example, K sampled exactly, x_t = f(t) x0 + K, loss = mean |u_theta(x_t, t, y) - u_t(x_t | x0)|^2,
// with label dropout to the null class for classifier-free guidance.
import { type Module, Tensor, tensor } from '../engine/index';
import { Philox } from '../engine/philox';
import { type KacConfig, kacTrainingBatch } from '../models/kac';
import type { VelocityModel } from '../models/sampling';
import type { Dataset } from '../data/index';
import { type LoopResult, type RunOptions, trainLoop } from './loop';

/** Examples of a step: a fresh permutation of the data per epoch, all from the run's seed. */
export function batchIndices(n: number, batch: number, step: number, seed: number): Int32Array {
  const out = new Int32Array(batch);
  let perm: Int32Array | null = null;
  let permEpoch = -1;
  for (let j = 0; j < batch; j++) {
    const i = step * batch + j;
    const epoch = Math.floor(i / n);
    if (epoch !== permEpoch) {
      perm = Int32Array.from({ length: n }, (_, k) => k);
      const rng = new Philox(seed, 0x40000000 + epoch);
      for (let k = n - 1; k > 0; k--) {
        const r = Math.floor(rng.uniform() * (k + 1));
        [perm[k], perm[r]] = [perm[r], perm[k]];
      }
      permEpoch = epoch;
    }
    out[j] = perm![i % n];
  }
  return out;
}

export interface TeacherBatch {
  x0: Float32Array;
  xt: Float32Array;
  target: Float32Array;
  t: Float64Array;
  labels: Int32Array;
}

/** The host-side batch of one step (float64 Kac sampling on the CPU: ~0.3 us per coordinate). */
export function teacherBatch(data: Dataset, batch: number, step: number, seed: number, kac: KacConfig, labelDropout: number): TeacherBatch {
  const per = data.channels * data.height * data.width;
  const idx = batchIndices(data.n, batch, step, seed);
  const rng = new Philox(seed, step);
  const x0 = new Float32Array(batch * per);
  const labels = new Int32Array(batch);
  const t = new Float64Array(batch);
  idx.forEach((k, j) => {
    x0.set(data.images.subarray(k * per, (k + 1) * per), j * per);
    labels[j] = rng.uniform() < labelDropout ? data.numClasses : data.labels[k];
    t[j] = rng.uniform() * kac.T;
  });
  const { xt, target } = kacTrainingBatch(x0, per, t, rng, kac);
  return { x0, xt, target, t, labels };
}

export interface TeacherOptions<M extends Module & VelocityModel> extends RunOptions<M> {
  data: Dataset;
  /** everything that defines the run (model, kac, optimizer, data): stored in checkpoints */
  config: Record<string, unknown>;
  kac: KacConfig;
  batch: number;
  labelDropout: number;
  seed: number;
}

export function teacherLoss(model: VelocityModel, b: TeacherBatch, shape: number[]): Tensor {
  const n = b.labels.length;
  const xt = tensor(b.xt, [n, ...shape]);
  const target = tensor(b.target, [n, ...shape]);
  const t = tensor(Float32Array.from(b.t), [n]);
  const y = tensor(b.labels, [n]);
  return model.forward(xt, t, y).sub(target).square().mean();
}

export function trainTeacher<M extends Module & VelocityModel>(opts: TeacherOptions<M>): Promise<LoopResult<M>> {
  const { data, kac, batch, labelDropout, seed, ...run } = opts;
  const shape = [data.channels, data.height, data.width];
  return trainLoop({
    label: 'teacher',
    ...run,
    kind: 'teacher',
    loss: (model, step) => teacherLoss(model, teacherBatch(data, batch, step, seed, kac, labelDropout), shape),
  });
}
