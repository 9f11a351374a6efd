// An evaluation interrupted while it resumes keeps every finished row, also those it had not reached:
// the 100-NFE rows of a 2,000-image table take the better part of an hour, so runs get stopped.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { classifierPathFor } from '../src/eval/classifier';
import { type EvalOptions, evaluate } from '../src/eval/evaluate';
import { loadWeights } from '../src/train/checkpoint';
import { setDefaultGpu } from '../src/engine/index';
import { dawnGpu } from '../src/engine/runtime/dawn';
import { CLI_BACKEND } from './helpers/gpu';

const TEACHER = join(__dirname, '..', 'checkpoints', 'mnist', 'teacher-small.safetensors');

// bookkeeping, not numerics: one adapter
describe(`evaluate --resume [${CLI_BACKEND}]`, () => {
  it('an interrupted resumed run still holds the finished rows it had not reached', { timeout: 600_000 }, async () => {
    const gpu = await dawnGpu({ backend: CLI_BACKEND });
    setDefaultGpu(gpu);
    try {
      const teacher = loadWeights(TEACHER);
      const outDir = mkdtempSync(join(tmpdir(), 'dk-eval-resume-'));
      const opts = (teacherNfe: number[], onRow?: EvalOptions['onRow']): EvalOptions => ({
        teacher, students: [], classifierPath: classifierPathFor(teacher.run.data), count: 10, teacherNfe, teacherSolvers: ['euler'],
        guidance: 1.5, seed: 0, outDir, batch: 10, resume: true, onRow,
      });
      const rowsOnDisk = () => (JSON.parse(readFileSync(join(outDir, 'metrics.json'), 'utf8')) as { rows: { nfe: number; fdLenet: number }[] }).rows;

      const first = await evaluate(opts([1, 2]));
      expect(first.map((r) => r.nfe)).toEqual([1, 2]);
      // the new 4-NFE row comes first; the run stops (as if killed) right after writing it
      const stop = new Error('stopped after the first new row');
      await expect(evaluate(opts([4, 1, 2], (_, reused) => {
        if (!reused) throw stop;
      }))).rejects.toBe(stop);
      const kept = rowsOnDisk();
      expect(kept.map((r) => r.nfe)).toEqual([4, 1, 2]);
      expect(kept.slice(1)).toEqual(first);
      // rows of an earlier run that this run does not ask for are not carried into its table
      const again = await evaluate(opts([2]));
      expect(again).toEqual([first[1]]);
      expect(rowsOnDisk()).toEqual([first[1]]);
    } finally {
      setDefaultGpu(null);
      gpu.destroy();
    }
  });
});
