/**
 * moe-em: Mixtures of Experts trained with EM, Gradient EM and gradient descent, with Fisher-information and
 * Missing-Information-Matrix diagnostics. The estimator is the main entry point; the lower layers (model
 * mathematics, single algorithm steps, information, mirror descent, samplers) are exported for people who
 * study the algorithms.
 */

// The estimator and its public types.
export { MixtureOfExperts } from './estimator.js';
export type { MixtureOfExpertsJSON } from './estimator.js';
export * from './types.js';
export { ERROR_CODES, MoEError, isMoEError } from './errors.js';
export type { ErrorCode } from './errors.js';

// Backends.
export type {
  ComputeBackend, FitHooks, FitRequest, FitResult, FitSpec, FitStart, ModelSpec, MomentSums, ProblemData,
  RestartsRequest,
} from './backends/backend.js';
export { JsBackend, jsBackend } from './backends/js.js';
export { CUDA_CROSSOVER_ND, resolveBackend } from './backends/select.js';
export { loadNativeBackend, nativeInfo } from './backends/native.js';
export type { GpuInfo, NativeInfo } from './backends/native.js';

// Model mathematics (flat layouts, per-row evaluation, objective, gradients, predictions).
export * from './models/index.js';

// Algorithms as low-level steps (EM / Gradient EM / GD steps, M-step solvers, the fit loop).
export * from './algorithms/index.js';

// Input validation (the rules the native core mirrors).
export {
  checkEnoughRows, largestBlockSize, resolveFitSpec, resolveOptions, toDenseMatrix, toVector, validateLabels,
} from './input.js';
export type { ResolvedOptions } from './input.js';

// Data: RNG, samplers with known truth, Fashion-MNIST, parameter error.
export { Rng } from './data/rng.js';
export * from './data/samplers.js';
export * from './data/fashion-mnist.js';
export { parameterError } from './data/param-error.js';

// Diagnostics: Fisher information / MIM, and the mirror-descent view of EM.
export { computeInformation, DENSE_LIMIT } from './diagnostics/information.js';
export type { InformationComputeOptions } from './diagnostics/information.js';
export * from './diagnostics/mirror.js';
