/**
 * The EM M-step (docs/ALGORITHMS.md §3): given responsibilities h (from θ_t), update the experts (closed-form
 * weighted least squares for linear experts; softmax regression otherwise), then the gate. Parameters are
 * updated in place in the flat full layout.
 */
import type { FitSpec, ModelSpec, ProblemData } from '../backends/backend.js';
import { solveSpdWithRecovery } from '../linalg/cholesky.js';
import { weightedGrams } from '../linalg/gram.js';
import { fullLayout } from '../models/layout.js';
import type { RecoveryEvent } from '../types.js';
import { KroneckerStatistics } from './kronecker.js';
import { SoftmaxRegression, resolveSolver, type SoftmaxProblem, type SoftmaxSolverOptions } from './softmax-regression.js';

/** σ² floor relative to the weighted variance of y (§3). */
const VARIANCE_FLOOR_RELATIVE = 1e-10;

export interface MStepContext {
  data: ProblemData;
  model: ModelSpec;
  fit: FitSpec;
  /** Σ s over the data the step sizes are normalised by. */
  weight: number;
  events: RecoveryEvent[];
  /** Shared by the M-steps of one fit (absent: each M-step computes its own). */
  cache?: MStepCache;
}

/** What the M-steps of one fit share: the Kronecker statistics, built at the fit's first Newton-CG softmax solve. */
export interface MStepCache {
  kroneckerStatistics?: KroneckerStatistics;
}

function solverOptions(ctx: MStepContext, p: number, stepSize: number): SoftmaxSolverOptions {
  const m = ctx.fit.mstep;
  return {
    solver: resolveSolver(m.solver, p),
    maxIter: m.maxIter,
    tol: m.tol,
    cgMaxIter: m.cgMaxIter,
    innerSteps: m.innerSteps,
    stepScale: stepSize / ctx.weight,
  };
}

/** The σ² floor of §3: 1e-10 · var_s(y). */
export function varianceFloor(data: ProblemData): number {
  return VARIANCE_FLOOR_RELATIVE * weightedVariance(data);
}

/** Weighted variance of y (weights s), the scale of the σ² floor. */
export function weightedVariance(data: ProblemData): number {
  const { y, s, n } = data;
  let sw = 0; let mean = 0;
  for (let i = 0; i < n; i++) { const w = s === null ? 1 : s[i]!; sw += w; mean += w * y[i]!; }
  mean /= sw;
  let v = 0;
  for (let i = 0; i < n; i++) { const w = s === null ? 1 : s[i]!; v += w * (y[i]! - mean) ** 2; }
  return v / sw;
}

/**
 * Weighted ridge least squares for one linear expert: β = (Xᵀ D X + λI')⁻¹ Xᵀ D y with D = diag(w), written to
 * params[betaOff..]; returns Σ w (y − βᵀx)² + λ‖β‖²_{I'} and Σ w for the σ² update. `gram` is Xᵀ D X when
 * the caller has it already (it is consumed).
 */
export function weightedLeastSquares(data: ProblemData, w: Float64Array, targets: Float64Array, ridge: number,
  intercept: boolean, params: Float64Array, betaOff: number, block: string, events: RecoveryEvent[],
  gram: Float64Array | null = null): { rss: number; weight: number } {
  const { x, n, d } = data;
  const A = gram ?? weightedGrams(x, n, d, w, 1, new Float64Array(d * d));
  const b = new Float64Array(d);
  let sw = 0;
  for (let i = 0; i < n; i++) {
    const wi = w[i]!;
    if (wi === 0) continue;
    sw += wi;
    const xo = i * d;
    const wy = wi * targets[i]!;
    for (let f = 0; f < d; f++) b[f] += wy * x[xo + f]!;
  }
  for (let f = intercept ? 1 : 0; f < d; f++) A[f * d + f] += ridge;
  solveSpdWithRecovery(A, d, b, block, events);
  params.set(b, betaOff);
  let rss = 0;
  for (let i = 0; i < n; i++) {
    const wi = w[i]!;
    if (wi === 0) continue;
    let mu = 0;
    const xo = i * d;
    for (let f = 0; f < d; f++) mu += b[f]! * x[xo + f]!;
    rss += wi * (targets[i]! - mu) ** 2;
  }
  let pen = 0;
  for (let f = intercept ? 1 : 0; f < d; f++) pen += b[f]! ** 2;
  return { rss: rss + ridge * pen, weight: sw };
}

function expertWeights(data: ProblemData, h: Float64Array, k: number, j: number, out: Float64Array): Float64Array {
  const { s, n } = data;
  for (let i = 0; i < n; i++) out[i] = (s === null ? 1 : s[i]!) * h[i * k + j]!;
  return out;
}

function rowWeights(data: ProblemData): Float64Array {
  return data.s === null ? new Float64Array(data.n).fill(1) : data.s;
}

/** Updates the experts of the general model from h. */
function expertsMStep(ctx: MStepContext, params: Float64Array, h: Float64Array): void {
  const { data, model, events } = ctx;
  const { k, d } = model;
  const fl = fullLayout(model);
  const w = new Float64Array(data.n);
  if (model.experts === 'linear') {
    const floor = varianceFloor(data);
    // All k Gram matrices XᵀD_jX in one pass over the data (weights s_i h_ij, n×k).
    const allWeights = new Float64Array(data.n * k);
    for (let i = 0; i < data.n; i++) {
      const si = data.s === null ? 1 : data.s[i]!;
      for (let j = 0; j < k; j++) allWeights[i * k + j] = si * h[i * k + j]!;
    }
    const grams = weightedGrams(data.x, data.n, d, allWeights, k, new Float64Array(k * d * d));
    for (let j = 0; j < k; j++) {
      expertWeights(data, h, k, j, w);
      const { rss, weight } = weightedLeastSquares(data, w, data.y, model.ridge, model.intercept, params,
        fl.coef + j * d, `expert ${j}`, events, grams.slice(j * d * d, (j + 1) * d * d));
      if (model.noise !== 'fitted') continue;
      let s2 = rss / weight;
      if (!(s2 >= floor)) {
        s2 = floor;
        events.push({ type: 'variance-floor', expert: j, floor });
      }
      params[fl.sigma2 + j] = s2;
    }
    return;
  }
  // Logistic experts: 2-class softmax with classes (y=1, y=0); multinomial: classes 0..C−1.
  const C = model.nClasses;
  const labels = new Int32Array(data.n);
  for (let i = 0; i < data.n; i++) labels[i] = model.experts === 'logistic' ? (data.y[i] === 1 ? 0 : 1) : data.y[i]!;
  const freePerExpert = (C - 1) * d;
  const opts = solverOptions(ctx, freePerExpert, ctx.fit.stepSize.experts);
  const stats = opts.solver === 'newton-cg' ? kroneckerStatistics(ctx) : undefined;
  for (let j = 0; j < k; j++) {
    const c = expertWeights(data, h, k, j, new Float64Array(data.n));
    const problem: SoftmaxProblem = {
      x: data.x, n: data.n, d, rowScale: null, c, C,
      soft: null, labels, ridge: model.ridge, intercept: model.intercept, block: `expert ${j}`,
      kronecker: stats && { stats, sampleC: stats.sampleWeights(c) },
    };
    const V = params.subarray(fl.coef + j * fl.coefPerExpert, fl.coef + j * fl.coefPerExpert + freePerExpert);
    new SoftmaxRegression(problem).solve(V, opts, events);
  }
}

/** Updates the gate of the general model: softmax regression with c = s, t = h. */
export function gateMStep(ctx: MStepContext, params: Float64Array, h: Float64Array): void {
  const { data, model, events } = ctx;
  const { k, d } = model;
  if (k < 2) return;
  const c = rowWeights(data);
  const opts = solverOptions(ctx, (k - 1) * d, ctx.fit.stepSize.gate);
  const stats = opts.solver === 'newton-cg' ? kroneckerStatistics(ctx) : undefined;
  const problem: SoftmaxProblem = {
    x: data.x, n: data.n, d, rowScale: null, c, C: k, soft: h, labels: null,
    ridge: model.ridge, intercept: model.intercept, block: 'gate',
    kronecker: stats && { stats, sampleC: stats.sampleWeights(c) },
  };
  const V = params.subarray(0, (k - 1) * d);
  new SoftmaxRegression(problem).solve(V, opts, events);
}

/** The Kronecker statistics: the fit's (`ctx.cache`), built on first use. */
function kroneckerStatistics(ctx: MStepContext): KroneckerStatistics {
  const { data, model } = ctx;
  const stats = ctx.cache?.kroneckerStatistics ?? new KroneckerStatistics(data.x, data.n, model.d, rowWeights(data), model.intercept);
  if (ctx.cache) ctx.cache.kroneckerStatistics = stats;
  return stats;
}

/** Symmetric models: β (closed form for SymMoLinE, softmax regression on y·x for SymMoLogE), then w. */
function symmetricMStep(ctx: MStepContext, params: Float64Array, h: Float64Array): void {
  const { data, model, events } = ctx;
  const d = model.d;
  const s = rowWeights(data);
  if (model.experts === 'linear') {
    // β = (Xᵀ S X + λI')⁻¹ Xᵀ S (m ⊙ y), m = h+ − h−.
    const my = new Float64Array(data.n);
    for (let i = 0; i < data.n; i++) my[i] = (h[2 * i]! - h[2 * i + 1]!) * data.y[i]!;
    weightedLeastSquares(data, s, my, model.ridge, model.intercept, params, d, 'expert', events);
  } else {
    const problem: SoftmaxProblem = {
      x: data.x, n: data.n, d, rowScale: data.y, c: s, C: 2, soft: h, labels: null,
      ridge: model.ridge, intercept: model.intercept, block: 'expert',
    };
    new SoftmaxRegression(problem).solve(params.subarray(d, 2 * d), solverOptions(ctx, d, ctx.fit.stepSize.experts), events);
  }
  const gate: SoftmaxProblem = {
    x: data.x, n: data.n, d, rowScale: null, c: s, C: 2, soft: h, labels: null,
    ridge: model.ridge, intercept: model.intercept, block: 'gate',
  };
  new SoftmaxRegression(gate).solve(params.subarray(0, d), solverOptions(ctx, d, ctx.fit.stepSize.gate), events);
}

/** One M-step from responsibilities h (n×k; symmetric n×2), in the fixed order experts → gate. */
export function mStep(ctx: MStepContext, params: Float64Array, h: Float64Array): void {
  if (ctx.model.symmetric) {
    symmetricMStep(ctx, params, h);
    return;
  }
  expertsMStep(ctx, params, h);
  gateMStep(ctx, params, h);
}
