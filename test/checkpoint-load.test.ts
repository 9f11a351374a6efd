// Loading checkpoints that are well-formed safetensors but unusable (no GPU needed): non-finite
// weights are refused by name, and a run's newest checkpoint holding them is skipped for the one before;
// the data a weights file names, read again for distillation, must still fit its model.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encode } from 'fast-png';
import { describe, expect, it } from 'vitest';
import { encodeSafetensors } from '../src/io/safetensors';
import { defaultKacConfig } from '../src/models/kac';
import { unetPresets } from '../src/models/unet';
import { CHECKPOINT_FORMAT, CheckpointError, decodeCheckpoint, loadLatestCheckpoint } from '../src/train/checkpoint';
import { DataError } from '../src/data/index';
import { loadDataFor } from '../src/data/index';
import { weightsFromCheckpoint } from '../src/models/weights';

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

describe('the data of a weights file, read again', () => {
  const pngFolder = (classes: number, size: number): string => {
    const dir = mkdtempSync(join(tmpdir(), 'dk-data-'));
    for (let c = 0; c < classes; c++) {
      mkdirSync(join(dir, `class${c}`));
      writeFileSync(join(dir, `class${c}`, 'a.png'), encode({ width: size, height: size, data: new Uint8Array(size * size).fill(40 * c), depth: 8, channels: 1 }));
    }
    return dir;
  };
  const teacherOf = (dir: string) =>
    weightsFromCheckpoint(
      {
        kind: 'teacher-weights', step: 1, state: null, tensors: {},
        config: { model: { kind: 'unet', preset: 'tiny', unet: { ...unetPresets.tiny, inChannels: 1, imageSize: 8, numClasses: 2 } }, kac: defaultKacConfig, data: { kind: 'png', dir } },
      },
      'teacher.safetensors',
    );

  it('loads when it still fits the model', () => {
    const data = loadDataFor(teacherOf(pngFolder(2, 8)));
    expect([data.n, data.numClasses, data.height]).toEqual([2, 2, 8]);
  });

  it('is refused, naming what changed, when a class was added or the images resized since', () => {
    const added = pngFolder(3, 8);
    expect(() => loadDataFor(teacherOf(added))).toThrow(DataError);
    expect(() => loadDataFor(teacherOf(added))).toThrow(`${added}: no longer matches the model of teacher.safetensors: the data has 3 classes, the model 2. restore the data`);
    const resized = pngFolder(2, 16);
    expect(() => loadDataFor(teacherOf(resized))).toThrow(/the data has 16x16 images, the model 8x8/);
  });
});
