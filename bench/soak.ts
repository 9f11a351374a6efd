// Soak: train the tiny teacher for many steps and report GPU pool bytes and process RSS over time;
// both must stay flat. Not part of CI (test/nn.test.ts runs a 1,000-step memory check of a small model).
//   npx tsx bench/soak.ts [--steps 10000] [--every 500] [--backend default|opengl]
import { initGpu } from '../src/engine/dawn';
import { manualSeed } from '../src/engine/index';
import { defaultKacConfig } from '../src/models/kac';
import { UNet, unetPresets } from '../src/models/unet';
import { loadBuiltinMnist } from '../src/train/data';
import { trainLoop } from '../src/train/loop';
import { teacherBatch, teacherLoss } from '../src/train/teacher';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const arg = (name: string, d: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : d;
};
const steps = Number(arg('steps', '10000'));
const every = Number(arg('every', '500'));
const gpu = await initGpu({ backend: arg('backend', 'default') as 'default' | 'opengl' });
manualSeed(0);
const data = loadBuiltinMnist({ split: 'train' });
const rows: { step: number; liveMiB: number; pooledMiB: number; rssMiB: number }[] = [];
const mib = (b: number) => +(b / 2 ** 20).toFixed(2);
await trainLoop({
  kind: 'soak',
  outDir: mkdtempSync(join(tmpdir(), 'dk-soak-')),
  config: { soak: true },
  optim: { steps, lr: 1e-3, warmupSteps: 50, weightDecay: 0, maxGradNorm: 1, emaDecay: 0.999, emaWarmup: 10 },
  createModel: () => new UNet(unetPresets.tiny),
  checkpointEvery: steps,
  quiet: true,
  loss: (model, step) => {
    if (step % every === 0) {
      rows.push({ step, liveMiB: mib(gpu.memory.liveBytes), pooledMiB: mib(gpu.memory.pooledBytes), rssMiB: mib(process.memoryUsage().rss) });
      console.log(JSON.stringify(rows[rows.length - 1]));
    }
    return teacherLoss(model, teacherBatch(data, 16, step, 0, defaultKacConfig, 0.1), [1, 28, 28]);
  },
});
const later = rows.slice(Math.floor(rows.length / 2));
const growth = (k: 'liveMiB' | 'rssMiB') => later[later.length - 1][k] - later[0][k];
console.log(`second half growth: GPU live ${growth('liveMiB')} MiB, RSS ${growth('rssMiB')} MiB`);
gpu.destroy();
