// Where one `small` UNet teacher step (the bench's: loss, backward, AdamW with clipping) spends its time
// on an adapter without timestamp queries (OpenGL): after tuning and warm-up, the step's dispatches
// are recorded, then each is replayed alone three times with a wait for the GPU after each; its time
// is the fastest of the three minus the round trip of an empty dispatch (fastest of 20). Replays
// bind the buffers the step used, which are back in the pool by then (their contents do not change
// the times). Usage: npx tsx bench/replay-profile.ts [backend=opengl] [batch=64]
import { initGpu } from '../src/engine/runtime/dawn';
import { AdamW, type Backend } from '../src/engine/index';
import { tuneGemms } from '../src/engine/autotune';
import type { Kernel } from '../src/kernels/kernel';
import type { Binding } from '../src/engine/runtime/gpu';
import { UNet, unetPresets } from '../src/models/unet';
import { STEP_OPT, stepBatch, teacherStep } from './unet-step';

const gpu = await initGpu({ backend: (process.argv[2] ?? 'opengl') as Backend });
const batch = Number(process.argv[3] ?? 64);
const cfg = unetPresets.small;
const b = stepBatch(cfg, batch);
const model = new UNet(cfg);
const opt = new AdamW(model.parameters(), STEP_OPT);
const step = () => teacherStep(model, opt, b);
await step();
await tuneGemms(gpu, { budgetMs: 120_000 });
await step();
const t0 = performance.now();
await step();
const stepMs = performance.now() - t0;

const dispatch = gpu.dispatch.bind(gpu);
const recorded: { kernel: Kernel; buffers: Binding[]; uniforms?: Uint8Array }[] = [];
gpu.dispatch = (kernel, buffers, uniforms = kernel.params) => {
  const copy = uniforms ? new Uint8Array(uniforms.buffer.slice(uniforms.byteOffset, uniforms.byteOffset + uniforms.byteLength)) : undefined;
  recorded.push({ kernel, buffers, uniforms: copy });
  dispatch(kernel, buffers, uniforms);
};
await step();
gpu.dispatch = dispatch;

const time = async (run: () => void, reps = 3) => {
  let best = Infinity;
  for (let r = 0; r < reps; r++) {
    const s = performance.now();
    run();
    await gpu.sync();
    best = Math.min(best, performance.now() - s);
  }
  return best;
};
const empty: Kernel = { name: 'empty', code: '@compute @workgroup_size(1) fn main() {}', workgroups: [1, 1, 1] };
const roundTrip = await time(() => dispatch(empty, []), 20);
const byKind = new Map<string, { dispatches: number; ms: number }>();
for (const { kernel, buffers, uniforms } of recorded) {
  const ms = Math.max(0, (await time(() => dispatch(kernel, buffers, uniforms))) - roundTrip);
  const kind = kernel.name.replace(/[ [].*/, '');
  const e = byKind.get(kind) ?? { dispatches: 0, ms: 0 };
  byKind.set(kind, { dispatches: e.dispatches + 1, ms: e.ms + ms });
}
const total = [...byKind.values()].reduce((a, k) => a + k.ms, 0);
console.log(`${gpu.adapter.backend} batch ${batch}: step ${stepMs.toFixed(0)} ms, ${recorded.length} dispatches, replayed one by one ${total.toFixed(0)} ms (round trip ${roundTrip.toFixed(2)} ms subtracted from each)`);
for (const [kind, { dispatches, ms }] of [...byKind].sort((x, y) => y[1].ms - x[1].ms).slice(0, 12)) {
  console.log(`  ${kind}: ${dispatches} dispatches, ${ms.toFixed(1)} ms (${((100 * ms) / total).toFixed(0)}%)`);
}
gpu.destroy();
