/**
 * Training and running the LeNet digit classifier (models/lenet.ts) behind the evaluation metrics
 * (eval/metrics.ts): FD-LeNet (Frechet distance of its penultimate features) and class
 * consistency of guided samples. One classifier per dataset (`classifierPathFor`): MNIST's below,
 * Fashion-MNIST's trained the same way on its 60,000 training images (scripts/train-classifier.ts
 * --data fashion).
 *
 * Trained on the 9,000-digit train split of `loadBuiltinMnist` with AdamW, random integer shifts
 * of up to +-2 pixels (on the CPU, seeded Philox), warmup then cosine decay of the learning rate.
 * The held-out 'test' split (1,000 digits) is never used for training or model selection: it is only
 * measured at the end. Checkpoints are safetensors with the config and accuracy in `__metadata__`.
 */
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AdamW, Philox, Tensor, manualSeed, noGrad, scope, tensor } from '../engine/index';
import { decodeSafetensors, encodeSafetensors, type SafetensorsTensorInput } from '../io/safetensors';
import { type Dataset, type DataSpec, dataWhere, loadBuiltinMnist } from '../data/index';
import { IMAGE_SIZE, LENET_CONFIG, LeNet, type LeNetConfig, PIXELS } from '../models/lenet';

export { IMAGE_SIZE, LENET_CONFIG, LeNet, type LeNetConfig };


// ---- data helpers -------------------------------------------------------------------------------

/** Fisher-Yates permutation of 0..n-1 from a Philox stream. */
export function permutation(n: number, rng: Philox): Int32Array {
  const p = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rng.uniform() * (i + 1));
    const t = p[i];
    p[i] = p[j];
    p[j] = t;
  }
  return p;
}

/** Copy image `src` of `images` into `out` at `dst`, shifted by (dx, dy) pixels; uncovered pixels get -1 (background). */
function shiftedCopy(images: Float32Array, src: number, out: Float32Array, dst: number, dx: number, dy: number): void {
  const s = src * PIXELS;
  const d = dst * PIXELS;
  for (let y = 0; y < IMAGE_SIZE; y++) {
    const sy = y - dy;
    for (let x = 0; x < IMAGE_SIZE; x++) {
      const sx = x - dx;
      out[d + y * IMAGE_SIZE + x] = sy >= 0 && sy < IMAGE_SIZE && sx >= 0 && sx < IMAGE_SIZE ? images[s + sy * IMAGE_SIZE + sx] : -1;
    }
  }
}

/** A batch of images (by index) with random integer shifts in [-maxShift, maxShift] on both axes. */
export function augmentedBatch(images: Float32Array, indices: ArrayLike<number>, maxShift: number, rng: Philox): Float32Array {
  const out = new Float32Array(indices.length * PIXELS);
  for (let b = 0; b < indices.length; b++) {
    const dx = maxShift > 0 ? Math.floor(rng.uniform() * (2 * maxShift + 1)) - maxShift : 0;
    const dy = maxShift > 0 ? Math.floor(rng.uniform() * (2 * maxShift + 1)) - maxShift : 0;
    shiftedCopy(images, indices[b], out, b, dx, dy);
  }
  return out;
}

// ---- inference ------------------------------------------------------------------------------------

function checkImages(images: Float32Array, what: string): number {
  if (images.length % PIXELS !== 0) throw new Error(`${what}: ${images.length} values are not a whole number of 28x28 images`);
  return images.length / PIXELS;
}

/**
 * Run `fn` on the model over `images` (N*784 values) in batches, without gradients, each batch in
 * its own memory scope; returns the N*width outputs read back to the host.
 */
export async function batchedOutputs(
  model: LeNet,
  images: Float32Array,
  fn: (model: LeNet, x: Tensor) => Tensor,
  width: number,
  batch = 500,
): Promise<Float32Array> {
  const n = checkImages(images, 'batchedOutputs');
  const out = new Float32Array(n * width);
  const wasTraining = model.training;
  model.eval();
  try {
    for (let start = 0; start < n; start += batch) {
      const end = Math.min(n, start + batch);
      const values = await scope(() =>
        noGrad(async () => {
          const x = tensor(images.subarray(start * PIXELS, end * PIXELS), [end - start, 1, IMAGE_SIZE, IMAGE_SIZE]);
          const y = fn(model, x);
          if (y.shape.join() !== [end - start, width].join()) throw new Error(`batchedOutputs: output [${y.shape.join(', ')}], expected [${end - start}, ${width}]`);
          return y.toFloat32Array();
        }),
      );
      out.set(values, start * width);
    }
  } finally {
    model.train(wasTraining);
  }
  return out;
}

/** Logits [N * classes] of images (N*784 values in [-1, 1]). */
export function classifierLogits(model: LeNet, images: Float32Array, batch = 500): Promise<Float32Array> {
  return batchedOutputs(model, images, (m, x) => m.forward(x), model.config.classes, batch);
}

/** Penultimate features [N * features]. */
export function classifierFeatures(model: LeNet, images: Float32Array, batch = 500): Promise<Float32Array> {
  return batchedOutputs(model, images, (m, x) => m.features(x), model.config.features, batch);
}

/** Arg-max class of each row of logits [N * classes] (first maximum on ties). */
export function argmax(logits: Float32Array, classes: number): Int32Array {
  const n = logits.length / classes;
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let c = 1; c < classes; c++) if (logits[i * classes + c] > logits[i * classes + best]) best = c;
    out[i] = best;
  }
  return out;
}

/** Predicted classes of images (N*784 values). */
export async function predict(model: LeNet, images: Float32Array, batch = 500): Promise<Int32Array> {
  return argmax(await classifierLogits(model, images, batch), model.config.classes);
}

/** Share of `data` classified correctly. */
export async function evaluateAccuracy(model: LeNet, data: Pick<Dataset, 'images' | 'labels'>, batch = 500): Promise<number> {
  const pred = await predict(model, data.images, batch);
  if (pred.length !== data.labels.length) throw new Error(`evaluateAccuracy: ${pred.length} images but ${data.labels.length} labels`);
  let correct = 0;
  for (let i = 0; i < pred.length; i++) if (pred[i] === data.labels[i]) correct++;
  return correct / pred.length;
}

// ---- training ---------------------------------------------------------------------------------------

export interface TrainClassifierOptions {
  epochs?: number;
  batch?: number;
  /** peak learning rate (after warmup; cosine decay to 2% of it at the end) */
  lr?: number;
  weightDecay?: number;
  warmupSteps?: number;
  /** largest random shift in pixels (0: no augmentation) */
  maxShift?: number;
  seed?: number;
  config?: LeNetConfig;
  /** training data; default: the train split of `loadBuiltinMnist` */
  train?: Dataset;
  /** called every `progressEvery` steps and at the end of each epoch */
  onProgress?: (p: TrainProgress) => void;
  progressEvery?: number;
}

export interface TrainProgress {
  epoch: number;
  step: number;
  totalSteps: number;
  /** mean training loss over the steps since the last report (end of epoch: over the epoch) */
  loss: number;
  lr: number;
  seconds: number;
  endOfEpoch: boolean;
}

export interface TrainClassifierResult {
  model: LeNet;
  steps: number;
  seconds: number;
  /** options actually used (for the checkpoint's metadata) */
  options: Required<Omit<TrainClassifierOptions, 'onProgress' | 'train' | 'config'>>;
}

export const TRAIN_DEFAULTS = { epochs: 8, batch: 64, lr: 2e-3, weightDecay: 1e-4, warmupSteps: 100, maxShift: 2, seed: 1, progressEvery: 50 };

/** Train a LeNet on the (augmented) train split with AdamW. The GPU must be initialised (initGpu). */
export async function trainClassifier(opts: TrainClassifierOptions = {}): Promise<TrainClassifierResult> {
  const o = { ...TRAIN_DEFAULTS, ...Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) } as typeof TRAIN_DEFAULTS & TrainClassifierOptions;
  const data = opts.train ?? loadBuiltinMnist({ split: 'train' });
  if (data.channels !== 1 || data.height !== IMAGE_SIZE || data.width !== IMAGE_SIZE) throw new Error(`trainClassifier: expects 1x28x28 images, got ${data.channels}x${data.height}x${data.width}`);
  manualSeed(o.seed);
  const model = new LeNet(opts.config ?? LENET_CONFIG);
  const opt = new AdamW(model.parameters(), { lr: o.lr, weightDecay: o.weightDecay });
  const rng = new Philox(o.seed, 1);
  const stepsPerEpoch = Math.floor(data.n / o.batch); // the remainder of each shuffled epoch is dropped
  const totalSteps = stepsPerEpoch * o.epochs;
  const lrAt = (step: number) => {
    if (step < o.warmupSteps) return (o.lr * (step + 1)) / o.warmupSteps;
    const t = (step - o.warmupSteps) / Math.max(1, totalSteps - o.warmupSteps);
    return o.lr * (0.02 + 0.98 * 0.5 * (1 + Math.cos(Math.PI * t)));
  };
  const t0 = performance.now();
  let step = 0;
  let pending: Tensor[] = [];
  let epochSum = 0;
  let epochCount = 0;
  // reads the losses recorded since the last call; this also bounds how far the host runs ahead
  const drain = async () => {
    let sum = 0;
    for (const l of pending) {
      sum += await l.item();
      l.dispose();
    }
    const count = pending.length;
    epochSum += sum;
    epochCount += count;
    pending = [];
    return count ? sum / count : NaN;
  };
  const report = (epoch: number, loss: number, endOfEpoch: boolean) =>
    o.onProgress?.({ epoch, step, totalSteps, loss, lr: opt.lr, seconds: (performance.now() - t0) / 1000, endOfEpoch });
  model.train();
  for (let epoch = 0; epoch < o.epochs; epoch++) {
    const perm = permutation(data.n, rng);
    for (let b = 0; b < stepsPerEpoch; b++) {
      const idx = perm.subarray(b * o.batch, (b + 1) * o.batch);
      const xs = augmentedBatch(data.images, idx, o.maxShift, rng);
      const ys = Int32Array.from(idx, (i) => data.labels[i]);
      opt.lr = lrAt(step);
      const loss = scope(() => {
        const x = tensor(xs, [o.batch, 1, IMAGE_SIZE, IMAGE_SIZE]);
        const y = tensor(ys, [o.batch]);
        const l = model.forward(x).crossEntropy(y);
        l.backward();
        opt.step();
        opt.zeroGrad();
        return l.detach();
      });
      pending.push(loss);
      step++;
      if (step % o.progressEvery === 0) report(epoch, await drain(), false);
    }
    await drain();
    report(epoch, epochSum / epochCount, true);
    epochSum = epochCount = 0;
  }
  const { epochs, batch, lr, weightDecay, warmupSteps, maxShift, seed, progressEvery } = o;
  return { model, steps: step, seconds: (performance.now() - t0) / 1000, options: { epochs, batch, lr, weightDecay, warmupSteps, maxShift, seed, progressEvery } };
}

// ---- checkpoints ------------------------------------------------------------------------------------

export const CLASSIFIER_FORMAT = 'distillkac-lenet-v1';

/** Safetensors bytes of the model; `metadata` values are stored as strings (objects as JSON). */
export async function encodeClassifier(model: LeNet, metadata: Record<string, unknown> = {}): Promise<Uint8Array> {
  const state = await model.stateDict();
  const tensors: Record<string, SafetensorsTensorInput> = {};
  for (const [name, t] of Object.entries(state)) tensors[name] = { dtype: 'F32', shape: t.shape, data: t.data };
  const meta: Record<string, string> = { format: CLASSIFIER_FORMAT, config: JSON.stringify(model.config) };
  for (const [k, v] of Object.entries(metadata)) meta[k] = typeof v === 'string' ? v : JSON.stringify(v);
  return encodeSafetensors(tensors, meta);
}

export async function saveClassifier(path: string, model: LeNet, metadata: Record<string, unknown> = {}): Promise<void> {
  const bytes = await encodeClassifier(model, metadata);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, bytes);
}

export interface LoadedClassifier {
  model: LeNet;
  metadata: Record<string, string>;
}

/** A LeNet from safetensors bytes written by `encodeClassifier` (on the default GPU). */
export function decodeClassifier(bytes: Uint8Array, name = 'classifier checkpoint'): LoadedClassifier {
  const { tensors, metadata } = decodeSafetensors(bytes, { name });
  if (metadata.format !== CLASSIFIER_FORMAT) {
    throw new Error(`${name}: __metadata__.format is ${JSON.stringify(metadata.format)}, expected ${CLASSIFIER_FORMAT} (not a classifier checkpoint written by saveClassifier)`);
  }
  let config: LeNetConfig;
  try {
    config = JSON.parse(metadata.config) as LeNetConfig;
  } catch (e) {
    throw new Error(`${name}: __metadata__.config is not valid JSON (${(e as Error).message})`);
  }
  const model = new LeNet(config);
  const state: Record<string, { shape: number[]; data: Float32Array }> = {};
  for (const [k, t] of Object.entries(tensors)) {
    if (!(t.data instanceof Float32Array)) throw new Error(`${name}: tensor ${k} has dtype ${t.dtype}, expected a float type`);
    state[k] = { shape: t.shape, data: t.data };
  }
  model.loadStateDict(state);
  model.eval();
  return { model, metadata };
}

export function loadClassifier(path: string): LoadedClassifier {
  const buf = readFileSync(path);
  return decodeClassifier(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength), path);
}

/** Where scripts/train-classifier.ts writes the committed checkpoint (relative to the repo root). */
export const DEFAULT_CLASSIFIER_PATH = 'checkpoints/classifier/lenet.safetensors';

/** The committed classifier of each dataset with one, in checkpoints/classifier/ (scripts/train-classifier.ts --data KEY). */
export const CLASSIFIER_FILES = { mnist: 'lenet.safetensors', fashion: 'fashion-lenet.safetensors' } as const;

/** Absolute path of the committed MNIST checkpoint, independent of the working directory. */
export function defaultClassifierPath(): string {
  return fileURLToPath(new URL('../../' + DEFAULT_CLASSIFIER_PATH, import.meta.url));
}

/**
 * Which evaluation a model trained on `spec` gets: the classifier trained by this project on that
 * dataset's training split, and the name of its FD reference set (`referenceSetFor` in metrics.ts).
 * Built-in MNIST and Fashion-MNIST have their own. IDX files and grayscale 28x28 PNG folders keep
 * the MNIST classifier and reference set, as before (meaningful for digits only: pass --classifier
 * for other data). CIFAR-10 and other RGB data have no LeNet classifier (it reads 1x28x28 images).
 */
export function evalDatasetFor(spec: DataSpec): 'mnist' | 'fashion' {
  switch (spec.kind) {
    case 'fashion':
      return 'fashion';
    case 'cifar10':
      throw new Error(`${dataWhere(spec)}: FD-LeNet and class consistency need a classifier of 1x28x28 images; this project has none for CIFAR-10's 3x32x32 RGB images`);
    default:
      return 'mnist';
  }
}

/** Absolute path of the committed classifier for data `spec` (see `evalDatasetFor`). */
export function classifierPathFor(spec: DataSpec): string {
  return fileURLToPath(new URL(`../../checkpoints/classifier/${CLASSIFIER_FILES[evalDatasetFor(spec)]}`, import.meta.url));
}
