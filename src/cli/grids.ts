// Sample grids written at checkpoints by train and distill.
import { join } from 'node:path';
import { type Solver, sample } from '../models/sampling';
import type { ModelRunConfig } from '../models/weights';
import { saveGrid, samplesDir } from '../train/images';

/** Sample a labelled grid of `count` digits with a model's EMA weights (called at checkpoints).
 *  `count` is the training batch size, so sampling reuses the kernels compiled for training (a new
 *  batch size compiles new convolution kernels: tens of seconds on a software GPU). */
export function gridWriter(outDir: string, shape: number[], numClasses: number, run: ModelRunConfig, steps: number, solver: Solver, count: number, tMin?: number) {
  return async (model: Parameters<typeof sample>[0]['model'], step: number) => {
    const labels = Int32Array.from({ length: count }, (_, i) => i % numClasses);
    const { samples } = await sample({ model, labels, sampleShape: shape, steps, solver, kac: run.kac, tMin, seed: 1234 });
    saveGrid(join(samplesDir(outDir), `step-${String(step).padStart(8, '0')}.png`), (await samples.toArray()) as Float32Array, labels.length, shape, numClasses);
    samples.dispose();
  };
}
