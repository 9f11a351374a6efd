// Lists the WebGPU adapters Dawn offers here: the default (Vulkan/Metal/D3D12) and OpenGL.
// --require-all: exit 1 unless both the default and the OpenGL path come up (CI wants both).
import { create } from 'webgpu';

const paths = [
  { name: 'default', options: [], featureLevel: 'core' },
  { name: 'opengl', options: ['backend=opengl'], featureLevel: 'compatibility' },
];
process.env.EGL_PLATFORM ??= 'surfaceless';
let missing = 0;
for (const p of paths) {
  const adapter = await create(p.options).requestAdapter({ featureLevel: p.featureLevel });
  if (!adapter) { missing++; console.log(`${p.name}: none`); continue; }
  const i = adapter.info;
  console.log(`${p.name}: ${i.vendor || '?'} ${i.architecture || ''} ${i.description} [${adapter.featureLevel ?? p.featureLevel}]`);
}
process.exit(process.argv.includes('--require-all') && missing ? 1 : 0);
