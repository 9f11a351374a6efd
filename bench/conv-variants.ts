// GPU time of a 3x3 convolution's forward pass and input gradient with each kernel variant forced,
// from timestamp queries (adapters without them, such as OpenGL, report none), best of 3 runs.
// Usage: npx tsx bench/conv-variants.ts [backend=default] [batch=64] VARIANTS_JSON [SHAPES_JSON]
//   VARIANTS_JSON: variants as the tuner writes them, e.g. '[{"kind":"direct3","tm":12,"q":1,"wg":8,"sg":true}]'
//   SHAPES_JSON: [[input channels, height = width, output channels], ...], default [[12,28,12]]
import { initGpu } from '../src/engine/runtime/dawn';
import { type Backend, conv2d, randn, scope } from '../src/engine/index';
import { type Variant, anyVariantKey, forceGemmVariant } from '../src/engine/autotune';

const backend = (process.argv[2] ?? 'default') as Backend;
const batch = Number(process.argv[3] ?? 64);
const variants: Variant[] = JSON.parse(process.argv[4] ?? '[]');
const shapes: [number, number, number][] = JSON.parse(process.argv[5] ?? '[[12,28,12]]');
if (variants.length === 0) throw new Error('bench/conv-variants.ts: pass the variants to time as JSON (see the usage line at the top of the file)');
const gpu = await initGpu({ backend });
for (const [cin, hw, cout] of shapes) {
  const x = randn([batch, cin, hw, hw]).requireGrad();
  const w = randn([cout, cin, 3, 3]).requireGrad();
  const flops = 2 * batch * cin * cout * 9 * hw * hw;
  for (const v of variants) {
    forceGemmVariant(v);
    const step = () =>
      scope(async () => {
        const y = conv2d(x, w, null, { padding: 1 });
        y.backward(y);
        x.grad = w.grad = null;
        await gpu.sync();
      });
    await step(); // compile
    const best = new Map<string, number>();
    for (let t = 0; t < 3; t++) {
      gpu.startProfiling();
      await step();
      for (const k of await gpu.readProfile()) {
        const kind = k.name.split(' ')[0];
        if (k.ms !== null && (kind === 'conv2d.fwd' || kind === 'conv2d.dx')) best.set(kind, Math.min(best.get(kind) ?? Infinity, k.ms));
      }
      gpu.stopProfiling();
    }
    const times = [...best].map(([kind, ms]) => `${kind} ${ms.toFixed(1)} ms (${(flops / ms / 1e6).toFixed(1)} GFLOP/s)`);
    console.log(`${cin}x${hw}x${hw} -> ${cout}, batch ${batch}, ${anyVariantKey(v)}: ${times.join(', ') || 'no timestamp queries on this adapter'}`);
  }
  forceGemmVariant(null);
}
gpu.destroy();
