// Loading checkpoints that are well-formed safetensors but unusable (no GPU needed): non-finite
// weights are refused by name, and a run's newest checkpoint holding them is skipped for the one before.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { encodeSafetensors } from '../src/engine/safetensors';
import { CHECKPOINT_FORMAT, CheckpointError, decodeCheckpoint, loadLatestCheckpoint } from '../src/train/checkpoint';

/** A checkpoint file written by hand with the format's metadata (independent of encodeCheckpoint). */
function checkpointBytes(step: number, w: number[]): Uint8Array {
  return encodeSafetensors(
    {
      'model.w': { dtype: 'F32', shape: [w.length], data: Float32Array.from(w) },
      'ema.w': { dtype: 'F32', shape: [w.length], data: Float32Array.from(w) },
    },
    { format: CHECKPOINT_FORMAT, kind: 'teacher', step: String(step), config: '{"a":1}', state: 'null' },
  );
}

describe('checkpoints with non-finite weights', () => {
  it('finite weights load', () => {
    const ck = decodeCheckpoint(checkpointBytes(3, [1, -2, 0.5]), 'ok.safetensors');
    expect(ck.step).toBe(3);
    expect(Array.from(ck.tensors['ema.w'].data)).toEqual([1, -2, 0.5]);
  });

  it('NaN or infinite weights are refused, naming the file, the tensor and what to do', () => {
    for (const bad of [NaN, Infinity, -Infinity]) {
      const bytes = checkpointBytes(3, [1, bad, 0.5]);
      expect(() => decodeCheckpoint(bytes, 'nan.safetensors')).toThrow(CheckpointError);
      expect(() => decodeCheckpoint(bytes, 'nan.safetensors')).toThrow(
        new RegExp(`^nan\\.safetensors: tensor (model|ema)\\.w holds 1 non-finite value \\(element 1 is ${String(bad)}\\).*use an earlier checkpoint`),
      );
    }
  });

  it('a run whose newest checkpoint holds NaN resumes from the one before, with a warning', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dk-nanw-'));
    writeFileSync(join(dir, 'ckpt-00000010.safetensors'), checkpointBytes(10, [1, 2]));
    writeFileSync(join(dir, 'ckpt-00000020.safetensors'), checkpointBytes(20, [NaN, 2]));
    const warnings: string[] = [];
    const found = loadLatestCheckpoint(dir, (m) => warnings.push(m));
    expect(found!.ckpt.step).toBe(10);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/skipping unreadable checkpoint ckpt-00000020\.safetensors: .*non-finite/);
  });
});
