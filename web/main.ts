// The browser page: load the committed 1-step student, and draw digits of a chosen class with WebGPU.
// Every step is the code the CLI runs (`distillkac sample`): the engine and kernels on the device
// from `navigator.gpu`, the checkpoint decoded from bytes, the batched sampling loop with its Philox
// seeds, the image grid. Only fetching the file and painting the canvas are the page's own.
import checkpointUrl from '../checkpoints/mnist/student-1step.safetensors?url';
// the package's browser entry, as in any project of one's own (in this clone tsconfig's `paths`, which
// vite follows, resolve it to src/index.ts)
import {
  type AdapterSummary, type Gpu, type LoadedWeights, type Module, type Solver, type VelocityModel,
  browserGpu, checkSeed, generateSamples, imageGrid, modelFromWeights, samplingDefaults, weightsFromBytes,
} from 'distillkac';

/** One draw: what was asked and what came out. */
export interface DrawResult {
  label: number;
  seed: number;
  count: number;
  steps: number;
  solver: Solver;
  nfe: number;
  /** [count, C, H, W] in [-1, 1], as `distillkac sample --dump` writes them */
  samples: Float32Array;
  /** wall time of the whole draw (prior, network, readback) */
  ms: number;
  msPerImage: number;
  /** the first draw of a batch size also compiles its shaders */
  compiled: boolean;
}

export type PageState = 'loading' | 'ready' | 'busy' | 'no-webgpu' | 'no-adapter' | 'error';

/** What the page exposes on `window.distillkac` (the Playwright test drives the form and reads this). */
export interface PageApi {
  state: PageState;
  error?: string;
  adapter?: AdapterSummary;
  checkpoint?: string;
  last?: DrawResult;
  draw(label: number, seed: number, count: number): Promise<DrawResult>;
}

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const form = $<HTMLFormElement>('controls');
const labelSelect = $<HTMLSelectElement>('label');
const seedInput = $<HTMLInputElement>('seed');
const countInput = $<HTMLInputElement>('count');
const drawButton = $<HTMLButtonElement>('draw');
const fileInput = $<HTMLInputElement>('file');
const statusLine = $<HTMLParagraphElement>('status');
const timingLine = $<HTMLParagraphElement>('timing');
const adapterLine = $<HTMLElement>('adapter');
const canvas = $<HTMLCanvasElement>('canvas');

let gpu: Gpu | null = null;
let weights: LoadedWeights | null = null;
let model: (Module & VelocityModel) | null = null;
const compiledCounts = new Set<number>();
/** The most digits one draw makes (the count input's max). */
const MAX_COUNT = Number(countInput.max) || 400;

const api: PageApi = { state: 'loading', draw };
(window as unknown as { distillkac: PageApi }).distillkac = api;

function setState(state: PageState, message: string, isError = false): void {
  api.state = state;
  if (!isError) delete api.error;
  document.body.dataset.state = state;
  statusLine.textContent = message;
  statusLine.classList.toggle('error', isError);
  drawButton.disabled = state !== 'ready';
  // no new checkpoint while one loads or a draw still uses the current model
  fileInput.disabled = state === 'loading' || state === 'busy' || !gpu;
}

/** A mistake the user can correct (a form value, a file that is not a checkpoint): reported on the
 *  page, which stays usable with the checkpoint already loaded. */
class InputError extends Error {}

/** Report a correctable mistake; the page stays ready when a model is loaded, else it fails. */
function reject(e: unknown, context = ''): void {
  const message = `${context}${e instanceof Error ? e.message : String(e)}`;
  if (!model) return fail(new Error(message));
  setState('ready', message, true);
  api.error = message;
}

function fail(e: unknown): void {
  const message = e instanceof Error ? e.message : String(e);
  api.error = message;
  setState('error', message, true);
  console.error(e);
}

async function loadCheckpoint(bytes: Uint8Array, name: string): Promise<void> {
  const w = weightsFromBytes(bytes, name);
  const next = modelFromWeights(w);
  model?.dispose();
  model = next;
  weights = w;
  api.checkpoint = name;
  compiledCounts.clear();
  const unet = w.run.model.unet;
  // classes 0..numClasses-1, then the null class (unconditional), as `sample --labels` allows
  const current = Math.min(Number(labelSelect.value) || 0, unet.numClasses);
  const classes = Array.from({ length: unet.numClasses }, (_, i) => new Option(String(i), String(i)));
  labelSelect.replaceChildren(...classes, new Option(`${unet.numClasses} (unconditional)`, String(unet.numClasses)));
  labelSelect.value = String(current);
  const { steps, solver } = samplingDefaults(w);
  setState('ready', `${name}: ${w.ckpt.kind}, ${unet.imageSize}x${unet.imageSize}x${unet.inChannels}, ${steps} step(s) (${solver}). Pick a class, a seed and a count.`);
}

async function draw(label: number, seed: number, count: number): Promise<DrawResult> {
  if (!gpu || !weights || !model || api.state !== 'ready') throw new Error(`the page is not ready (state: ${api.state})`);
  const unet = weights.run.model.unet;
  if (!Number.isInteger(label) || label < 0 || label > unet.numClasses) throw new InputError(`class must be an integer in 0..${unet.numClasses - 1} (${unet.numClasses}: unconditional), got ${label}`);
  if (!Number.isInteger(count) || count < 1 || count > MAX_COUNT) throw new InputError(`count must be an integer in 1..${MAX_COUNT}, got ${count}`);
  try {
    checkSeed(seed, count);
  } catch (e) {
    throw new InputError((e as Error).message);
  }
  const { steps, solver, guidance, tMin } = samplingDefaults(weights);
  const shape = [unet.inChannels, unet.imageSize, unet.imageSize];
  const labels = new Int32Array(count).fill(label);
  const compiled = !compiledCounts.has(count);
  setState('busy', `drawing ${count} digit(s) of class ${label}, seed ${seed}${compiled ? ' (the first draw of this count also compiles the shaders)' : ''}…`);
  const started = performance.now();
  // as `distillkac sample --labels LABEL --count COUNT --seed SEED` with its defaults
  // (a student's guidance and t-min are its own, a teacher's are the default weight and 1e-5; batches of 250)
  const { samples, nfe } = await generateSamples({ model, labels, sampleShape: shape, steps, solver, kac: weights.run.kac, tMin, seed, guidance: { scale: guidance, nullClass: unet.numClasses } });
  const ms = performance.now() - started;
  compiledCounts.add(count);
  paint(samples, count, shape);
  const result: DrawResult = { label, seed, count, steps, solver, nfe, samples, ms, msPerImage: ms / count, compiled };
  api.last = result;
  timingLine.textContent = `${count} image(s) in ${ms.toFixed(1)} ms: ${result.msPerImage.toFixed(2)} ms per image${compiled ? ' (including shader compilation; draw again for the steady-state time)' : ''}, ${nfe} network evaluation(s) each.`;
  setState('ready', `class ${label}, seed ${seed}, ${count} digit(s).`);
  return result;
}

/** The CLI's grid (white padding, 10 columns), scaled 2x. */
function paint(samples: Float32Array, n: number, shape: number[]): void {
  const [c, h, w] = shape;
  const g = imageGrid(samples, n, c, h, w, Math.min(10, n));
  const rgba = new Uint8ClampedArray(g.width * g.height * 4);
  for (let p = 0; p < g.width * g.height; p++) {
    for (let k = 0; k < 3; k++) rgba[p * 4 + k] = g.data[p * g.channels + (g.channels >= 3 ? k : 0)];
    rgba[p * 4 + 3] = 255;
  }
  const scale = 2;
  canvas.width = g.width * scale;
  canvas.height = g.height * scale;
  const ctx = canvas.getContext('2d')!;
  ctx.imageSmoothingEnabled = false;
  const tile = new OffscreenCanvas(g.width, g.height);
  tile.getContext('2d')!.putImageData(new ImageData(rgba, g.width, g.height), 0, 0);
  ctx.drawImage(tile, 0, 0, canvas.width, canvas.height);
}

/** A form field as a number; an empty field (a number input holding text reads as empty) is refused,
 *  where Number('') would silently be 0. */
function fieldValue(el: HTMLInputElement | HTMLSelectElement, what: string): number {
  if (el.value.trim() === '') throw new InputError(`${what} is empty or not a number`);
  return Number(el.value);
}

form.addEventListener('submit', (ev) => {
  ev.preventDefault();
  // input mistakes keep the page usable; a failure while drawing (GPU error, lost device) does not
  Promise.resolve()
    .then(() => draw(fieldValue(labelSelect, 'class'), fieldValue(seedInput, 'seed'), fieldValue(countInput, 'count')))
    .catch((e) => (e instanceof InputError ? reject(e) : fail(e)));
});

fileInput.addEventListener('change', () => {
  const file = fileInput.files?.[0];
  if (!file || !gpu || api.state === 'loading' || api.state === 'busy') return;
  const previous = api.checkpoint;
  setState('loading', `loading ${file.name}…`);
  file
    .arrayBuffer()
    .then((buf) => loadCheckpoint(new Uint8Array(buf), file.name))
    .catch((e) => {
      fileInput.value = ''; // picking the same file again (fixed) loads it again
      reject(e, `cannot load ${file.name}${previous && model ? ` (still using ${previous})` : ''}: `);
    });
});

async function start(): Promise<void> {
  if (!('gpu' in navigator)) {
    setState('no-webgpu', 'This browser has no WebGPU (navigator.gpu is undefined). Use a recent Chrome, Edge or Firefox.', true);
    return;
  }
  gpu = await browserGpu();
  if (!gpu) {
    setState('no-adapter', 'WebGPU is present but navigator.gpu.requestAdapter() returned no adapter (no usable GPU or software fallback).', true);
    return;
  }
  api.adapter = gpu.adapter;
  const a = gpu.adapter;
  adapterLine.textContent = `WebGPU adapter: ${[a.vendor, a.architecture, a.description].filter(Boolean).join(' ') || 'unnamed'} (feature level ${a.featureLevel}).`;
  void gpu.device.lost.then((info) => {
    if (info.reason !== 'destroyed') fail(new Error(`the GPU device was lost (${info.reason}: ${info.message}); reload the page`));
  });
  setState('loading', 'loading the 1-step student…');
  const res = await fetch(checkpointUrl);
  if (!res.ok) throw new Error(`cannot fetch the checkpoint ${checkpointUrl}: HTTP ${res.status}`);
  await loadCheckpoint(new Uint8Array(await res.arrayBuffer()), 'student-1step.safetensors');
}

start().catch(fail);
