/**
 * Public types: hyper-parameters, fitted parameters, fit history, diagnostics. The algorithms behind them
 * are specified in docs/ALGORITHMS.md (every default named here is defined there).
 */

export type ExpertKind = 'linear' | 'logistic' | 'multinomial';
export type AlgorithmKind = 'em' | 'gradient-em' | 'gd';
export type MStepSolver = 'auto' | 'newton' | 'newton-cg' | 'gradient';
export type BackendKind = 'js' | 'cpu' | 'cuda' | 'auto';
/** The named initialisations (docs/ALGORITHMS.md §5). */
export type InitKind = 'random' | 'moments' | 'kmeans';

/** Design matrix: rows as arrays, or a row-major Float64Array with its shape. */
/** A row of X: plain numbers or a float typed array (float32 values are widened to float64 exactly). */
export type Row = number[] | Float64Array | Float32Array;
/** X: an array of rows, or its values row-major (a Float32Array is copied into float64). */
export type Matrix = Row[] | { data: Float64Array | Float32Array; rows: number; cols: number };
export type Vector = number[] | Float64Array | Float32Array;

export interface StepSizes {
  gate: number;
  experts: number;
}

export interface MStepOptions {
  solver?: MStepSolver;     // default 'auto'
  maxIter?: number;         // Newton / Newton-CG outer iterations, default 25
  tol?: number;             // Newton decrement tolerance (relative to Σc), default 1e-10
  cgMaxIter?: number;       // default 50
  innerSteps?: number;      // 'gradient' solver and mini-batch EM, default 10
}

/** Hyper-parameters: everything that defines the model and the algorithm, fixed before fit. */
export interface MoEOptions {
  experts: ExpertKind;
  /** Number of experts (default 2). */
  k?: number;
  /** Multinomial experts: number of classes (default: max label + 1). */
  nClasses?: number;
  /** The paper's symmetric two-expert SymMoLinE / SymMoLogE (requires k = 2, linear or logistic experts). */
  symmetric?: boolean;
  /** Prepend a column of ones (default false: never added silently). */
  intercept?: boolean;
  /** Linear experts: 'fitted' (σ_j² per expert, default) or a known noise standard deviation σ. Symmetric linear default 1. */
  noise?: 'fitted' | number;
  /** L2 penalty λ (default 0); see ALGORITHMS.md §2 for its exact form. */
  ridge?: number;
  algorithm?: AlgorithmKind;      // default 'em'
  mstep?: MStepOptions;
  /** GD / Gradient EM / gradient M-step step sizes (default 0.1 each). */
  stepSize?: number | Partial<StepSizes>;
  /** Gradient EM: gradient steps per block per iteration (default 1). */
  innerSteps?: number;
  /** Mini-batch size (default: full batch). */
  batchSize?: number;
  maxIter?: number;               // default 200
  tol?: number;                   // relative objective change, default 1e-8
  nInit?: number;                 // restarts, default 1
  seed?: number;                  // default 0
  /**
   * 'random' (default: random hard assignment + one M-step); 'moments' (linear experts, not symmetric, k ≥ 2:
   * expert vectors from cross-moments, then EM on the gate; docs/ALGORITHMS.md §5.1); 'kmeans' (same models:
   * k-means clusters of [x, y] + one M-step; §5.2); or explicit parameters.
   */
  init?: InitKind | MoEParams;
  /** What to do when a component's responsibilities vanish (default 'reseed'). */
  onEmpty?: 'reseed' | 'error';
  backend?: BackendKind;          // default 'auto'
  /** CPU backend threads (default: all cores). */
  threads?: number;
}

/** Fitted parameters in readable form (what toJSON stores). */
export interface MoEParams {
  experts: ExpertKind;
  symmetric: boolean;
  k: number;
  /** Feature count including the intercept column when `intercept` is on. */
  d: number;
  intercept: boolean;
  nClasses?: number;
  /** k×d gate weights, last row 0 (symmetric: omitted). */
  gate?: number[][];
  /** Expert coefficients: k×d (linear, logistic) or k×C×d (multinomial; class C−1 row 0). */
  coef?: number[][] | number[][][];
  /** Linear experts: σ_j² per expert. */
  sigma2?: number[];
  /** Symmetric models: gate vector w and expert vector β (d each); σ for SymMoLinE. */
  w?: number[];
  beta?: number[];
  sigma?: number;
}

export type RecoveryEvent =
  | { type: 'ridge-fallback'; block: string; ridge: number }
  | { type: 'variance-floor'; expert: number; floor: number }
  | { type: 'reseed'; expert: number; from: number };

export interface IterationRecord {
  iter: number;
  /** Mean negative log-likelihood −ℓ/Σs. */
  nll: number;
  /** Mean penalised objective −F/Σs (equals nll when ridge = 0). */
  objective: number;
  elapsedMs: number;
  /** Permutation/sign-aware distance to the true parameters, when `trueParams` was given. */
  paramError?: number;
  events?: RecoveryEvent[];
}

export interface FitHistory {
  iterations: IterationRecord[];
  converged: boolean;
  reason: 'tol' | 'max-iter';
  nIter: number;
  /** The backend that ran the fit ('auto' resolved; 'cpu' where 'auto' met a GPU out of memory). */
  backend: 'js' | 'cpu' | 'cuda';
  /** Final objective of every restart, and which one was kept. */
  restarts: { seed: number; objective: number; nIter: number }[];
  bestRestart: number;
  /** The resolved hyper-parameters that produced this history (every default filled in). */
  settings: Record<string, unknown>;
}

export interface FitOptions {
  sampleWeight?: Vector;
  /** True parameters: each history record then carries `paramError`. */
  trueParams?: MoEParams;
  onIteration?: (record: IterationRecord) => void;
  signal?: AbortSignal;
}

/** Settings of the process that loads a saved model, replacing the saved ones (`MixtureOfExperts.fromJSON`). */
export interface LoadOptions {
  /**
   * The backend for this process: e.g. 'cpu' or 'auto' for a model fitted with `backend: 'cuda'` and loaded
   * where no GPU is (its `score`, `posterior` and `information` would otherwise throw E_BACKEND_UNAVAILABLE).
   */
  backend?: BackendKind;
  /** CPU backend threads (0 = all cores). */
  threads?: number;
}

export interface InformationOptions {
  /** 'dense' forms I_c and I_m; 'lanczos' is matrix-free; 'auto' (default) picks dense when p ≤ 2000. */
  method?: 'auto' | 'dense' | 'lanczos';
  /** Lanczos steps (default 60). */
  steps?: number;
  sampleWeight?: Vector;
}

export interface InformationResult {
  /** Free parameter count. */
  p: number;
  /** Names of the free parameters in order (e.g. 'gate[0][3]', 'beta[1][2]', 'sigma2[0]'). */
  names: string[];
  /** p×p row-major, present for the dense method. */
  complete?: Float64Array;
  missing?: Float64Array;
  observed?: Float64Array;
  /** MIM eigenvalues, descending (the leading ones for 'lanczos'). */
  eigenvalues: number[];
  lambdaMax: number;
  /** Predicted linear rate of EM near the optimum (= lambdaMax). */
  rate: number;
  /** Relative strong convexity 1 − lambdaMax. */
  alpha: number;
  /** sqrt(diag(I_o⁻¹)) (dense only; null when I_o is not positive definite). */
  standardErrors: number[] | null;
  method: 'dense' | 'lanczos';
}
