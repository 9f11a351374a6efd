// Dispatches of one `small` UNet teacher step as trainLoop runs it (loss, backward, AdamW with
// clipping, EMA), per kind of kernel, and its wall time after warm-up. The count does not depend on
// the batch. Usage: npx tsx bench/step-dispatches.ts [batch=2] [backend=opengl]
import { initGpu } from '../src/engine/runtime/dawn';
import { AdamW, EMA, type Backend } from '../src/engine/index';
import { UNet, unetPresets } from '../src/models/unet';
import { teacherStep } from './unet-step';

const batch = Number(process.argv[2] ?? 2);
const gpu = await initGpu({ backend: (process.argv[3] ?? 'opengl') as Backend });
const cfg = unetPresets.small;
const per = cfg.inChannels * cfg.imageSize * cfg.imageSize;
const b = {
  x0: new Float32Array(batch * per).fill(0.1),
  xt: new Float32Array(batch * per).fill(0.2),
  target: new Float32Array(batch * per).fill(0.3),
  t: Float64Array.from({ length: batch }, (_, i) => 0.1 + (0.3 * i) / batch),
  labels: Int32Array.from({ length: batch }, (_, i) => i % 10),
};
const model = new UNet(cfg);
const opt = new AdamW(model.parameters(), { lr: 1e-4, weightDecay: 0, maxGradNorm: 1 });
const ema = new EMA(model, { decay: 0.999, warmup: 10 });
const step = () => teacherStep(model, opt, b, () => ema.update());
await step();
gpu.startProfiling();
const loss = await step();
const prof = await gpu.readProfile();
const times: number[] = [];
for (let i = 0; i < 3; i++) {
  const s = performance.now();
  await step();
  times.push(performance.now() - s);
}
const by = (re: RegExp) => prof.filter((p) => re.test(p.name)).reduce((a, p) => a + p.dispatches, 0);
console.log(JSON.stringify({
  params: model.parameters().length, batch, loss,
  dispatches: by(/./), adamw: by(/adamw/), ema: by(/^ema/), gradNormSumSq: by(/sumsq/), concat: by(/concat/),
  stepMsMin: Math.round(Math.min(...times)),
}));
gpu.destroy();
