// The runtime: one GPUDevice, its pipeline cache, its buffer pool, and the batching of dispatches.
// Dispatches are recorded into one open compute pass of one command encoder; nothing is submitted
// until someone reads a result, calls flush()/sync(), or the batch grows large.
import type { Kernel } from '../kernels/kernel';

export type Backend = 'default' | 'vulkan' | 'opengl';

export interface AdapterSummary {
  vendor: string;
  architecture: string;
  description: string;
  backend: Backend;
  featureLevel: 'core' | 'compatibility';
}

export interface MemoryStats {
  /** bytes in buffers held by live tensors */
  liveBytes: number;
  /** bytes in free buffers kept for reuse */
  pooledBytes: number;
  /** highest liveBytes seen */
  peakBytes: number;
  /** buffers created with the device so far */
  buffersCreated: number;
}

/** Features we use when present. */
const OPTIONAL_FEATURES: GPUFeatureName[] = ['shader-f16', 'subgroups', 'timestamp-query'] as GPUFeatureName[];
/** Limits raised to the adapter's maxima (defaults are too small for compute, esp. on compatibility). */
const RAISED_LIMITS = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxStorageBuffersPerShaderStage',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupStorageSize',
] as const;

/** Submit automatically once this many dispatches are recorded (bounds encoder memory). */
const MAX_DISPATCHES_PER_SUBMIT = 4096;
const UNIFORM_ARENA_BYTES = 1 << 16;

export class GpuError extends Error {
  override name = 'GpuError';
}

/** Request an adapter and a device from a `GPU` object (Dawn's or `navigator.gpu`). Null: no adapter. */
export async function requestGpuFrom(gpu: GPU, backend: Backend = 'default'): Promise<Gpu | null> {
  const featureLevel = backend === 'opengl' ? 'compatibility' : 'core';
  const adapter = await gpu.requestAdapter({ featureLevel } as GPURequestAdapterOptions);
  if (!adapter) return null;
  const requiredFeatures = OPTIONAL_FEATURES.filter((f) => adapter.features.has(f));
  const requiredLimits: Record<string, number> = {};
  for (const name of RAISED_LIMITS) {
    const v = (adapter.limits as unknown as Record<string, number>)[name];
    if (typeof v === 'number') requiredLimits[name] = v;
  }
  const device = await adapter.requestDevice({ requiredFeatures, requiredLimits });
  const info = adapter.info;
  return new Gpu(
    device,
    { vendor: info.vendor, architecture: info.architecture, description: info.description, backend, featureLevel },
    gpu,
  );
}

interface CachedPipeline {
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
}

/** Buffers are pooled by size class: sizes rounded up so each class wastes at most 1/8. */
function sizeClass(bytes: number): number {
  const b = Math.max(16, Math.ceil(bytes / 16) * 16);
  if (b <= 4096) return b;
  const step = 2 ** (Math.floor(Math.log2(b)) - 3);
  return Math.ceil(b / step) * step;
}

export class Gpu {
  readonly features: Set<string>;
  private readonly pipelines = new Map<string, CachedPipeline>();
  private readonly freeBuffers = new Map<number, GPUBuffer[]>();
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private recorded = 0;
  private readonly uniformBuffer: GPUBuffer;
  private readonly uniformData = new Uint8Array(UNIFORM_ARENA_BYTES);
  private uniformUsed = 0;
  private readonly uniformAlign: number;
  private stagingToDestroy: GPUBuffer[] = [];
  private pendingError: Error | null = null;
  private lost: string | null = null;
  private currentKernel = '';
  readonly memory: MemoryStats = { liveBytes: 0, pooledBytes: 0, peakBytes: 0, buffersCreated: 0 };
  /** Counters for the whole life of the device. */
  readonly counters = { dispatches: 0, submits: 0, readbacks: 0, pipelines: 0 };

  constructor(
    readonly device: GPUDevice,
    readonly adapter: AdapterSummary,
    /** The GPU object the device came from. Held so it outlives the device: Dawn's Node binding
     *  frees the instance when it is garbage-collected, and a live device then crashes the process. */
    readonly instance?: GPU,
  ) {
    this.features = new Set([...device.features] as string[]);
    this.uniformAlign = device.limits.minUniformBufferOffsetAlignment;
    this.uniformBuffer = device.createBuffer({
      label: 'uniform-arena',
      size: UNIFORM_ARENA_BYTES,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    device.addEventListener('uncapturederror', (ev) => {
      const e = (ev as GPUUncapturedErrorEvent).error;
      this.pendingError ??= new GpuError(`WebGPU error (last kernel recorded: ${this.currentKernel || 'none'}): ${e.message}`);
    });
    void device.lost.then((info) => {
      if (info.reason === 'destroyed') return;
      this.lost = `GPU device lost (${info.reason}): ${info.message}. Restart the process; training runs resume from their last checkpoint.`;
    });
  }

  get limits(): GPUSupportedLimits {
    return this.device.limits;
  }

  /** Throws the first WebGPU error seen since the last check, naming the kernel. */
  checkErrors(): void {
    if (this.lost) throw new GpuError(this.lost);
    if (this.pendingError) {
      const e = this.pendingError;
      this.pendingError = null;
      throw e;
    }
  }

  // ---- buffers --------------------------------------------------------------------------------

  /** A storage buffer of at least `bytes`, from the pool when one is free. */
  alloc(bytes: number): GPUBuffer {
    this.checkErrors();
    const size = sizeClass(bytes);
    const free = this.freeBuffers.get(size);
    let buffer = free?.pop();
    if (buffer) {
      this.memory.pooledBytes -= size;
    } else {
      if (size > this.device.limits.maxStorageBufferBindingSize) {
        throw new GpuError(
          `a tensor of ${bytes} bytes exceeds this adapter's maxStorageBufferBindingSize ` +
            `(${this.device.limits.maxStorageBufferBindingSize}); use a smaller batch or model`,
        );
      }
      this.device.pushErrorScope('out-of-memory');
      buffer = this.device.createBuffer({
        size,
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
      });
      void this.device.popErrorScope().then((err) => {
        if (err) {
          this.pendingError ??= new GpuError(
            `GPU out of memory allocating ${size} bytes (${(this.memory.liveBytes / 2 ** 20).toFixed(1)} MiB live): ` +
              `try a smaller batch size or model preset`,
          );
        }
      });
      this.memory.buffersCreated++;
    }
    this.memory.liveBytes += size;
    this.memory.peakBytes = Math.max(this.memory.peakBytes, this.memory.liveBytes);
    return buffer;
  }

  /** Return a buffer to the pool. Safe while recorded work still uses it: the queue runs in order. */
  release(buffer: GPUBuffer): void {
    const size = buffer.size;
    this.memory.liveBytes -= size;
    this.memory.pooledBytes += size;
    let free = this.freeBuffers.get(size);
    if (!free) this.freeBuffers.set(size, (free = []));
    free.push(buffer);
  }

  /** Destroy all pooled (free) buffers. */
  trimPool(): void {
    for (const list of this.freeBuffers.values()) for (const b of list) b.destroy();
    this.freeBuffers.clear();
    this.memory.pooledBytes = 0;
  }

  /** Copy host data into `dst` in stream order (through a staging buffer, so a reused pool buffer
   *  is never overwritten before earlier recorded work has read it). */
  upload(dst: GPUBuffer, data: ArrayBufferView, dstOffset = 0): void {
    const bytes = Math.ceil(data.byteLength / 4) * 4;
    if (bytes === 0) return;
    const staging = this.device.createBuffer({ size: bytes, usage: GPUBufferUsage.COPY_SRC, mappedAtCreation: true });
    new Uint8Array(staging.getMappedRange()).set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    staging.unmap();
    this.copy(staging, 0, dst, dstOffset, bytes);
    this.stagingToDestroy.push(staging);
  }

  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, bytes: number): void {
    this.endPass();
    this.getEncoder().copyBufferToBuffer(src, srcOffset, dst, dstOffset, bytes);
    this.recorded++;
  }

  /** Read `bytes` from a buffer: submits what is recorded, then waits for the GPU. */
  async read(src: GPUBuffer, bytes: number, srcOffset = 0): Promise<ArrayBuffer> {
    const size = Math.ceil(bytes / 4) * 4;
    const staging = this.device.createBuffer({ size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    this.copy(src, srcOffset, staging, 0, size);
    this.flush();
    this.counters.readbacks++;
    try {
      await staging.mapAsync(GPUMapMode.READ);
    } catch (e) {
      this.checkErrors();
      throw e;
    }
    this.checkErrors();
    const out = staging.getMappedRange().slice(0, bytes);
    staging.destroy();
    return out;
  }

  // ---- kernels ----------------------------------------------------------------------------------

  private pipelineFor(kernel: Kernel): CachedPipeline {
    let cached = this.pipelines.get(kernel.code);
    if (!cached) {
      const module = this.device.createShaderModule({ label: kernel.name, code: kernel.code });
      const pipeline = this.device.createComputePipeline({
        label: kernel.name,
        layout: 'auto',
        compute: { module, entryPoint: 'main' },
      });
      cached = { pipeline, layout: pipeline.getBindGroupLayout(0) };
      this.pipelines.set(kernel.code, cached);
      this.counters.pipelines++;
    }
    return cached;
  }

  /** Record one kernel launch. `buffers` bind to @binding(0..n-1) in order; `uniforms`, when the
   *  kernel has a uniform block, binds to @binding(n). */
  dispatch(kernel: Kernel, buffers: GPUBuffer[], uniforms?: ArrayBufferView): void {
    this.checkErrors();
    const [x, y, z] = kernel.workgroups;
    if (x === 0 || y === 0 || z === 0) return;
    const max = this.device.limits.maxComputeWorkgroupsPerDimension;
    if (x > max || y > max || z > max) {
      throw new GpuError(`kernel ${kernel.name}: grid ${x}x${y}x${z} exceeds ${max} workgroups per dimension`);
    }
    this.currentKernel = kernel.name;
    const { pipeline, layout } = this.pipelineFor(kernel);
    const entries: GPUBindGroupEntry[] = buffers.map((buffer, binding) => ({ binding, resource: { buffer } }));
    if (uniforms) {
      if (this.uniformUsed + uniforms.byteLength > UNIFORM_ARENA_BYTES) this.flush();
      const offset = this.uniformUsed;
      this.uniformData.set(new Uint8Array(uniforms.buffer, uniforms.byteOffset, uniforms.byteLength), offset);
      this.uniformUsed = offset + Math.ceil(uniforms.byteLength / this.uniformAlign) * this.uniformAlign;
      entries.push({
        binding: buffers.length,
        resource: { buffer: this.uniformBuffer, offset, size: Math.max(16, Math.ceil(uniforms.byteLength / 16) * 16) },
      });
    }
    const bindGroup = this.device.createBindGroup({ label: kernel.name, layout, entries });
    const pass = this.getPass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(x, y, z);
    this.counters.dispatches++;
    if (++this.recorded >= MAX_DISPATCHES_PER_SUBMIT) this.flush();
  }

  private getEncoder(): GPUCommandEncoder {
    return (this.encoder ??= this.device.createCommandEncoder());
  }

  private getPass(): GPUComputePassEncoder {
    return (this.pass ??= this.getEncoder().beginComputePass());
  }

  private endPass(): void {
    this.pass?.end();
    this.pass = null;
  }

  /** Submit everything recorded so far in one command buffer. */
  flush(): void {
    if (!this.encoder) return;
    this.endPass();
    if (this.uniformUsed > 0) {
      this.device.queue.writeBuffer(this.uniformBuffer, 0, this.uniformData, 0, this.uniformUsed);
      this.uniformUsed = 0;
    }
    this.device.queue.submit([this.encoder.finish()]);
    this.encoder = null;
    this.recorded = 0;
    this.counters.submits++;
    for (const b of this.stagingToDestroy) b.destroy();
    this.stagingToDestroy = [];
  }

  /** Submit and wait until the GPU has finished; throws any WebGPU error seen. */
  async sync(): Promise<void> {
    this.flush();
    await this.device.queue.onSubmittedWorkDone();
    this.checkErrors();
  }

  destroy(): void {
    this.flush();
    this.trimPool();
    this.uniformBuffer.destroy();
    this.device.destroy();
  }
}
