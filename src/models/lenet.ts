// The LeNet-style digit classifier behind FD-LeNet and class consistency (eval/metrics.ts); its
// training, batching and checkpoint files are in eval/classifier.ts.
//
//   x [N, 1, 28, 28] in [-1, 1]
//   -> conv k x k (padding k/2, c1 channels) -> relu -> avgpool 2x   [N, c1, 14, 14]
//   -> conv k x k (no padding, c2 channels)  -> relu -> avgpool 2x   [N, c2, 5, 5]   (k = 5)
//   -> flatten -> Linear(hidden) -> relu -> Linear(features) -> relu  = features(x)
//   -> Linear(10)                                                    = forward(x) (logits)
import { Conv2d, Linear, Module, Tensor } from '../engine/index';

export interface LeNetConfig {
  /** channels of the two conv layers */
  c1: number;
  c2: number;
  /** conv kernel size (odd) */
  kernel: number;
  /** width of the first fully connected layer */
  hidden: number;
  /** width of the penultimate layer (the FD-LeNet feature dimension) */
  features: number;
  classes: number;
}

export const LENET_CONFIG: LeNetConfig = { c1: 8, c2: 16, kernel: 5, hidden: 120, features: 84, classes: 10 };

export const IMAGE_SIZE = 28;
export const PIXELS = IMAGE_SIZE * IMAGE_SIZE;

export class LeNet extends Module {
  conv1: Conv2d;
  conv2: Conv2d;
  fc1: Linear;
  fc2: Linear;
  fc3: Linear;
  readonly config: LeNetConfig;
  /** spatial size after the second pool */
  private readonly flat: number;

  constructor(config: LeNetConfig = LENET_CONFIG) {
    super();
    const k = config.kernel;
    if (!Number.isInteger(k) || k < 1 || k % 2 !== 1) throw new Error(`LeNet: kernel must be an odd positive integer, got ${k}`);
    this.config = { ...config };
    this.conv1 = new Conv2d(1, config.c1, k, { padding: (k - 1) / 2 });
    this.conv2 = new Conv2d(config.c1, config.c2, k);
    const s2 = IMAGE_SIZE / 2 - k + 1; // after conv2
    if (s2 < 2 || s2 % 2 !== 0) throw new Error(`LeNet: kernel ${k} leaves a ${s2}x${s2} map after conv2 (need an even size >= 2)`);
    this.flat = config.c2 * (s2 / 2) * (s2 / 2);
    this.fc1 = new Linear(this.flat, config.hidden);
    this.fc2 = new Linear(config.hidden, config.features);
    this.fc3 = new Linear(config.features, config.classes);
  }

  /** Penultimate activations [N, features] (after the ReLU) of images x [N, 1, 28, 28]. */
  features(x: Tensor): Tensor {
    if (x.ndim !== 4 || x.shape[1] !== 1 || x.shape[2] !== IMAGE_SIZE || x.shape[3] !== IMAGE_SIZE) {
      throw new Error(`LeNet: expects images [N, 1, 28, 28], got [${x.shape.join(', ')}]`);
    }
    let h = this.conv1.forward(x).relu().avgPool2x();
    h = this.conv2.forward(h).relu().avgPool2x();
    h = h.reshape([x.shape[0], this.flat]);
    h = this.fc1.forward(h).relu();
    return this.fc2.forward(h).relu();
  }

  /** Logits [N, classes]. */
  forward(x: Tensor): Tensor {
    return this.fc3.forward(this.features(x));
  }
}
