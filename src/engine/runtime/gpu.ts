// The runtime: one GPUDevice, its pipeline cache, its buffer pool, and the batching of dispatches.
// Dispatches are recorded into one open compute pass of one command encoder; nothing is submitted
// until someone reads a result, calls flush()/sync(), or the batch grows large.
import type { Kernel } from '../../kernels/kernel';

export type Backend = 'default' | 'vulkan' | 'opengl';

/** What a kernel binds: a whole buffer, or a range of one (a tensor that is a view into an arena;
 *  `offset` a multiple of the device's minStorageBufferOffsetAlignment). */
export type Binding = GPUBuffer | { buffer: GPUBuffer; offset: number; size: number };

/** The buffer a binding refers to. */
export const bufferOf = (b: Binding): GPUBuffer => ('offset' in b ? b.buffer : b);

export interface AdapterSummary {
  vendor: string;
  architecture: string;
  description: string;
  backend: Backend;
  featureLevel: 'core' | 'compatibility';
  /** the driver's device name where it gives one (e.g. 'llvmpipe-...' on Mesa's software GL path) */
  device?: string;
  /** the subgroup size where the device has subgroups of one fixed size (8 on lavapipe) */
  subgroupSize?: number;
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
/** One uniform block per dispatch of a submit at WebGPU's largest offset alignment (256 bytes), so
 *  uniforms never force an early submit (1 MiB). */
const UNIFORM_ARENA_BYTES = MAX_DISPATCHES_PER_SUBMIT * 256;

export class GpuError extends Error {
  override name = 'GpuError';
}

/** A buffer could not be allocated (WebGPU out-of-memory error); the message names the kernel. */
export class GpuOutOfMemoryError extends GpuError {
  override name = 'GpuOutOfMemoryError';
}

/** The device was lost (driver reset, `device.destroy()` by someone else, ...); nothing on it survives. */
export class GpuDeviceLostError extends GpuError {
  override name = 'GpuDeviceLostError';
}

const isOutOfMemory = (e: GPUError) =>
  (typeof GPUOutOfMemoryError !== 'undefined' && e instanceof GPUOutOfMemoryError) || e?.constructor?.name === 'GPUOutOfMemoryError';

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
  const info = adapter.info as GPUAdapterInfo & { subgroupMinSize?: number; subgroupMaxSize?: number };
  const fixedSubgroups = device.features.has('subgroups') && info.subgroupMinSize && info.subgroupMinSize === info.subgroupMaxSize;
  return new Gpu(
    device,
    {
      vendor: info.vendor,
      architecture: info.architecture,
      description: info.description,
      backend,
      featureLevel,
      device: info.device,
      ...(fixedSubgroups ? { subgroupSize: info.subgroupMinSize } : {}),
    },
    gpu,
  );
}

/** GPU time of one kernel name, summed over its dispatches (profiling mode). */
export interface KernelProfile {
  name: string;
  dispatches: number;
  /** total GPU milliseconds from timestamp queries; null where the adapter has none */
  ms: number | null;
}

/** Timestamp pairs (2 per dispatch) per command encoder; WebGPU allows 4096 queries per set. */
const PROFILE_QUERIES = 4096;

interface Profiler {
  querySet: GPUQuerySet | null;
  resolve: GPUBuffer | null;
  /** kernel names of the dispatches timed in the open encoder, in query order */
  names: string[];
  /** readbacks of submitted encoders */
  submitted: { buffer: GPUBuffer; names: string[] }[];
  /** dispatch counts by name (also without timestamps) */
  counts: Map<string, number>;
}

interface CachedPipeline {
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
}

const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

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
  /** set by destroy(): the device's loss is then expected */
  private destroyed = false;
  private currentKernel = '';
  /** unresolved out-of-memory checks of new buffers (their error scopes resolve asynchronously) */
  private readonly oomChecks = new Set<Promise<void>>();
  /** new buffers not yet bound by a dispatch: the next kernel recorded is named in their OOM error */
  private unboundAllocs: { kernel: string }[] = [];
  /** buffers whose allocation failed (invalid): dropped instead of pooled when released */
  private readonly failedBuffers = new WeakSet<GPUBuffer>();
  readonly memory: MemoryStats = { liveBytes: 0, pooledBytes: 0, peakBytes: 0, buffersCreated: 0 };
  /**
   * Most bytes the device's buffers (live and pooled) may take, or null for no limit. A buffer that
   * would pass it fails like a driver's out-of-memory (GpuOutOfMemoryError at the next read or sync,
   * naming the kernel) after the pool is freed. For drivers that do not report out of memory:
   * lavapipe ends the process instead (dawnGpu sets a default there).
   */
  memoryBudgetBytes: number | null = null;
  /** Counters for the whole life of the device. */
  readonly counters = { dispatches: 0, submits: 0, readbacks: 0, pipelines: 0 };
  /** Non-null while profiling (off by default; the normal path only tests this field). */
  private profiler: Profiler | null = null;

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
      if (isOutOfMemory(e)) this.setOutOfMemory(0, this.currentKernel, e.message);
      else this.pendingError ??= new GpuError(`WebGPU error (last kernel recorded: ${this.currentKernel || 'none'}): ${e.message}`);
    });
    void device.lost.then((info) => {
      if (this.destroyed) return; // our own destroy()
      this.lost =
        `GPU device lost (${info.reason}${info.message ? `: ${info.message}` : ''}; last kernel recorded: ${this.currentKernel || 'none'}). ` +
        'Nothing on this device survives: start a new process (a training run continues from its last checkpoint with --resume).';
    });
  }

  /** Record an out-of-memory error; it replaces any other pending error (those follow from it: a
   *  failed allocation leaves an invalid buffer, and every bind group and submit using it fails). */
  private setOutOfMemory(bytes: number, kernel: string, detail: string, live = this.memory.liveBytes, pooled = this.memory.pooledBytes): void {
    if (this.pendingError instanceof GpuOutOfMemoryError) return;
    this.pendingError = new GpuOutOfMemoryError(
      `GPU out of memory${bytes ? ` allocating ${mib(bytes)}` : ''} for kernel ${kernel || '(none recorded yet)'} ` +
        `(${mib(live)} in live tensors and ${mib(pooled)} pooled at the time): ` +
        `use a smaller batch (--batch) or a smaller model (--preset). [${detail.split('\n')[0]}]`,
    );
  }

  /** Wait for the outstanding out-of-memory checks, so that an OOM is reported rather than the
   *  validation errors it causes. */
  private async settleErrors(): Promise<void> {
    while (this.oomChecks.size > 0) await Promise.all([...this.oomChecks]);
  }

  get limits(): GPUSupportedLimits {
    return this.device.limits;
  }

  /** Throws the first WebGPU error seen since the last check, naming the kernel. While a new
   *  buffer's out-of-memory check is outstanding, other errors wait for read()/sync() (they may be
   *  consequences of that allocation failing). */
  checkErrors(): void {
    if (this.lost) throw new GpuDeviceLostError(this.lost);
    if (this.pendingError && (this.oomChecks.size === 0 || this.pendingError instanceof GpuOutOfMemoryError)) {
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
      const budget = this.memoryBudgetBytes;
      if (budget !== null && this.memory.liveBytes + this.memory.pooledBytes + size > budget) this.trimPool();
      const overBudget = budget !== null && this.memory.liveBytes + size > budget;
      const { liveBytes, pooledBytes } = this.memory;
      let driverError: Promise<GPUError | null>;
      if (overBudget) {
        // an invalid buffer (MAP_READ may not be bound as storage), so what follows is exactly what a
        // failed driver allocation causes; its own validation error is not the one to report
        this.device.pushErrorScope('validation');
        buffer = this.device.createBuffer({ size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.STORAGE });
        void this.device.popErrorScope().catch(() => {});
        driverError = Promise.resolve({ message: `past this device's memory budget of ${mib(budget)} (Gpu.memoryBudgetBytes; env DISTILLKAC_GPU_MEMORY_MB)` } as GPUError);
      } else {
        this.device.pushErrorScope('out-of-memory');
        buffer = this.device.createBuffer({
          size,
          usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
        });
        driverError = this.device.popErrorScope();
      }
      const site = { kernel: '' };
      this.unboundAllocs.push(site);
      const failed = buffer;
      // settled after the op that asked for the buffer has recorded its kernel (named in the error)
      const check: Promise<void> = driverError.then(
        (err) => {
          if (!err) return;
          this.setOutOfMemory(size, site.kernel || this.currentKernel, err.message, liveBytes, pooledBytes);
          this.dropFailed(failed);
        },
        () => {}, // no scope to pop on a lost device; the loss itself is reported
      ).finally(() => this.oomChecks.delete(check));
      this.oomChecks.add(check);
      this.memory.buffersCreated++;
    }
    this.memory.liveBytes += size;
    this.memory.peakBytes = Math.max(this.memory.peakBytes, this.memory.liveBytes);
    return buffer;
  }

  /** Keep an invalid buffer (its allocation failed) out of the pool, so the device stays usable. */
  private dropFailed(buffer: GPUBuffer): void {
    const free = this.freeBuffers.get(buffer.size);
    const k = free?.indexOf(buffer) ?? -1;
    if (k >= 0) {
      free!.splice(k, 1);
      this.memory.pooledBytes -= buffer.size;
      buffer.destroy();
    } else {
      this.failedBuffers.add(buffer);
    }
  }

  /** Return a buffer to the pool. Safe while recorded work still uses it: the queue runs in order. */
  release(buffer: GPUBuffer): void {
    const size = buffer.size;
    this.memory.liveBytes -= size;
    if (this.failedBuffers.has(buffer)) {
      buffer.destroy();
      return;
    }
    this.memory.pooledBytes += size;
    let free = this.freeBuffers.get(size);
    if (!free) this.freeBuffers.set(size, (free = []));
    free.push(buffer);
  }

  /** Destroy all pooled (free) buffers. Recorded work that still reads them is submitted first
   *  (a destroyed buffer may finish submitted work, but not be submitted). */
  trimPool(): void {
    this.flush();
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

  /** Zero `bytes` of `dst` from `offset` in stream order. */
  clear(dst: GPUBuffer, offset: number, bytes: number): void {
    this.endPass();
    this.getEncoder().clearBuffer(dst, offset, bytes);
    this.recorded++;
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
      await this.settleErrors();
      this.checkErrors();
      throw e;
    }
    await this.settleErrors();
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

  /** Record one kernel launch. `buffers` bind to @binding(0..n-1) in order; the uniform block
   *  (`uniforms`, else the kernel's own `params`), when there is one, binds to @binding(n). */
  dispatch(kernel: Kernel, buffers: Binding[], uniforms: ArrayBufferView | undefined = kernel.params): void {
    this.checkErrors();
    const [x, y, z] = kernel.workgroups;
    if (x === 0 || y === 0 || z === 0) return;
    const max = this.device.limits.maxComputeWorkgroupsPerDimension;
    if (x > max || y > max || z > max) {
      throw new GpuError(`kernel ${kernel.name}: grid ${x}x${y}x${z} exceeds ${max} workgroups per dimension`);
    }
    this.currentKernel = kernel.name;
    if (this.unboundAllocs.length > 0) {
      for (const site of this.unboundAllocs) site.kernel = kernel.name;
      this.unboundAllocs = [];
    }
    const { pipeline, layout } = this.pipelineFor(kernel);
    const entries: GPUBindGroupEntry[] = buffers.map((b, binding) => ({ binding, resource: 'offset' in b ? b : { buffer: b } }));
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
    if (this.profiler) {
      this.profiledDispatch(this.profiler, kernel.name, pipeline, bindGroup, x, y, z);
      return;
    }
    const pass = this.getPass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(x, y, z);
    this.counters.dispatches++;
    if (++this.recorded >= MAX_DISPATCHES_PER_SUBMIT) this.flush();
  }

  // ---- profiling ------------------------------------------------------------------------------

  /** Whether this device can time kernels on the GPU (timestamp queries). */
  get canTimeKernels(): boolean {
    return this.features.has('timestamp-query');
  }

  /**
   * Time every following dispatch on the GPU: each gets its own compute pass with timestamp writes,
   * and `readProfile()` sums the times per kernel name. Without timestamp queries only dispatch counts
   * are kept. Profiling splits passes, so it slows the work it measures slightly; it is off by default.
   */
  startProfiling(): void {
    if (this.profiler) return;
    this.endPass();
    const timed = this.canTimeKernels;
    this.profiler = {
      querySet: timed ? this.device.createQuerySet({ type: 'timestamp', count: PROFILE_QUERIES }) : null,
      resolve: timed
        ? this.device.createBuffer({ size: PROFILE_QUERIES * 8, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC })
        : null,
      names: [],
      submitted: [],
      counts: new Map(),
    };
  }

  get profiling(): boolean {
    return this.profiler !== null;
  }

  private profiledDispatch(p: Profiler, name: string, pipeline: GPUComputePipeline, bindGroup: GPUBindGroup, x: number, y: number, z: number): void {
    p.counts.set(name, (p.counts.get(name) ?? 0) + 1);
    this.endPass();
    let pass: GPUComputePassEncoder;
    if (p.querySet) {
      if ((p.names.length + 1) * 2 > PROFILE_QUERIES) this.flush();
      const q = p.names.length * 2;
      p.names.push(name);
      pass = this.getEncoder().beginComputePass({
        timestampWrites: { querySet: p.querySet, beginningOfPassWriteIndex: q, endOfPassWriteIndex: q + 1 },
      });
    } else {
      pass = this.getEncoder().beginComputePass();
    }
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(x, y, z);
    pass.end();
    this.counters.dispatches++;
    if (++this.recorded >= MAX_DISPATCHES_PER_SUBMIT) this.flush();
  }

  /** Called by flush() before the encoder is finished: resolve this encoder's timestamps. */
  private resolveProfile(encoder: GPUCommandEncoder): void {
    const p = this.profiler;
    if (!p?.querySet || !p.resolve || p.names.length === 0) return;
    const count = p.names.length * 2;
    const buffer = this.device.createBuffer({ size: count * 8, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    encoder.resolveQuerySet(p.querySet, 0, count, p.resolve, 0);
    encoder.copyBufferToBuffer(p.resolve, 0, buffer, 0, count * 8);
    p.submitted.push({ buffer, names: p.names });
    p.names = [];
  }

  /** Per-kernel GPU time since startProfiling() or the last read (submits and waits). Sorted by time. */
  async readProfile(): Promise<KernelProfile[]> {
    const p = this.profiler;
    if (!p) return [];
    await this.sync();
    const ms = new Map<string, number>();
    for (const { buffer, names } of p.submitted) {
      await buffer.mapAsync(GPUMapMode.READ);
      const t = new BigInt64Array(buffer.getMappedRange());
      names.forEach((name, i) => {
        const dt = Number(t[2 * i + 1] - t[2 * i]) / 1e6;
        ms.set(name, (ms.get(name) ?? 0) + Math.max(0, dt));
      });
      buffer.destroy();
    }
    p.submitted = [];
    const out: KernelProfile[] = [...p.counts].map(([name, dispatches]) => ({ name, dispatches, ms: p.querySet ? (ms.get(name) ?? 0) : null }));
    p.counts = new Map();
    return out.sort((a, b) => (b.ms ?? 0) - (a.ms ?? 0) || b.dispatches - a.dispatches);
  }

  /** Stop profiling (what was not read is dropped). */
  stopProfiling(): void {
    const p = this.profiler;
    if (!p) return;
    this.flush();
    this.profiler = null;
    for (const { buffer } of p.submitted) buffer.destroy();
    p.querySet?.destroy();
    p.resolve?.destroy();
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
    if (this.profiler) this.resolveProfile(this.encoder);
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
    await this.settleErrors();
    this.checkErrors();
  }

  destroy(): void {
    this.destroyed = true;
    this.stopProfiling();
    this.flush();
    this.trimPool();
    this.uniformBuffer.destroy();
    this.device.destroy();
  }
}
