// Reliability (issue 7): a GPU out-of-memory error becomes an error naming the kernel and suggesting
// a smaller batch, also inside a training step (the last good checkpoint stays intact); a device lost
// mid-run stops training with an error that says to resume, and resuming on a new device ends with the
// same bits as a run never interrupted.
//
// Out of memory is provoked for real in a child process that lowers its own address-space limit
// (test/helpers/oom-child.ts). Only the OpenGL path (llvmpipe) reports it: glBufferData fails with
// GL_OUT_OF_MEMORY and Dawn raises a GPUOutOfMemoryError. Vulkan on lavapipe does not: its buffer
// memory is a memfd mapped without checking the result, so the same failure ends in a SIGSEGV
// (measured with Mesa 25.0.7), and Dawn accepts 4 GiB buffers without touching memory, so no
// allocation that fails fast exists there. A device's memory budget (on every backend) turns an
// allocation past it into the same error.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { dawnGpu } from '../src/engine/runtime/dawn';
import { type Gpu, manualSeed, randn, setDefaultGpu } from '../src/engine/index';
import { defaultKacConfig } from '../src/models/kac';
import { listCheckpoints } from '../src/train/checkpoint';
import { trainLoop } from '../src/train/loop';
import { teacherBatch, teacherLoss } from '../src/train/teacher';
import { BACKENDS, forEachBackend } from './helpers/gpu';
import { ToyVelocity, toyData, toyOptim } from './helpers/toy';

const run = promisify(execFile);
const canLimitMemory = process.platform === 'linux' && existsSync('/usr/bin/prlimit');

/** Run the OOM child on the OpenGL backend; returns its RESULT line. */
async function oomChild(mode: 'ops' | 'train', outDir = ''): Promise<Record<string, any>> {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', join(__dirname, 'helpers', 'oom-child.ts'), mode, 'opengl', outDir], {
    cwd: join(__dirname, '..'),
    timeout: 100_000,
    maxBuffer: 1 << 24,
  });
  const line = stdout.split('\n').find((l) => l.startsWith('RESULT '));
  if (!line) throw new Error(`the child printed no result:\n${stdout}`);
  return JSON.parse(line.slice(7));
}

describe.skipIf(!BACKENDS.includes('opengl') || !canLimitMemory)('GPU out of memory [opengl]', () => {
  it('a failed allocation becomes an error naming the kernel and suggesting a smaller batch; the device stays usable', async () => {
    const r = await oomChild('ops');
    expect(r.error.name).toBe('GpuOutOfMemoryError');
    expect(r.error.message).toMatch(/^GPU out of memory allocating 64\.0 MiB for kernel matmul \[4096, 8\]x\[8, 4096\] /);
    expect(r.error.message).toMatch(/use a smaller batch \(--batch\)/);
    expect(r.error.message).toMatch(/GL_OUT_OF_MEMORY/); // the driver's own report, not a simulated one
    expect(Math.abs(r.again - r.expected)).toBeLessThan(1e-3 * Math.abs(r.expected));
  });

  it('an out-of-memory training step stops the run with that error and the last good checkpoint stays intact', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dk-oom-'));
    const r = await oomChild('train', dir);
    expect(r.error.name).toBe('GpuOutOfMemoryError');
    expect(r.error.message).toMatch(/^GPU out of memory allocating \d+\.\d MiB for kernel matmul \[262144, /);
    expect(r.error.message).toMatch(/use a smaller batch \(--batch\)/);
    expect(r.error.message).toMatch(/oom-test training, detected at step 15; the last good checkpoint is .*ckpt-00000010\.safetensors/);
    expect(Object.keys(r.before)).toEqual(['ckpt-00000010.safetensors']);
    expect(r.after).toEqual(r.before); // not rewritten, and no checkpoint of the failed steps
    expect(r.latestStep).toBe(10);
  });
});

forEachBackend('device loss', (getGpu) => {
  const data = toyData();
  /** The toy teacher run of test/train.test.ts, on `gpu`, with a hook called before each step. */
  const train = (gpu: Gpu, outDir: string, resume: boolean, beforeStep?: (step: number) => void) => {
    setDefaultGpu(gpu);
    manualSeed(3); // model init comes from the global generator
    return trainLoop({
      kind: 'teacher', outDir, config: { toy: 1 }, optim: toyOptim(30), createModel: () => new ToyVelocity(),
      resume, quiet: true, logEvery: 5, checkpointEvery: 10,
      loss: (model, step) => {
        beforeStep?.(step);
        return teacherLoss(model, teacherBatch(data, 16, step, 11, defaultKacConfig, 0.1), [1, 4, 4]);
      },
    });
  };

  it('a device lost at step 15 stops training with a clear error; a new device resumes to the same bits', async () => {
    const backend = getGpu().adapter.backend;
    const straight = await train(getGpu(), mkdtempSync(join(tmpdir(), 'dk-straight-')), false);
    const expected = await straight.model.stateDict();

    const dir = mkdtempSync(join(tmpdir(), 'dk-lost-'));
    const doomed = await dawnGpu({ backend });
    const lost = train(doomed, dir, false, (step) => {
      if (step === 15) doomed.device.destroy(); // what a driver reset looks like to the program
    });
    await expect(lost).rejects.toThrow(/^GPU device lost \(destroyed.*start a new process \(a training run continues from its last checkpoint with --resume\)/s);
    await expect(lost).rejects.toThrow(/teacher training, detected at step (15|20); the last good checkpoint is .*ckpt-00000010\.safetensors/);
    expect(listCheckpoints(dir).map((p) => p.slice(-25))).toEqual(['ckpt-00000010.safetensors']);
    doomed.destroy();

    const fresh = await dawnGpu({ backend });
    try {
      const resumed = await train(fresh, dir, true);
      expect(resumed.step).toBe(30);
      const got = await resumed.model.stateDict();
      for (const k of Object.keys(expected)) expect(Buffer.from(got[k].data.buffer).equals(Buffer.from(expected[k].data.buffer)), k).toBe(true);
      expect(readdirSync(dir).filter((f) => f.startsWith('ckpt-')).sort()).toEqual(['ckpt-00000020.safetensors', 'ckpt-00000030.safetensors']);
    } finally {
      setDefaultGpu(getGpu());
      fresh.destroy();
    }
  });
});

forEachBackend('memory budget', (getGpu) => {
  it('an allocation past the budget fails like a driver out of memory, after the pool is freed; the device stays usable', async () => {
    const gpu = getGpu();
    const MiB = 2 ** 20;
    const a = randn([512, 1024]); // 2 MiB
    const want = await a.sum().item();
    for (let i = 0; i < 3; i++) {
      const t = randn([256, 1024]); // 1 MiB, pooled when disposed
      await t.sum().item();
      t.dispose();
    }
    expect(gpu.memory.pooledBytes).toBeGreaterThanOrEqual(MiB);
    try {
      gpu.memoryBudgetBytes = gpu.memory.liveBytes + 3.5 * MiB;
      // 3 MiB fits once the pooled buffers are freed
      const b = randn([768, 1024]);
      expect(await b.mean().item()).toBeCloseTo(0, 1);
      expect(gpu.memory.pooledBytes).toBeLessThan(MiB);
      b.dispose();
      // 8 MiB does not: the error names the kernel and the budget, like a driver's out of memory
      const big = randn([2048, 1024]);
      const error = await big.sum().item().then(() => null, (e: Error) => e);
      expect(error?.name).toBe('GpuOutOfMemoryError');
      expect(error?.message).toMatch(/^GPU out of memory allocating 8\.0 MiB for kernel random\.normal .*use a smaller batch \(--batch\).*memory budget of \d+\.\d MiB/);
      big.dispose();
    } finally {
      gpu.memoryBudgetBytes = null;
    }
    expect(await a.sum().item()).toBe(want);
    a.dispose();
  });
});

describe('memory budget from the environment', () => {
  const backend = BACKENDS[0];
  it.skipIf(!backend)('DISTILLKAC_GPU_MEMORY_MB sets it; a bad value is refused before a device is made', async () => {
    try {
      process.env.DISTILLKAC_GPU_MEMORY_MB = 'lots';
      await expect(dawnGpu({ backend })).rejects.toThrow('DISTILLKAC_GPU_MEMORY_MB=lots: expected a positive number of MiB');
      process.env.DISTILLKAC_GPU_MEMORY_MB = '96';
      const gpu = await dawnGpu({ backend });
      expect(gpu.memoryBudgetBytes).toBe(96 * 2 ** 20);
      gpu.destroy();
    } finally {
      delete process.env.DISTILLKAC_GPU_MEMORY_MB;
    }
  });
});
