// Time of a 3x3 convolution's forward pass and input gradient with each kernel variant forced, each
// pass run alone and timed on the wall clock (submit to read-back; OpenGL has no timestamp queries),
// best of 5 runs after a first one, whose time is printed too: with MESA_SHADER_CACHE_DISABLE=true it
// includes compiling the kernels.
// Usage: npx tsx bench/conv-variants.ts [backend=default] [batch=64] VARIANTS_JSON [SHAPES_JSON]
//   VARIANTS_JSON: variants as the tuner writes them, e.g. '[{"kind":"block3","tm":8,"rows":4,"cols":7,"wg":8}]'
//   SHAPES_JSON: [[input channels, height = width, output channels], ...], default [[12,28,12]]
import { initGpu } from '../src/engine/runtime/dawn';
import { type Backend, type Tensor, conv2d, randn, scope } from '../src/engine/index';
import { type Variant, anyVariantKey, forceGemmVariant } from '../src/engine/autotune';

const backend = (process.argv[2] ?? 'default') as Backend;
const batch = Number(process.argv[3] ?? 64);
const variants: Variant[] = JSON.parse(process.argv[4] ?? '[]');
const shapes: [number, number, number][] = JSON.parse(process.argv[5] ?? '[[12,28,12]]');
if (variants.length === 0) throw new Error('bench/conv-variants.ts: pass the variants to time as JSON (see the usage line at the top of the file)');
const gpu = await initGpu({ backend });

/** Best time of `pass` (its result read back), each run after `setup` has run and finished, and the
 *  first run's time (compilation included). */
async function bestMs<T>(setup: () => T, pass: (input: T) => Tensor): Promise<{ best: number; first: number }> {
  let best = Infinity;
  let first = 0;
  for (let t = 0; t < 6; t++) {
    const ms = await scope(async () => {
      const input = setup();
      await gpu.sync();
      const t0 = performance.now();
      await pass(input).toFloat32Array();
      return performance.now() - t0;
    });
    if (t > 0) best = Math.min(best, ms);
    else first = ms;
  }
  return { best, first };
}

for (const [cin, hw, cout] of shapes) {
  const w = randn([cout, cin, 3, 3]);
  const x = randn([batch, cin, hw, hw]);
  const gy = randn([batch, cout, hw, hw]);
  const flops = 2 * batch * cin * cout * 9 * hw * hw;
  for (const v of variants) {
    forceGemmVariant(v);
    const fwd = await bestMs(
      () => x,
      (input) => conv2d(input, w, null, { padding: 1 }),
    );
    // the input gradient alone: x needs a gradient, the weight does not; the forward pass is setup
    const dx = await bestMs(
      () => {
        const xg = x.detach().requireGrad();
        return { xg, y: conv2d(xg, w, null, { padding: 1 }) };
      },
      ({ xg, y }) => {
        y.backward(gy);
        return xg.grad!;
      },
    );
    const rate = (t: { best: number; first: number }) => `${t.best.toFixed(1)} ms (${(flops / t.best / 1e6).toFixed(1)} GFLOP/s; first run ${t.first.toFixed(0)} ms)`;
    console.log(`${cin}x${hw}x${hw} -> ${cout}, batch ${batch}, ${anyVariantKey(v)}: forward ${rate(fwd)}, input gradient ${rate(dx)}`);
  }
  forceGemmVariant(null);
}
gpu.destroy();
