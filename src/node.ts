/// <reference types="@webgpu/types" preserve="true" />
// The package's Node entry, `distillkac/node`: a device through Dawn (`initGpu`; the `webgpu`
// package), the data loaders, the training loops and checkpoint files, evaluation and the report.
// The browser-safe API (tensors, ops, models, sampling) is `distillkac` (src/index.ts).
export { initGpu, dawnGpu, availableBackends, type DawnOptions } from './engine/runtime/dawn';

export * from './data/index';
export * from './data/mnist';
export * from './data/png-folder';

export * from './train/loop';
export * from './train/teacher';
export * from './train/distill-stages';
export { writeFileAtomic, readCheckpoint, listCheckpoints, saveCheckpoint, loadLatestCheckpoint, loadWeights } from './train/checkpoint';
export * from './train/images';
export * from './train/progress';

export * from './eval/metrics';
export * from './eval/evaluate';
export * from './eval/report';
export { trainClassifier, type TrainClassifierOptions, type TrainClassifierResult, saveClassifier, loadClassifier, type LoadedClassifier, decodeClassifier, encodeClassifier, DEFAULT_CLASSIFIER_PATH, defaultClassifierPath, predict, evaluateAccuracy } from './eval/classifier';
