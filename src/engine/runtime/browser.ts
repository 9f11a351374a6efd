// The browser's counterpart of dawn.ts: a Gpu from `navigator.gpu`. Everything else in the engine
// takes the GPUDevice as it comes, so a page runs the same kernels as Node.
import { type Gpu, requestGpuFrom } from './gpu';
import { setDefaultGpu } from '../tensor';

/** A device from `navigator.gpu` at feature level core, else compatibility (made the default for new
 *  tensors). Null when the browser has WebGPU but no adapter; throws when it has no WebGPU at all. */
export async function browserGpu(gpu: GPU | undefined = globalThis.navigator?.gpu): Promise<Gpu | null> {
  if (!gpu) throw new Error('this browser has no WebGPU (navigator.gpu is undefined); try a recent Chrome, Edge or Firefox, or Chromium with --enable-unsafe-webgpu');
  // (the backend name only selects the feature level here: 'opengl' asks for compatibility)
  const found = (await requestGpuFrom(gpu, 'default')) ?? (await requestGpuFrom(gpu, 'opengl'));
  if (found) setDefaultGpu(found);
  return found;
}
