// Checkpoints: one safetensors file per save holding every tensor of a run (parameters, EMA weights,
// optimizer moments) and, in `__metadata__`, its kind, config, step and JSON state. Written
// atomically (temporary file, fsync, rename, fsync of the folder); the previous one is kept, and a
// corrupt newest file falls back to the one before.
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { decodeSafetensors, encodeSafetensors, SafetensorsError } from '../engine/safetensors';

export const CHECKPOINT_FORMAT = 'distillkac/1';

export type HostTensors = Record<string, { shape: readonly number[]; data: Float32Array }>;

export interface Checkpoint {
  kind: string;
  step: number;
  /** the run's configuration; resuming with another one is refused */
  config: unknown;
  /** JSON state beyond tensors (optimizer step, counters, ...) */
  state: unknown;
  tensors: HostTensors;
}

export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

/** Write `path` atomically: a crash leaves either the old file or the complete new one. */
export function writeFileAtomic(path: string, bytes: Uint8Array): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  try {
    let off = 0;
    while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  const dirFd = openSync(dirname(path), 'r');
  try {
    fsyncSync(dirFd);
  } finally {
    closeSync(dirFd);
  }
}

export function encodeCheckpoint(ckpt: Checkpoint): Uint8Array {
  const tensors: Record<string, { dtype: 'F32'; shape: readonly number[]; data: Float32Array }> = {};
  for (const [name, t] of Object.entries(ckpt.tensors)) tensors[name] = { dtype: 'F32', shape: t.shape, data: t.data };
  return encodeSafetensors(tensors, {
    format: CHECKPOINT_FORMAT,
    kind: ckpt.kind,
    step: String(ckpt.step),
    config: JSON.stringify(ckpt.config),
    state: JSON.stringify(ckpt.state ?? null),
  });
}

/** Parse a checkpoint (or an exported weights file) from bytes; `name` is used in errors. */
export function decodeCheckpoint(bytes: Uint8Array, name: string): Checkpoint {
  const { tensors, metadata } = decodeSafetensors(bytes, { name });
  if (metadata.format !== CHECKPOINT_FORMAT) {
    throw new CheckpointError(`${name}: not a distillkac checkpoint (metadata format is ${JSON.stringify(metadata.format ?? null)}, expected "${CHECKPOINT_FORMAT}")`);
  }
  const parse = (key: string) => {
    try {
      return JSON.parse(metadata[key] ?? 'null');
    } catch {
      throw new CheckpointError(`${name}: metadata field "${key}" is not valid JSON; the file is corrupt`);
    }
  };
  const step = Number(metadata.step);
  if (!Number.isInteger(step) || step < 0) throw new CheckpointError(`${name}: invalid step ${JSON.stringify(metadata.step)}`);
  const host: HostTensors = {};
  for (const [k, t] of Object.entries(tensors)) {
    if (!(t.data instanceof Float32Array)) throw new CheckpointError(`${name}: tensor ${k} has dtype ${t.dtype}, expected a float type`);
    host[k] = { shape: t.shape, data: t.data };
  }
  return { kind: metadata.kind ?? 'unknown', step, config: parse('config'), state: parse('state'), tensors: host };
}

export function readCheckpoint(path: string): Checkpoint {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new CheckpointError(`cannot read checkpoint ${path}: ${(e as Error).message}`);
  }
  return decodeCheckpoint(bytes, path);
}

const CKPT_RE = /^ckpt-(\d{8})\.safetensors$/;

/** Checkpoint files in `dir`, newest first. */
export function listCheckpoints(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names.filter((n) => CKPT_RE.test(n)).sort().reverse().map((n) => join(dir, n));
}

/** Save as `dir/ckpt-<step>.safetensors` atomically, then delete all but the newest `keep`. */
export function saveCheckpoint(dir: string, ckpt: Checkpoint, keep = 2): string {
  const path = join(dir, `ckpt-${String(ckpt.step).padStart(8, '0')}.safetensors`);
  writeFileAtomic(path, encodeCheckpoint(ckpt));
  for (const old of listCheckpoints(dir).slice(Math.max(1, keep))) rmSync(old, { force: true });
  return path;
}

/** The newest readable checkpoint in `dir` (a corrupt newer file is skipped with a warning), or null. */
export function loadLatestCheckpoint(dir: string, warn: (msg: string) => void = console.warn): { path: string; ckpt: Checkpoint } | null {
  for (const path of listCheckpoints(dir)) {
    try {
      if (statSync(path).size === 0) throw new CheckpointError(`${path}: empty file`);
      return { path, ckpt: readCheckpoint(path) };
    } catch (e) {
      if (!(e instanceof CheckpointError || e instanceof SafetensorsError)) throw e;
      warn(`skipping unreadable checkpoint ${basename(path)}: ${e.message}`);
    }
  }
  return null;
}

/** Throw unless two run configurations are equal (compared as JSON with sorted keys). */
export function assertSameConfig(saved: unknown, current: unknown, what: string): void {
  const canon = (v: unknown): unknown =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, canon((v as Record<string, unknown>)[k])]))
      : Array.isArray(v) ? v.map(canon) : v;
  const a = JSON.stringify(canon(saved));
  const b = JSON.stringify(canon(current));
  if (a !== b) {
    throw new CheckpointError(`${what} was made with another configuration:\n  checkpoint: ${a}\n  now:        ${b}\nUse the same options, or a new output folder.`);
  }
}
