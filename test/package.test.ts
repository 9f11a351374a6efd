// The npm package as a user gets it: `npm pack` (prepack builds dist/ once), installed into an empty
// project with no network (`npm ci --offline` from the npm cache this repository's `npm ci` filled),
// then used there the four ways README promises: a plain Node script fits README's MLP example, a
// TypeScript consumer type-checks under --strict against the shipped types, `npx distillkac sample`
// runs the packaged 1-step student, vite bundles the repository's web page against the installed
// `distillkac` with no Node module and no Dawn in it (while `distillkac/node` in a browser build
// fails, naming the browser entry), and that page is opened in Chromium (test/helpers/browser-page.ts);
// and `npm publish --dry-run` has nothing to warn about.
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeSafetensors } from '../src/io/safetensors';
import { describeBrowserPage } from './helpers/browser-page';
import { writeConsumerProject } from './helpers/consumer';

const ROOT = join(__dirname, '..');
const BIN = (name: string) => join(ROOT, 'node_modules', name);
const npm = (args: string[], cwd: string) => execFileSync('npm', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 240_000 });
let tmp = '';
let app = '';
let tarballBytes = 0;

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'dk-package-'));
  // one build: `npm pack` runs prepack (`npm run build`), and the tarball is what `npm publish` sends
  const out = npm(['pack', '--json', '--pack-destination', tmp], ROOT);
  const packed = JSON.parse(out.slice(out.search(/^\[/m))); // after the build's own lines
  const tarball = join(tmp, packed[0].filename);
  tarballBytes = packed[0].size;
  app = join(tmp, 'app');
  mkdirSync(app);
  writeConsumerProject(app, ROOT, `../${packed[0].filename}`, tarball, ['@types/node']);
  npm(['ci', '--offline', '--no-audit', '--no-fund'], app);
}, 300_000);

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('the packed npm package, installed offline into an empty project', () => {
  it('ships dist, bin, the 1-step student and the classifier; no sources, tests, benchmarks or logs; under 2 MB', () => {
    const pkg = join(app, 'node_modules', 'distillkac');
    const top = readdirSync(pkg).sort();
    expect(top).toEqual(['CHANGELOG.md', 'LICENSE', 'README.md', 'bin', 'checkpoints', 'dist', 'package.json']);
    expect(readdirSync(join(pkg, 'checkpoints', 'mnist'))).toEqual(['student-1step.safetensors']);
    for (const entry of ['index', 'node', 'kernels/index']) {
      for (const ext of ['.js', '.d.ts', '.js.map']) expect(readFileSync(join(pkg, 'dist', entry + ext)).length).toBeGreaterThan(0);
    }
    expect(tarballBytes).toBeLessThan(2e6);
  });

  it('`npm publish --dry-run` warns about nothing (the build is the one pack made)', () => {
    const r = spawnSync('npm', ['publish', '--dry-run', '--ignore-scripts'], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
    expect(r.status, r.stderr).toBe(0);
    const warnings = (r.stdout + r.stderr).split('\n').filter((l) => /npm warn/i.test(l) && !/requires you to be logged in/.test(l));
    expect(warnings).toEqual([]);
  });

  it("a plain Node script fits README's MLP example from `distillkac` and `distillkac/node`", () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const example = readme.match(/## The engine\n\n```ts\n([\s\S]*?)```/)![1];
    expect(example).toMatch(/from 'distillkac'/);
    writeFileSync(join(app, 'fit.mjs'), example);
    const r = spawnSync(process.execPath, ['fit.mjs'], { cwd: app, encoding: 'utf8', timeout: 240_000 });
    expect(r.status, r.stderr).toBe(0);
    const losses = [...r.stdout.matchAll(/step \d+: loss ([\d.]+)/g)].map((m) => Number(m[1]));
    expect(losses).toHaveLength(3);
    expect(losses[2]).toBeLessThan(0.02);
  });

  it('a TypeScript consumer type-checks with tsc --noEmit --strict against the shipped types', () => {
    writeFileSync(join(app, 'consumer.ts'), CONSUMER_TS);
    const tsc = join(BIN('typescript'), 'bin', 'tsc');
    const r = spawnSync(process.execPath, [tsc, '--noEmit', '--strict', '--skipLibCheck', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', '--types', 'node', 'consumer.ts'], { cwd: app, encoding: 'utf8', timeout: 240_000 });
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('`npx distillkac sample` runs the packaged student: a PNG grid and a --dump', () => {
    const student = join('node_modules', 'distillkac', 'checkpoints', 'mnist', 'student-1step.safetensors');
    const r = spawnSync('npx', ['--offline', 'distillkac', 'sample', '--checkpoint', student, '--steps', '1', '--labels', '3,7', '--count', '4', '--seed', '5', '--out', 'grid.png', '--dump', 'dump.safetensors', '--quiet'], { cwd: app, encoding: 'utf8', timeout: 240_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(readFileSync(join(app, 'grid.png')).subarray(1, 4).toString()).toBe('PNG');
    const dump = decodeSafetensors(new Uint8Array(readFileSync(join(app, 'dump.safetensors'))));
    expect(dump.tensors.samples.shape).toEqual([4, 1, 28, 28]);
    expect(new Set(dump.tensors.labels.data)).toEqual(new Set([3, 7]));
    expect(dump.tensors.labels.data).toHaveLength(4);
  });

  it('initGpu without a WebGPU adapter says what to install', () => {
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', "await (await import('distillkac/node')).initGpu()"], { cwd: app, encoding: 'utf8', env: { ...process.env, DISTILLKAC_ADAPTER: 'no-such-adapter' }, timeout: 60_000 });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/no WebGPU adapter found .*apt-get install mesa-vulkan-drivers/);
  });

  it('vite bundles a page from `distillkac` with no node: import and no Dawn; `distillkac/node` fails the build naming the browser entry', () => {
    const vite = join(BIN('vite'), 'bin', 'vite.js');
    const build = (page: string, main: string, html = '<!doctype html><script type="module" src="./main.ts"></script>\n') => {
      mkdirSync(join(app, page));
      writeFileSync(join(app, page, 'index.html'), html);
      writeFileSync(join(app, page, 'main.ts'), main);
      return spawnSync(process.execPath, [vite, 'build', '--config', 'vite.config.mjs'], { cwd: app, encoding: 'utf8', env: { ...process.env, PAGE: page, NO_COLOR: '1' }, timeout: 120_000 });
    };
    writeFileSync(join(app, 'vite.config.mjs'), "export default { root: process.env.PAGE, base: './', logLevel: 'warn', build: { outDir: 'dist', emptyOutDir: true, target: 'es2022' } };\n");
    // the repository's own page (web/), its `distillkac` now the installed package's browser entry
    mkdirSync(join(app, 'checkpoints', 'mnist'), { recursive: true });
    cpSync(join(app, 'node_modules', 'distillkac', 'checkpoints', 'mnist', 'student-1step.safetensors'), join(app, 'checkpoints', 'mnist', 'student-1step.safetensors'));
    const ok = build('web', readFileSync(join(ROOT, 'web', 'main.ts'), 'utf8'), readFileSync(join(ROOT, 'web', 'index.html'), 'utf8'));
    expect(ok.status, ok.stderr).toBe(0);
    const assets = join(app, 'web', 'dist', 'assets');
    const bundle = readdirSync(assets).filter((f) => f.endsWith('.js')).map((f) => readFileSync(join(assets, f), 'utf8')).join('\n');
    expect(bundle).toMatch(/requestAdapter/);
    expect(readdirSync(assets).some((f) => f.endsWith('.safetensors'))).toBe(true);
    expect(bundle).not.toMatch(/["']node:|from\s*["']webgpu["']|dawn\.node|createRequire/);
    const bad = build('bad', "import { initGpu } from 'distillkac/node';\nconsole.log(initGpu);\n");
    expect(bad.status).not.toBe(0);
    expect(bad.stdout + bad.stderr).toMatch(/'distillkac\/node' is Node-only .* import from 'distillkac', the browser entry/);
  });
});

// the page the test above built from the installed package
describeBrowserPage(() => join(app, 'web', 'dist'));

const CONSUMER_TS = `import { type Gpu, Linear, Tensor, UNet, decodeSafetensors, generateSamples, requestGpuFrom, scope, tensor, weightsFromBytes, modelFromWeights } from 'distillkac';
import { initGpu, loadData, trainLoop, evaluate, saveCheckpoint } from 'distillkac/node';
import { gemmPlan, type Kernel } from 'distillkac/kernels';

export async function main(): Promise<number> {
  const gpu: Gpu = await initGpu();
  const t: Tensor = tensor([1, 2, 3], [3]);
  const y = scope(() => new Linear(3, 1).forward(t.reshape([1, 3])).tanh());
  const v: number = await y.item();
  const fromBrowser: Gpu | null = await requestGpuFrom(navigator.gpu);
  // @ts-expect-error: a shape is an array of numbers
  tensor([1], 'x');
  const k: Kernel | undefined = undefined;
  void [UNet, decodeSafetensors, generateSamples, weightsFromBytes, modelFromWeights, loadData, trainLoop, evaluate, saveCheckpoint, gemmPlan, fromBrowser, k];
  gpu.destroy();
  return v;
}
`;
