// Checkpoints: one safetensors file per save holding every tensor of a run (parameters, EMA weights,
// optimizer moments) and, in `__metadata__`, its kind, config, step and JSON state. Written
// atomically (temporary file, fsync, rename, fsync of the folder); the previous one is kept, and a
// corrupt newest file falls back to the one before.
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { SafetensorsError } from '../io/safetensors';
import { type Checkpoint, CheckpointError, decodeCheckpoint, encodeCheckpoint } from '../io/checkpoint-format';
import { type LoadedWeights, weightsFromCheckpoint } from '../models/weights';

export { CHECKPOINT_FORMAT, type Checkpoint, CheckpointError, type HostTensors, assertSameConfig, decodeCheckpoint, encodeCheckpoint } from '../io/checkpoint-format';

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
  // partial files of runs killed while writing (one run per folder: any other process's are stale)
  for (const n of readdirSync(dir)) {
    const m = /^ckpt-\d{8}\.safetensors\.tmp-(\d+)$/.exec(n);
    if (m && Number(m[1]) !== process.pid) rmSync(join(dir, n), { force: true });
  }
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

/** Read a weights file (or full checkpoint) with the run config it was made with. */
export function loadWeights(path: string): LoadedWeights {
  return weightsFromCheckpoint(readCheckpoint(path), path);
}
