// `distillkac report` on a run folder: the metrics table from eval/metrics.json (in the current
// format and in the one written before `settings` existed) and a loss curve per training log.
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type EvalRow, metricsTable } from '../src/eval/evaluate';
import { writeReport } from '../src/eval/report';

const row: EvalRow = {
  model: 'student',
  solver: 'euler',
  steps: 4,
  nfe: 4,
  guidance: 1,
  count: 37,
  fdLenet: 5.8765,
  classConsistency: 0.9751,
  imagesPerSec: 12.34,
  grid: 'grids/missing.png',
  weightsSha256: 'ab',
};

function runFolder(metrics: object): string {
  const root = mkdtempSync(join(tmpdir(), 'dk-report-'));
  mkdirSync(join(root, 'eval'));
  writeFileSync(join(root, 'eval', 'metrics.json'), JSON.stringify(metrics));
  mkdirSync(join(root, 'teacher'));
  writeFileSync(join(root, 'teacher', 'log.jsonl'), [1, 2, 3].map((step) => JSON.stringify({ step, loss: 1 / step })).join('\n'));
  return root;
}

describe('writeReport', () => {
  it.each([
    ['current', { settings: { count: 37, seed: 0 }, rows: [row] }],
    ['pre-settings', { count: 37, seed: 0, rows: [row] }],
  ])('reads a %s metrics.json and draws every log', (_, metrics) => {
    const html = readFileSync(writeReport(runFolder(metrics)), 'utf8');
    expect(html).toContain('<p>37 generated digits per row;');
    expect(html).toContain('<td>student (4-step)</td><td>euler</td><td>4</td><td>1</td><td>5.88</td><td>97.5%</td><td>12.3</td><td>4</td><td>-</td>');
    expect(html).toContain('runs two network passes');
    expect(html).toMatch(/<svg[^>]*aria-label="teacher"/);
  });

  it('counts two network passes per guided NFE and shows the largest |u| a row integrated', () => {
    const teacher: EvalRow = { ...row, model: 'teacher', solver: 'ab2', steps: 20, nfe: 20, guidance: 1.5, velocityMax: { integrated: [2.5, 4.25], cond: [2, 3], uncond: [1, 2] } };
    const html = readFileSync(writeReport(runFolder({ settings: { count: 37 }, rows: [teacher] })), 'utf8');
    expect(html).toContain('<td>teacher</td><td>ab2</td><td>20</td><td>1.5</td><td>5.88</td><td>97.5%</td><td>12.3</td><td>40</td><td>4.25</td>');
    expect(metricsTable([teacher, row], 3)).toContain('| teacher | ab2 | 20 | 40 | 1.5 | 5.88 | 97.5% | 12.3 | 1.42 c |');
    expect(metricsTable([row])).toContain('| student (4-step) | euler | 4 | 4 | 1 | 5.88 | 97.5% | 12.3 |\n');
  });
});
