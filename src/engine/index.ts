// The engine's public API. Browser-safe: takes a GPUDevice from anywhere (Node: see dawn.ts).
export { Gpu, GpuError, GpuOutOfMemoryError, GpuDeviceLostError, requestGpuFrom, type AdapterSummary, type Backend, type Binding, type MemoryStats } from './runtime/gpu';
export { Tensor, scope, keep, noGrad, isGradEnabled, setDefaultGpu, getDefaultGpu, type DType, type Shape } from './tensor';
export * from './ops/index';
export * from './modules';
export * from './optim';
export { ParameterArena } from './param-arena';
export { Philox, philoxKey } from './philox';
