// Soak: train the tiny teacher for many steps and report GPU pool bytes and process RSS over time,
// then a verdict line saying whether both stayed flat after warm-up, with the measured growth. The
// same code (src/train/soak.ts) runs for 500 steps as a CI test (test/soak.test.ts).
//   npx tsx bench/soak.ts [--steps 10000] [--every 100] [--batch 16] [--warmup 100] [--rss-bound-mib 24] [--backend default|opengl]
// Exit code 1 when either grew.
import { initGpu } from '../src/engine/runtime/dawn';
import { soak } from '../src/train/soak';

const arg = (name: string, d: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : d;
};
const steps = Number(arg('steps', '10000'));
const every = Number(arg('every', '100'));
const gpu = await initGpu({ backend: arg('backend', 'default') as 'default' | 'opengl' });
const mib = (b: number) => +(b / 2 ** 20).toFixed(2);
console.log(`soak: tiny teacher, batch ${arg('batch', '16')}, ${steps} steps on ${gpu.adapter.backend} (${gpu.adapter.description})`);
const r = await soak({
  gpu,
  steps,
  every,
  batch: Number(arg('batch', '16')),
  warmupSteps: Number(arg('warmup', '100')),
  rssBoundBytes: Number(arg('rss-bound-mib', '24')) * 2 ** 20,
  onSample: (s) =>
    console.log(JSON.stringify({ step: s.step, liveMiB: mib(s.liveBytes), pooledMiB: mib(s.pooledBytes), buffers: s.buffersCreated, rssMiB: mib(s.rssBytes), heapMiB: mib(s.heapUsedBytes), heapTotalMiB: mib(s.heapTotalBytes), sec: +s.elapsedSec.toFixed(1) })),
});
console.log(`${r.secPerStep.toFixed(3)} s/step`);
console.log(r.verdict);
gpu.destroy();
process.exitCode = r.poolFlat && r.rssFlat ? 0 : 1;
