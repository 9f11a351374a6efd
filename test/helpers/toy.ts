// The small synthetic image task of the training tests (shared by test/train.test.ts and test/reliability.test.ts):
// two classes of 4x4 images and a two-layer conv velocity net, so a training run takes seconds.
import { Conv2d, Embedding, Module, type Tensor, concat } from '../../src/engine/index';
import type { Dataset } from '../../src/data/index';
import type { OptimConfig } from '../../src/train/loop';

/** Two classes of 4x4 images: a bright left or right half, plus a little deterministic jitter. */
export function toyData(n = 64): Dataset {
  const images = new Float32Array(n * 16);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    labels[i] = i % 2;
    for (let p = 0; p < 16; p++) images[i * 16 + p] = ((p % 4 < 2) === (labels[i] === 0) ? 0.8 : -0.8) + 0.1 * Math.sin(i * 7 + p);
  }
  return { images, labels, n, channels: 1, height: 4, width: 4, numClasses: 2, name: 'toy' };
}

/** A small conv net with t and the class as extra input channels. */
export class ToyVelocity extends Module {
  c1 = new Conv2d(3, 16, 3, { padding: 1 });
  c2 = new Conv2d(16, 1, 3, { padding: 1 });
  cls = new Embedding(3, 1);
  forward(x: Tensor, t: Tensor, y: Tensor): Tensor {
    const b = x.shape[0];
    const tc = t.reshape([b, 1, 1, 1]).expand([b, 1, 4, 4]);
    const yc = this.cls.forward(y).reshape([b, 1, 1, 1]).expand([b, 1, 4, 4]);
    return this.c2.forward(this.c1.forward(concat([x, tc, yc], 1)).silu());
  }
}

export const toyOptim = (steps: number, lr = 3e-3): OptimConfig => ({ steps, lr, warmupSteps: 5, weightDecay: 0, maxGradNorm: 1, emaDecay: 0.99, emaWarmup: 5 });
