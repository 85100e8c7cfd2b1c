/**
 * The boundary between the estimator and a compute backend. The TypeScript reference (`js`), the Rust CPU
 * backend (`cpu`) and the CUDA backend (`cuda`) all implement this interface; the estimator validates
 * inputs, resolves defaults, chooses the starts of the restarts and keeps the best fit, and hands the backend
 * one fully-resolved request with every start (`fitRestarts`: the data crosses to the backend once per fit, to
 * the GPU too). Parameters cross this boundary in the flat layout of docs/ALGORITHMS.md §1.
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

/** Where one fit (one restart) starts. */
export interface FitStart {
  /** Seed of this restart (init and mini-batch shuffles). */
  seed: number;
  /** Starting parameters in the flat layout, or null for the 'random' initialisation. */
  init: Float64Array | null;
}

/** One fit from one start. */
export interface FitRequest extends FitStart {
  data: ProblemData;
  model: ModelSpec;
  fit: FitSpec;
  /** True parameters (flat layout) for paramError, or null. */
  trueParams: Float64Array | null;
}

/** The restarts of one fit: the same data, model and settings from each start, in order. */
export interface RestartsRequest extends Omit<FitRequest, keyof FitStart> {
  /** At least one. */
  starts: FitStart[];
}

/** The request of one start of `req`. */
export function startRequest(req: RestartsRequest, start: FitStart): FitRequest {
  const { starts: _all, ...shared } = req;
  return { ...shared, seed: start.seed, init: start.init };
}

/** A one-start request as the restarts request it is. */
export function asRestarts(req: FitRequest): RestartsRequest {
  const { seed, init, ...shared } = req;
  return { ...shared, starts: [{ seed, init }] };
}

/**
 * `fitRestarts` for a backend with nothing to keep between restarts (the TypeScript reference): one `fit` per
 * start, in order; the first failure ends it.
 */
export async function fitEachStart(req: RestartsRequest, fit: (r: FitRequest) => Promise<FitResult>): Promise<FitResult[]> {
  const results: FitResult[] = [];
  for (const start of req.starts) results.push(await fit(startRequest(req, start)));
  return results;
}

/** `fitRestartsSync` of the same backends. */
export function fitEachStartSync(req: RestartsRequest, fit: (r: FitRequest) => FitResult): FitResult[] {
  return req.starts.map((start) => fit(startRequest(req, start)));
}

/**
 * The data passes of init 'moments' (docs/ALGORITHMS.md §5.1; O(n·p²)): every average is over the total
 * weight W = Σ s.
 */
export interface MomentSums {
  /** Rows with positive weight. */
  rows: number;
  weight: number;
  /** μ, the weighted mean of the p non-intercept features. */
  mean: Float64Array;
  /** The offset subtracted from y: its weighted mean with an intercept, 0 without. */
  yShift: number;
  /** Σ s c cᵀ / W with c = x − μ (p×p, row-major, symmetric). */
  cov: Float64Array;
  /** Σ s ỹ² c cᵀ / W with ỹ = y − yShift (p×p, row-major, symmetric). */
  second: Float64Array;
  /** Σ s ỹ² / W. */
  yy: number;
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
  /**
   * The restarts of one fit, in order, each exactly as `fit` would run it from its start, with one copy of the
   * data for all of them (the CUDA backend uploads X, y and s once). `onIteration` sees every record of every
   * restart (each begins with its iteration 0). The first restart that fails ends the call with its error.
   */
  fitRestarts(req: RestartsRequest, hooks: FitHooks): Promise<FitResult[]>;
  fitRestartsSync(req: RestartsRequest, hooks: FitHooks): FitResult[];
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
  /**
   * The EM stage of init 'moments' (docs/ALGORITHMS.md §5.1): at most 25 EM iterations in which the linear
   * experts' slopes stay fixed, from `params` (general model, k ≥ 2 linear experts); returns the updated
   * parameters, run like a fit (`fit`'s M-step solver, ridge and threads).
   */
  gateOnlyEm(data: ProblemData, model: ModelSpec, fit: FitSpec, params: Float64Array): Float64Array;
  /**
   * θ_0 (flat full layout) from a hard assignment, one component index per row (symmetric models: 0 is
   * z = +1): one M-step from those responsibilities, the last step of the 'random' start and of init 'kmeans'
   * (docs/ALGORITHMS.md §5), run like a fit (`fit`'s M-step solver, ridge and threads).
   */
  startFromAssignment(data: ProblemData, model: ModelSpec, fit: FitSpec, assignment: Uint32Array): Float64Array;
  /**
   * The clusters of init 'kmeans' (docs/ALGORITHMS.md §5.2), one component index per row, from `seed`. The
   * native backends compute them on the CPU's threads (a few FLOPs per byte of X: no GPU pass), the same
   * clusters as the reference.
   */
  kmeansClusters(data: ProblemData, model: ModelSpec, seed: number): Uint32Array;
  /**
   * The data passes of init 'moments' (docs/ALGORITHMS.md §5.1): the features' weighted mean and covariance
   * and the second cross-moment's sums, O(n·p²). The native backends compute them on the CPU's threads (two
   * Gram passes: no GPU pass), equal to the reference's to rounding.
   */
  momentSums(data: ProblemData, model: ModelSpec): MomentSums;
}
