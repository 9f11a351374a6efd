// The one Node-only file of the engine: it turns Dawn (the `webgpu` npm package) into a GPUDevice.
// Everything else takes a GPUDevice and works the same in a browser (`navigator.gpu`).
import { existsSync, readFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import { create, globals } from 'webgpu';
import { importGemmChoices } from '../autotune';
import { Gpu, type Backend, requestGpuFrom } from './gpu';
import { setDefaultGpu } from '../tensor';

// GPUBufferUsage, GPUMapMode, ... are globals in browsers; Dawn's binding exports them.
Object.assign(globalThis, globals);

export interface DawnOptions {
  /** 'default' (Vulkan/Metal/D3D12, feature level core), 'vulkan', or 'opengl' (compatibility).
   *  When omitted: env DISTILLKAC_BACKEND, else the default adapter (OpenGL first when the default
   *  is Mesa's software rasterizer, which runs faster there), else OpenGL. */
  backend?: Backend;
  /** Pick an adapter whose name contains this string (env DISTILLKAC_ADAPTER). */
  adapter?: string;
}

const dawnOptions: Record<Backend, string[]> = {
  default: [],
  vulkan: ['backend=vulkan'],
  opengl: ['backend=opengl'],
};

const INSTALL_HINT =
  'Install a GPU driver with Vulkan (Linux, Windows) or Metal (macOS); without a GPU, Mesa\'s software ' +
  'drivers (on Debian/Ubuntu: `apt-get install mesa-vulkan-drivers libvulkan1` for Vulkan on lavapipe, ' +
  'Mesa 24 or newer, and `apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri` for OpenGL on llvmpipe; ' +
  'in a clone of the repository `bash scripts/setup.sh` does this). DISTILLKAC_ADAPTER or --adapter ' +
  'may also name an adapter that is not there.';

/** Acquire a WebGPU device through Dawn in Node. */
export async function dawnGpu(opts: DawnOptions = {}): Promise<Gpu> {
  const forced = opts.backend ?? (process.env.DISTILLKAC_BACKEND as Backend | undefined);
  if (forced && !(forced in dawnOptions)) {
    throw new Error(`unknown backend '${forced}' (DISTILLKAC_BACKEND or --backend): use default, vulkan or opengl`);
  }
  const name = opts.adapter ?? process.env.DISTILLKAC_ADAPTER;
  const budgetMiB = budgetFromEnv();
  const order: Backend[] = forced ? [forced] : (await defaultIsMesaSoftware(name)) ? ['opengl', 'default'] : ['default', 'opengl'];
  const tried: string[] = [];
  for (const backend of order) {
    if (backend === 'opengl') process.env.EGL_PLATFORM ??= 'surfaceless';
    const options = [...dawnOptions[backend], ...(name ? [`adapter=${name}`] : [])];
    // Dawn throws rather than return no adapter in some cases (an adapter name that matches none)
    const gpu = await requestGpuFrom(create(options), backend).catch((e: Error) => (tried.push(`${backend}: ${e.message.split('\n')[0]}`), null));
    if (gpu) {
      loadGemmCache();
      gpu.memoryBudgetBytes = budgetMiB !== null ? budgetMiB * 2 ** 20 : defaultMemoryBudget(gpu);
      return gpu;
    }
    if (!tried.some((t) => t.startsWith(`${backend}:`))) tried.push(backend);
  }
  throw new Error(`no WebGPU adapter found (tried: ${tried.join(', ')}${name ? `, adapter name '${name}'` : ''}). ${INSTALL_HINT}`);
}

/**
 * Whether the default adapter is Mesa's CPU rasterizer (lavapipe reports itself as llvmpipe). The
 * same LLVM code runs faster through Mesa's OpenGL driver than through lavapipe (bench/RESULTS.md),
 * so with only a software GPU the default is OpenGL. No device is made, so the instance may be collected.
 */
async function defaultIsMesaSoftware(name: string | undefined): Promise<boolean> {
  const adapter = await create(name ? [`adapter=${name}`] : []).requestAdapter().catch(() => null);
  return !!adapter && /llvmpipe/i.test(`${adapter.info.description} ${adapter.info.device}`);
}

/** The device memory budget asked for with env DISTILLKAC_GPU_MEMORY_MB (MiB), or null. */
function budgetFromEnv(): number | null {
  const env = process.env.DISTILLKAC_GPU_MEMORY_MB;
  if (env === undefined || env === '') return null;
  const mib = Number(env);
  if (!(mib > 0)) throw new Error(`DISTILLKAC_GPU_MEMORY_MB=${env}: expected a positive number of MiB`);
  return mib;
}

/**
 * Without DISTILLKAC_GPU_MEMORY_MB: on lavapipe (Vulkan on the CPU) 3/4 of the host's RAM, since its
 * buffers are host memory and when they run out the driver ends the process instead of reporting
 * out of memory; other drivers report it themselves (no budget).
 */
function defaultMemoryBudget(gpu: Gpu): number | null {
  const a = gpu.adapter;
  return a.backend !== 'opengl' && /llvmpipe|lavapipe/i.test(`${a.description} ${a.device ?? ''}`) ? Math.floor(totalmem() * 0.75) : null;
}

/**
 * GEMM/conv kernel choices tuned per adapter (`distillkac bench --tune-cache FILE` writes them):
 * when env DISTILLKAC_GEMM_CACHE names an existing file, devices made here use them (shape classes
 * it lacks keep the untuned default). Opt-in, so runs without it (tests included) stay the same
 * everywhere; a resumed run sees the same choices as long as the file is unchanged.
 */
function loadGemmCache(): void {
  const file = process.env.DISTILLKAC_GEMM_CACHE;
  if (file && existsSync(file)) importGemmChoices(readFileSync(file, 'utf8'));
}

/** The backends that come up on this machine (used by tests to run every suite on every adapter). */
export async function availableBackends(): Promise<Backend[]> {
  const found: Backend[] = [];
  for (const backend of ['default', 'opengl'] as Backend[]) {
    if (backend === 'opengl') process.env.EGL_PLATFORM ??= 'surfaceless';
    const adapter = await create(dawnOptions[backend]).requestAdapter({
      featureLevel: backend === 'opengl' ? 'compatibility' : 'core',
    });
    if (adapter) found.push(backend);
  }
  return found;
}

/** Acquire a device through Dawn and make it the default for new tensors. */
export async function initGpu(opts: DawnOptions = {}): Promise<Gpu> {
  const gpu = await dawnGpu(opts);
  setDefaultGpu(gpu);
  return gpu;
}
