// Running GEMMs: pick a kernel variant for (adapter, shape class), record its launches, and tune.
// Ops record work synchronously, so tuning cannot happen inside matmul(): the first use of a shape
// class runs a default variant and queues the class; `await tuneGemms(gpu)` (after a warm-up step)
// times every candidate on scratch buffers of the same sizes and caches the fastest per adapter.
// Choices live in memory and can be exported/imported as JSON (callers own any file I/O, so the
// engine stays browser-safe).
import { type GemmPlan, type GemmSpec, type GemmVariant, SCRATCH, gemmPlan, layoutSignature, variantKey } from '../kernels/gemm';
import { type Conv3Spec, type Conv3Variant, conv3Key, conv3Plan } from '../kernels/conv3';
import type { Gpu } from './gpu';

/** Any kernel variant the tuner can choose. */
export type Variant = GemmVariant | Conv3Variant;

export function anyVariantKey(v: Variant): string {
  return v.kind === 'direct3' ? conv3Key(v) : variantKey(v);
}

/**
 * One computation with interchangeable kernels: a shape class for the tuner, the candidates (the
 * first is the untuned default), and the launches of each.
 */
export interface Problem {
  name: string;
  cls: string;
  candidates: (software: boolean) => Variant[];
  /** null when this problem cannot use the variant */
  plan: (v: Variant) => GemmPlan | null;
}

/** Software rasterizers emulating a GPU on the CPU (Mesa lavapipe/llvmpipe, SwiftShader). */
export function isSoftwareAdapter(gpu: Gpu): boolean {
  const a = gpu.adapter;
  return /llvmpipe|lavapipe|swiftshader|softpipe|software/i.test(`${a.vendor} ${a.architecture} ${a.description} ${a.device ?? ''}`);
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

/** Candidate variants for an adapter kind; the first is the untuned default. */
export function candidates(spec: GemmSpec, software: boolean): GemmVariant[] {
  const out: GemmVariant[] = [];
  // output lanes available to spread over workgroups; few outputs and a long K call for split-K
  const outputs = spec.batch * spec.M * spec.N;
  const splits = spec.K >= 256 && outputs < (software ? 16384 : 262144) ? [1, 4, 16] : [1];
  if (software) {
    for (const splitK of splits) {
      out.push({ kind: 'reg', lanes: 'n', tm: 8, tn: 16, wg: 8, splitK });
      out.push({ kind: 'reg', lanes: 'n', tm: 16, tn: 8, wg: 16, splitK });
      out.push({ kind: 'reg', lanes: 'n', tm: 4, tn: 8, wg: 16, splitK });
      out.push({ kind: 'reg', lanes: 'm', tm: 8, tn: 16, wg: 8, splitK });
      out.push({ kind: 'reg', lanes: 'm', tm: 4, tn: 8, wg: 16, splitK });
    }
  } else {
    for (const splitK of splits) {
      out.push({ kind: 'tiled', rm: 4, rn: 4, tk: 16, splitK });
      out.push({ kind: 'tiled', rm: 8, rn: 8, tk: 8, splitK });
      out.push({ kind: 'tiled', rm: 8, rn: 4, tk: 16, splitK });
      out.push({ kind: 'reg', lanes: 'n', tm: 4, tn: 4, wg: 64, splitK });
    }
  }
  // for the untuned default, prefer a split when the output is tiny and K long
  if (splits.length > 1 && outputs < (software ? 4096 : 65536)) out.unshift({ ...out[0], splitK: 4 });
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
    candidates: (software) => candidates(spec, software),
    plan: (v) => (v.kind === 'direct3' ? null : gemmPlan(spec, v)),
  };
}

/** Direct 3x3 convolution candidates, then the implicit GEMM's. */
export function conv3Problem(spec: Conv3Spec, gemm: GemmSpec, family: string): Problem {
  return {
    name: spec.name,
    cls: `${shapeClass(gemm, family)}|direct3`,
    candidates: (software) => {
      const direct: Conv3Variant[] = software
        ? [
            { kind: 'direct3', tm: 8, q: 1, wg: 8 },
            { kind: 'direct3', tm: 8, q: 2, wg: 8 },
            { kind: 'direct3', tm: 4, q: 2, wg: 16 },
            { kind: 'direct3', tm: 16, q: 1, wg: 8 },
          ]
        : [
            { kind: 'direct3', tm: 4, q: 1, wg: 64 },
            { kind: 'direct3', tm: 8, q: 1, wg: 64 },
          ];
      return [...direct, ...candidates(gemm, software)];
    },
    plan: (v) => (v.kind === 'direct3' ? conv3Plan(spec, v) : gemmPlan(gemm, v)),
  };
}

/** Record the launches computing `spec`; `buffers` maps the spec's buffer names to GPU buffers. */
export function runGemm(gpu: Gpu, spec: GemmSpec, family: string, buffers: Record<string, GPUBuffer>): void {
  runProblem(gpu, gemmProblem(spec, family), buffers);
}

/** Record the launches of `problem` with its tuned (or forced, or default) variant. */
export function runProblem(gpu: Gpu, problem: Problem, buffers: Record<string, GPUBuffer>): void {
  const forcedPlan = forced ? problem.plan(forced) : null;
  if (forcedPlan) {
    dispatchPlan(gpu, problem.name, forcedPlan, buffers);
    return;
  }
  let variant = chosen(gpu, problem.cls);
  if (!variant) {
    variant = problem.candidates(isSoftwareAdapter(gpu))[0];
    let p = pending.get(gpu);
    if (!p) pending.set(gpu, (p = new Map()));
    if (!p.has(problem.cls)) {
      const sizes = new Map(Object.entries(buffers).map(([k, b]) => [k, b.size]));
      p.set(problem.cls, { problem, sizes });
    }
  }
  dispatchPlan(gpu, problem.name, problem.plan(variant)!, buffers);
}

function dispatchPlan(gpu: Gpu, name: string, plan: GemmPlan, buffers: Record<string, GPUBuffer>): void {
  let scratch: GPUBuffer | null = null;
  if (plan.scratch) scratch = gpu.alloc(plan.scratch.bytes);
  const label = name;
  for (const { kernel, bindings } of plan.launches) {
    gpu.dispatch(
      kernel,
      bindings.map((name) => {
        const buf = name === SCRATCH ? scratch : buffers[name];
        if (!buf) throw new Error(`internal: ${label} has no buffer named ${name}`);
        return buf;
      }),
    );
  }
  gemmStats.launches++;
  if (scratch) gpu.release(scratch);
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
async function timeVariant(gpu: Gpu, p: Pending, variant: Variant, bufs: Record<string, GPUBuffer>, trials = 3): Promise<number> {
  const plan = p.problem.plan(variant)!;
  const name = p.problem.name;
  dispatchPlan(gpu, name, plan, bufs); // compile + warm up
  await gpu.sync();
  let t0 = performance.now();
  dispatchPlan(gpu, name, plan, bufs);
  await gpu.sync();
  const once = performance.now() - t0;
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

/**
 * Time every candidate for each pending shape class of this device (or for `only`) and cache the
 * fastest. Uses scratch buffers, so tensors are untouched. Returns what was measured.
 */
export async function tuneGemms(gpu: Gpu, opts: { log?: (line: string) => void } = {}): Promise<TuneResult[]> {
  const p = pending.get(gpu);
  if (!p || p.size === 0) return [];
  const results: TuneResult[] = [];
  const t0 = performance.now();
  await gpu.sync();
  for (const [cls, item] of [...p.entries()]) {
    p.delete(cls);
    if (chosen(gpu, cls)) continue;
    const bufs: Record<string, GPUBuffer> = {};
    for (const [name, size] of item.sizes) {
      bufs[name] = gpu.device.createBuffer({ size, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
    }
    const timings: { variant: string; ms: number }[] = [];
    let best: { v: Variant; ms: number } | null = null;
    const seen = new Set<string>();
    for (const v of item.problem.candidates(isSoftwareAdapter(gpu))) {
      const key = anyVariantKey(v);
      if (seen.has(key)) continue;
      seen.add(key);
      const ms = await timeVariant(gpu, item, v, bufs);
      timings.push({ variant: key, ms });
      if (!best || ms < best.ms) best = { v, ms };
    }
    for (const b of Object.values(bufs)) b.destroy();
    setGemmChoice(gpu, cls, best!.v);
    gemmStats.tuned++;
    const r = { cls, name: item.problem.name, timings, chosen: anyVariantKey(best!.v) };
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
      if (v && (v.kind === 'reg' || v.kind === 'tiled' || v.kind === 'direct3')) {
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
