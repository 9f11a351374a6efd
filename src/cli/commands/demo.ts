// distillkac demo: the README's first command, train -> distill -> eval -> report on built-in MNIST,
// with settings sized for two CPU cores. Each step runs as its own command line through `main`.
import { join } from 'node:path';
import { commonFlags, parseSchedule } from '../common';
import { command } from '../flags';

export const demo = (main: (argv: string[]) => Promise<number>) => command({
  summary: 'The whole pipeline on built-in MNIST: train the tiny teacher, distill to 4 and 1 steps, sample, evaluate, report.',
  flags: {
    out: { type: 'path', default: 'runs/demo', help: 'output folder' },
    'teacher-steps': { type: 'int', min: 1, default: 1200, help: 'teacher training steps' },
    'distill-steps': { type: 'int', min: 1, default: 100, help: 'training steps per distillation stage' },
    schedule: { type: 'list', default: ['20', '4', '1'], help: 'teacher steps, then each stage\'s student steps' },
    count: { type: 'int', min: 10, default: 200, help: 'generated digits per evaluation row' },
    resume: { type: 'bool', default: true, help: 'reuse finished stages of an earlier demo in --out (--resume false: start over, in a new --out)' },
    ...commonFlags,
  },
  async run(f) {
    const root = f.out;
    const common = [...(f.backend ? ['--backend', f.backend] : []), ...(f.quiet ? ['--quiet'] : [])];
    const resume = f.resume ? ['--resume'] : [];
    const step = async (what: string, argv: string[]) => {
      console.error(`\n== ${what}: distillkac ${argv.join(' ')}`);
      const code = await main(argv);
      if (code !== 0) throw new Error(`${what} failed (exit code ${code})`);
    };
    parseSchedule(f.schedule); // before training the teacher, not after
    const started = performance.now();
    const teacherDir = join(root, 'teacher');
    await step('1/4 train the tiny teacher', ['train', '--preset', 'tiny', '--steps', String(f['teacher-steps']), '--out', teacherDir, ...resume, ...common]);
    const schedule = f.schedule;
    await step('2/4 distill', ['distill', '--teacher', join(teacherDir, 'ema.safetensors'), '--schedule', schedule.join(','), '--steps', String(f['distill-steps']), '--out', join(root, 'distill'), ...resume, ...common]);
    const students = schedule.slice(1).map((s, k) => join(root, 'distill', `stage${k + 1}-${s}step`, 'ema.safetensors'));
    // batches of the training batch size reuse the kernels compiled for training (each new batch shape
    // compiles every kernel again: minutes on a software GPU)
    await step('3/4 evaluate', ['eval', '--teacher', join(teacherDir, 'ema.safetensors'), '--students', students.join(','), '--count', String(f.count), '--batch-size', '32', '--teacher-nfe', [...new Set([1, ...schedule.map(Number)])].sort((a, b) => a - b).join(','), '--out', join(root, 'eval'), ...common]);
    await step('4/4 report', ['report', '--run', root]);
    console.log(`\ndemo finished in ${((performance.now() - started) / 60000).toFixed(1)} min. Open ${join(root, 'report.html')}`);
  },
});
