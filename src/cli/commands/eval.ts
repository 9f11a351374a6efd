// distillkac eval: FD-LeNet, class consistency and images/s for the teacher and each student.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { classifierPathFor, evalDatasetFor } from '../../eval/classifier';
import { evaluate, metricsTable, rowPasses } from '../../eval/evaluate';
import { DEFAULT_SAMPLE_BATCH, maxSeed } from '../../models/generate';
import { DEFAULT_GUIDANCE, NFE_PER_STEP, SOLVERS } from '../../models/sampling';
import { studentSteps } from '../../models/weights';
import { loadWeights } from '../../train/checkpoint';
import { MAX_SAMPLE_COUNT, commonFlags, gpuFor, positiveInts } from '../common';
import { UsageError, command } from '../flags';

export const evalCommand = command({
  summary: 'Measure FD-LeNet, class consistency and images/s for the teacher at several NFE and each student.',
  flags: {
    teacher: { type: 'path', required: true, help: 'teacher weights' },
    students: { type: 'list', help: 'student weights files (comma-separated)' },
    count: { type: 'int', min: 10, max: MAX_SAMPLE_COUNT, default: 2000, help: 'generated digits per row (2000 for comparable FD-LeNet)' },
    'teacher-nfe': { type: 'list', default: ['1', '2', '4', '20', '100'], help: 'NFE of the teacher rows' },
    'teacher-solvers': { type: 'list', choices: SOLVERS, default: ['euler', 'ab2'], help: 'solvers of the teacher rows' },
    guidance: { type: 'float', default: DEFAULT_GUIDANCE, help: 'guidance weight of the teacher rows' },
    classifier: { type: 'path', help: 'LeNet classifier weights (default: the committed classifier of the data the teacher was trained on, checkpoints/classifier/)' },
    seed: { type: 'int', min: 0, max: maxSeed(MAX_SAMPLE_COUNT), default: 0, help: 'seed of the prior draws' },
    'batch-size': { type: 'int', min: 1, default: DEFAULT_SAMPLE_BATCH, help: 'samples per GPU batch (teacher rows run twice that with guidance)' },
    out: { type: 'path', default: 'runs/eval', help: 'output folder (metrics.json, table.md, grids/)' },
    resume: { type: 'bool', default: false, help: 'keep the rows already in --out that were measured with the same weights and settings' },
    ...commonFlags,
  },
  async run(f) {
    const teacher = loadWeights(f.teacher);
    const own = studentSteps(teacher);
    if (own) throw new UsageError(`--teacher: ${f.teacher} is a distilled ${own}-step student; pass the teacher's weights, and students with --students`);
    const students = (f.students ?? []).map(loadWeights);
    for (const s of students) {
      if (!studentSteps(s)) throw new UsageError(`--students: ${s.path} is not a distilled student (no distillation stage in its config); pass the ema.safetensors of a distill stage`);
    }
    const nfe = positiveInts('teacher-nfe', f['teacher-nfe']);
    const solvers = f['teacher-solvers'];
    if (!students.length && !solvers.some((s) => nfe.some((n) => Number.isInteger(n / NFE_PER_STEP[s])))) {
      throw new UsageError(`nothing to measure: --teacher-nfe ${nfe.join(',')} is no whole number of ${solvers.join(', ')} steps (midpoint and heun take 2 NFE a step), and no --students`);
    }
    for (const s of students) {
      if (s.run.data.kind !== teacher.run.data.kind) throw new UsageError(`--students: ${s.path} was trained on --data ${s.run.data.kind}, the teacher on --data ${teacher.run.data.kind}; evaluate the models of one dataset together`);
    }
    let evalData: ReturnType<typeof evalDatasetFor>;
    try {
      evalData = evalDatasetFor(teacher.run.data);
    } catch (e) {
      throw new UsageError(`${f.teacher}: ${(e as Error).message} (FID is not implemented)`);
    }
    let classifier = f.classifier;
    if (classifier === undefined) {
      classifier = classifierPathFor(teacher.run.data);
      if (!existsSync(classifier)) throw new Error(`cannot read classifier ${classifier}, the default for ${f.teacher}'s data: no such file; train it with \`npx tsx scripts/train-classifier.ts --data ${evalData}\`, or pass --classifier`);
    }
    if (!existsSync(classifier)) throw new Error(`cannot read classifier ${classifier} (--classifier): no such file`);
    const gpu = await gpuFor(f);
    const rows = await evaluate({
      teacher, students, classifierPath: classifier, count: f.count, teacherNfe: nfe, teacherSolvers: solvers,
      guidance: f.guidance, seed: f.seed, outDir: f.out, batch: f['batch-size'], resume: f.resume,
      onRow: (r, reused) => f.quiet || console.error(`${r.model} ${r.solver} NFE ${r.nfe} (${rowPasses(r)} network passes): FD-LeNet ${r.fdLenet.toFixed(2)}, class consistency ${(100 * r.classConsistency).toFixed(1)}%, ${r.imagesPerSec.toFixed(1)} images/s${reused ? ' (kept from the earlier run)' : ''}`),
    });
    console.log(metricsTable(rows, teacher.run.kac.c));
    console.log(`written: ${join(f.out, 'metrics.json')}, ${join(f.out, 'table.md')}, ${join(f.out, 'velocity.md')} (largest |u| per sampling step)`);
    gpu.destroy();
  },
});
