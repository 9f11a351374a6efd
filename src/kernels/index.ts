// The package's `distillkac/kernels` entry: the WGSL generators alone (source, workgroups, bindings,
// uniforms), for a runtime of one's own. Imports nothing outside src/kernels.
export * from './kernel';
export * from './elementwise';
export * from './reduce';
export * from './gemm';
export * from './conv3';
export * from './im2col';
export * from './indexing';
export * from './optim';
export * from './random';
export * from './norm';
