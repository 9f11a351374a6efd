// What a checkpoint contains, as bytes: one safetensors file holding every tensor of a run (parameters,
// EMA weights, optimizer moments) and, in `__metadata__`, its format tag, kind, config, step and JSON
// state. Pure (no file access), so a browser page can decode a checkpoint it fetched; the files
// themselves (atomic writes, fallback to the previous checkpoint) are in checkpoint.ts.
import { decodeSafetensors, encodeSafetensors } from './safetensors';

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
    // weights, averages and optimizer moments of a healthy run are finite; NaN or infinity would
    // only turn every sample into NaN (black images) or poison a resumed run
    const bad = t.data.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) {
      const count = t.data.reduce((n, v) => (Number.isFinite(v) ? n : n + 1), 0);
      throw new CheckpointError(`${name}: tensor ${k} holds ${count} non-finite value${count > 1 ? 's' : ''} (element ${bad} is ${t.data[bad]}); the run diverged before this file was written or the file is corrupt: use an earlier checkpoint`);
    }
    host[k] = { shape: t.shape, data: t.data };
  }
  return { kind: metadata.kind ?? 'unknown', step, config: parse('config'), state: parse('state'), tensors: host };
}

/** Throw unless two run configurations are equal (compared as JSON with sorted keys); the error names
 *  each setting that differs. */
export function assertSameConfig(saved: unknown, current: unknown, what: string): void {
  const canon = (v: unknown): unknown =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, canon((v as Record<string, unknown>)[k])]))
      : Array.isArray(v) ? v.map(canon) : v;
  const a = JSON.stringify(canon(saved));
  const b = JSON.stringify(canon(current));
  if (a !== b) {
    const diffs: string[] = [];
    const isObject = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);
    const walk = (x: unknown, y: unknown, path: string) => {
      if (isObject(x) && isObject(y)) {
        for (const k of [...new Set([...Object.keys(x), ...Object.keys(y)])].sort()) walk(x[k], y[k], path ? `${path}.${k}` : k);
      } else if (JSON.stringify(x) !== JSON.stringify(y)) {
        diffs.push(`  ${path || '(all)'}: ${JSON.stringify(x) ?? '(none)'} in the checkpoint, ${JSON.stringify(y) ?? '(none)'} now`);
      }
    };
    walk(JSON.parse(a), JSON.parse(b), ''); // key-sorted, without undefined fields
    throw new CheckpointError(`${what} was made with another configuration:\n${diffs.join('\n')}\nUse the same options, or a new output folder.`);
  }
}
