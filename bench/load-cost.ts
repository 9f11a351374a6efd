// What loading a workgroup-uniform value inside a loop costs: every lane keeps 4 inputs in registers
// and, per iteration, loads 8 weights (the same for every lane) and does 32 FMAs with them. The
// weights come from a storage buffer as f32 or as vec4, or from a uniform buffer; the FMA peak of
// the same adapter (bench/roofline.ts, the loop without loads) is the ceiling. The last two forms
// unroll the loop so that every weight address is a literal: into a fixed-size array, which is the
// only way the compiler sees a load as uniform (one load for all lanes), and into a runtime-sized
// one, whose bounds clamp (arrayLength) makes the address non-uniform again; that form takes tens of
// seconds to compile once on llvmpipe.
// Usage: npx tsx bench/load-cost.ts [backend=opengl]
import { initGpu } from '../src/engine/runtime/dawn';
import { type Backend, Tensor, randn } from '../src/engine/index';
import type { Kernel } from '../src/kernels/kernel';
import { range } from '../src/kernels/gemm';

const backend = (process.argv[2] ?? 'opengl') as Backend;
const gpu = await initGpu({ backend });
const K = 128;
const LANES = 65536;
const x = randn([LANES * 4]);
const w = randn([K * 8]);
const wValues = await w.toFloat32Array();
const y = Tensor.empty([LANES], 'f32', gpu);
const kernel = (decl: string, load: (i: number, k: string) => string, pre = '', unrolled = false): string => {
  const step = (k: string) => `${range(8).map((i) => `let w${i} = ${load(i, k)};`).join(' ')}
    ${range(32).map((i) => `a${i} = fma(w${i >> 2}, x${i & 3}, a${i});`).join(' ')}`;
  return `@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read_write> Y: array<f32>;
${decl}
@compute @workgroup_size(8)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  ${range(4).map((c) => `let x${c} = X[gid.x * 4u + ${c}u];`).join(' ')}
  ${range(32).map((i) => `var a${i} = 0.0;`).join(' ')}
  ${unrolled ? range(K).map((k) => `{ ${step(`${k}u`)} }`).join('\n  ') : `for (var k = 0u; k < ${K}u; k++) { ${pre} ${step('k')} }`}
  Y[gid.x] = ${range(32).map((i) => `a${i}`).join(' + ')};
}`;
};
const halves = 'let Wa = W[k * 2u]; let Wb = W[k * 2u + 1u];';
const forms = [
  { name: 'storage f32', code: kernel('@group(0) @binding(2) var<storage, read> W: array<f32>;', (i, k) => `W[${k} * 8u + ${i}u]`), uniform: false },
  { name: 'storage vec4', code: kernel('@group(0) @binding(2) var<storage, read> W: array<vec4f>;', (i) => `W${i < 4 ? 'a' : 'b'}[${i % 4}]`, halves), uniform: false },
  { name: 'uniform vec4', code: kernel(`@group(0) @binding(2) var<uniform> W: array<vec4f, ${K * 2}>;`, (i) => `W${i < 4 ? 'a' : 'b'}[${i % 4}]`, halves), uniform: true },
  { name: 'storage f32 literal, fixed size', code: kernel(`@group(0) @binding(2) var<storage, read> W: array<f32, ${K * 8}>;`, (i, k) => `W[${k} * 8u + ${i}u]`, '', true), uniform: false },
  { name: 'storage f32 literal, runtime size', code: kernel('@group(0) @binding(2) var<storage, read> W: array<f32>;', (i, k) => `W[${k} * 8u + ${i}u]`, '', true), uniform: false },
];
for (let round = 0; round < 2; round++) {
  for (const form of forms) {
    const k: Kernel = { name: form.name, code: form.code, workgroups: [LANES / 8, 1, 1] };
    const run = () => (form.uniform ? gpu.dispatch(k, [x.binding, y.binding], wValues) : gpu.dispatch(k, [x.binding, y.binding, w.binding]));
    const first = performance.now();
    run();
    await gpu.sync();
    const firstMs = performance.now() - first;
    let best = Infinity;
    for (let t = 0; t < 5; t++) {
      const s = performance.now();
      run();
      await gpu.sync();
      best = Math.min(best, performance.now() - s);
    }
    console.log(`${backend} ${form.name}: ${best.toFixed(2)} ms, ${((2 * 32 * K * LANES) / best / 1e6).toFixed(1)} GFLOP/s (first dispatch, compilation included: ${firstMs.toFixed(0)} ms)`);
  }
}
gpu.destroy();
