// Tensor: a shape and a GPU buffer, plus how it was made (for reverse mode) and which memory scope
// owns it. Ops live in ops/*.ts and are attached to the prototype there.
import type { Binding, Gpu } from './runtime/gpu';
import { type StridedView, elementwiseKernel } from '../kernels/elementwise';
import { type Kernel, MAX_WORKGROUPS_PER_DIM } from '../kernels/kernel';
import { copyMultiKernel, sumIntoSlotsKernel } from '../kernels/optim';

export type DType = 'f32' | 'i32';
export type Shape = readonly number[];

/** How a tensor was computed: its inputs and the rule giving their gradients from its own. */
export interface GradNode {
  op: string;
  inputs: Tensor[];
  backward: (grad: Tensor) => (Tensor | PendingSum | null)[];
}

/** A gradient handed back unreduced: `src` viewed as [a, c, r] summed over a and r into `shape`
 *  (c elements), as a bias's gradient is. backward() reduces the ones bound for a parameter arena
 *  together at the end, a few multi-tensor dispatches instead of one or two per parameter; anywhere
 *  else `reduce` runs at once. */
export class PendingSum {
  constructor(
    readonly src: Tensor,
    readonly a: number,
    readonly c: number,
    readonly r: number,
    readonly shape: number[],
    readonly reduce: () => Tensor,
  ) {}
}

let defaultGpu: Gpu | null = null;

/** Make `gpu` the device new tensors are created on when none is given. */
export function setDefaultGpu(gpu: Gpu | null): void {
  defaultGpu = gpu;
}

export function getDefaultGpu(): Gpu {
  if (!defaultGpu) throw new Error('no GPU selected: call `await initGpu()` (Node) or `setDefaultGpu(gpu)` first');
  return defaultGpu;
}

// ---- memory scopes ----------------------------------------------------------------------------
// A scope owns every tensor created while it is the innermost open scope; when it closes it frees
// them all except the ones reachable from its return value, which move to the enclosing scope.
// Tensors made outside any scope (parameters, optimizer state) live until dispose() or until they
// are garbage-collected (a FinalizationRegistry returns their buffers to the pool).

const scopes: Set<Tensor>[] = [];

let nextId = 1;

/** A GPU buffer shared by a tensor, its reshaped views and the lazy tensors that will read it;
 *  returned to the pool with the last reference. A storage made by `range` is a byte range of
 *  another (a parameter or gradient inside a model's arena): it holds its parent while referenced
 *  and never frees the buffer itself. */
export class Storage {
  readonly id = nextId++;
  refs = 0;
  /** lazy tensors whose expression reads this buffer (realized before anyone writes it in place);
   *  weak, so a forgotten lazy tensor can still be garbage-collected. A range shares its root's
   *  map, so writing any part of an arena realizes every lazy reader of it. */
  readonly readers: Map<number, WeakRef<Tensor>>;
  constructor(
    readonly gpu: Gpu,
    readonly buffer: GPUBuffer,
    readonly byteOffset = 0,
    /** bytes of the range (the whole buffer when not a range) */
    readonly byteLength = buffer.size,
    private readonly parent: Storage | null = null,
  ) {
    this.readers = parent ? parent.readers : new Map();
  }
  /** `bytes` from `byteOffset` (relative to this storage) as a storage of its own. */
  range(byteOffset: number, bytes: number): Storage {
    return new Storage(this.gpu, this.buffer, this.byteOffset + byteOffset, bytes, this.root);
  }
  get isRange(): boolean {
    return this.parent !== null;
  }
  /** The storage owning the whole buffer (itself when not a range). */
  get root(): Storage {
    return this.parent ?? this;
  }
  /** What a kernel binds: the whole buffer, or the range. */
  get binding(): Binding {
    return this.parent ? { buffer: this.buffer, offset: this.byteOffset, size: this.byteLength } : this.buffer;
  }
  retain(): this {
    if (this.refs++ === 0) this.parent?.retain();
    return this;
  }
  releaseRef(): void {
    if (--this.refs > 0) return;
    if (this.parent) this.parent.releaseRef();
    else this.gpu.release(this.buffer);
  }
}

/** Returns the buffers of tensors nobody disposed (a lazy tensor holds references to its leaves). */
const finalizer = new FinalizationRegistry<{ storages: Storage[]; lazyId?: number }>(({ storages, lazyId }) => {
  for (const s of storages) {
    if (lazyId !== undefined) s.readers.delete(lazyId);
    s.releaseRef();
  }
});

function collectTensors(value: unknown, into: Set<Tensor>, seen = new Set<unknown>()): void {
  if (value === null || typeof value !== 'object' || seen.has(value)) return;
  seen.add(value);
  if (value instanceof Tensor) {
    into.add(value);
  } else if (Array.isArray(value)) {
    for (const v of value) collectTensors(v, into, seen);
  } else if (value instanceof Map) {
    for (const v of value.values()) collectTensors(v, into, seen);
  } else if (Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value)) collectTensors(v, into, seen);
  }
}

function closeScope(own: Set<Tensor>, result: unknown): void {
  // out of order, the scope still closes (left on the stack, it would own every later tensor forever)
  const at = scopes.lastIndexOf(own);
  const inOrder = at === scopes.length - 1;
  scopes.splice(at, 1);
  const kept = new Set<Tensor>();
  collectTensors(result, kept);
  const parent = scopes[at - 1];
  for (const t of own) {
    if (kept.has(t)) parent?.add(t);
    else t.dispose();
  }
  if (!inOrder) {
    throw new Error('memory scopes closed out of order: scopes nest, and two scopes may not run concurrently (await one before starting the next)');
  }
}

/** Run `fn`; free every tensor it created except those in its (possibly async) result.
 *  Works across `await`; scopes nest. */
export function scope<T>(fn: () => T): T {
  const own = new Set<Tensor>();
  scopes.push(own);
  // after fn threw, its error is the one to report, even if the scope also closes out of order
  const closeAfter = (e: unknown): never => {
    try {
      closeScope(own, undefined);
    } catch {
      // the scope is closed all the same (closeScope frees before it throws)
    }
    throw e;
  };
  let result: T;
  try {
    result = fn();
  } catch (e) {
    return closeAfter(e);
  }
  if (result instanceof Promise) {
    return result.then((v) => (closeScope(own, v), v), closeAfter) as T;
  }
  closeScope(own, result);
  return result;
}

/** Take tensors out of every scope: they live until dispose(). Returns its argument. */
export function keep<T>(value: T): T {
  const found = new Set<Tensor>();
  collectTensors(value, found);
  for (const t of found) for (const s of scopes) s.delete(t);
  return value;
}

// ---- gradient mode ------------------------------------------------------------------------------

let gradEnabled = true;

/** Run `fn` (sync or async) without recording gradients. */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  let result: T;
  try {
    result = fn();
  } catch (e) {
    gradEnabled = prev;
    throw e;
  }
  if (result instanceof Promise) {
    return result.finally(() => (gradEnabled = prev)) as T;
  }
  gradEnabled = prev;
  return result;
}

export function isGradEnabled(): boolean {
  return gradEnabled;
}

// ---- Tensor -----------------------------------------------------------------------------------

/** A shape as error messages print it: `[2, 3]`. */
export const formatShape = (shape: readonly number[]): string => `[${shape.join(', ')}]`;

export function sizeOf(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function checkShape(shape: Shape, what: string): number[] {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new Error(`${what}: invalid shape ${formatShape(shape)} (dimensions must be non-negative integers)`);
  }
  return [...shape];
}

// ---- lazy elementwise fusion --------------------------------------------------------------------
// Elementwise ops do not launch at once: they make a lazy tensor holding WGSL `let` statements over
// leaf buffers. A consumer of the same shape inlines them, so a chain such as groupNorm's
// sub-mul-rsqrt-add becomes one kernel; anything else that needs the buffer realizes it.

/** Statements of a lazy tensor: node id -> WGSL expression, in dependency order. */
export interface LazyExpr {
  name: string;
  lets: Map<number, string>;
  /** identifier of the result (v<id>) */
  result: number;
  /** leaf identifier -> the buffer and the view it is read through */
  leaves: Map<string, { storage: Storage; view: StridedView }>;
}

/** Inline at most this many statements into one kernel (longer chains are realized first). */
export const MAX_FUSED_STATEMENTS = 32;

export class Tensor {
  readonly shape: number[];
  readonly size: number;
  requiresGrad = false;
  grad: Tensor | null = null;
  /** where backward() writes this leaf's gradient: its range of a gradient arena (see
   *  ParameterArena); null for a gradient in a buffer of its own */
  gradSlot: Storage | null = null;
  node: GradNode | null = null;
  private storage: Storage | null;
  /** set while the tensor is an unlaunched elementwise expression */
  lazy: LazyExpr | null = null;
  readonly gpu: Gpu;
  private readonly id = nextId++;

  /** Wraps storage (ops use this; users call the creation functions), or a lazy expression. */
  constructor(
    source: Storage | { gpu: Gpu; lazy: LazyExpr },
    shape: Shape,
    readonly dtype: DType = 'f32',
  ) {
    this.gpu = source.gpu;
    this.shape = [...shape];
    this.size = sizeOf(shape);
    if (source instanceof Storage) {
      this.storage = source.retain();
      finalizer.register(this, { storages: [source] }, this);
    } else {
      this.storage = null;
      this.lazy = source.lazy;
      const leaves = [...this.lazy.leaves.values()].map((l) => l.storage);
      for (const leaf of leaves) {
        leaf.retain();
        leaf.readers.set(this.id, new WeakRef(this));
      }
      finalizer.register(this, { storages: leaves, lazyId: this.id }, this);
    }
    scopes[scopes.length - 1]?.add(this);
  }

  private releaseLeaves(): void {
    finalizer.unregister(this);
    for (const leaf of this.lazy!.leaves.values()) {
      leaf.storage.readers.delete(this.id);
      leaf.storage.releaseRef();
    }
    this.lazy = null;
  }

  /** Launch the lazy expression into `target` (a range of an arena, as large as the tensor), or a
   *  buffer of its own. */
  private realize(target?: Storage): void {
    const lazy = this.lazy!;
    // canonical names (x0.. for leaves, t0.. for statements) so equal graphs share one pipeline
    const leafNames = [...lazy.leaves.keys()];
    const leafIndex = new Map(leafNames.map((n, k) => [n, `x${k}`]));
    const lets = [...lazy.lets.entries()].sort(([a], [b]) => a - b); // dependencies have smaller ids
    const letIndex = new Map(lets.map(([id], k) => [`v${id}`, `t${k}`]));
    const rename = (code: string) => code.replace(/\b(v\d+|s\d+_[a-z0-9_]+)\b/g, (m) => letIndex.get(m) ?? leafIndex.get(m) ?? m);
    const body = lets.map(([id, code]) => `let ${letIndex.get(`v${id}`)} = ${rename(code)};`);
    const views = leafNames.map((n) => lazy.leaves.get(n)!.view);
    const kernel = elementwiseKernel(lazy.name, this.shape, views, letIndex.get(`v${lazy.result}`)!, this.dtype, body);
    const storage = target ?? new Storage(this.gpu, this.gpu.alloc(Math.max(1, this.size) * 4));
    if (this.size > 0) this.gpu.dispatch(kernel, [...leafNames.map((n) => lazy.leaves.get(n)!.storage.binding), storage.binding]);
    this.releaseLeaves();
    this.storage = storage.retain();
    finalizer.register(this, { storages: [storage] }, this);
  }

  /** True when the tensor is lazy and may be inlined into an elementwise consumer of `shape`. */
  fusableInto(shape: Shape): boolean {
    return !!this.lazy && this.lazy.lets.size < MAX_FUSED_STATEMENTS && shape.length === this.shape.length && shape.every((d, i) => d === this.shape[i]);
  }

  /** The storage, realizing a lazy tensor first (for leaves of a fused expression). */
  get storageForRead(): Storage {
    return this.live;
  }

  /** A new uninitialised tensor on `gpu` (contents are whatever the pooled buffer held). */
  static empty(shape: Shape, dtype: DType = 'f32', gpu: Gpu = getDefaultGpu()): Tensor {
    const s = checkShape(shape, 'empty');
    return new Tensor(new Storage(gpu, gpu.alloc(Math.max(1, sizeOf(s)) * 4)), s, dtype);
  }

  /** A tensor of another shape over the same storage (no copy). */
  view(shape: Shape): Tensor {
    return new Tensor(this.storageForRead, shape, this.dtype);
  }

  /** The storage of a realized tensor (launching a lazy one); throws on a disposed tensor. */
  private get live(): Storage {
    if (this.lazy) this.realize();
    if (!this.storage) throw new Error(`use of a disposed tensor of shape ${formatShape(this.shape)} (it was freed by dispose() or by the scope that created it; return it from the scope or keep() it)`);
    return this.storage;
  }

  /** The whole GPU buffer. A tensor inside an arena (a packed parameter or its gradient) has none of
   *  its own: bind it with `binding`, address it with `byteOffset`. */
  get buffer(): GPUBuffer {
    const storage = this.live;
    if (storage.isRange) {
      throw new Error(`tensor of shape ${formatShape(this.shape)} is a range at byte ${storage.byteOffset} of an arena buffer (a packed parameter or gradient): bind it with .binding / .writableBinding, copy from .byteOffset`);
    }
    return storage.buffer;
  }

  /** What a kernel binds to read this tensor: its buffer, or its range of an arena. */
  get binding(): Binding {
    return this.live.binding;
  }

  /** Byte offset of the tensor in its buffer (non-zero only inside an arena). */
  get byteOffset(): number {
    return this.live.byteOffset;
  }

  /** The binding, for a kernel that writes it in place: lazy tensors still reading it launch first. */
  get writableBinding(): Binding {
    const storage = this.live;
    for (const reader of [...storage.readers.values()]) reader.deref()?.live;
    return storage.binding;
  }

  /** `writableBinding` of a tensor that has a buffer of its own. */
  get writableBuffer(): GPUBuffer {
    const buffer = this.buffer;
    this.writableBinding;
    return buffer;
  }

  /** Whether this tensor's data is `storage` (e.g. a gradient written into its arena slot). */
  isBackedBy(storage: Storage): boolean {
    return this.storage === storage;
  }

  /** Move the data into `target` (a range of an arena, as large as this tensor) and use it from now
   *  on; the tensor keeps its identity, so modules and optimizers holding it see the move. Lazy
   *  tensors that already read the old buffer keep it alive and read the old values. */
  moveInto(target: Storage): void {
    const from = this.live;
    if (this.size > 0) this.gpu.copy(from.buffer, from.byteOffset, target.buffer, target.byteOffset, this.size * 4);
    finalizer.unregister(this);
    from.releaseRef();
    this.storage = target.retain();
    finalizer.register(this, { storages: [target] }, this);
  }

  get disposed(): boolean {
    return this.storage === null && this.lazy === null;
  }

  get ndim(): number {
    return this.shape.length;
  }

  /** Free the GPU buffer now (idempotent). */
  dispose(): void {
    if (this.lazy) this.releaseLeaves();
    if (this.storage) {
      finalizer.unregister(this);
      this.storage.releaseRef();
      this.storage = null;
    }
    this.node = null;
    for (const s of scopes) s.delete(this);
  }

  /** Copy to the host (waits for the GPU). */
  async toArray(): Promise<Float32Array | Int32Array> {
    const storage = this.live;
    const bytes = await this.gpu.read(storage.buffer, this.size * 4, storage.byteOffset);
    return this.dtype === 'i32' ? new Int32Array(bytes) : new Float32Array(bytes);
  }

  async toFloat32Array(): Promise<Float32Array> {
    if (this.dtype !== 'f32') throw new Error(`toFloat32Array: tensor has dtype ${this.dtype}`);
    return (await this.toArray()) as Float32Array;
  }

  /** The value of a one-element tensor. */
  async item(): Promise<number> {
    if (this.size !== 1) throw new Error(`item(): tensor of shape ${formatShape(this.shape)} has ${this.size} elements, expected 1`);
    return (await this.toArray())[0];
  }

  /** Mark as a leaf whose gradient backward() accumulates into `.grad`. */
  requireGrad(flag = true): this {
    this.requiresGrad = flag;
    return this;
  }

  /** Same data, cut from the graph. Shares nothing: it is a copy. */
  detach(): Tensor {
    return noGrad(() => this.clone());
  }

  toString(): string {
    return `Tensor(${this.dtype}, ${formatShape(this.shape)})`;
  }

  /**
   * Reverse mode: gradients of this tensor with respect to every leaf with requiresGrad, accumulated
   * into their `.grad`. Non-scalar outputs need a seed gradient of the same shape.
   */
  backward(seed?: Tensor): void {
    if (!seed && this.size !== 1) {
      throw new Error(`backward(): output has shape ${formatShape(this.shape)}; pass a seed gradient of that shape for non-scalar outputs`);
    }
    if (!this.requiresGrad) {
      throw new Error(`backward(): this tensor of shape ${formatShape(this.shape)} does not require gradients (no input had requiresGrad, or it was computed under noGrad or from a detached tensor)`);
    }
    if (seed && seed.shape.join() !== this.shape.join()) {
      throw new Error(`backward(): seed shape ${formatShape(seed.shape)} does not match output shape ${formatShape(this.shape)}`);
    }
    // topological order by depth-first search from the output
    const order: Tensor[] = [];
    const visited = new Set<Tensor>();
    const visit = (t: Tensor) => {
      // a freed tensor has lost its node: it would pass for a leaf and silently stop the gradient
      if (t.disposed) throw new Error(`backward(): the graph reaches a disposed tensor of shape ${formatShape(t.shape)} (freed by dispose() or by the scope that created it); call backward() inside the scope that built the graph`);
      visited.add(t);
      for (const input of t.node?.inputs ?? []) if (input.requiresGrad && !visited.has(input)) visit(input);
      order.push(t);
    };
    visit(this);

    noGrad(() => {
      const grads = new Map<Tensor, Tensor>();
      grads.set(this, seed ?? this.onesLike());
      const assigned = new Set<Tensor>();
      const gathers: { slot: Storage; src: Tensor }[] = [];
      const pendingSums = new Map<Tensor, PendingSum>();
      for (let i = order.length - 1; i >= 0; i--) {
        const t = order[i];
        const g = grads.get(t);
        if (!g) continue;
        if (!t.node && t.gradSlot) {
          // a packed parameter: its gradient lives in its slot of the gradient arena. A lazy gradient
          // is launched straight into the slot; one computed by a kernel of its own, or a sum with the
          // gradient already there, is gathered in after the loop (a few multi-tensor dispatches).
          const slot = t.gradSlot;
          if (t.grad) {
            gathers.push({ slot, src: t.grad.add(g) });
            if (!t.grad.isBackedBy(slot)) t.grad.dispose();
          } else if (g.lazy && g !== seed) {
            for (const r of [...slot.readers.values()]) r.deref()?.storageForRead;
            g.realize(slot);
          } else {
            gathers.push({ slot, src: g });
          }
          if (!t.grad?.isBackedBy(slot)) t.grad = keep(new Tensor(slot, t.shape));
          assigned.add(t.grad);
          continue;
        }
        if (!t.node) {
          // a leaf: its gradient outlives the scope, owned by the tensor until zeroGrad
          if (t.grad) {
            const sum = keep(t.grad.add(g));
            t.grad.dispose();
            t.grad = sum;
          } else {
            t.grad = keep(assigned.has(g) || g === seed ? g.clone() : g);
          }
          assigned.add(t.grad);
          continue;
        }
        const inputGrads = t.node.backward(g);
        t.node.inputs.forEach((input, k) => {
          let gi = inputGrads[k];
          if (!gi || !input.requiresGrad) return;
          if (gi.shape.join() !== input.shape.join()) {
            throw new Error(`internal: gradient of ${t.node!.op} input ${k} has shape [${gi.shape}] but input has [${input.shape}]`);
          }
          // a packed parameter's only gradient, first since zeroGrad: reduced into its slot at the end
          const pending = pendingSums.get(input);
          if (gi instanceof PendingSum && !pending && !grads.has(input) && !input.node && input.gradSlot && !input.grad) {
            pendingSums.set(input, gi);
            return;
          }
          if (gi instanceof PendingSum) gi = gi.reduce();
          if (pending) {
            pendingSums.delete(input);
            grads.set(input, pending.reduce());
          }
          const prev = grads.get(input);
          grads.set(input, prev ? prev.add(gi) : gi);
        });
      }
      if (gathers.length > 0) gatherIntoSlots(this.gpu, gathers);
      if (pendingSums.size > 0) {
        sumIntoSlots(this.gpu, [...pendingSums].map(([leaf, sum]) => ({ slot: leaf.gradSlot!, sum })));
        for (const leaf of pendingSums.keys()) leaf.grad = keep(new Tensor(leaf.gradSlot!, leaf.shape));
      }
    });
  }
}

/** Copy each `src` into its `slot` (ranges of arena buffers): one multi-tensor dispatch per group of
 *  sources bound together, a plain copy for a source that lies in the same buffer as its slot (a
 *  buffer may not be bound for writing and reading at once). */
export function gatherIntoSlots(gpu: Gpu, gathers: { slot: Storage; src: Tensor }[]): void {
  const items: { slot: Storage; src: Storage }[] = [];
  for (const { slot, src } of gathers) {
    if (src.size === 0) continue;
    const from = src.storageForRead;
    if (from.buffer === slot.buffer) {
      for (const r of [...slot.readers.values()]) r.deref()?.storageForRead;
      gpu.copy(from.buffer, from.byteOffset, slot.buffer, slot.byteOffset, src.size * 4);
      continue;
    }
    items.push({ slot, src: from });
  }
  dispatchIntoSlots(gpu, items, (group, offsets) => copyMultiKernel(group.map((x) => x.slot.byteLength / 4), offsets));
}

/** Reduce each pending sum into its `slot` (a range of an arena buffer): one multi-tensor dispatch per
 *  group bound together (one workgroup per output element, within one grid dimension); a source in
 *  the slot's own buffer, or a sum with more outputs than one grid dimension holds, is reduced on its
 *  own and copied. */
function sumIntoSlots(gpu: Gpu, sums: { slot: Storage; sum: PendingSum }[]): void {
  const items: { slot: Storage; src: Storage; sum: PendingSum }[] = [];
  for (const { slot, sum } of sums) {
    const src = sum.src.storageForRead;
    if (src.buffer === slot.buffer || sum.c > MAX_WORKGROUPS_PER_DIM) gatherIntoSlots(gpu, [{ slot, src: sum.reduce() }]);
    else items.push({ slot, src, sum });
  }
  const outputs = (group: { sum: PendingSum }[]) => group.reduce((a, x) => a + x.sum.c, 0);
  dispatchIntoSlots(gpu, items, (group, offsets) => sumIntoSlotsKernel(group.map((x) => x.sum), offsets), (group, next) => outputs(group) + next.sum.c <= MAX_WORKGROUPS_PER_DIM);
}

/** Multi-tensor writes into slots: per arena, groups of as many sources as a dispatch may bind (and
 *  `fits` allows), each group one dispatch of `kernel` (given the slots' element offsets in the
 *  arena), after the arena's lazy readers have read it. */
function dispatchIntoSlots<T extends { slot: Storage; src: Storage }>(gpu: Gpu, items: T[], kernel: (group: T[], offsets: number[]) => Kernel, fits: (group: T[], next: T) => boolean = () => true): void {
  const perDispatch = Math.max(1, Math.min(15, (gpu.limits.maxStorageBuffersPerShaderStage ?? 8) - 1));
  const byRoot = new Map<Storage, T[]>();
  for (const item of items) {
    const list = byRoot.get(item.slot.root) ?? [];
    byRoot.set(item.slot.root, list);
    list.push(item);
  }
  for (const [root, list] of byRoot) {
    for (const r of [...root.readers.values()]) r.deref()?.storageForRead;
    for (let k = 0; k < list.length; ) {
      const group = [list[k++]];
      while (k < list.length && group.length < perDispatch && fits(group, list[k])) group.push(list[k++]);
      const offsets = group.map((x) => (x.slot.byteOffset - root.byteOffset) / 4);
      gpu.dispatch(kernel(group, offsets), [root.binding, ...group.map((x) => x.src.binding)]);
    }
  }
}

/** Record how `out` was made when gradients are on and any input needs one. Returns `out`. */
export function recordGrad(out: Tensor, op: string, inputs: Tensor[], backward: GradNode['backward']): Tensor {
  if (gradEnabled && inputs.some((t) => t.requiresGrad)) {
    out.requiresGrad = true;
    out.node = { op, inputs, backward };
  }
  return out;
}
