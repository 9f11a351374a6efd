// Fit y = sin(3x) with a small MLP on the GPU (the README's engine example).
import { initGpu } from 'distillkac/node';
import { AdamW, Linear, Sequential, manualSeed, scope, tensor } from 'distillkac';

const gpu = await initGpu(); // a real GPU, else Mesa's llvmpipe (OpenGL) or lavapipe
manualSeed(0);
const model = new Sequential(new Linear(1, 32), (x) => x.tanh(), new Linear(32, 1));
const opt = new AdamW(model.parameters(), { lr: 1e-2 });

const xs = Array.from({ length: 128 }, (_, i) => -1 + (2 * i) / 127);
const x = tensor(xs, [128, 1]);
const y = tensor(xs.map((v) => Math.sin(3 * v)), [128, 1]);

for (let step = 1; step <= 300; step++) {
  // a scope frees every temporary of the step; the loss survives because it is returned
  const loss = scope(() => {
    const l = model.forward(x).sub(y).square().mean();
    l.backward();
    opt.step();
    opt.zeroGrad();
    return l;
  });
  if (step % 100 === 0) console.log(`step ${step}: loss ${(await loss.item()).toFixed(5)}`);
  loss.dispose();
}
gpu.destroy();
