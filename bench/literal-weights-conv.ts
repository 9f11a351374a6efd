// A 3x3 convolution (stride 1, padding 1) whose weights llvmpipe loads once for all lanes: each lane
// computes P positions of one output row for every output channel, with the input-channel and tap
// loops unrolled so that every weight address is a literal into a fixed-size array (the only form
// Mesa's compiler treats as uniform; bench/load-cost.ts). Timed against the engine's tuned
// convolution of the same shape, forward only, both timed with the read-back of their output. The kernel is not in src/: its code
// grows with C * M * 9 * P and its compile time faster than that (see bench/RESULTS.md).
// Usage: npx tsx bench/literal-weights-conv.ts [backend=opengl] [batch=64] [SHAPES_JSON]
//   SHAPES_JSON: [[input channels, height = width, output channels, positions per lane], ...]
import { initGpu } from '../src/engine/runtime/dawn';
import { type Backend, Tensor, conv2d, randn, scope } from '../src/engine/index';
import { type Kernel, u32 } from '../src/kernels/kernel';
import { range } from '../src/kernels/gemm';
import { tuneGemms } from '../src/engine/autotune';

const backend = (process.argv[2] ?? 'opengl') as Backend;
const batch = Number(process.argv[3] ?? 64);
const shapes: [number, number, number, number][] = JSON.parse(process.argv[4] ?? '[[4,28,12,4],[12,28,12,4]]');
const gpu = await initGpu({ backend });

function literalWeightsConv(C: number, H: number, W: number, M: number, P: number): string {
  if (W % P !== 0) throw new Error(`literalWeightsConv: ${P} positions per lane do not divide the row width ${W}`);
  const segments = W / P;
  const lines = [
    `let b = gid.x / ${u32(H * segments)}; let rest = gid.x % ${u32(H * segments)};`,
    `let oy = rest / ${u32(segments)}; let ox0 = (rest % ${u32(segments)}) * ${u32(P)};`,
    `let inBase = b * ${u32(C * H * W)};`,
  ];
  for (const ky of range(3)) lines.push(`let iy${ky} = i32(oy) + ${ky - 1}i; let okY${ky} = u32(iy${ky}) < ${u32(H)}; let row${ky} = u32(clamp(iy${ky}, 0i, ${H - 1}i)) * ${u32(W)};`);
  for (const j of range(P + 2)) lines.push(`let ix${j} = i32(ox0) + ${j - 1}i; let okX${j} = u32(ix${j}) < ${u32(W)}; let col${j} = u32(clamp(ix${j}, 0i, ${W - 1}i));`);
  for (const m of range(M)) for (const p of range(P)) lines.push(`var acc${m}_${p} = 0.0;`);
  for (const c of range(C)) {
    for (const ky of range(3)) {
      lines.push('{');
      for (const j of range(P + 2)) lines.push(`let v${j} = select(0.0, X[inBase + ${u32(c * H * W)} + row${ky} + col${j}], okY${ky} && okX${j});`);
      for (const m of range(M)) {
        for (const kx of range(3)) lines.push(`let w${m}_${kx} = Wt[${u32(((m * C + c) * 3 + ky) * 3 + kx)}];`);
        for (const p of range(P)) lines.push(`acc${m}_${p} = fma(w${m}_2, v${p + 2}, fma(w${m}_1, v${p + 1}, fma(w${m}_0, v${p}, acc${m}_${p})));`);
      }
      lines.push('}');
    }
  }
  for (const m of range(M)) for (const p of range(P)) lines.push(`Y[b * ${u32(M * H * W)} + ${u32(m * H * W)} + oy * ${u32(W)} + ox0 + ${u32(p)}] = acc${m}_${p};`);
  return `@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read> Wt: array<f32, ${M * C * 9}>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;
@compute @workgroup_size(8)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  if (gid.x >= ${u32(batch * H * segments)}) { return; }
  ${lines.join('\n  ')}
}`;
}

const best = async (run: () => Promise<void>) => {
  let ms = Infinity;
  for (let t = 0; t < 5; t++) {
    const s = performance.now();
    await run();
    ms = Math.min(ms, performance.now() - s);
  }
  return ms;
};
for (const [C, HW, M, P] of shapes) {
  const x = randn([batch, C, HW, HW]);
  const w = randn([M, C, 3, 3]);
  const y = Tensor.empty([batch, M, HW, HW], 'f32', gpu);
  const gflops = (ms: number) => ((2 * batch * C * M * 9 * HW * HW) / ms / 1e6).toFixed(1);
  const engineForward = () => scope(async () => void (await conv2d(x, w, null, { padding: 1 }).toFloat32Array()));
  const reference = await scope(() => conv2d(x, w, null, { padding: 1 }).toFloat32Array());
  await tuneGemms(gpu, { budgetMs: 60_000 });
  await engineForward();
  const engineMs = await best(engineForward);
  const code = literalWeightsConv(C, HW, HW, M, P);
  const kernel: Kernel = { name: 'conv.literal', code, workgroups: [Math.ceil((batch * HW * (HW / P)) / 8), 1, 1] };
  const dispatchAndRead = async () => {
    gpu.dispatch(kernel, [x.binding, w.binding, y.binding]);
    await y.toFloat32Array();
  };
  const first = performance.now();
  await dispatchAndRead();
  const firstMs = performance.now() - first;
  const literalMs = await best(dispatchAndRead);
  const out = await y.toFloat32Array();
  const diff = out.reduce((d, v, i) => Math.max(d, Math.abs(v - reference[i])), 0);
  console.log(
    `${gpu.adapter.backend} ${C}->${M} channels, ${HW}x${HW}, batch ${batch}: engine ${engineMs.toFixed(2)} ms (${gflops(engineMs)} GFLOP/s); ` +
      `literal weights, ${P} positions per lane: ${literalMs.toFixed(2)} ms (${gflops(literalMs)} GFLOP/s), first dispatch ${(firstMs / 1000).toFixed(1)} s, ` +
      `${(code.length / 1024).toFixed(0)} KiB of WGSL, largest difference ${diff.toExponential(1)}`,
  );
}
gpu.destroy();
