// The evaluation table: the teacher with Euler and AB-2 at several NFE, and each distilled student
// at its own step count; for each row FD-LeNet, class consistency and images/s, plus a sample grid.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../train/checkpoint';
import { DEFAULT_SAMPLE_BATCH, generateSamples } from '../models/generate';
import { NFE_PER_STEP, type Solver, type VelocityMaxima } from '../models/sampling';
import { velocitySummary, velocityTable } from './velocity';
import { evalDatasetFor, loadClassifier } from './classifier';
import { FD_LENET_COUNT, classConsistency, fdLenet, featureStats, referenceSetFor } from './metrics';
import { type LoadedWeights, modelFromWeights, studentSteps } from '../models/weights';
import { saveGrid } from '../train/images';
import { studentTMin } from '../models/weights';

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
  /** sha256 of the weights file the row was measured on (how --resume recognises a finished row) */
  weightsSha256: string;
  /** network passes per digit: NFE, twice that when the row is sampled with guidance (both branches
   *  run, in one batch of 2B, for every guided NFE); absent in rows written before it existed */
  passes?: number;
  /** largest |u| integrated per sampling step (and of both branches when guided); absent in rows
   *  written before it existed */
  velocityMax?: VelocityMaxima;
}

/** Network passes per digit of a row (rows written before `passes` existed: from model and guidance). */
export const rowPasses = (r: EvalRow) => r.passes ?? (r.model === 'teacher' && r.guidance !== 1 ? 2 * r.nfe : r.nfe);

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
  /** end time of every row (default: a student's own t-min from distillation, 1e-5 for the teacher) */
  tMin?: number;
  /** keep the rows of an earlier run in outDir made with the same weights and settings */
  resume?: boolean;
  onRow?: (row: EvalRow, reused: boolean) => void;
}

/** The settings that make two runs' rows comparable; a resumed run must match them all. */
function runSettings(opts: EvalOptions) {
  return { count: opts.count, seed: opts.seed, batch: opts.batch ?? DEFAULT_SAMPLE_BATCH, tMin: opts.tMin ?? null, classifierSha256: sha256(opts.classifierPath), reference: REFERENCE_NAMES[evalDatasetFor(opts.teacher.run.data)] };
}

/** How metrics.json names each dataset's FD reference set (MNIST's name is what earlier tables recorded). */
const REFERENCE_NAMES = { mnist: 'fdReferenceSet (2,000 real digits)', fashion: 'fashionReferenceSet (2,000 real Fashion-MNIST test images)' } as const;

const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');
const rowKey = (r: Pick<EvalRow, 'model' | 'solver' | 'steps' | 'guidance' | 'weightsSha256'>) => `${r.model}|${r.solver}|${r.steps}|${r.guidance}|${r.weightsSha256}`;

/** Rows of an earlier run in outDir with the same settings (none if there is no such run). */
function finishedRows(path: string, settings: ReturnType<typeof runSettings>): Map<string, EvalRow> {
  if (!existsSync(path)) return new Map();
  const old = JSON.parse(readFileSync(path, 'utf8')) as { settings?: unknown; rows?: EvalRow[] };
  if (JSON.stringify(old.settings) !== JSON.stringify(settings)) {
    throw new Error(`${path} was written with other settings (${JSON.stringify(old.settings)}); evaluate into another --out, or drop --resume to overwrite it`);
  }
  return new Map((old.rows ?? []).map((r) => [rowKey(r), r]));
}

/** One row of an evaluation run: which weights, how they are sampled, and the name of its grid. */
interface PlannedRow {
  w: LoadedWeights;
  model: EvalRow['model'];
  solver: Solver;
  steps: number;
  /** the guidance the row is recorded with (a student's baked-in weight) */
  guidance: number;
  /** the guidance applied while sampling (1 for students) */
  sampleGuidance: number;
  name: string;
}

/** Generate `count` digits (labels cycling 0..9) and measure them. */
async function measure(opts: EvalOptions, w: LoadedWeights, solver: Solver, steps: number, guidance: number, name: string, refStats: Awaited<ReturnType<typeof featureStats>>, classifier: ReturnType<typeof loadClassifier>['model']) {
  const unet = w.run.model.unet;
  const shape = [unet.inChannels, unet.imageSize, unet.imageSize];
  const labels = Int32Array.from({ length: opts.count }, (_, i) => i % unet.numClasses);
  const model = modelFromWeights(w);
  const started = performance.now();
  const { samples: images, nfe, velocityMax } = await generateSamples({ model, labels, sampleShape: shape, steps, solver, kac: w.run.kac, tMin: opts.tMin ?? studentTMin(w), seed: opts.seed, guidance: { scale: guidance, nullClass: unet.numClasses }, batchSize: opts.batch ?? DEFAULT_SAMPLE_BATCH, stats: true });
  const secs = (performance.now() - started) / 1000;
  model.dispose();
  const grid = join(opts.outDir, 'grids', `${name}.png`);
  saveGrid(grid, images, Math.min(100, opts.count), shape);
  return {
    nfe,
    passes: guidance !== 1 ? 2 * nfe : nfe,
    velocityMax,
    count: opts.count,
    fdLenet: await fdLenet(classifier, images, refStats, { allowCountMismatch: opts.count !== FD_LENET_COUNT }),
    classConsistency: await classConsistency(classifier, images, labels),
    imagesPerSec: opts.count / secs,
    grid,
  };
}

/**
 * Measure every row and write metrics.json and table.md in outDir after each one, so an interrupted
 * run continues with `resume` (the 100-NFE rows of a 2,000-digit table take the better part of an
 * hour on a software GPU).
 */
export async function evaluate(opts: EvalOptions): Promise<EvalRow[]> {
  mkdirSync(join(opts.outDir, 'grids'), { recursive: true });
  const metricsPath = join(opts.outDir, 'metrics.json');
  const settings = runSettings(opts);
  const finished = opts.resume ? finishedRows(metricsPath, settings) : new Map<string, EvalRow>();
  const { model: classifier } = loadClassifier(opts.classifierPath);
  // the reference set of the data the teacher was trained on (students record their teacher's data)
  const refStats = await featureStats(classifier, referenceSetFor(opts.teacher.run.data).images);
  // the rows of this run, in table order: the teacher's per solver and NFE, then each student's
  const plan: PlannedRow[] = [];
  for (const solver of opts.teacherSolvers) {
    for (const nfe of opts.teacherNfe) {
      const steps = nfe / NFE_PER_STEP[solver];
      if (!Number.isInteger(steps) || steps < 1) {
        console.error(`skipping teacher ${solver} at ${nfe} NFE: ${solver} takes ${NFE_PER_STEP[solver]} NFE a step`);
        continue;
      }
      plan.push({ w: opts.teacher, model: 'teacher', solver, steps, guidance: opts.guidance, sampleGuidance: opts.guidance, name: `teacher-${solver}-${nfe}nfe` });
    }
  }
  for (const s of opts.students) {
    const steps = studentSteps(s);
    if (!steps) throw new Error(`${s.path}: not a distilled student (no stage in its config)`);
    // students sample unguided: their guidance is baked in
    plan.push({ w: s, model: 'student', solver: 'euler', steps, guidance: Number(s.run.guidance ?? 1), sampleGuidance: 1, name: `student-${steps}step` });
  }
  const weightsSha256 = new Map([opts.teacher, ...opts.students].map((w) => [w.path, sha256(w.path)]));
  const identities = plan.map((p) => ({ model: p.model, solver: p.solver, steps: p.steps, guidance: p.guidance, weightsSha256: weightsSha256.get(p.w.path)! }));
  const keys = identities.map(rowKey);
  const measured = new Map<string, EvalRow>();
  // every write holds each planned row already done, measured now or kept from the earlier run, so an
  // interrupted resumed run loses none of the finished rows it had not reached yet
  const done = () => keys.flatMap((k) => measured.get(k) ?? finished.get(k) ?? []);
  for (const [i, p] of plan.entries()) {
    const kept = finished.get(keys[i]);
    const r = kept ?? { ...identities[i], ...(await measure(opts, p.w, p.solver, p.steps, p.sampleGuidance, p.name, refStats, classifier)) };
    measured.set(keys[i], r);
    const rows = done();
    writeFileAtomic(metricsPath, Buffer.from(`${JSON.stringify({ settings, rows }, null, 2)}\n`));
    writeFileAtomic(join(opts.outDir, 'table.md'), Buffer.from(metricsTable(rows, opts.teacher.run.kac.c)));
    writeFileAtomic(join(opts.outDir, 'velocity.md'), Buffer.from(velocityReport(rows, opts)));
    opts.onRow?.(r, kept !== undefined);
  }
  classifier.dispose();
  return done();
}

/** The footnote every table of rows carries. */
export const PASSES_NOTE = 'NFE counts a guided evaluation once, but it runs two network passes (conditional and unconditional branch, one batch of 2B): "passes" is network passes per digit. Students are sampled unguided (their guidance is baked in). "max |u|" is the largest |u| integrated at any sampling step, in units of c (per-step tables: velocity.md).';

/** max |u| / c of a row (its KacConfig's c), or '-' for rows measured before it was recorded. */
const maxOverC = (r: EvalRow, c: number) => (r.velocityMax ? `${(Math.max(...r.velocityMax.integrated) / c).toFixed(2)} c` : '-');

export function metricsTable(rows: EvalRow[], c?: number): string {
  const withU = c !== undefined;
  const lines = [
    `| model | solver | NFE | passes | guidance | FD-LeNet | class consistency | images/s |${withU ? ' max \\|u\\| |' : ''}`,
    `| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |${withU ? ' ---: |' : ''}`,
  ];
  for (const r of rows) {
    const name = r.model === 'teacher' ? 'teacher' : `student (${r.steps}-step)`;
    lines.push(`| ${name} | ${r.solver} | ${r.nfe} | ${rowPasses(r)} | ${r.guidance} | ${r.fdLenet.toFixed(2)} | ${(100 * r.classConsistency).toFixed(1)}% | ${r.imagesPerSec.toFixed(1)} |${withU ? ` ${maxOverC(r, c)} |` : ''}`);
  }
  return `${lines.join('\n')}\n\n${PASSES_NOTE}\n`;
}

/** velocity.md: one per-step table of the largest |u| per row, against c and the guided bound. */
function velocityReport(rows: EvalRow[], opts: EvalOptions): string {
  const parts = [`# Largest |u| per sampling step\n\nPer row, over its ${opts.count} digits: the field integrated (guided rows: the guided mix, and each branch), against c, (|w| + |1 - w|) c and the bound of the exact marginal field, (|f'(t)| + g'(t) c)(|w| + |1 - w|) for data in [-1, 1]. Students: w is the guidance baked in.\n`];
  for (const r of rows) {
    if (!r.velocityMax) continue;
    const w = r.model === 'teacher' ? opts.teacher : opts.students.find((s) => studentSteps(s) === r.steps)!;
    const tMin = opts.tMin ?? studentTMin(w) ?? 1e-5; // (measure's default end time)
    parts.push(`## ${r.model === 'teacher' ? `teacher, ${r.solver}, ${r.steps} steps, w = ${r.guidance}` : `student (${r.steps}-step), distilled with w = ${r.guidance}`}\n`);
    parts.push(velocityTable(velocitySummary(r.velocityMax, w.run.kac, tMin, r.guidance)));
  }
  return parts.join('\n');
}
