/**
 * The boundary between the estimator and a compute backend. The TypeScript reference (`js`), the Rust CPU
 * backend (`cpu`) and the CUDA backend (`cuda`) all implement this interface; the estimator validates
 * inputs, resolves defaults, runs restarts and keeps fitted state, and hands one fully-resolved request to
 * the backend per restart. Parameters cross this boundary in the flat layout of docs/ALGORITHMS.md §1.
 */
import type { ExpertKind, InformationResult, IterationRecord, MStepSolver, StepSizes } from '../types.js';

/** Validated data; the intercept column (if any) is already in `x`. */
export interface ProblemData {
  x: Float64Array;   // n×d row-major
  n: number;
  d: number;
  y: Float64Array;   // length n
  s: Float64Array | null; // sample weights, null = all ones
}

/** The model, fully resolved. */
export interface ModelSpec {
  experts: ExpertKind;
  symmetric: boolean;
  k: number;
  d: number;
  /** Multinomial: C; logistic: 2; linear: 0. */
  nClasses: number;
  /** Linear: 'fitted' or the known σ. Symmetric linear: the known σ. */
  noise: 'fitted' | number;
  ridge: number;
  intercept: boolean;
}

/** The algorithm, fully resolved (every default of ALGORITHMS.md filled in). */
export interface FitSpec {
  algorithm: 'em' | 'gradient-em' | 'gd';
  mstep: { solver: MStepSolver; maxIter: number; tol: number; cgMaxIter: number; innerSteps: number };
  stepSize: StepSizes;
  innerSteps: number;
  /** 0 = full batch. */
  batchSize: number;
  maxIter: number;
  tol: number;
  onEmpty: 'reseed' | 'error';
  /** CPU threads; 0 = all cores. */
  threads: number;
}

export interface FitRequest {
  data: ProblemData;
  model: ModelSpec;
  fit: FitSpec;
  /** Seed of this restart (init and mini-batch shuffles). */
  seed: number;
  /** Starting parameters in the flat layout, or null for the 'random' initialisation. */
  init: Float64Array | null;
  /** True parameters (flat layout) for paramError, or null. */
  trueParams: Float64Array | null;
}

export interface FitResult {
  params: Float64Array;
  iterations: IterationRecord[];
  converged: boolean;
  reason: 'tol' | 'max-iter';
}

export interface FitHooks {
  onIteration?: (record: IterationRecord) => void;
  signal?: AbortSignal;
}

export interface ComputeBackend {
  readonly name: 'js' | 'cpu' | 'cuda';
  fit(req: FitRequest, hooks: FitHooks): Promise<FitResult>;
  fitSync(req: FitRequest, hooks: FitHooks): FitResult;
  /** Mean nll and mean penalised objective at `params`. */
  evaluate(data: ProblemData, model: ModelSpec, params: Float64Array): { nll: number; objective: number };
  /** Responsibilities h (n×k row-major; symmetric: columns z=+1, z=−1). */
  posterior(data: ProblemData, model: ModelSpec, params: Float64Array): Float64Array;
  information(data: ProblemData, model: ModelSpec, params: Float64Array,
    opts: { method: 'auto' | 'dense' | 'lanczos'; steps: number }): InformationResult;
  /**
   * Predictions at `params` for the n rows of `x` (n×model.d row-major, intercept column included): linear
   * experts the mixture mean E[y|x] (n values), logistic and multinomial experts the class probabilities
   * (n × classCount(model), the columns of src/models/predict.ts).
   */
  predict(x: Float64Array, n: number, model: ModelSpec, params: Float64Array): Float64Array;
}
