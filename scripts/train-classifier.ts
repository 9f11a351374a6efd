// Train the LeNet classifier used by FD-LeNet and class consistency (src/eval/metrics.ts) for one
// dataset and write its checkpoint plus a Markdown file beside it with the command, the time taken,
// the backend and the held-out accuracy: for --data mnist (default)
// checkpoints/classifier/lenet.safetensors and README.md, for --data fashion
// checkpoints/classifier/fashion-lenet.safetensors and fashion-lenet.md (`classifierPathFor`).
//
//   npx tsx scripts/train-classifier.ts [--data mnist|fashion] [--epochs 16] [--batch 64] [--lr 2e-3]
//       [--seed 1] [--shift 2] [--c1 8] [--c2 16] [--hidden 120] [--features 84]
//       [--backend default|opengl] [--out checkpoints/classifier/lenet.safetensors]
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';
import { initGpu } from '../src/engine/runtime/dawn';
import { LENET_CONFIG, type LeNetConfig, TRAIN_DEFAULTS, evaluateAccuracy, saveClassifier, trainClassifier } from '../src/eval/classifier';
import { loadBuiltinMnist, loadFashionMnist } from '../src/data/index';
import { CLASSIFIER_FILES } from '../src/eval/classifier';
import type { Backend } from '../src/engine/index';

const FLAGS = ['data', 'epochs', 'batch', 'lr', 'seed', 'c1', 'c2', 'hidden', 'features', 'backend', 'out', 'shift'] as const;
type Flag = (typeof FLAGS)[number];

function parseArgs(argv: string[]): Partial<Record<Flag, string>> {
  const out: Partial<Record<Flag, string>> = {};
  for (let i = 0; i < argv.length; i++) {
    const m = /^--([a-z0-9]+)(?:=(.*))?$/.exec(argv[i]);
    if (!m || !(FLAGS as readonly string[]).includes(m[1])) throw new Error(`unknown argument ${argv[i]} (flags: ${FLAGS.map((f) => '--' + f).join(' ')})`);
    const value = m[2] ?? argv[++i];
    if (value === undefined) throw new Error(`--${m[1]} needs a value`);
    out[m[1] as Flag] = value;
  }
  return out;
}

function num(v: string | undefined, name: string, fallback: number): number {
  if (v === undefined) return fallback;
  const x = Number(v);
  if (!Number.isFinite(x)) throw new Error(`--${name}: not a number: ${v}`);
  return x;
}

const args = parseArgs(process.argv.slice(2));
const epochs = num(args.epochs, 'epochs', 16);
const batch = num(args.batch, 'batch', TRAIN_DEFAULTS.batch);
const lr = num(args.lr, 'lr', TRAIN_DEFAULTS.lr);
const seed = num(args.seed, 'seed', TRAIN_DEFAULTS.seed);
const maxShift = num(args.shift, 'shift', TRAIN_DEFAULTS.maxShift);
const config: LeNetConfig = {
  ...LENET_CONFIG,
  c1: num(args.c1, 'c1', LENET_CONFIG.c1),
  c2: num(args.c2, 'c2', LENET_CONFIG.c2),
  hidden: num(args.hidden, 'hidden', LENET_CONFIG.hidden),
  features: num(args.features, 'features', LENET_CONFIG.features),
};
const dataKey = args.data ?? 'mnist';
if (dataKey !== 'mnist' && dataKey !== 'fashion') throw new Error(`--data: '${dataKey}' is not mnist or fashion`);
const fashion = dataKey === 'fashion';
const out = args.out ?? join('checkpoints/classifier', CLASSIFIER_FILES[dataKey]);
const command = ['npx tsx scripts/train-classifier.ts', ...process.argv.slice(2)].join(' ');

/** The commit the engine came from, and whether src/engine or src/kernels had local changes. */
function engineRevision(): string {
  try {
    const git = (...a: string[]) => execFileSync('git', a, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = git('status', '--porcelain', '--', 'src/engine', 'src/kernels') !== '';
    return `${git('rev-parse', '--short', 'HEAD')}${dirty ? ' (with uncommitted changes in src/engine or src/kernels)' : ''}`;
  } catch {
    return 'unknown (not a git checkout)';
  }
}
const revision = engineRevision();

const gpu = await initGpu({ backend: args.backend as Backend | undefined });
console.log(`backend ${gpu.adapter.backend} (${gpu.adapter.description || gpu.adapter.vendor}); config ${JSON.stringify(config)}; epochs ${epochs}, batch ${batch}, lr ${lr}, seed ${seed}`);

const trainSet = fashion ? loadFashionMnist({ split: 'train' }) : loadBuiltinMnist({ split: 'train' });
const result = await trainClassifier({
  train: trainSet,
  epochs,
  batch,
  lr,
  seed,
  maxShift,
  config,
  progressEvery: 100,
  onProgress: (p) =>
    console.log(`${p.endOfEpoch ? `epoch ${p.epoch + 1}/${epochs} done` : `  step ${p.step}/${p.totalSteps}`}  loss ${p.loss.toFixed(4)}  lr ${p.lr.toExponential(2)}  ${p.seconds.toFixed(1)} s`),
});
const t1 = performance.now();
const heldout = fashion ? loadFashionMnist({ split: 'test' }) : loadBuiltinMnist({ split: 'test' });
const accuracy = await evaluateAccuracy(result.model, heldout);
const evalSeconds = (performance.now() - t1) / 1000;
console.log(`trained ${result.steps} steps in ${result.seconds.toFixed(1)} s; held-out accuracy ${(accuracy * 100).toFixed(2)}% (${Math.round(accuracy * heldout.n)}/${heldout.n}, ${evalSeconds.toFixed(1)} s)`);

const params = result.model.numParameters();
const metadata = {
  heldout_accuracy: accuracy.toString(),
  heldout_digits: heldout.n.toString(),
  train: result.options,
  train_seconds: result.seconds.toFixed(1),
  train_steps: result.steps.toString(),
  backend: gpu.adapter.backend,
  adapter: gpu.adapter.description || gpu.adapter.vendor,
  data: fashion
    ? 'Fashion-MNIST train split (60,000 images, dataset-fashion-mnist); held-out: its test split (10,000 images, never used in training)'
    : 'loadBuiltinMnist train split (9,000 digits); held-out: test split (1,000 digits, never used in training)',
  dataset: dataKey,
  command,
  engine_revision: revision,
  parameters: params.toString(),
  created: new Date().toISOString(),
};
await saveClassifier(out, result.model, metadata);

const heldoutText = fashion
  ? `the test split of Fashion-MNIST (\`t10k-*\`, 10,000 images, 1,000 per class), never used in training`
  : `the \`test\` split of \`loadBuiltinMnist\`: the last 100 digits of each class, never used in training`;
const trainText = fashion
  ? `the train split of Fashion-MNIST (60,000 images, Debian's \`dataset-fashion-mnist\`)`
  : `the \`train\` split of \`loadBuiltinMnist\` (9,000 digits)`;
const referenceText = fashion
  ? `FD-LeNet of a Fashion-MNIST model compares 2,000 generated images with a fixed 2,000-image real
reference set: the first 200 test images of each class in file order (all held out; see
\`fashionReferenceSet\` in \`src/eval/metrics.ts\`).`
  : `FD-LeNet compares 2,000 generated digits with a fixed 2,000-digit real reference set: the 1,000
held-out digits plus 1,000 train digits picked by a fixed Philox permutation (those were seen in
training; see \`fdReferenceSet\` in \`src/eval/metrics.ts\`).`;
const readme = `# LeNet ${fashion ? 'Fashion-MNIST' : 'digit'} classifier (FD-LeNet, class consistency)

\`${basename(out)}\` is the${fashion ? ' Fashion-MNIST' : ''} classifier behind FD-LeNet and class consistency (\`src/eval/metrics.ts\`).
It was trained with this project's own WebGPU engine by

\`\`\`
${command}
\`\`\`

| | |
|---|---|
| held-out accuracy | **${(accuracy * 100).toFixed(2)}%** (${Math.round(accuracy * heldout.n)}/${heldout.n}, ${heldoutText}) |
| training data | ${trainText}, random shifts of up to ±${maxShift} px (seeded Philox) |
| training | ${epochs} epochs, batch ${batch}, ${result.steps} AdamW steps, peak lr ${lr} (warmup ${result.options.warmupSteps} steps, cosine decay to 2%), weight decay ${result.options.weightDecay}, seed ${seed} |
| time taken | ${result.seconds.toFixed(1)} s of training + ${evalSeconds.toFixed(1)} s evaluation (wall clock, includes shader compilation) |
| engine | commit \`${revision}\` |
| backend | \`${gpu.adapter.backend}\` (${gpu.adapter.description || gpu.adapter.vendor}), a CPU-emulated GPU on a 2-core machine shared with other jobs, so times are indicative |
| architecture | ${JSON.stringify(config)}: conv${config.kernel}x${config.kernel}(1->${config.c1}, pad ${(config.kernel - 1) / 2}) -> relu -> avgpool2 -> conv${config.kernel}x${config.kernel}(${config.c1}->${config.c2}) -> relu -> avgpool2 -> Linear(${config.hidden}) -> relu -> Linear(${config.features}) -> relu [features] -> Linear(${config.classes}) |
| parameters | ${params.toLocaleString('en-US')} (float32) |

The safetensors \`__metadata__\` holds \`format\` (${'`distillkac-lenet-v1`'}), \`config\` (the JSON above),
\`heldout_accuracy\`, the training options and this command. Load it with
\`loadClassifier(${fashion ? "classifierPathFor({ kind: 'fashion' })" : 'defaultClassifierPath()'})\` from \`src/eval/classifier.ts\`.

${referenceText}
`;
const readmePath = fashion ? out.replace(/\.safetensors$/, '') + '.md' : join(dirname(out), 'README.md');
writeFileSync(readmePath, readme);
console.log(`wrote ${relative(process.cwd(), out)} and ${relative(process.cwd(), readmePath)}`);
gpu.destroy();
