// A weights file (or full checkpoint) turned into a model, from bytes: the run configuration stored in
// the checkpoint's metadata fixes the model, the Kac process and the student's step count. Pure (no
// file access): the CLI reads the file (run.ts), a browser page fetches it, and both build the same model.
import type { Module } from '../engine/index';
import { type KacConfig, kacConfig } from './kac';
import { DEFAULT_GUIDANCE, type Solver, type VelocityModel } from './sampling';
import { UNet, type UNetConfig } from './unet';
import { type Checkpoint, decodeCheckpoint } from '../io/checkpoint-format';

export type DataSpec =
  | { kind: 'mnist' }
  | { kind: 'fashion' }
  | { kind: 'idx'; images: string; labels: string }
  | { kind: 'png'; dir: string }
  | { kind: 'cifar10'; dir: string };

/** The part of a run's config that fixes what its weights mean. */
export interface ModelRunConfig {
  model: { kind: 'unet'; preset: string; unet: UNetConfig };
  kac: KacConfig;
  data: DataSpec;
}

export function createModel(cfg: ModelRunConfig['model']): Module & VelocityModel {
  if (cfg.kind !== 'unet') throw new Error(`unknown model kind '${(cfg as { kind: string }).kind}'`);
  return new UNet(cfg.unet);
}

/** A weights file (or full checkpoint) with the run config it was made with. */
export interface LoadedWeights {
  path: string;
  ckpt: Checkpoint;
  run: ModelRunConfig & Record<string, unknown>;
  /** model parameters: EMA weights when the file is a full checkpoint */
  weights: Checkpoint['tensors'];
}

/** The weights of a decoded checkpoint (`path` names it in errors). */
export function weightsFromCheckpoint(ckpt: Checkpoint, path: string): LoadedWeights {
  const run = ckpt.config as ModelRunConfig & Record<string, unknown>;
  if (!run || typeof run !== 'object' || !run.model || !run.kac) {
    throw new Error(`${path}: the checkpoint has no model/kac configuration; it was not written by distillkac train or distill`);
  }
  const hasEma = Object.keys(ckpt.tensors).some((k) => k.startsWith('ema.'));
  const weights = hasEma
    ? Object.fromEntries(Object.entries(ckpt.tensors).filter(([k]) => k.startsWith('ema.')).map(([k, v]) => [k.slice(4), v]))
    : ckpt.tensors;
  return { path, ckpt, run: { ...run, kac: kacConfig(run.kac) }, weights };
}

/** The weights of a checkpoint's bytes (a fetched file in a browser). */
export function weightsFromBytes(bytes: Uint8Array, path: string): LoadedWeights {
  return weightsFromCheckpoint(decodeCheckpoint(bytes, path), path);
}

/** Build the model of a weights file and load its weights (frozen). */
export function modelFromWeights(w: LoadedWeights): Module & VelocityModel {
  const model = createModel(w.run.model);
  try {
    model.loadStateDict(w.weights);
  } catch (e) {
    model.dispose(); // its GPU buffers; the caller may keep running (a page keeps its current model)
    throw new Error(`${w.path}: ${(e as Error).message}`);
  }
  return model.requiresGrad(false);
}

/** The number of sampling steps a student was distilled for (undefined for a teacher). */
export function studentSteps(w: LoadedWeights): number | undefined {
  const schedule = w.run.schedule as number[] | undefined;
  const stage = w.run.stage as number | undefined;
  return schedule && stage !== undefined ? schedule[stage] : undefined;
}

/** The sampler's end time when neither the caller nor the weights fix one (method.md: t_min = 1e-5). */
export const DEFAULT_T_MIN = 1e-5;

/** The end time t_min of the grid a student was distilled on (undefined for a teacher). */
export function studentTMin(w: LoadedWeights): number | undefined {
  const tMin = w.run.tMin;
  return studentSteps(w) !== undefined && typeof tMin === 'number' ? tMin : undefined;
}

/**
 * Steps, solver, guidance and end time when none are given: a student's own steps with Euler,
 * unguided, to the t_min it was distilled with (its grid t_n = T - n (T - t_min) / M_S); 100 AB-2
 * steps to 1e-5 with the default guidance for a teacher.
 */
export function samplingDefaults(
  w: LoadedWeights,
  steps?: number,
  solver?: Solver,
  guidance?: number,
  tMin?: number,
): { steps: number; solver: Solver; guidance: number; tMin: number } {
  const own = studentSteps(w);
  // students have their teacher's guidance baked in
  return {
    steps: steps ?? own ?? 100,
    solver: solver ?? (own ? 'euler' : 'ab2'),
    guidance: guidance ?? (own ? 1 : DEFAULT_GUIDANCE),
    tMin: tMin ?? studentTMin(w) ?? DEFAULT_T_MIN,
  };
}
