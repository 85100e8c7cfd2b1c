/** The algorithms: M-step solvers, EM / Gradient EM / GD steps, mini-batch epochs, initialisation, fit loop. */
export { SoftmaxRegression, resolveSolver } from './softmax-regression.js';
export type { SoftmaxProblem, SoftmaxSolverOptions } from './softmax-regression.js';
export { gateMStep, mStep, varianceFloor, weightedLeastSquares, weightedVariance } from './mstep.js';
export type { MStepContext } from './mstep.js';
export { applyGradientStep } from './gradient-step.js';
export { emStep, gradientEmStep, gdStep, emStepFromPosterior, gradientStepsOnQ, safeguardedGradientStepsOnQ } from './steps.js';
export type { StepResult } from './steps.js';
export { miniBatchEpoch, gatherRows } from './minibatch.js';
export { initFromAssignment, randomInit } from './init.js';
export { kmeansInit, KMEANS_INIT } from './init-kmeans.js';
export { computeInit, initUnsupportedReason } from './named-init.js';
export { momentsInit, MOMENTS_INIT } from './init-moments.js';
export { tensorPowerDecomposition } from './tensor-power.js';
export { reseedDegenerate, componentMass } from './reseed.js';
export { fitGenerator, runFit, runFitSync } from './fit.js';
export type { FitProgress } from './fit.js';
