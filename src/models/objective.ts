/**
 * Data-level quantities built on the per-row model: E-step, log-likelihood, the ridge penalty and the
 * penalised objective F(θ) = ℓ(θ) − penalty(θ) of docs/ALGORITHMS.md §2, and the EM auxiliary function
 * Q(θ | h) = Σ_i s_i Σ_j h_ij [log π_ij + log p_ij] − penalty(θ).
 */
import type { ModelSpec, ProblemData } from '../backends/backend.js';
import { fullLayout } from './layout.js';
import { RowModel } from './row-model.js';

/** Number of mixture components in the responsibility matrix (symmetric: 2). */
export function componentCount(model: ModelSpec): number {
  return model.symmetric ? 2 : model.k;
}

/** Σ s_i (n when unweighted). */
export function totalWeight(data: ProblemData): number {
  if (data.s === null) return data.n;
  let acc = 0;
  for (let i = 0; i < data.n; i++) acc += data.s[i]!;
  return acc;
}

/**
 * E-step: writes h (n×k row-major) when `h` is given, per-row ℓ_i when `rowLogLik` is given, and returns the
 * weighted log-likelihood ℓ(θ) = Σ s_i ℓ_i.
 */
export function eStep(data: ProblemData, model: ModelSpec, params: Float64Array, h: Float64Array | null,
  rowLogLik?: Float64Array): number {
  const rm = new RowModel(model, params);
  const k = rm.k;
  const { x, y, s, n, d } = data;
  let ll = 0;
  for (let i = 0; i < n; i++) {
    const si = s === null ? 1 : s[i]!;
    const ell = rm.evaluate(x, i * d, y[i]!);
    if (rowLogLik !== undefined) rowLogLik[i] = ell;
    if (h !== null) for (let j = 0; j < k; j++) h[i * k + j] = rm.h[j]!;
    if (si !== 0) ll += si * ell;
  }
  return ll;
}

/** Whether feature f is penalised (column 0 is not when the intercept is on). */
export function isPenalised(model: ModelSpec, f: number): boolean {
  return !(model.intercept && f === 0);
}

/** ‖v[off..off+d]‖² over the penalised features. */
function penalisedSquaredNorm(model: ModelSpec, v: Float64Array, off: number): number {
  let acc = 0;
  for (let f = model.intercept ? 1 : 0; f < model.d; f++) acc += v[off + f]! * v[off + f]!;
  return acc;
}

/** The ridge penalty (the amount subtracted from ℓ), ALGORITHMS.md §2. */
export function penalty(model: ModelSpec, params: Float64Array): number {
  const lambda = model.ridge;
  if (lambda === 0) return 0;
  const { k, d } = model;
  const fl = fullLayout(model);
  if (model.symmetric) {
    const scale = model.experts === 'linear' ? 1 / (model.noise as number) ** 2 : 1;
    return 0.5 * lambda * (penalisedSquaredNorm(model, params, 0) + scale * penalisedSquaredNorm(model, params, d));
  }
  let acc = 0;
  for (let j = 0; j < k - 1; j++) acc += 0.5 * lambda * penalisedSquaredNorm(model, params, j * d);
  for (let j = 0; j < k; j++) {
    if (model.experts === 'linear') {
      acc += lambda * penalisedSquaredNorm(model, params, fl.coef + j * d) / (2 * params[fl.sigma2 + j]!);
    } else if (model.experts === 'logistic') {
      acc += 0.5 * lambda * penalisedSquaredNorm(model, params, fl.coef + j * d);
    } else {
      for (let c = 0; c < model.nClasses; c++) {
        acc += 0.5 * lambda * penalisedSquaredNorm(model, params, fl.coef + (j * model.nClasses + c) * d);
      }
    }
  }
  return acc;
}

export interface ObjectiveValue {
  /** ℓ(θ) = Σ s_i ℓ_i. */
  logLik: number;
  /** Σ s_i. */
  weight: number;
  /** −ℓ/S. */
  nll: number;
  /** −F/S. */
  objective: number;
}

export function objectiveFromLogLik(model: ModelSpec, params: Float64Array, logLik: number, weight: number): ObjectiveValue {
  return {
    logLik,
    weight,
    nll: -logLik / weight,
    objective: -(logLik - penalty(model, params)) / weight,
  };
}

/** Mean nll and mean penalised objective at θ; optionally writes the responsibilities. */
export function evaluateObjective(data: ProblemData, model: ModelSpec, params: Float64Array,
  h: Float64Array | null = null): ObjectiveValue {
  return objectiveFromLogLik(model, params, eStep(data, model, params, h), totalWeight(data));
}

/** Q(θ | h) = Σ_i s_i Σ_j h_ij [log π_ij(θ) + log p_ij(θ)] − penalty(θ). */
export function qValue(data: ProblemData, model: ModelSpec, params: Float64Array, h: Float64Array): number {
  const rm = new RowModel(model, params);
  const k = rm.k;
  const { x, y, s, n, d } = data;
  let acc = 0;
  for (let i = 0; i < n; i++) {
    const si = s === null ? 1 : s[i]!;
    if (si === 0) continue;
    rm.evaluateX(x, i * d);
    rm.expertLogDensities(y[i]!);
    let row = 0;
    for (let j = 0; j < k; j++) {
      const hij = h[i * k + j]!;
      if (hij !== 0) row += hij * (rm.logPi[j]! + rm.logP[j]!);
    }
    acc += si * row;
  }
  return acc - penalty(model, params);
}
