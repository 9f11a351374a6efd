// The three engines under test, all on one Dawn instance and therefore one adapter: ours (a Gpu from
// requestGpuFrom), TensorFlow.js's WebGPU backend, and jax-js's WebGPU device. The peers find the
// adapter through `navigator.gpu`, which we point at the same Dawn instance before loading them.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { create, globals } from 'webgpu';
import { type Backend, type Gpu, requestGpuFrom, setDefaultGpu } from '../src/engine/index';

// the CLI's --engines choices, so the two lists cannot drift apart
import { BENCH_ENGINES, type EngineName } from '../src/cli/commands/bench';

export type { EngineName };
export const ENGINES: EngineName[] = [...BENCH_ENGINES];

export type Tf = typeof import('@tensorflow/tfjs-core');
export type Jax = typeof import('@jax-js/jax');

export interface Env {
  backend: Backend;
  /** Dawn's GPU object. Held for the life of the process: freeing it under live devices crashes Dawn. */
  instance: GPU;
  gpu: Gpu;
  tf: Tf | null;
  jax: Jax | null;
  /** engine -> why it could not be loaded */
  unavailable: Partial<Record<EngineName, string>>;
}

// Keeps every Dawn instance reachable until exit (see Env.instance).
const instances: GPU[] = [];

/** Run `fn` with console.warn/log muted (the peers print advice on import). */
async function quietly<T>(fn: () => Promise<T>): Promise<T> {
  const { warn, log, info } = console;
  console.warn = console.log = console.info = () => {};
  try {
    return await fn();
  } finally {
    Object.assign(console, { warn, log, info });
  }
}

/**
 * tfjs-core's Node bundle registers no gradients (the @tensorflow/tfjs union package registers them
 * from tfjs-core's ESM build, whose extensionless imports Node cannot load). Bundle that build's
 * `register_all_gradients` with esbuild (tsx's own bundler) and load it: the registries and the engine
 * are process globals, so the bundled copy registers tfjs's gradients into the loaded tfjs-core.
 */
async function registerGradients(tf: Tf): Promise<void> {
  if (tf.getGradient('Sigmoid')) return;
  const { buildSync } = await import('esbuild');
  const entry = createRequire(import.meta.url).resolve('@tensorflow/tfjs-core/dist/register_all_gradients.js');
  const out = buildSync({ entryPoints: [entry], bundle: true, format: 'esm', platform: 'node', write: false, logLevel: 'silent' });
  const dir = mkdtempSync(join(tmpdir(), 'distillkac-tfjs-'));
  const file = join(dir, 'gradients.mjs');
  writeFileSync(file, out.outputFiles[0].text);
  try {
    await import(pathToFileURL(file).href);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  if (!tf.getGradient('Sigmoid')) throw new Error('tfjs: registering its gradients failed');
}

/** Open ours and the requested peers on `backend`. Only one Env per process: the peers are singletons. */
export async function openEnv(backend: Backend, engines: EngineName[]): Promise<Env> {
  Object.assign(globalThis, globals);
  if (backend === 'opengl') process.env.EGL_PLATFORM ??= 'surfaceless';
  const instance = create(backend === 'opengl' ? ['backend=opengl'] : backend === 'vulkan' ? ['backend=vulkan'] : []);
  instances.push(instance);
  const gpu = await requestGpuFrom(instance, backend);
  if (!gpu) throw new Error(`no WebGPU adapter for backend '${backend}'`);
  setDefaultGpu(gpu);

  // The peers ask navigator.gpu for an adapter; on the GL path it must be requested at feature level
  // 'compatibility'. Same instance, and the same options as ours (the peers ask for powerPreference
  // 'high-performance', which on a machine with two GPUs can pick the other one), checked to be the
  // same adapter.
  const featureLevel = backend === 'opengl' ? 'compatibility' : 'core';
  const navGpu = {
    requestAdapter: async () => {
      const adapter = await instance.requestAdapter({ featureLevel } as GPURequestAdapterOptions);
      const a = gpu.adapter;
      const b = adapter?.info;
      if (b && (b.vendor !== a.vendor || b.architecture !== a.architecture || b.description !== a.description)) {
        throw new Error(`a peer was offered another adapter (${b.description}) than ours (${a.description})`);
      }
      return adapter;
    },
    getPreferredCanvasFormat: () => 'rgba8unorm' as GPUTextureFormat,
    get wgslLanguageFeatures() {
      return instance.wgslLanguageFeatures;
    },
  };
  Object.defineProperty(globalThis, 'navigator', { value: { gpu: navGpu, userAgent: 'node' }, configurable: true, writable: true });

  const env: Env = { backend, instance, gpu, tf: null, jax: null, unavailable: {} };
  if (engines.includes('tfjs')) {
    try {
      env.tf = await quietly(async () => {
        const core = (await import('@tensorflow/tfjs-core')) as Tf & { default?: Tf };
        const tf = (core.default ?? core) as Tf;
        await import('@tensorflow/tfjs-backend-webgpu');
        if (!(await tf.setBackend('webgpu'))) throw new Error('tf.setBackend("webgpu") failed');
        await tf.ready();
        await registerGradients(tf);
        return tf;
      });
    } catch (e) {
      env.unavailable.tfjs = (e as Error).message;
    }
  }
  if (engines.includes('jax-js')) {
    try {
      env.jax = await quietly(async () => {
        const jax = (await import('@jax-js/jax')) as Jax;
        const devices = await jax.init('webgpu');
        if (!devices.includes('webgpu')) throw new Error('jax-js: init("webgpu") found no device');
        jax.defaultDevice('webgpu');
        return jax;
      });
    } catch (e) {
      env.unavailable['jax-js'] = (e as Error).message;
    }
  }
  return env;
}
