// The evaluation table: the teacher with Euler and AB-2 at several NFE, and each distilled student
// at its own step count; for each row FD-LeNet, class consistency and images/s, plus a sample grid.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateSamples } from '../models/generate';
import { NFE_PER_STEP, type Solver } from '../models/sampler';
import { loadClassifier } from './classifier';
import { FD_LENET_COUNT, classConsistency, fdLenet, fdReferenceSet, featureStats } from './metrics';
import { type LoadedWeights, modelFromWeights, saveGrid, studentSteps } from './run';

export interface EvalRow {
  model: 'teacher' | 'student';
  solver: Solver;
  steps: number;
  nfe: number;
  guidance: number;
  count: number;
  fdLenet: number;
  classConsistency: number;
  imagesPerSec: number;
  grid: string;
}

export interface EvalOptions {
  teacher: LoadedWeights;
  students: LoadedWeights[];
  classifierPath: string;
  /** generated digits per row (FD_LENET_COUNT = 2000 for comparable tables) */
  count: number;
  teacherNfe: number[];
  teacherSolvers: Solver[];
  /** guidance weight for teacher rows (students have theirs baked in) */
  guidance: number;
  seed: number;
  outDir: string;
  batch?: number;
  tMin?: number;
  onRow?: (row: EvalRow) => void;
}

/** Generate `count` digits (labels cycling 0..9) and measure them. */
async function measure(opts: EvalOptions, w: LoadedWeights, solver: Solver, steps: number, guidance: number, name: string, refStats: Awaited<ReturnType<typeof featureStats>>, classifier: ReturnType<typeof loadClassifier>['model']) {
  const unet = w.run.model.unet;
  const shape = [unet.inChannels, unet.imageSize, unet.imageSize];
  const labels = Int32Array.from({ length: opts.count }, (_, i) => i % unet.numClasses);
  const model = modelFromWeights(w);
  const started = performance.now();
  const { samples: images, nfe } = await generateSamples({ model, labels, sampleShape: shape, steps, solver, kac: w.run.kac, tMin: opts.tMin, seed: opts.seed, guidance: { scale: guidance, nullClass: unet.numClasses }, batchSize: opts.batch });
  const secs = (performance.now() - started) / 1000;
  model.dispose();
  const grid = join(opts.outDir, 'grids', `${name}.png`);
  saveGrid(grid, images, Math.min(100, opts.count), shape);
  return {
    nfe,
    count: opts.count,
    fdLenet: await fdLenet(classifier, images, refStats, { allowCountMismatch: opts.count !== FD_LENET_COUNT }),
    classConsistency: await classConsistency(classifier, images, labels),
    imagesPerSec: opts.count / secs,
    grid,
  };
}

export async function evaluate(opts: EvalOptions): Promise<EvalRow[]> {
  mkdirSync(join(opts.outDir, 'grids'), { recursive: true });
  const { model: classifier } = loadClassifier(opts.classifierPath);
  const refStats = await featureStats(classifier, fdReferenceSet().images);
  const rows: EvalRow[] = [];
  const add = (row: EvalRow) => {
    rows.push(row);
    opts.onRow?.(row);
  };
  for (const solver of opts.teacherSolvers) {
    for (const nfe of opts.teacherNfe) {
      const steps = nfe / NFE_PER_STEP[solver];
      if (!Number.isInteger(steps) || steps < 1) continue;
      const m = await measure(opts, opts.teacher, solver, steps, opts.guidance, `teacher-${solver}-${nfe}nfe`, refStats, classifier);
      add({ model: 'teacher', solver, steps, guidance: opts.guidance, ...m });
    }
  }
  for (const s of opts.students) {
    const steps = studentSteps(s);
    if (!steps) throw new Error(`${s.path}: not a distilled student (no stage in its config)`);
    const m = await measure(opts, s, 'euler', steps, 1, `student-${steps}step`, refStats, classifier);
    add({ model: 'student', solver: 'euler', steps, guidance: Number(s.run.guidance ?? 1), ...m });
  }
  classifier.dispose();
  writeFileSync(join(opts.outDir, 'metrics.json'), `${JSON.stringify({ count: opts.count, seed: opts.seed, reference: 'fdReferenceSet (2,000 real digits)', rows }, null, 2)}\n`);
  writeFileSync(join(opts.outDir, 'table.md'), metricsTable(rows));
  return rows;
}

export function metricsTable(rows: EvalRow[]): string {
  const lines = ['| model | solver | NFE | guidance | FD-LeNet | class consistency | images/s |', '| --- | --- | ---: | ---: | ---: | ---: | ---: |'];
  for (const r of rows) {
    const name = r.model === 'teacher' ? 'teacher' : `student (${r.steps}-step)`;
    lines.push(`| ${name} | ${r.solver} | ${r.nfe} | ${r.guidance} | ${r.fdLenet.toFixed(2)} | ${(100 * r.classConsistency).toFixed(1)}% | ${r.imagesPerSec.toFixed(1)} |`);
  }
  return `${lines.join('\n')}\n`;
}
