// Running GEMMs: pick a kernel variant for (adapter, shape class), record its launches, and tune.
// Ops record work synchronously, so tuning cannot happen inside matmul(): the first use of a shape
// class runs a default variant and queues the class; `await tuneGemms(gpu)` (after a warm-up step)
// times every candidate on scratch buffers of the same sizes and caches the fastest per adapter.
// Choices live in memory and can be exported/imported as JSON (callers own any file I/O, so the
// engine stays browser-safe).
import { type GemmPlan, type GemmSpec, type GemmVariant, gemmPlan, layoutSignature, variantKey } from '../kernels/gemm';
import { type Conv3Spec, type Conv3Variant, conv3Key, conv3Plan } from '../kernels/conv3';
import { type Conv3BlockVariant, conv3BlockKey, conv3BlockPlan } from '../kernels/conv3-block';
import { type Conv3WeightGradSpec, type Conv3WeightGradVariant, conv3WeightGradKey, conv3WeightGradPlan } from '../kernels/conv3-weight-grad';
import { type Im2colSpec, im2colElements, im2colLaunch } from '../kernels/im2col';
import type { Binding, Gpu } from './runtime/gpu';

/** A convolution computed as im2col into scratch, then a strided GEMM with variant `gemm`. */
export interface Im2colVariant {
  kind: 'im2col';
  gemm: GemmVariant;
}

/** Any kernel variant the tuner can choose. */
export type Variant = GemmVariant | Conv3Variant | Conv3BlockVariant | Conv3WeightGradVariant | Im2colVariant;

export function anyVariantKey(v: Variant): string {
  if (v.kind === 'direct3') return conv3Key(v);
  if (v.kind === 'block3') return conv3BlockKey(v);
  if (v.kind === 'dw3') return conv3WeightGradKey(v);
  return v.kind === 'im2col' ? `im2col+${variantKey(v.gemm)}` : variantKey(v);
}

/**
 * One computation with interchangeable kernels: a shape class for the tuner, the candidates (the
 * first is the untuned default), and the launches of each.
 */
export interface Problem {
  name: string;
  cls: string;
  candidates: (caps: AdapterCaps) => Variant[];
  /** null when this problem cannot use the variant */
  plan: (v: Variant) => GemmPlan | null;
}

/** Software rasterizers emulating a GPU on the CPU (Mesa lavapipe/llvmpipe, SwiftShader). */
export function isSoftwareAdapter(gpu: Gpu): boolean {
  const a = gpu.adapter;
  return /llvmpipe|lavapipe|swiftshader|softpipe|software/i.test(`${a.vendor} ${a.architecture} ${a.description} ${a.device ?? ''}`);
}

/** What decides the candidate kernels: CPU emulation or a real GPU, and a fixed subgroup size. */
export interface AdapterCaps {
  software: boolean;
  subgroupSize: number | null;
}

export function adapterCaps(gpu: Gpu): AdapterCaps {
  return { software: isSoftwareAdapter(gpu), subgroupSize: gpu.adapter.subgroupSize ?? null };
}

export function adapterKey(gpu: Gpu): string {
  const a = gpu.adapter;
  return `${a.backend}|${a.vendor}|${a.architecture}|${a.description}`;
}

const bucket = (x: number) => Math.ceil(Math.log2(Math.max(1, x)));

/** Shapes in one class share a tuned choice: same family/layout, sizes within a factor of 2. */
export function shapeClass(spec: GemmSpec, family: string): string {
  return `${family}|${layoutSignature(spec)}|b${bucket(spec.batch)}|m${bucket(spec.M)}|n${bucket(spec.N)}|k${bucket(spec.K)}`;
}

/** Candidate variants for an adapter kind; the first is the untuned default. Kept short: tuning
 *  times every candidate on the real shape. */
export function candidates(spec: GemmSpec, { software, subgroupSize }: AdapterCaps): GemmVariant[] {
  const out: GemmVariant[] = [];
  // few outputs and a long K call for split-K
  const outputs = spec.batch * spec.M * spec.N;
  const splits = spec.K >= 256 && outputs < (software ? 16384 : 262144) ? [4, 16] : [];
  if (software) {
    // lanes along n with a uniform A block; lanes along m only pay off when A is a strided matrix
    // (vec4 loads along k), never for gathered operands. The default (first) is 8x8: as fast as 8x16
    // and a quarter of the compile time; with subgroups of 8 (lavapipe) it shares the A block through
    // subgroup broadcasts (bench/RESULTS.md, "Measurements behind defaults in the code").
    const sg = subgroupSize === 8;
    out.push(
      { kind: 'reg', lanes: 'n', tm: 8, tn: 8, wg: 8, splitK: 1, ...(sg ? { sg } : {}) },
      { kind: 'reg', lanes: 'n', tm: 8, tn: 16, wg: 8, splitK: 1 },
      { kind: 'reg', lanes: 'n', tm: 16, tn: 8, wg: 16, splitK: 1 },
      { kind: 'reg', lanes: 'n', tm: 4, tn: 8, wg: 16, splitK: 1 },
      { kind: 'reg', lanes: 'n', tm: 16, tn: 16, wg: 8, splitK: 1 },
    );
    if (spec.a.kind === 'strided') out.push({ kind: 'reg', lanes: 'm', tm: 8, tn: 16, wg: 8, splitK: 1 }, { kind: 'reg', lanes: 'm', tm: 4, tn: 8, wg: 16, splitK: 1 });
    // larger subgroup-shared tiles (faster for large products on lavapipe: bench/RESULTS.md)
    if (sg) {
      out.push(
        { kind: 'reg', lanes: 'n', tm: 24, tn: 8, wg: 8, splitK: 1, sg: true },
        { kind: 'reg', lanes: 'n', tm: 16, tn: 8, wg: 8, splitK: 1, sg: true },
        { kind: 'reg', lanes: 'n', tm: 16, tn: 16, wg: 8, splitK: 1, sg: true },
      );
    }
    for (const splitK of splits) out.push({ kind: 'reg', lanes: 'n', tm: 8, tn: 16, wg: 8, splitK }, { kind: 'reg', lanes: 'n', tm: 16, tn: 8, wg: 16, splitK });
  } else {
    out.push(
      { kind: 'tiled', rm: 4, rn: 4, tk: 16, splitK: 1 },
      { kind: 'tiled', rm: 8, rn: 8, tk: 8, splitK: 1 },
      { kind: 'tiled', rm: 8, rn: 4, tk: 16, splitK: 1 },
      { kind: 'reg', lanes: 'n', tm: 4, tn: 4, wg: 64, splitK: 1 },
    );
    for (const splitK of splits) out.push({ kind: 'tiled', rm: 4, rn: 4, tk: 16, splitK }, { kind: 'tiled', rm: 8, rn: 8, tk: 8, splitK });
  }
  // untuned default: split when the output is tiny and K long
  if (splits.length && outputs < (software ? 4096 : 65536)) out.unshift({ ...out[0], splitK: 4 });
  return out;
}

interface Pending {
  problem: Problem;
  sizes: Map<string, number>;
}

/** Tuned choices: adapter key -> shape class -> variant. */
const choices = new Map<string, Map<string, Variant>>();
/** Classes seen without a choice, per device. */
const pending = new WeakMap<Gpu, Map<string, Pending>>();

export const gemmStats = { launches: 0, tuned: 0, tuningMs: 0 };

function chosen(gpu: Gpu, cls: string): Variant | undefined {
  return choices.get(adapterKey(gpu))?.get(cls);
}

/** Force a variant for a shape class (tests, experiments). */
export function setGemmChoice(gpu: Gpu, cls: string, variant: Variant): void {
  const key = adapterKey(gpu);
  if (!choices.has(key)) choices.set(key, new Map());
  choices.get(key)!.set(cls, variant);
}

let forced: Variant | null = null;
/** Use this variant for every problem that can run it, until reset with null (tests check every
 *  variant this way). */
export function forceGemmVariant(v: Variant | null): void {
  forced = v;
}

/** A GEMM as a tunable problem. */
export function gemmProblem(spec: GemmSpec, family: string): Problem {
  return {
    name: spec.name,
    cls: shapeClass(spec, family),
    candidates: (caps) => candidates(spec, caps),
    plan: (v) => (v.kind === 'reg' || v.kind === 'tiled' ? gemmPlan(spec, v) : null),
  };
}

export interface ConvProblemSpec {
  name: string;
  family: string;
  /** the convolution as an implicit GEMM (always possible) */
  implicit: GemmSpec;
  /** the direct 3x3 kernel's spec, where it applies */
  direct?: Conv3Spec;
  /** the direct 3x3 weight-gradient kernel's spec, where it applies */
  directWeightGrad?: Conv3WeightGradSpec;
  /** im2col into scratch `col.out`, then `gemm` over it, where it applies */
  im2col?: { col: Im2colSpec; gemm: GemmSpec };
}

/** Multiply-adds from which a direct 3x3 kernel is the untuned default on CPU emulation (a `small`
 *  UNet 28x28 convolution from batch 8): it takes seconds to compile where a GEMM takes half a
 *  second, so small convolutions (tests, sampling a few images) keep the GEMM. */
const DIRECT_DEFAULT_MIN_MACS = 1 << 22;

/** A convolution (or its gradient) with every way we have of computing it as candidates. */
export function convProblem(c: ConvProblemSpec): Problem {
  return {
    name: c.name,
    cls: `${shapeClass(c.implicit, c.family)}${c.direct ? '|d3' : ''}${c.directWeightGrad ? '|dw3' : ''}${c.im2col ? '|i2c' : ''}`,
    candidates: (caps) => {
      const out: Variant[] = candidates(c.implicit, caps);
      // on CPU emulation the direct weight gradient does several times fewer loads per multiply-add
      // than the GEMM, so it is the default there (bench/RESULTS.md)
      if (c.directWeightGrad && caps.software) {
        out.unshift({ kind: 'dw3', tm: 12, tc: 2, rows: 8, wg: 8 }, { kind: 'dw3', tm: 6, tc: 4, rows: 8, wg: 8 });
      }
      if (c.direct) {
        const { batch, M, C, H, W } = c.direct;
        const rowsOf4 = W % 4 === 0;
        // big enough to be worth a direct kernel's compile time as the untuned default
        const big = batch * M * C * 9 * H * W >= DIRECT_DEFAULT_MIN_MACS;
        if (!caps.software) {
          if (rowsOf4) out.push({ kind: 'direct3', tm: 4, q: 1, wg: 64 }, { kind: 'direct3', tm: 8, q: 1, wg: 64 });
        } else if (caps.subgroupSize === 8 && rowsOf4) {
          // subgroups of 8 (lavapipe) share the weights through broadcasts, which pays for a taller
          // block of output channels over one group of 4 positions: the default (bench/RESULTS.md)
          const shared: Conv3Variant = { kind: 'direct3', tm: 12, q: 1, wg: 8, sg: true };
          if (big) out.unshift(shared);
          else out.push(shared);
          out.push({ kind: 'direct3', tm: 8, q: 4, wg: 8 });
        } else {
          // otherwise blocks of positions reuse each loaded value more than a GEMM tile can
          // (src/kernels/conv3-block.ts), at any row width; without subgroups to share the weights
          // (OpenGL) the default. The smaller block compiles in half the time (bench/RESULTS.md).
          const blocked: Conv3BlockVariant[] = [
            { kind: 'block3', tm: 4, rows: 4, cols: 7, wg: 8 },
            { kind: 'block3', tm: 6, rows: 4, cols: 7, wg: 8 },
          ];
          if (big && caps.subgroupSize === null) out.unshift(...blocked);
          else out.push(...blocked);
        }
      }
      if (c.im2col && caps.software) {
        for (const g of candidates(c.im2col.gemm, caps)) if (g.kind === 'reg' && g.lanes === 'n' && g.tm >= 8) out.push({ kind: 'im2col', gemm: g });
      }
      return out;
    },
    plan: (v) => {
      if (v.kind === 'direct3') return c.direct && c.direct.W % 4 === 0 ? conv3Plan(c.direct, v) : null;
      if (v.kind === 'block3') return c.direct ? conv3BlockPlan(c.direct, v) : null;
      if (v.kind === 'dw3') return c.directWeightGrad ? conv3WeightGradPlan(c.directWeightGrad, v) : null;
      if (v.kind === 'im2col') {
        if (!c.im2col) return null;
        const g = gemmPlan(c.im2col.gemm, v.gemm);
        return {
          launches: [im2colLaunch(c.im2col.col), ...g.launches],
          scratch: [{ name: c.im2col.col.out, bytes: im2colElements(c.im2col.col) * 4 }, ...(g.scratch ?? [])],
        };
      }
      return gemmPlan(c.implicit, v);
    },
  };
}

/** Record the launches computing `spec`; `buffers` maps the spec's buffer names to GPU buffers. */
export function runGemm(gpu: Gpu, spec: GemmSpec, family: string, buffers: Record<string, Binding>): void {
  runProblem(gpu, gemmProblem(spec, family), buffers);
}

/** Record the launches of `problem` with its tuned (or forced, or default) variant. */
export function runProblem(gpu: Gpu, problem: Problem, buffers: Record<string, Binding>): void {
  const forcedPlan = forced ? problem.plan(forced) : null;
  if (forcedPlan) {
    dispatchPlan(gpu, problem.name, forcedPlan, buffers);
    return;
  }
  let variant = chosen(gpu, problem.cls);
  if (!variant) {
    variant = problem.candidates(adapterCaps(gpu))[0];
    let p = pending.get(gpu);
    if (!p) pending.set(gpu, (p = new Map()));
    if (!p.has(problem.cls)) {
      const sizes = new Map(Object.entries(buffers).map(([k, b]) => [k, b.size]));
      p.set(problem.cls, { problem, sizes });
    }
  }
  dispatchPlan(gpu, problem.name, problem.plan(variant)!, buffers);
}

function dispatchPlan(gpu: Gpu, name: string, plan: GemmPlan, buffers: Record<string, Binding>): void {
  const scratch = new Map((plan.scratch ?? []).map((sc) => [sc.name, gpu.alloc(sc.bytes)]));
  const label = name;
  for (const { kernel, bindings } of plan.launches) {
    gpu.dispatch(
      kernel,
      bindings.map((name) => {
        // 'NAME#alias' binds buffer NAME again (a second view of it in the kernel)
        const base = name.split('#')[0];
        const buf = scratch.get(base) ?? buffers[base];
        if (!buf) throw new Error(`internal: ${label} has no buffer named ${name}`);
        return buf;
      }),
    );
  }
  gemmStats.launches++;
  for (const b of scratch.values()) gpu.release(b);
}

/** Shape classes used on this device that have no tuned choice yet. */
export function pendingGemmClasses(gpu: Gpu): string[] {
  return [...(pending.get(gpu)?.keys() ?? [])];
}

export interface TuneResult {
  cls: string;
  name: string;
  timings: { variant: string; ms: number }[];
  chosen: string;
}

/** Time `variant` on scratch buffers; milliseconds per run (best of `trials`). */
async function timeVariant(gpu: Gpu, p: Pending, variant: Variant, bufs: Record<string, Binding>, bestSoFar: number, trials = 2): Promise<number> {
  const plan = p.problem.plan(variant)!;
  const name = p.problem.name;
  dispatchPlan(gpu, name, plan, bufs); // compile + warm up
  await gpu.sync();
  let t0 = performance.now();
  dispatchPlan(gpu, name, plan, bufs);
  await gpu.sync();
  const once = performance.now() - t0;
  // clearly slower than the best so far: one run is evidence enough
  if (once > 3 * bestSoFar) return once;
  const reps = Math.max(1, Math.min(50, Math.ceil(20 / Math.max(once, 0.01))));
  let best = once;
  for (let t = 0; t < trials; t++) {
    t0 = performance.now();
    for (let r = 0; r < reps; r++) dispatchPlan(gpu, name, plan, bufs);
    await gpu.sync();
    best = Math.min(best, (performance.now() - t0) / reps);
  }
  return best;
}

export interface TuneOptions {
  log?: (line: string) => void;
  /** classes whose default kernel takes less than this (ms, wall clock incl. submit) keep the default
   *  without trying the others: not worth the compile time. Default 2. */
  minMs?: number;
  /** stop tuning after this many ms; classes left keep their default and stay pending. Default: none */
  budgetMs?: number;
  /** time at most this many candidates per class, the default and those after it in order of
   *  preference (each one compiles a kernel first). Default: all */
  maxCandidates?: number;
}

/**
 * Time every candidate for each pending shape class of this device and cache the fastest. Classes are
 * tuned costliest first (by their default kernel's time); cheap ones keep the default. Uses scratch
 * buffers, so tensors are untouched. Returns what was measured.
 */
export async function tuneGemms(gpu: Gpu, opts: TuneOptions = {}): Promise<TuneResult[]> {
  const p = pending.get(gpu);
  if (!p || p.size === 0) return [];
  const minMs = opts.minMs ?? 2;
  const results: TuneResult[] = [];
  const t0 = performance.now();
  const caps = adapterCaps(gpu);
  await gpu.sync();
  const scratchFor = (item: Pending) => {
    const bufs: Record<string, GPUBuffer> = {};
    for (const [name, size] of item.sizes) bufs[name] = gpu.device.createBuffer({ size, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
    return bufs;
  };
  // the default of each class, once: cheap classes are settled here, the rest are ordered by cost
  const queue: { cls: string; item: Pending; ms: number; v: Variant }[] = [];
  for (const [cls, item] of [...p.entries()]) {
    if (chosen(gpu, cls)) {
      p.delete(cls);
      continue;
    }
    const v = item.problem.candidates(caps)[0];
    const bufs = scratchFor(item);
    const ms = await timeVariant(gpu, item, v, bufs, Infinity);
    for (const b of Object.values(bufs)) b.destroy();
    if (ms < minMs) {
      p.delete(cls);
      setGemmChoice(gpu, cls, v);
      results.push({ cls, name: item.problem.name, timings: [{ variant: anyVariantKey(v), ms }], chosen: anyVariantKey(v) });
    } else {
      queue.push({ cls, item, ms, v });
    }
  }
  queue.sort((a, b) => b.ms - a.ms);
  for (const { cls, item, ms: firstMs, v: first } of queue) {
    if (opts.budgetMs !== undefined && performance.now() - t0 > opts.budgetMs) break;
    p.delete(cls);
    const bufs = scratchFor(item);
    const timings: { variant: string; ms: number }[] = [{ variant: anyVariantKey(first), ms: firstMs }];
    let best: { v: Variant; ms: number } = { v: first, ms: firstMs };
    const seen = new Set<string>([anyVariantKey(first)]);
    for (const v of item.problem.candidates(caps)) {
      if (timings.length >= (opts.maxCandidates ?? Infinity)) break;
      const key = anyVariantKey(v);
      if (seen.has(key)) continue;
      seen.add(key);
      const ms = await timeVariant(gpu, item, v, bufs, best.ms);
      timings.push({ variant: key, ms });
      if (ms < best.ms) best = { v, ms };
    }
    for (const b of Object.values(bufs)) b.destroy();
    setGemmChoice(gpu, cls, best.v);
    gemmStats.tuned++;
    const r = { cls, name: item.problem.name, timings, chosen: anyVariantKey(best.v) };
    results.push(r);
    opts.log?.(`tuned ${item.problem.name}: ${r.chosen} (${timings.map((t) => `${t.variant} ${t.ms.toFixed(2)}ms`).join(', ')})`);
  }
  gemmStats.tuningMs += performance.now() - t0;
  return results;
}

/** The tuned choices as JSON (all adapters seen in this process). */
export function exportGemmChoices(): string {
  const obj: Record<string, Record<string, Variant>> = {};
  for (const [adapter, m] of choices) obj[adapter] = Object.fromEntries(m);
  return JSON.stringify(obj, null, 1);
}

/** Merge choices saved by exportGemmChoices (unknown or malformed entries are ignored). */
export function importGemmChoices(json: string): number {
  let n = 0;
  let obj: unknown;
  try {
    obj = JSON.parse(json);
  } catch {
    return 0;
  }
  if (!obj || typeof obj !== 'object') return 0;
  for (const [adapter, m] of Object.entries(obj as Record<string, unknown>)) {
    if (!m || typeof m !== 'object') continue;
    if (!choices.has(adapter)) choices.set(adapter, new Map());
    for (const [cls, v] of Object.entries(m as Record<string, Variant>)) {
      if (v && (v.kind === 'reg' || v.kind === 'tiled' || v.kind === 'direct3' || v.kind === 'block3' || v.kind === 'dw3' || v.kind === 'im2col')) {
        choices.get(adapter)!.set(cls, v);
        n++;
      }
    }
  }
  return n;
}

/** Forget tuned choices (all adapters). */
export function clearGemmChoices(): void {
  choices.clear();
}
