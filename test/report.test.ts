// `distillkac report` on a run folder: the metrics table from eval/metrics.json (in the current
// format and in the one written before `settings` existed) and a loss curve per training log.
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { EvalRow } from '../src/eval/evaluate';
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
    expect(html).toContain('<td>student (4-step)</td><td>euler</td><td>4</td><td>1</td><td>5.88</td><td>97.5%</td><td>12.3</td>');
    expect(html).toMatch(/<svg[^>]*aria-label="teacher"/);
  });
});
