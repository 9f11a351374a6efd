/// <reference types="@webgpu/types" preserve="true" />
// The package's browser-safe entry, `distillkac`: the engine (Tensor, ops, scopes, nn, optimizers,
// Philox), a device from `navigator.gpu` (`requestGpuFrom`, `browserGpu`), the Kac process, the
// models and their sampling, and checkpoints and images as bytes. It imports no `node:` module and
// not `webgpu` (test/layers.test.ts); Node's Dawn device and files are in `distillkac/node` (src/node.ts).
export * from './engine/index';
export { browserGpu } from './engine/runtime/browser';

export * from './models/kac';
export * from './models/ve';
export * from './models/bessel';
export * from './models/embeddings';
export * from './models/unet';
export * from './models/mlp2d';
export * from './models/lenet';
export * from './models/solvers';
export { DEFAULT_GUIDANCE, type Guidance, guidedVelocity, type IntegrateOptions, integrate, type SampleOptions, sample, type VelocityModel } from './models/sampling';
export * from './models/generate';
export * from './models/distillation-loss';
export * from './models/weights';

export * from './io/safetensors';
export * from './io/checkpoint-format';
export * from './io/image-grid';
export * from './io/png';
