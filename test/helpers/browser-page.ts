// The browser page (web/) in Debian's Chromium, driven headless by playwright-core, registered by
// test/package.test.ts on the page that vite built against the installed npm package (not src/): it
// draws digits of one class with WebGPU (SwiftShader on a machine without a GPU), and its samples
// equal those of `distillkac sample --dump` for the same checkpoint, class, seed and count. The
// committed LeNet then labels the browser's digits exactly as it labels the CLI's.
//
// Needs /usr/bin/chromium (scripts/setup.sh --tests installs it). The test is skipped only when Chromium has
// WebGPU but `navigator.gpu.requestAdapter()` returns no adapter; anything else failing fails it.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { type Server, createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Browser, type Page, chromium } from 'playwright-core';
import { afterAll, describe, expect, it } from 'vitest';
import { initGpu } from '../../src/engine/runtime/dawn';
import type { Gpu } from '../../src/engine/index';
import { decodeSafetensors, encodeSafetensors } from '../../src/io/safetensors';
import { defaultClassifierPath, loadClassifier, predict } from '../../src/eval/classifier';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CHROMIUM = '/usr/bin/chromium';

// The Node side (the CLI child and the classifier here) runs on SwiftShader's Vulkan driver, which
// Debian's chromium ships, unless an adapter is chosen through the environment: on a CPU-only machine
// Mesa's lavapipe/llvmpipe spend minutes compiling the UNet's shaders (LLVM), SwiftShader (Subzero)
// seconds. Measured here, the page against the CLI on lavapipe differed by at most 1.4e-4, against
// the CLI on SwiftShader (outside Chromium, through npm's Dawn) by less.
const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';
if (!process.env.VK_ICD_FILENAMES && !process.env.DISTILLKAC_BACKEND && !process.env.DISTILLKAC_ADAPTER && existsSync(SWIFTSHADER_ICD)) {
  process.env.VK_ICD_FILENAMES = SWIFTSHADER_ICD; // read when Dawn creates its Vulkan instance (here and in the child)
}
const CHECKPOINT = 'checkpoints/mnist/student-1step.safetensors';

/** What both sides draw. */
const LABEL = 3;
const SEED = 7;
const COUNT = 20;

/** Largest |browser - CLI| over all pixels: different adapters may round float32 differently. */
const MAX_ABS_DIFF = 1e-3;
/** Share of the digits the classifier must label as the requested class: the committed 1-step
 *  student reaches 97% class consistency over all classes (checkpoints/mnist/metrics.md). */
export const MIN_REQUESTED_CLASS_SHARE = 0.9;

/** Chromium flags: WebGPU on (SwiftShader, Chromium's CPU Vulkan, when there is no GPU), no network. */
const CHROMIUM_ARGS = [
  '--headless=new',
  '--enable-unsafe-webgpu',
  '--no-sandbox',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-dev-shm-usage',
];

const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.safetensors': 'application/octet-stream',
};

/** A static file server for the built page on 127.0.0.1 (a secure context, so WebGPU is allowed). */
async function serve(dir: string): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const file = normalize(join(dir, path.endsWith('/') ? `${path}index.html` : path));
    if (!file.startsWith(dir) || !existsSync(file)) {
      res.writeHead(404).end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': MIME[extname(file)] ?? 'application/octet-stream' }).end(readFileSync(file));
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const port = (server.address() as { port: number }).port;
  return { server, url: `http://127.0.0.1:${port}/` };
}

const children = new Set<ReturnType<typeof spawn>>();

/** `distillkac sample ... --dump FILE` in a child process (it runs while the browser works). */
function cliSample(dump: string): Promise<{ samples: Float32Array; labels: Int32Array; log: string }> {
  const args = ['bin/distillkac.mjs', 'sample', '--checkpoint', CHECKPOINT, '--steps', '1', '--labels', String(LABEL), '--count', String(COUNT), '--seed', String(SEED), '--out', join(dump, '..', 'grid.png'), '--dump', dump, '--quiet'];
  return new Promise((ok, fail) => {
    const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: process.env });
    children.add(child);
    let log = '';
    child.stdout.on('data', (d) => (log += d));
    child.stderr.on('data', (d) => (log += d));
    child.on('error', fail);
    child.on('close', (code) => {
      children.delete(child);
      if (code !== 0) return fail(new Error(`distillkac sample exited with ${code}:\n${log}`));
      const { tensors } = decodeSafetensors(readFileSync(dump), { name: dump });
      ok({ samples: tensors.samples.data as Float32Array, labels: tensors.labels.data as Int32Array, log });
    });
  });
}

interface PageDraw {
  label: number;
  seed: number;
  count: number;
  steps: number;
  samples: number[];
  msPerImage: number;
  compiled: boolean;
  canvas: [number, number];
}

/** Drive the form like a user: class, seed, count, Draw; wait for the result (or the page's error). */
async function drawOnce(tab: Page): Promise<PageDraw> {
  const before = await tab.evaluate(() => (window as unknown as { distillkac: { last?: unknown } }).distillkac.last ?? null);
  await tab.selectOption('#label', String(LABEL));
  await tab.fill('#seed', String(SEED));
  await tab.fill('#count', String(COUNT));
  await tab.click('#draw');
  await tab.waitForFunction(
    (prev) => {
      const api = (window as unknown as { distillkac: { state: string; last?: unknown } }).distillkac;
      return api.state === 'error' || (api.state === 'ready' && api.last !== undefined && api.last !== prev);
    },
    before,
    { timeout: 150_000 },
  );
  return tab.evaluate(() => {
    const api = (window as unknown as { distillkac: { state: string; error?: string; last: { label: number; seed: number; count: number; steps: number; samples: Float32Array; msPerImage: number; compiled: boolean } } }).distillkac;
    if (api.state === 'error') throw new Error(`page error: ${api.error}`);
    const c = document.getElementById('canvas') as HTMLCanvasElement;
    const { label, seed, count, steps, samples, msPerImage, compiled } = api.last;
    return { label, seed, count, steps, samples: Array.from(samples), msPerImage, compiled, canvas: [c.width, c.height] as [number, number] };
  });
}

/** What the page shows: its state, the status line (and whether it is shown as an error), the controls. */
function pageStatus(tab: Page) {
  return tab.evaluate(() => {
    const status = document.getElementById('status')!;
    return {
      state: document.body.dataset.state,
      text: status.textContent ?? '',
      error: status.classList.contains('error'),
      drawEnabled: !(document.getElementById('draw') as HTMLButtonElement).disabled,
      fileEnabled: !(document.getElementById('file') as HTMLInputElement).disabled,
    };
  });
}

/** The Chromium suite on the page built in `pageDir()` (read when the first test runs). */
export function describeBrowserPage(pageDir: () => string): void {
  describe('browser page (web/) in Chromium', () => {
    const work = mkdtempSync(join(tmpdir(), 'distillkac-browser-'));
    let server: Server | undefined;
    let browser: Browser | undefined;
    let tab: Page | undefined;
    let gpu: Gpu | undefined;
    afterAll(async () => {
      for (const child of children) child.kill(); // a test that failed early leaves no CLI run behind
      await browser?.close();
      server?.close();
      gpu?.destroy();
      rmSync(work, { recursive: true, force: true });
    });

    // Filled by the first test, checked by the next ones.
    let page: { first: PageDraw; again: PageDraw } | undefined;
    let cli: { samples: Float32Array; labels: Int32Array; log: string } | undefined;
    let classes: { browser: Int32Array; cli: Int32Array } | undefined;

    it('draws the same digits as `distillkac sample` for the same seed', async (ctx) => {
      const started = Date.now();
      if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: run \`bash scripts/setup.sh --tests\` as root (it installs Debian's chromium)`);
      const nodeSide = cliSample(join(work, 'cli.safetensors'));
      nodeSide.catch(() => {}); // awaited below; do not let an early failure go unhandled

      const dist = pageDir();
      if (!existsSync(join(dist, 'index.html'))) throw new Error(`the page was not built: ${dist}/index.html is missing (see the vite build test before this one)`);
      ({ server } = await serve(dist));
      const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/`;
      browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
      tab = await browser.newPage();
      const consoleLines: string[] = [];
      tab.on('console', (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
      tab.on('pageerror', (e) => consoleLines.push(`pageerror: ${e.message}`));
      await tab.goto(url);
      await tab.waitForFunction(() => !['loading', undefined].includes(document.body.dataset.state), null, { timeout: 120_000 });
      const state = await tab.evaluate(() => document.body.dataset.state);
      if (state === 'no-adapter') {
        await nodeSide.catch(() => {});
        console.warn('browser test skipped: Chromium has WebGPU but navigator.gpu.requestAdapter() returned null (no GPU and no SwiftShader adapter)');
        ctx.skip();
      }
      expect(state, `page failed to start: ${await tab.evaluate(() => document.getElementById('status')?.textContent)}\n${consoleLines.join('\n')}`).toBe('ready');

      // drive the form like a user, twice (the second is the steady-state time)
      const first = await drawOnce(tab);
      const again = await drawOnce(tab);
      page = { first, again };
      cli = await nodeSide;

      expect([first.label, first.seed, first.count, first.steps]).toEqual([LABEL, SEED, COUNT, 1]);
      expect(first.canvas).toEqual([2 * (10 * 28 + 11 * 2), 2 * (2 * 28 + 3 * 2)]); // the CLI's grid (10 columns, 2 px padding), scaled 2x
      expect(again.samples).toEqual(first.samples); // deterministic in the page
      expect(Array.from(cli.labels)).toEqual(new Array(COUNT).fill(LABEL));
      expect(first.samples.length).toBe(cli.samples.length);
      let maxDiff = 0;
      for (let i = 0; i < cli.samples.length; i++) maxDiff = Math.max(maxDiff, Math.abs(first.samples[i] - cli.samples[i]));
      const adapter = await tab!.evaluate(() => (window as unknown as { distillkac: { adapter?: unknown } }).distillkac.adapter);
      console.log(
        `browser vs CLI: max |diff| ${maxDiff.toExponential(2)} over ${cli.samples.length} values; page ${first.msPerImage.toFixed(1)} ms/image ` +
          `with compilation, ${again.msPerImage.toFixed(2)} ms/image after; page adapter ${JSON.stringify(adapter)}; ` +
          `CLI (VK_ICD_FILENAMES=${process.env.VK_ICD_FILENAMES ?? ''}): ${cli.log.split('\n').filter((l) => l.includes('samples,')).join(' ')}; ${((Date.now() - started) / 1000).toFixed(0)} s`,
      );
      expect(maxDiff).toBeLessThan(MAX_ABS_DIFF);
    }, 420_000);

    it('the classifier labels the browser digits exactly as the CLI digits', async (ctx) => {
      if (!page || !cli) ctx.skip();
      gpu = await initGpu();
      const { model } = loadClassifier(defaultClassifierPath());
      classes = { browser: await predict(model, Float32Array.from(page!.first.samples)), cli: await predict(model, cli!.samples) };
      model.dispose();
      const share = classes.browser.filter((c) => c === LABEL).length / COUNT;
      console.log(`classifier on ${gpu.adapter.description || gpu.adapter.architecture}: browser ${Array.from(classes.browser).join(',')}; CLI ${Array.from(classes.cli).join(',')}; share of class ${LABEL}: ${share}`);
      expect(Array.from(classes.browser)).toEqual(Array.from(classes.cli));
    }, 180_000);

    it(`the classifier labels at least MIN_REQUESTED_CLASS_SHARE of the digits as the requested class`, (ctx) => {
      if (!classes) ctx.skip();
      const share = classes!.browser.filter((c) => c === LABEL).length / COUNT;
      expect(share).toBeGreaterThanOrEqual(MIN_REQUESTED_CLASS_SHARE);
    });

    it('reports a bad checkpoint file and bad form values on the page, and keeps drawing with the loaded checkpoint', async (ctx) => {
      if (!tab || !page) ctx.skip();
      const t = tab!;
      const loadFile = async (name: string, bytes: Uint8Array) => {
        await t.setInputFiles('#file', { name, mimeType: 'application/octet-stream', buffer: Buffer.from(bytes) });
        await t.waitForFunction((n) => document.body.dataset.state !== 'loading' && (document.getElementById('status')?.textContent ?? '').includes(n), name, { timeout: 60_000 });
        return pageStatus(t);
      };
      // not a safetensors file, then a safetensors file that is no checkpoint: a message on the page,
      // and the committed student stays loaded and usable
      const notSafetensors = await loadFile('bad.safetensors', new TextEncoder().encode('this is not a checkpoint'));
      expect(notSafetensors).toMatchObject({ state: 'ready', error: true, drawEnabled: true, fileEnabled: true });
      expect(notSafetensors.text).toMatch(/^cannot load bad\.safetensors \(still using student-1step\.safetensors\): .*not a safetensors file/);
      const notCheckpoint = await loadFile('plain.safetensors', encodeSafetensors({ x: { dtype: 'F32', shape: [2], data: new Float32Array(2) } }));
      expect(notCheckpoint).toMatchObject({ state: 'ready', error: true, drawEnabled: true });
      expect(notCheckpoint.text).toMatch(/^cannot load plain\.safetensors \(still using student-1step\.safetensors\): .*not a distillkac checkpoint/);

      // form values the sampler cannot take: a message naming the field, the page stays ready
      const submit = async (field: string, value: string) => {
        await t.fill('#seed', String(SEED));
        await t.fill('#count', String(COUNT));
        await t.fill(field, value);
        await t.evaluate(() => (document.getElementById('status')!.textContent = ''));
        await t.click('#draw');
        await t.waitForFunction(() => (document.getElementById('status')?.textContent ?? '') !== '', null, { timeout: 30_000 });
        return pageStatus(t);
      };
      const emptyCount = await submit('#count', '');
      expect(emptyCount).toMatchObject({ state: 'ready', error: true, drawEnabled: true, text: 'count is empty or not a number' });
      const hugeSeed = await submit('#seed', String(2 ** 53));
      expect(hugeSeed).toMatchObject({ state: 'ready', error: true, drawEnabled: true });
      expect(hugeSeed.text).toMatch(/^seed must be an integer in 0\.\.\d+, got 9007199254740992$/);

      // and the page still draws the same digits with the checkpoint it kept
      const after = await drawOnce(t);
      expect(after.samples).toEqual(page!.first.samples);
      expect(await pageStatus(t)).toMatchObject({ state: 'ready', error: false });
    }, 180_000);
  });
}
