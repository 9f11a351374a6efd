// A self-contained HTML report of a run folder: the metrics table, one sample grid per row (inlined
// PNGs), and every training log under the folder drawn as an SVG loss curve.
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { type EvalRow, PASSES_NOTE, rowPasses } from './evaluate';

interface LogPoint {
  step: number;
  loss: number;
}

function findLogs(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name === 'log.jsonl') out.push(p);
    }
  };
  walk(root);
  return out;
}

const esc = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

/** A loss curve on a log-scale y axis as an SVG element. */
export function lossCurveSvg(points: LogPoint[], title: string, width = 420, height = 220): string {
  const pts = points.filter((p) => p.loss > 0 && Number.isFinite(p.loss));
  if (pts.length < 2) return `<p>${esc(title)}: not enough points</p>`;
  const pad = { l: 52, r: 10, t: 22, b: 28 };
  const xs = pts.map((p) => p.step);
  const ys = pts.map((p) => Math.log10(p.loss));
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  const [y0, y1] = [Math.floor(Math.min(...ys) * 4) / 4, Math.ceil(Math.max(...ys) * 4) / 4 || 0.25];
  const sx = (x: number) => pad.l + ((x - x0) / Math.max(1, x1 - x0)) * (width - pad.l - pad.r);
  const sy = (y: number) => height - pad.b - ((y - y0) / Math.max(1e-9, y1 - y0)) * (height - pad.t - pad.b);
  const path = pts.map((p, i) => `${i ? 'L' : 'M'}${sx(p.step).toFixed(1)},${sy(Math.log10(p.loss)).toFixed(1)}`).join(' ');
  const ticks: string[] = [];
  for (let e = Math.ceil(y0); e <= Math.floor(y1); e++) {
    ticks.push(`<line x1="${pad.l}" x2="${width - pad.r}" y1="${sy(e)}" y2="${sy(e)}" stroke="#ddd"/><text x="${pad.l - 4}" y="${sy(e) + 4}" text-anchor="end" font-size="10">1e${e}</text>`);
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" role="img" aria-label="${esc(title)}">
<text x="${width / 2}" y="14" text-anchor="middle" font-size="12">${esc(title)}</text>${ticks.join('')}
<line x1="${pad.l}" y1="${height - pad.b}" x2="${width - pad.r}" y2="${height - pad.b}" stroke="#333"/>
<text x="${pad.l}" y="${height - 8}" font-size="10">${x0}</text><text x="${width - pad.r}" y="${height - 8}" font-size="10" text-anchor="end">step ${x1}</text>
<path d="${path}" fill="none" stroke="#1f77b4" stroke-width="1.5"/></svg>`;
}

const inlinePng = (path: string) => `data:image/png;base64,${readFileSync(path).toString('base64')}`;

/** Write `<root>/report.html`; returns its path. */
export function writeReport(root: string, title = 'DistillKac report'): string {
  const parts: string[] = [];
  const metricsPath = join(root, 'eval', 'metrics.json');
  if (existsSync(metricsPath)) {
    // eval folders written before `settings` existed kept the count at the top level
    const m = JSON.parse(readFileSync(metricsPath, 'utf8')) as { settings?: { count: number }; count?: number; rows: EvalRow[] };
    parts.push(`<h2>Metrics</h2><p>${m.settings?.count ?? m.count} generated digits per row; FD-LeNet against 2,000 real digits (lower is better); class consistency = share labelled as the requested class by our LeNet classifier.</p>`);
    parts.push('<table><tr><th>model</th><th>solver</th><th>NFE</th><th>guidance</th><th>FD-LeNet</th><th>class consistency</th><th>images/s</th><th>passes</th><th>max |u|</th></tr>');
    for (const r of m.rows) {
      parts.push(`<tr><td>${r.model === 'teacher' ? 'teacher' : `student (${r.steps}-step)`}</td><td>${r.solver}</td><td>${r.nfe}</td><td>${r.guidance}</td><td>${r.fdLenet.toFixed(2)}</td><td>${(100 * r.classConsistency).toFixed(1)}%</td><td>${r.imagesPerSec.toFixed(1)}</td><td>${rowPasses(r)}</td><td>${r.velocityMax ? Math.max(...r.velocityMax.integrated).toFixed(2) : '-'}</td></tr>`);
    }
    parts.push(`</table><p>${esc(PASSES_NOTE.replace(/ in units of c \(per-step tables: velocity.md\)/, ' (per-step tables: eval/velocity.md)'))}</p><h2>Samples</h2><div class="grids">`);
    for (const r of m.rows) {
      const grid = existsSync(r.grid) ? r.grid : join(root, 'eval', 'grids', r.grid.split('/').pop()!);
      if (!existsSync(grid)) continue;
      parts.push(`<figure><img src="${inlinePng(grid)}" alt="${esc(r.model)} ${r.nfe} NFE"><figcaption>${r.model === 'teacher' ? `teacher, ${r.solver}` : `student`}, ${r.nfe} NFE</figcaption></figure>`);
    }
    parts.push('</div>');
  } else {
    parts.push('<p>No evaluation found (run <code>distillkac eval</code> first).</p>');
  }
  const logs = existsSync(root) ? findLogs(root) : [];
  if (logs.length) {
    parts.push('<h2>Training loss</h2><div class="curves">');
    for (const log of logs) {
      const pts = readFileSync(log, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as LogPoint);
      parts.push(lossCurveSvg(pts, relative(root, log).replace(/\/?log\.jsonl$/, '') || 'run'));
    }
    parts.push('</div>');
  }
  const html = `<!doctype html><html><head><meta charset="utf-8"><title>${esc(title)}</title><style>
body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f4f4f4}.grids,.curves{display:flex;flex-wrap:wrap;gap:16px}figure{margin:0}img{image-rendering:pixelated;width:300px}
</style></head><body><h1>${esc(title)}</h1>${parts.join('\n')}</body></html>`;
  const out = join(root, 'report.html');
  writeFileSync(out, html);
  return out;
}
