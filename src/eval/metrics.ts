/**
 * Sample-quality metrics computed with our own LeNet digit classifier (src/eval/classifier.ts):
 *
 * - FD-LeNet: the Frechet distance between Gaussians fitted (float64 mean and unbiased covariance)
 *   to the classifier's penultimate features (84 after the ReLU) of generated digits and of real
 *   reference digits. Like FID, it is biased upward for finite samples, and the bias depends on
 *   the sample counts, so every comparison must use the same counts: FD_LENET_COUNT = 2,000
 *   generated digits against the 2,000-digit reference set below. `fdLenet` refuses unequal
 *   counts unless told otherwise.
 * - Class consistency: the share of (class-guided) samples the classifier labels as the requested
 *   class.
 *
 * The FD-LeNet reference set (`fdReferenceSet`). The held-out split of `loadBuiltinMnist` has only
 * 1,000 digits (100 per class), so the 2,000 real reference digits are
 *   (a) all 1,000 held-out digits, followed by
 *   (b) 1,000 digits of the train split: the first 1,000 indices of a Fisher-Yates permutation of
 *       the 9,000 train digits drawn from `new Philox(FD_REFERENCE_SEED, 0)` (seed 20240601).
 * Part (b) was seen by the classifier during training (and by generators trained on the train
 * split), so its features may sit slightly closer to the training distribution than truly unseen
 * digits would; the effect on FD is small next to the gaps this metric is used to measure, but
 * FD-LeNet here is not a fully held-out number. It is fixed and identical for every row of every
 * table, which is what makes rows comparable. Class balance of the reference set: exactly 100 per
 * class in (a), approximately 100 per class in (b) (random draw; see `fdReferenceSet().labels`).
 *
 * Each dataset with its own classifier has its own reference set (`referenceSetFor`): Fashion-MNIST's
 * (`fashionReferenceSet`) is the first 200 images of each class, in file order, of its 10,000-image
 * test split: 2,000 images, all held out, exactly balanced. MNIST's set above is unchanged.
 */
import { Philox } from '../engine/index';
import { type LeNet, classifierFeatures, evalDatasetFor, predict, permutation } from './classifier';
import { type DataSpec, loadBuiltinMnist, loadFashionMnist } from '../data/index';
import { type Gaussian, frechetDistanceGaussians, meanCov } from './linalg';

/** Generated and reference digits per FD-LeNet measurement. */
export const FD_LENET_COUNT = 2000;
/** Philox seed of the permutation that picks the 1,000 train digits of the reference set. */
export const FD_REFERENCE_SEED = 20240601;
const PIXELS = 28 * 28;

export interface ReferenceSet {
  /** N*1*28*28 values in [-1, 1] */
  images: Float32Array;
  labels: Int32Array;
  n: number;
  description: string;
}

/** The fixed 2,000-digit FD-LeNet reference set: 1,000 held-out digits + 1,000 train digits (see the file comment). */
export function fdReferenceSet(): ReferenceSet {
  const test = loadBuiltinMnist({ split: 'test' });
  const train = loadBuiltinMnist({ split: 'train' });
  const fromTrain = FD_LENET_COUNT - test.n;
  const perm = permutation(train.n, new Philox(FD_REFERENCE_SEED, 0)).subarray(0, fromTrain);
  const images = new Float32Array(FD_LENET_COUNT * PIXELS);
  const labels = new Int32Array(FD_LENET_COUNT);
  images.set(test.images, 0);
  labels.set(test.labels, 0);
  perm.forEach((src, k) => {
    images.set(train.images.subarray(src * PIXELS, (src + 1) * PIXELS), (test.n + k) * PIXELS);
    labels[test.n + k] = train.labels[src];
  });
  return {
    images,
    labels,
    n: FD_LENET_COUNT,
    description: `all ${test.n} held-out digits of loadBuiltinMnist + train digits at the first ${fromTrain} indices of permutation(9000, Philox(${FD_REFERENCE_SEED}, 0)) (seen in training)`,
  };
}

/** Fashion-MNIST's 2,000-image reference set: the first 200 test images of each class, in file order (all held out). */
export function fashionReferenceSet(): ReferenceSet {
  const test = loadFashionMnist({ split: 'test' });
  const perClass = FD_LENET_COUNT / test.numClasses;
  const images = new Float32Array(FD_LENET_COUNT * PIXELS);
  const labels = new Int32Array(FD_LENET_COUNT);
  const taken = new Array<number>(test.numClasses).fill(0);
  let k = 0;
  for (let i = 0; i < test.n && k < FD_LENET_COUNT; i++) {
    const c = test.labels[i]!;
    if (taken[c]! >= perClass) continue;
    taken[c]!++;
    images.set(test.images.subarray(i * PIXELS, (i + 1) * PIXELS), k * PIXELS);
    labels[k++] = c;
  }
  if (k !== FD_LENET_COUNT) throw new Error(`fashionReferenceSet: the test split has fewer than ${perClass} images of some class`);
  return { images, labels, n: FD_LENET_COUNT, description: `the first ${perClass} images of each class of Fashion-MNIST's test split (t10k), in file order (held out)` };
}

/** The FD reference set of the dataset a model was trained on (see `evalDatasetFor` in classifier.ts). */
export function referenceSetFor(spec: DataSpec): ReferenceSet {
  return evalDatasetFor(spec) === 'fashion' ? fashionReferenceSet() : fdReferenceSet();
}

function count(images: Float32Array, what: string): number {
  if (images.length === 0 || images.length % PIXELS !== 0) throw new Error(`${what}: ${images.length} values are not a whole, non-zero number of 1x28x28 images`);
  return images.length / PIXELS;
}

/** Gaussian (float64 mean, unbiased covariance) of the classifier's penultimate features of `images`. */
export async function featureStats(classifier: LeNet, images: Float32Array, batch = 500): Promise<Gaussian> {
  const n = count(images, 'featureStats');
  const feats = await classifierFeatures(classifier, images, batch);
  return meanCov(feats, n, classifier.config.features);
}

export interface FdLenetOptions {
  /** allow different numbers of generated and reference digits (the FD bias then differs) */
  allowCountMismatch?: boolean;
  batch?: number;
}

/**
 * FD-LeNet between `generated` (N*1*28*28 values in [-1, 1]) and `reference` (images in the same
 * layout, or their precomputed `featureStats`). Both must hold the same number of digits unless
 * `allowCountMismatch`; for table rows use FD_LENET_COUNT generated digits against `fdReferenceSet()`.
 */
export async function fdLenet(classifier: LeNet, generated: Float32Array, reference: Float32Array | Gaussian, opts: FdLenetOptions = {}): Promise<number> {
  const nGen = count(generated, 'fdLenet (generated)');
  const ref = reference instanceof Float32Array ? await featureStats(classifier, reference, opts.batch) : reference;
  if (!opts.allowCountMismatch && ref.n !== nGen) {
    throw new Error(`fdLenet: ${nGen} generated digits against ${ref.n} reference digits; FD is biased by the sample count, so compare equal counts (FD_LENET_COUNT = ${FD_LENET_COUNT}) or pass allowCountMismatch`);
  }
  if (ref.d !== classifier.config.features) throw new Error(`fdLenet: reference statistics have ${ref.d} dimensions, the classifier ${classifier.config.features}`);
  const gen = await featureStats(classifier, generated, opts.batch);
  return frechetDistanceGaussians(gen, ref);
}

export interface ClassConsistencyReport {
  /** share of images classified as their requested class */
  share: number;
  n: number;
  /** per requested class: share classified as that class (NaN for classes not requested) */
  perClass: number[];
  /** confusion[requested][predicted] counts */
  confusion: number[][];
  predictions: Int32Array;
}

/** Class consistency with per-class shares and the confusion matrix. */
export async function classConsistencyReport(classifier: LeNet, images: Float32Array, labels: ArrayLike<number>, batch = 500): Promise<ClassConsistencyReport> {
  const n = count(images, 'classConsistency');
  if (labels.length !== n) throw new Error(`classConsistency: ${n} images but ${labels.length} requested labels`);
  const classes = classifier.config.classes;
  const predictions = await predict(classifier, images, batch);
  const confusion = Array.from({ length: classes }, () => new Array<number>(classes).fill(0));
  let hits = 0;
  for (let i = 0; i < n; i++) {
    const want = labels[i];
    if (!Number.isInteger(want) || want < 0 || want >= classes) throw new Error(`classConsistency: label ${i} is ${want}, not a class in 0..${classes - 1}`);
    confusion[want][predictions[i]]++;
    if (predictions[i] === want) hits++;
  }
  const perClass = confusion.map((row, c) => {
    const total = row.reduce((a, b) => a + b, 0);
    return total ? row[c] / total : NaN;
  });
  return { share: hits / n, n, perClass, confusion, predictions };
}

/** Share of `images` (N*1*28*28 in [-1, 1]) that the classifier labels as the requested `labels[i]`. */
export async function classConsistency(classifier: LeNet, images: Float32Array, labels: ArrayLike<number>, batch = 500): Promise<number> {
  return (await classConsistencyReport(classifier, images, labels, batch)).share;
}
