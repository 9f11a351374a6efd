// The distillkac command as a user runs it: a training run killed with SIGKILL at a random moment
// resumes to parameters bit-identical to an uninterrupted run; bad flags exit with code 2; a
// mismatched checkpoint is refused; sample is deterministic in its seed and writes what it promises.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encode } from 'fast-png';
import { describe, expect, it } from 'vitest';
import { decodeSafetensors } from '../src/io/safetensors';
import { listCheckpoints, readCheckpoint } from '../src/train/checkpoint';

const BIN = join(__dirname, '..', 'bin', 'distillkac.mjs');
// generous limits: each run compiles the UNet's kernels (minutes on a cold, loaded software GPU)
const run = (args: string[], cwd?: string) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 900_000, cwd });
const MNIST = join(__dirname, '..', 'checkpoints', 'mnist');
const LONG = 1_800_000;
// the tiny UNet at batch 4 (a guided sample of 2 runs at batch 4 too), the shapes unet.test.ts
// compiles first, so these processes find the kernels in Mesa's shader cache
const TRAIN = ['train', '--preset', 'tiny', '--steps', '8', '--batch', '4', '--checkpoint-every', '2', '--log-every', '1', '--warmup', '2', '--grids', 'false', '--quiet'];

const sameBytes = (a: Float32Array, b: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

describe('distillkac CLI', () => {
  it('rejects unknown flags and bad values with exit code 2 and a message naming them', () => {
    const a = run(['train', '--stpes', '3']);
    expect(a.status).toBe(2);
    expect(a.stderr).toMatch(/unknown flag --stpes \(did you mean --steps\?\)/);
    const b = run(['train', '--batch', '0']);
    expect(b.status).toBe(2);
    expect(b.stderr).toMatch(/--batch: must be at least 1/);
    const c = run(['sample']);
    expect(c.status).toBe(2);
    expect(c.stderr).toMatch(/--checkpoint is required/);
    const d = run(['sample', '--checkpoint', '/nonexistent/x.safetensors']);
    expect(d.status).toBe(1);
    expect(d.stderr).toMatch(/cannot read checkpoint \/nonexistent\/x.safetensors/);
    const e = run(['distill', '--teacher', '/nonexistent/t.safetensors', '--schedule', '8,4,2,1', '--steps', '10,20']);
    expect(e.status).toBe(2);
    expect(e.stderr).toMatch(/--steps: 2 counts for 3 stages/);
    const dir = mkdtempSync(join(tmpdir(), 'dk-cli-flags-'));
    const f = run(['sample', '--checkpoint', join(MNIST, 'student-1step.safetensors'), '--labels', '0x3', '--out', join(dir, 'g.png')]);
    expect(f.status).toBe(2);
    expect(f.stderr).toMatch(/--labels: '0x3' is not a class in 0..9/);
    // JSON values that are no numbers (Number(true) is 1)
    writeFileSync(join(dir, 'flags.json'), JSON.stringify({ steps: true, out: join(dir, 'run') }));
    const g = run(['train', '--config', join(dir, 'flags.json')]);
    expect(g.status).toBe(2);
    expect(g.stderr).toMatch(/--steps: expected a number \(got true\)/);
    const h = run(['train', '--label-dropout', '1.5', '--out', join(dir, 'run')]);
    expect(h.status).toBe(2);
    expect(h.stderr).toMatch(/--label-dropout: must be at most 1/);
    const same = run(['sample', '--checkpoint', join(MNIST, 'student-1step.safetensors'), '--out', join(dir, 'g.png'), '--dump', join(dir, '.', 'g.png')]);
    expect(same.status).toBe(2);
    expect(same.stderr).toMatch(/--dump and --out are both/);
    const m = run(['sample', '--checkpoint', join(MNIST, 'student-1step.safetensors'), '--count', '1e8', '--out', join(dir, 'g.png')]);
    expect(m.status).toBe(2);
    expect(m.stderr).toMatch(/--count: must be at most 100000/);
    const bigSeed = run(['sample', '--checkpoint', join(MNIST, 'student-1step.safetensors'), '--seed', '99999999999', '--out', join(dir, 'g.png')]);
    expect(bigSeed.status).toBe(2);
    expect(bigSeed.stderr).toMatch(/--seed: must be at most \d+/);
    const k = run(['train', '--kac-T', '0', '--out', join(dir, 'run')]);
    expect(k.status).toBe(2);
    expect(k.stderr).toMatch(/--kac-T must be a finite number > 0/);
    // --help says where output goes when --out is not given
    expect(run(['train', '--help']).stdout).toMatch(/--out <path> .*\(default: runs\/teacher-<preset>\)/);
    expect(run(['distill', '--help']).stdout).toMatch(/--out <path> .*\(default: runs\/distill\)/);
  }, LONG);

  it('refuses flags it would ignore and files of the wrong kind before any GPU work, with exit code 2', () => {
    const cases: [string[], RegExp][] = [
      [['train', '--images', '/x/train-images-idx3-ubyte'], /--images is only read with --data idx \(--data is mnist\)/],
      [['eval', '--teacher', join(MNIST, 'student-1step.safetensors')], /--teacher: .*student-1step.safetensors is a distilled 1-step student/],
      [['eval', '--teacher', join(MNIST, 'teacher-small.safetensors'), '--students', join(MNIST, 'teacher-small.safetensors')], /--students: .*teacher-small.safetensors is not a distilled student/],
      [['eval', '--teacher', join(MNIST, 'teacher-small.safetensors'), '--teacher-solvers', 'heun', '--teacher-nfe', '1'], /nothing to measure/],
      [['distill', '--teacher', join(MNIST, 'student-4step.safetensors'), '--schedule', '4,1'], /--teacher: .* is a distilled 4-step student/],
      [['distill', '--teacher', join(MNIST, 'teacher-small.safetensors'), '--teacher-solver', 'euler', '--teacher-ab2-start', 'heun'], /--teacher-ab2-start heun: only an AB-2 teacher/],
      [['sample', '--checkpoint', join(MNIST, 'student-1step.safetensors'), '--t-min', '2'], /--t-min: 2 is not below the time horizon T = 1/],
      [['sample', '--checkpoint', join(MNIST, 'student-1step.safetensors'), '--out', tmpdir()], /--out: .* is a folder/],
      [['report', '--run', '/nonexistent/run'], /--run: no such folder \/nonexistent\/run/],
      [['distill', '--teacher', join(MNIST, 'teacher-small.safetensors'), '--schedule', '100'], /--schedule needs the teacher's step count and at least one student step count/],
      // before the demo trains its teacher, not after
      [['demo', '--schedule', '20,3', '--teacher-steps', '1', '--quiet', '--out', join(mkdtempSync(join(tmpdir(), 'dk-cli-demo-')), 'demo')], /--schedule 20,3: 3 does not divide 20/],
    ];
    for (const [args, message] of cases) {
      const r = run(args);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(message);
    }
  }, LONG);

  it('a run killed with SIGKILL resumes to bit-identical parameters', async () => {
    const straight = mkdtempSync(join(tmpdir(), 'dk-cli-a-'));
    const killed = mkdtempSync(join(tmpdir(), 'dk-cli-b-'));
    expect(run([...TRAIN, '--out', straight]).status).toBe(0);

    // kill at a random moment after the first checkpoint exists
    const child: ChildProcess = spawn(process.execPath, [BIN, ...TRAIN, '--out', killed], { stdio: 'ignore' });
    const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
    for (let i = 0; i < 6000 && listCheckpoints(killed).length === 0; i++) await new Promise((r) => setTimeout(r, 100));
    await new Promise((r) => setTimeout(r, Math.random() * 1500));
    child.kill('SIGKILL');
    await exited;

    const resumed = run([...TRAIN, '--out', killed, '--resume']);
    expect(resumed.status, resumed.stderr).toBe(0);
    const a = readCheckpoint(listCheckpoints(straight)[0]);
    const b = readCheckpoint(listCheckpoints(killed)[0]);
    expect(b.step).toBe(8);
    for (const k of Object.keys(a.tensors)) expect(sameBytes(a.tensors[k].data, b.tensors[k].data), k).toBe(true);
  }, LONG);

  it('refuses to resume with another model configuration', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dk-cli-m-'));
    expect(run([...TRAIN, '--steps', '2', '--out', dir]).status).toBe(0);
    const r = run([...TRAIN, '--steps', '4', '--preset', 'small', '--out', dir, '--resume']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/was made with another configuration/);
    expect(r.stderr).toMatch(/^ {2}model\.preset: "tiny" in the checkpoint, "small" now$/m); // names what differs
    // a fresh run in the same folder would overwrite some of its checkpoints and leave the others
    const before = listCheckpoints(dir).map((p) => readFileSync(p));
    const fresh = run([...TRAIN, '--steps', '1', '--out', dir]);
    expect(fresh.status).toBe(1);
    expect(fresh.stderr).toMatch(/already holds checkpoints of an earlier run .*; continue it with --resume/);
    expect(listCheckpoints(dir).map((p) => readFileSync(p))).toEqual(before);
  }, LONG);

  it('a run on a PNG folder given by a relative path stores it absolute (distill and sample run from anywhere)', () => {
    const cwd = mkdtempSync(join(tmpdir(), 'dk-cli-png-'));
    for (const cls of ['a', 'b']) {
      mkdirSync(join(cwd, 'digits', cls), { recursive: true });
      for (let i = 0; i < 2; i++) writeFileSync(join(cwd, 'digits', cls, `${i}.png`), encode({ width: 28, height: 28, channels: 1, data: new Uint8Array(784).fill(60 * i + (cls === 'a' ? 0 : 100)) }));
    }
    const r = run([...TRAIN, '--steps', '1', '--checkpoint-every', '1', '--data', 'png', '--dir', 'digits', '--out', 'run'], cwd);
    expect(r.status, r.stderr).toBe(0);
    const [ckpt] = listCheckpoints(join(cwd, 'run'));
    expect(readCheckpoint(ckpt).config).toMatchObject({ data: { kind: 'png', dir: join(cwd, 'digits') } });
  }, LONG);

  it('eval writes every row as it goes and --resume keeps finished rows', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dk-cli-e-'));
    expect(run([...TRAIN, '--steps', '2', '--out', dir]).status).toBe(0);
    const out = join(dir, 'eval');
    const evalArgs = (nfe: string, count = '10') => ['eval', '--teacher', join(dir, 'ema.safetensors'), '--teacher-solvers', 'euler', '--teacher-nfe', nfe, '--count', count, '--batch-size', '2', '--out', out, '--resume', '--quiet'];
    const metrics = () => JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8')) as { rows: { nfe: number; imagesPerSec: number; fdLenet: number }[] };
    // run from another folder: the default --classifier is the committed one, wherever the command runs
    const first0 = run(evalArgs('1'), dir);
    expect(first0.status, first0.stderr).toBe(0);
    const first = metrics().rows;
    expect(first.map((r) => r.nfe)).toEqual([1]);
    const second = run(evalArgs('1,2'));
    expect(second.status, second.stderr).toBe(0);
    const rows = metrics().rows;
    expect(rows.map((r) => r.nfe)).toEqual([1, 2]);
    // the kept row is the earlier measurement itself (its timing would differ if it had been redone)
    expect(rows[0]).toEqual(first[0]);
    const mismatch = run(evalArgs('1', '20'));
    expect(mismatch.status).toBe(1);
    expect(mismatch.stderr).toMatch(/was written with other settings/);
    expect(metrics().rows).toEqual(rows);
  }, LONG);

  it('sample is deterministic in its seed and dumps samples and labels as documented', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dk-cli-s-'));
    expect(run([...TRAIN, '--steps', '2', '--out', dir]).status).toBe(0);
    const weights = join(dir, 'ema.safetensors');
    const args = (seed: string, n: string) => ['sample', '--checkpoint', weights, '--steps', '2', '--count', '2', '--labels', '3,7', '--seed', seed, '--out', join(dir, `g${n}.png`), '--dump', join(dir, `d${n}.safetensors`), '--quiet'];
    for (const [seed, n] of [['5', '1'], ['5', '2'], ['6', '3']]) expect(run(args(seed, n)).status).toBe(0);
    const load = (n: string) => decodeSafetensors(readFileSync(join(dir, `d${n}.safetensors`))).tensors;
    const [d1, d2, d3] = ['1', '2', '3'].map(load);
    expect(d1.samples.shape).toEqual([2, 1, 28, 28]);
    expect(d1.samples.dtype).toBe('F32');
    expect(d1.labels.dtype).toBe('I32');
    expect(Array.from(d1.labels.data)).toEqual([3, 7]);
    expect(sameBytes(d1.samples.data as Float32Array, d2.samples.data as Float32Array)).toBe(true);
    expect(sameBytes(d1.samples.data as Float32Array, d3.samples.data as Float32Array)).toBe(false);
    expect(existsSync(join(dir, 'g1.png'))).toBe(true);
  }, LONG);

  it('bench times every engine on every adapter and writes the JSON and markdown the issue asks for', () => {
    const bad = run(['bench', '--engines', 'ours,torch']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--engines: unknown torch: expected some of ours, tfjs, jax-js/);

    const dir = mkdtempSync(join(tmpdir(), 'dk-cli-bench-'));
    const r = run(['bench', '--quick', '--cases', 'reduction', '--json', join(dir, 'b.json'), '--md', join(dir, 'b.md')]);
    expect(r.status, r.stderr).toBe(0);
    const json = JSON.parse(readFileSync(join(dir, 'b.json'), 'utf8'));
    const reports = Array.isArray(json) ? json : [json];
    for (const rep of reports) {
      expect(Object.keys(rep.adapter)).toEqual(expect.arrayContaining(['vendor', 'architecture', 'description', 'backend', 'featureLevel']));
      expect(rep.peak.fmaGflops).toBeGreaterThan(0);
      expect(rep.peak.copyGBps).toBeGreaterThan(0);
      expect(rep.results.map((x: { engine: string }) => x.engine).sort()).toEqual(['jax-js', 'ours', 'tfjs']);
      for (const x of rep.results) {
        expect(x.case).toBe('reduction sum');
        expect(x.error).toBeUndefined();
        expect(x.ms).toBeGreaterThan(0);
        // 4 bytes read per element of the 2^22-float input
        expect(x.gbps).toBeCloseTo((4 * 2 ** 22) / x.ms / 1e6, 6);
      }
    }
    expect(readFileSync(join(dir, 'b.md'), 'utf8')).toContain('| reduction sum | 4194304 |');
  }, LONG);
});
