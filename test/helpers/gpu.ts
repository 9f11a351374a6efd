// Test helpers for GPU suites: run a suite once per WebGPU backend present on this machine, and move
// data between the float64 reference (test/reference.ts) and engine tensors.
import { afterAll, beforeAll, describe, it } from 'vitest';
import { availableBackends, dawnGpu } from '../../src/engine/runtime/dawn';
import { type Gpu, type Tensor, setDefaultGpu, tensor } from '../../src/engine/index';
import { NDArray, type Tolerance, assertClose } from '../reference';

/** Backends that come up here ('default' = Vulkan/Metal/D3D12 at feature level core, 'opengl' =
 *  compatibility). DISTILLKAC_TEST_BACKENDS=default,opengl restricts the list. */
const found = await availableBackends();
const only = process.env.DISTILLKAC_TEST_BACKENDS?.split(',').map((s) => s.trim()).filter(Boolean);
export const BACKENDS = only ? found.filter((b) => only.includes(b)) : found;

/** OpenGL where present (the adapter the CLI opens on a machine whose only GPU is Mesa's software
 *  one), else the first backend. Suites that are not about numerics run there, so that they and the
 *  CLI's processes compile the same kernels once: Mesa's shader cache is shared between processes. */
export const CLI_BACKEND = BACKENDS.includes('opengl') ? 'opengl' : BACKENDS[0];

/**
 * Register `body`'s tests once per available backend, each group in its own `describe` named
 * `name [backend]`. The device is created in beforeAll (and made the default for new tensors) and
 * destroyed in afterAll; `getGpu()` returns it inside tests and hooks.
 */
export function forEachBackend(name: string, body: (getGpu: () => Gpu) => void): void {
  if (BACKENDS.length === 0) {
    describe(name, () => {
      it('needs a WebGPU adapter', () => {
        throw new Error(
          `no WebGPU backend available${only ? ` among DISTILLKAC_TEST_BACKENDS=${only.join(',')}` : ''} ` +
            '(install the software GPU with `bash scripts/setup.sh`)',
        );
      });
    });
    return;
  }
  describe.each(BACKENDS)(`${name} [%s]`, (backend) => {
    let gpu: Gpu | null = null;
    beforeAll(async () => {
      gpu = await dawnGpu({ backend });
      setDefaultGpu(gpu);
    });
    afterAll(() => {
      setDefaultGpu(null);
      gpu?.destroy();
      gpu = null;
    });
    body(() => {
      if (!gpu) throw new Error(`the ${backend} device is not open (use getGpu() inside tests and hooks only)`);
      return gpu;
    });
  });
}

/** Round every value to the nearest float32, so the reference sees exactly what the GPU sees. */
export function toF32(a: NDArray): NDArray {
  return new NDArray(a.shape, Float64Array.from(Float32Array.from(a.data)));
}

/** Uniform random values in [lo, hi), rounded to float32. */
export function randF32(shape: number[], rng: () => number, lo = -1, hi = 1): NDArray {
  return toF32(NDArray.rand(shape, rng, lo, hi));
}

/** Random values with |x| in [lo, hi) and a random sign (keeps data away from kinks at 0). */
export function randAwayFromZero(shape: number[], rng: () => number, lo = 0.1, hi = 2): NDArray {
  const a = NDArray.rand(shape, rng, lo, hi);
  for (let i = 0; i < a.size; i++) if (rng() < 0.5) a.data[i] = -a.data[i];
  return toF32(a);
}

/** Upload a reference array as a float32 tensor on the default GPU. */
export function upload(a: NDArray, opts: { requiresGrad?: boolean } = {}): Tensor {
  return tensor(Float32Array.from(a.data), a.shape, { requiresGrad: opts.requiresGrad ?? false });
}

/** Read a tensor back as float64 values (i32 tensors are converted exactly). */
export async function readF64(t: Tensor): Promise<Float64Array> {
  return Float64Array.from(await t.toArray());
}

/** Read a tensor back as a reference array of the same shape. */
export async function download(t: Tensor): Promise<NDArray> {
  return new NDArray([...t.shape], await readF64(t));
}

/** Largest |value| (at least `floor`), for tolerances that scale with the data. */
export function maxAbs(values: ArrayLike<number>, floor = 1): number {
  let m = floor;
  for (let i = 0; i < values.length; i++) if (Math.abs(values[i]) > m) m = Math.abs(values[i]);
  return m;
}

/**
 * Compare a tensor with a reference array: same shape, values within |a - e| <= atol + rtol |e|.
 * With `scaled`, atol is multiplied by the largest |expected| (at least 1).
 */
export async function expectTensorClose(t: Tensor, expected: NDArray, tol: Tolerance & { scaled?: boolean }, label: string): Promise<void> {
  if (t.shape.join() !== expected.shape.join()) {
    throw new Error(`${label}: shape [${t.shape.join(', ')}] but the reference has [${expected.shape.join(', ')}]`);
  }
  const atol = tol.scaled ? tol.atol * maxAbs(expected.data) : tol.atol;
  assertClose(await readF64(t), expected.data, { rtol: tol.rtol, atol }, label);
}
