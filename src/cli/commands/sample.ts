// distillkac sample: a PNG grid (and optionally the raw samples) from a teacher or student.
import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { encodeSafetensors } from '../../io/safetensors';
import { DEFAULT_SAMPLE_BATCH, generateSamples, maxSeed } from '../../models/generate';
import { DEFAULT_GUIDANCE, SOLVERS } from '../../models/sampling';
import { modelFromWeights, samplingDefaults, studentSteps } from '../../models/weights';
import { loadWeights, writeFileAtomic } from '../../train/checkpoint';
import { saveGrid } from '../../train/images';
import { velocitySummary, velocityTable } from '../../eval/velocity';
import { MAX_SAMPLE_COUNT, checkTMin, commonFlags, gpuFor } from '../common';
import { UsageError, command } from '../flags';

/** Labels for --labels (a list of classes or 'all'), cycled to `count`. */
export function labelsFor(spec: readonly string[], count: number, numClasses: number): Int32Array {
  const classes = spec.length === 1 && spec[0] === 'all' ? Array.from({ length: numClasses }, (_, i) => i) : spec.map((s) => {
    const v = /^\d+$/.test(s) ? Number(s) : NaN; // not 0x3 or 1e0
    if (!Number.isInteger(v) || v < 0 || v > numClasses) throw new UsageError(`--labels: '${s}' is not a class in 0..${numClasses - 1} (${numClasses} = unconditional)`);
    return v;
  });
  return Int32Array.from({ length: count }, (_, i) => classes[i % classes.length]);
}

export const sampleCommand = command({
  summary: 'Generate digits from a teacher or student and save a PNG grid (and optionally the raw samples).',
  flags: {
    checkpoint: { type: 'path', required: true, help: 'weights file (ema.safetensors or a checkpoint)' },
    steps: { type: 'int', min: 1, help: 'sampling steps (default: a student\'s own steps; 100 for a teacher)' },
    solver: { type: 'string', choices: SOLVERS, help: 'ODE solver (default: euler for students, ab2 for teachers)' },
    guidance: { type: 'float', help: `guidance weight w: u_null + w (u_cond - u_null); 1 = none (default: ${DEFAULT_GUIDANCE} for a teacher, 1 for a student, which has its teacher's baked in)` },
    labels: { type: 'list', default: ['all'], help: 'classes to draw, cycled over --count: 0,1,... or all' },
    count: { type: 'int', min: 1, max: MAX_SAMPLE_COUNT, default: 100, help: 'number of samples' },
    seed: { type: 'int', min: 0, max: maxSeed(MAX_SAMPLE_COUNT), default: 0, help: 'seed of the prior draw' },
    'batch-size': { type: 'int', min: 1, default: DEFAULT_SAMPLE_BATCH, help: 'samples per GPU batch' },
    out: { type: 'path', default: 'samples.png', help: 'PNG grid' },
    dump: { type: 'path', help: 'also write samples [K,C,H,W] (F32, in [-1,1]) and labels [K] (I32) as safetensors' },
    't-min': { type: 'float', min: 0, help: 'end time (default: a student\'s own t-min from distill, 1e-5 for a teacher)' },
    stats: { type: 'bool', default: false, help: 'print, per sampling step, the largest |u| integrated (and, guided, of each branch) against c and (|w| + |1 - w|) c' },
    ...commonFlags,
  },
  async run(f) {
    const w = loadWeights(f.checkpoint);
    for (const [flag, path] of [['out', f.out], ['dump', f.dump]] as const) {
      if (path && existsSync(path) && statSync(path).isDirectory()) throw new UsageError(`--${flag}: ${path} is a folder; give a file name, e.g. ${join(path, flag === 'out' ? 'samples.png' : 'samples.safetensors')}`);
    }
    if (f.dump && resolve(f.dump) === resolve(f.out)) throw new UsageError(`--dump and --out are both ${f.out}; give the samples file another name`);
    const { steps, solver, guidance, tMin } = samplingDefaults(w, f.steps, f.solver, f.guidance, f['t-min']);
    checkTMin(tMin, w);
    const own = studentSteps(w);
    if (own && guidance !== 1) console.warn(`note: ${f.checkpoint} is a ${own}-step student with its teacher's guidance baked in; --guidance ${guidance} guides it again, with an unconditional branch it was not distilled for`);
    const unet = w.run.model.unet;
    const shape = [unet.inChannels, unet.imageSize, unet.imageSize];
    const count = f.count;
    const labels = labelsFor(f.labels, count, unet.numClasses);
    const gpu = await gpuFor(f);
    const model = modelFromWeights(w);
    const started = performance.now();
    // the same function as the browser page (web/main.ts): the same seed gives the same samples
    const { samples: all, nfe, velocityMax } = await generateSamples({ model, labels, sampleShape: shape, steps, solver, kac: w.run.kac, tMin, seed: f.seed, guidance: { scale: guidance, nullClass: unet.numClasses }, batchSize: f['batch-size'], stats: f.stats });
    const secs = (performance.now() - started) / 1000;
    saveGrid(f.out, all, count, shape);
    if (f.dump) {
      writeFileAtomic(f.dump, encodeSafetensors({ samples: { dtype: 'F32', shape: [count, ...shape], data: all }, labels: { dtype: 'I32', shape: [count], data: labels } }, { checkpoint: f.checkpoint, steps: String(steps), solver, guidance: String(guidance), seed: String(f.seed) }));
    }
    const passes = guidance !== 1 ? `, ${2 * nfe} network passes: a guided NFE runs both branches` : '';
    console.log(`${count} samples, ${steps} steps (${solver}, NFE ${nfe}${passes}), guidance ${guidance}: ${f.out}${f.dump ? ` and ${f.dump}` : ''} (${(count / secs).toFixed(1)} images/s)`);
    if (velocityMax) {
      console.log(`\nlargest |u| per step over the ${count} samples (the field integrated${guidance !== 1 ? ', and its two branches' : ''}):\n`);
      // a student's bound is that of the guided field it was distilled from (its guidance is baked in)
      const boundW = own && guidance === 1 ? Number(w.run.guidance ?? 1) : guidance;
      console.log(velocityTable(velocitySummary(velocityMax, w.run.kac, tMin, boundW)));
    }
    model.dispose();
    gpu.destroy();
  },
});
