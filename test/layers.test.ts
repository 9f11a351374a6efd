// The layering of docs/architecture.md, checked on the source text without a GPU: which folder of src
// may import which, nothing in src reaches outside it (bench/, test/), and the browser-safe part
// (kernels, engine without its Dawn runtime, io, models) imports no Node module and not `webgpu`,
// so the web page's bundle can hold it.
import { mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { benchPrerequisites } from '../src/cli/commands/bench';

const SRC = join(__dirname, '..', 'src');

/** What each folder of src may import besides itself (imports are checked, not the reverse). */
const MAY_IMPORT: Record<string, string[]> = {
  kernels: [],
  engine: ['kernels'],
  io: ['engine'],
  models: ['kernels', 'engine', 'io'],
  data: ['engine', 'io', 'models'],
  train: ['kernels', 'engine', 'io', 'models', 'data'],
  eval: ['kernels', 'engine', 'io', 'models', 'data', 'train'],
  experiments: ['kernels', 'engine', 'io', 'models', 'data', 'train', 'eval'],
  cli: ['kernels', 'engine', 'io', 'models', 'data', 'train', 'eval', 'experiments'],
  // the package's entries (package.json "exports"): `distillkac` is browser-safe, `distillkac/node` is not
  'index.ts': ['kernels', 'engine', 'io', 'models'],
  'node.ts': ['kernels', 'engine', 'io', 'models', 'data', 'train', 'eval'],
};
const BROWSER_SAFE = ['kernels', 'engine', 'io', 'models', 'index.ts'];
/** The one browser-safe-folder file that is Node only: Dawn's binding. */
const NODE_RUNTIME = join('engine', 'runtime', 'dawn.ts');

function tsFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? tsFiles(p) : p.endsWith('.ts') ? [p] : [];
  });
}

/** Every module a file names: static imports and re-exports, `import('...')` and `require('...')`. */
function specifiers(src: string): string[] {
  const pattern = /\b(?:import|export)\b[^;'"]*?\bfrom\s*['"]([^'"]+)['"]|\bimport\s*['"]([^'"]+)['"]|\b(?:import|require)\s*\(\s*['"]([^'"]+)['"]/g;
  return [...src.matchAll(pattern)].map((m) => m[1] ?? m[2] ?? m[3]);
}

/** The source without its comments (they may well mention Node). */
const code = (src: string) => src.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`\\])\/\/.*$/gm, '$1');

const files = tsFiles(SRC).map((path) => ({ path, rel: relative(SRC, path), src: readFileSync(path, 'utf8') }));
const layer = (rel: string) => rel.split(/[\\/]/)[0];

describe('layers', () => {
  it('every folder of src (and each entry file at its top) is in the table', () => {
    expect([...new Set(files.map((f) => layer(f.rel)))].sort()).toEqual(Object.keys(MAY_IMPORT).sort());
  });

  it('src imports nothing outside src, and each folder only the folders below it', () => {
    const wrong: string[] = [];
    for (const f of files) {
      for (const s of specifiers(f.src).filter((s) => s.startsWith('.'))) {
        const target = relative(SRC, resolve(dirname(f.path), s));
        const to = layer(target);
        if (target.startsWith('..')) wrong.push(`${f.rel} imports ${s}, outside src/`);
        else if (to !== layer(f.rel) && !MAY_IMPORT[layer(f.rel)].includes(to)) wrong.push(`${f.rel} imports ${s} (src/${to}); src/${layer(f.rel)} may import ${MAY_IMPORT[layer(f.rel)].join(', ') || 'only itself'}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it('the browser-safe part imports no Node module and not webgpu', () => {
    const node = new Set(builtinModules);
    const wrong: string[] = [];
    for (const f of files.filter((f) => BROWSER_SAFE.includes(layer(f.rel)) && f.rel !== NODE_RUNTIME)) {
      for (const s of specifiers(f.src)) {
        if (s.startsWith('node:') || node.has(s.split('/')[0]) || s === 'webgpu') wrong.push(`${f.rel} imports ${s}`);
        if (s.startsWith('.') && relative(SRC, resolve(dirname(f.path), s)) === NODE_RUNTIME.replace(/\.ts$/, '')) wrong.push(`${f.rel} imports the Node runtime ${s}`);
      }
      if (/\brequire\s*\(|\bprocess\.|\bBuffer\./.test(code(f.src))) wrong.push(`${f.rel} uses require, process or Buffer`);
    }
    expect(wrong).toEqual([]);
  });
});

describe('distillkac bench without its dev tooling', () => {
  it('says what to install when bench/, tinybench or a peer is missing, and nothing when all are there', () => {
    const empty = mkdtempSync(join(tmpdir(), 'dk-bench-'));
    expect(benchPrerequisites(empty, ['ours'])).toMatch(/run\.ts is missing\): clone the repository/);
    writeFileSync(join(empty, 'run.ts'), '');
    expect(benchPrerequisites(empty, ['ours'])).toMatch(/need tinybench: run `npm install --save-dev tinybench`/);
    expect(benchPrerequisites(empty, ['ours', 'tfjs', 'jax-js'])).toMatch(/need tinybench, @tensorflow\/tfjs-core, @tensorflow\/tfjs-backend-webgpu, @jax-js\/jax/);
    expect(benchPrerequisites(join(__dirname, '..', 'bench'), ['ours', 'tfjs', 'jax-js'])).toBeNull();
  });
});
