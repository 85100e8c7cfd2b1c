/**
 * Seeded samplers for every model family with known true parameters, plus the paper's synthetic SymMoLinE
 * setup (MATH.md §6). Everything is drawn from one `Rng` stream in a fixed order, so a (seed, options) pair
 * always gives the same problem:
 *   1. the true parameters (gate first, then experts, then variances), each vector entry-by-entry;
 *   2. then row by row: the d features x ~ N(0, I), the latent expert z (one uniform), the target y.
 * Rows never get an intercept column (the estimator adds one only when asked); `params.intercept` is false.
 */
import { MoEError } from '../errors.js';
import type { MoEParams } from '../types.js';
import { Rng } from './rng.js';

/** A sampled problem: the design (row-major), the targets and the parameters that generated them. */
export interface SampledProblem {
  X: { data: Float64Array; rows: number; cols: number };
  y: Float64Array;
  params: MoEParams;
}

interface CommonOptions {
  n: number;
  d: number;
  seed?: number;
  /** Standard deviation of the true gate entries (default 1). */
  gateScale?: number;
  /** Standard deviation of the true expert coefficients (default 1). */
  coefScale?: number;
}

export interface LinearSamplerOptions extends CommonOptions {
  k?: number;
  /** Per-expert noise variances σ_j² (one number for all; default 0.25). */
  sigma2?: number | number[];
  /** Explicit true gate (k×d, last row 0) and expert coefficients (k×d); each is drawn when absent. */
  gate?: number[][];
  coef?: number[][];
}

export interface LogisticSamplerOptions extends CommonOptions {
  k?: number;
}

export interface MultinomialSamplerOptions extends CommonOptions {
  k?: number;
  nClasses: number;
}

export interface SymmetricSamplerOptions {
  n: number;
  d: number;
  seed?: number;
  /** True gate vector w (default: random direction scaled to `norm`). */
  w?: number[];
  /** True expert vector β (default: random direction scaled to `norm`). */
  beta?: number[];
  /** ‖w*‖ = ‖β*‖ when they are drawn (default 4, the paper's value). */
  norm?: number;
  /** SymMoLinE noise standard deviation σ (default 1). */
  sigma?: number;
}

function checkSize(n: number, d: number, k: number): void {
  if (!Number.isInteger(n) || n < 1) throw new MoEError('E_OPTION', `n must be a positive integer, got ${n}`);
  if (!Number.isInteger(d) || d < 1) throw new MoEError('E_OPTION', `d must be a positive integer, got ${d}`);
  if (!Number.isInteger(k) || k < 1) throw new MoEError('E_OPTION', `k must be a positive integer, got ${k}`);
}

function normalMatrix(rng: Rng, rows: number, cols: number, scale: number): number[][] {
  const m: number[][] = [];
  for (let r = 0; r < rows; r++) {
    const row: number[] = [];
    for (let c = 0; c < cols; c++) row.push(scale * rng.normal());
    m.push(row);
  }
  return m;
}

/** A uniformly random direction in R^d scaled to the given norm. */
export function randomDirection(rng: Rng, d: number, norm: number): number[] {
  for (;;) {
    const v: number[] = [];
    for (let f = 0; f < d; f++) v.push(rng.normal());
    const len = Math.hypot(...v);
    if (len > 1e-12) return v.map((a) => (a * norm) / len);
  }
}

function dot(a: number[], x: Float64Array, offset: number): number {
  let s = 0;
  for (let f = 0; f < a.length; f++) s += a[f]! * x[offset + f]!;
  return s;
}

/** Index drawn from unnormalised log-weights (one uniform). */
function drawCategorical(rng: Rng, logits: number[]): number {
  const max = Math.max(...logits);
  const w = logits.map((a) => Math.exp(a - max));
  const total = w.reduce((a, b) => a + b, 0);
  let u = rng.uniform() * total;
  for (let j = 0; j < w.length - 1; j++) {
    u -= w[j]!;
    if (u < 0) return j;
  }
  return w.length - 1;
}

function sigmoid(t: number): number {
  return t >= 0 ? 1 / (1 + Math.exp(-t)) : Math.exp(t) / (1 + Math.exp(t));
}

type Emit = (z: number, x: Float64Array, offset: number) => number;

/** Per row: x ~ N(0, I), then the latent z = `drawZ(x)` and y = `emit(z, x)`, in that order from `rng`. */
function sampleRows(
  rng: Rng, n: number, d: number, drawZ: (x: Float64Array, offset: number) => number, emit: Emit,
): { X: SampledProblem['X']; y: Float64Array } {
  const data = new Float64Array(n * d);
  const y = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const off = i * d;
    for (let f = 0; f < d; f++) data[off + f] = rng.normal();
    y[i] = emit(drawZ(data, off), data, off);
  }
  return { X: { data, rows: n, cols: d }, y };
}

/** The general model's rows: z from the softmax gate (last row fixed 0); `emit` draws y. */
function sampleGeneral(rng: Rng, n: number, d: number, gate: number[][], emit: Emit): ReturnType<typeof sampleRows> {
  return sampleRows(rng, n, d, (x, off) => drawCategorical(rng, gate.map((row) => dot(row, x, off))), emit);
}

/** A copy of an explicit k×d parameter matrix (E_SHAPE when its shape is wrong). */
function checkedMatrix(m: number[][], k: number, d: number, name: string): number[][] {
  if (m.length !== k || m.some((row) => row.length !== d)) throw new MoEError('E_SHAPE', `${name} must be ${k}×${d}`);
  return m.map((row) => row.slice());
}

function trueGate(rng: Rng, k: number, d: number, scale: number): number[][] {
  const gate = normalMatrix(rng, k - 1, d, scale);
  gate.push(new Array<number>(d).fill(0));
  return gate;
}

/** Mixture of linear experts with per-expert noise variances (the 'fitted' noise model). */
export function sampleLinear(opts: LinearSamplerOptions): SampledProblem {
  const { n, d, k = 2, seed = 0, gateScale = 1, coefScale = 1 } = opts;
  checkSize(n, d, k);
  const sigma2 = Array.isArray(opts.sigma2) ? opts.sigma2.slice() : new Array<number>(k).fill(opts.sigma2 ?? 0.25);
  if (sigma2.length !== k || sigma2.some((v) => !(v > 0))) {
    throw new MoEError('E_OPTION', `sigma2 must be ${k} positive variances`);
  }
  const rng = new Rng(seed);
  const gate = opts.gate ? checkedMatrix(opts.gate, k, d, 'gate') : trueGate(rng, k, d, gateScale);
  const coef = opts.coef ? checkedMatrix(opts.coef, k, d, 'coef') : normalMatrix(rng, k, d, coefScale);
  return linearRows(rng, n, gate, coef, sigma2);
}

/** Rows of a mixture of linear experts with the given true parameters (the data half of `sampleLinear`). */
function linearRows(rng: Rng, n: number, gate: number[][], coef: number[][], sigma2: number[]): SampledProblem {
  const k = gate.length;
  const d = gate[0]!.length;
  const { X, y } = sampleGeneral(rng, n, d, gate,
    (z, x, off) => dot(coef[z]!, x, off) + Math.sqrt(sigma2[z]!) * rng.normal());
  return { X, y, params: { experts: 'linear', symmetric: false, k, d, intercept: false, gate, coef, sigma2 } };
}

export interface OrthogonalLinearSamplerOptions {
  n: number;
  d: number;
  k?: number;
  seed?: number;
  /** ‖β_j‖ of every expert (default 2). */
  coefNorm?: number;
  /** ‖w_j‖ of every free gate row (default 2). */
  gateNorm?: number;
  /** Noise variance, the same for all experts (default 0.25). */
  sigma2?: number;
}

/**
 * Makkuva et al.'s setting, where the cross-moments of init 'moments' are exact: 2k − 1 random orthonormal
 * directions (Gram–Schmidt on Gaussian vectors), the first k the experts (norm coefNorm), the next k − 1 the
 * free gate rows (norm gateNorm), so the gate is orthogonal to every expert and ‖β_j‖² + σ² is the same for
 * all j. Needs d ≥ 2k − 1. Then the rows, as `sampleLinear`.
 */
export function sampleLinearOrthogonal(opts: OrthogonalLinearSamplerOptions): SampledProblem {
  const { n, d, k = 2, seed = 0, coefNorm = 2, gateNorm = 2, sigma2 = 0.25 } = opts;
  checkSize(n, d, k);
  if (d < 2 * k - 1) throw new MoEError('E_OPTION', `orthogonal experts and gate need d ≥ 2k − 1 = ${2 * k - 1}, got ${d}`);
  if (!(sigma2 > 0)) throw new MoEError('E_OPTION', `sigma2 must be positive, got ${sigma2}`);
  const rng = new Rng(seed);
  const basis: number[][] = [];
  while (basis.length < 2 * k - 1) {
    const v = randomDirection(rng, d, 1);
    for (const b of basis) {
      const proj = b.reduce((acc, bf, f) => acc + bf * v[f]!, 0);
      for (let f = 0; f < d; f++) v[f] = v[f]! - proj * b[f]!;
    }
    const len = Math.hypot(...v);
    if (len > 1e-8) basis.push(v.map((a) => a / len));
  }
  const coef = basis.slice(0, k).map((b) => b.map((a) => a * coefNorm));
  const gate = basis.slice(k).map((b) => b.map((a) => a * gateNorm));
  gate.push(new Array<number>(d).fill(0));
  return linearRows(rng, n, gate, coef, new Array<number>(k).fill(sigma2));
}

/** Mixture of binary logistic experts, y ∈ {0, 1}. */
export function sampleLogistic(opts: LogisticSamplerOptions): SampledProblem {
  const { n, d, k = 2, seed = 0, gateScale = 1, coefScale = 1 } = opts;
  checkSize(n, d, k);
  const rng = new Rng(seed);
  const gate = trueGate(rng, k, d, gateScale);
  const coef = normalMatrix(rng, k, d, coefScale);
  const { X, y } = sampleGeneral(rng, n, d, gate,
    (z, x, off) => (rng.uniform() < sigmoid(dot(coef[z]!, x, off)) ? 1 : 0));
  return { X, y, params: { experts: 'logistic', symmetric: false, k, d, intercept: false, gate, coef } };
}

/** Mixture of multinomial logistic experts, y ∈ {0..C−1}; each expert's class C−1 row is fixed 0. */
export function sampleMultinomial(opts: MultinomialSamplerOptions): SampledProblem {
  const { n, d, k = 2, seed = 0, gateScale = 1, coefScale = 1, nClasses } = opts;
  checkSize(n, d, k);
  if (!Number.isInteger(nClasses) || nClasses < 2) {
    throw new MoEError('E_OPTION', `nClasses must be an integer ≥ 2, got ${nClasses}`);
  }
  const rng = new Rng(seed);
  const gate = trueGate(rng, k, d, gateScale);
  const coef: number[][][] = [];
  for (let j = 0; j < k; j++) {
    const b = normalMatrix(rng, nClasses - 1, d, coefScale);
    b.push(new Array<number>(d).fill(0));
    coef.push(b);
  }
  const { X, y } = sampleGeneral(rng, n, d, gate,
    (z, x, off) => drawCategorical(rng, coef[z]!.map((row) => dot(row, x, off))));
  return { X, y, params: { experts: 'multinomial', symmetric: false, k, d, intercept: false, nClasses, gate, coef } };
}

function symmetricTruth(rng: Rng, opts: SymmetricSamplerOptions): { w: number[]; beta: number[] } {
  const { d, norm = 4 } = opts;
  const w = opts.w ? opts.w.slice() : randomDirection(rng, d, norm);
  const beta = opts.beta ? opts.beta.slice() : randomDirection(rng, d, norm);
  if (w.length !== d || beta.length !== d) throw new MoEError('E_SHAPE', `w and beta must have length d = ${d}`);
  return { w, beta };
}

/** The symmetric models' rows: z = +1 with probability sigmoid(wᵀx) else −1; `emit` draws y. */
function sampleSymmetric(rng: Rng, n: number, d: number, w: number[], emit: Emit): ReturnType<typeof sampleRows> {
  return sampleRows(rng, n, d, (x, off) => (rng.uniform() < sigmoid(dot(w, x, off)) ? 1 : -1), emit);
}

/** The paper's SymMoLinE: y = z·βᵀx + σε. */
export function sampleSymMoLinE(opts: SymmetricSamplerOptions): SampledProblem {
  const { n, d, seed = 0, sigma = 1 } = opts;
  checkSize(n, d, 2);
  if (!(sigma > 0)) throw new MoEError('E_OPTION', `sigma must be positive, got ${sigma}`);
  const rng = new Rng(seed);
  const { w, beta } = symmetricTruth(rng, opts);
  const { X, y } = sampleSymmetric(rng, n, d, w, (z, x, off) => z * dot(beta, x, off) + sigma * rng.normal());
  return { X, y, params: { experts: 'linear', symmetric: true, k: 2, d, intercept: false, w, beta, sigma } };
}

/** The paper's SymMoLogE: y ∈ {−1, +1} with p(y | x, z) = sigmoid(z·y·βᵀx). */
export function sampleSymMoLogE(opts: SymmetricSamplerOptions): SampledProblem {
  const { n, d, seed = 0 } = opts;
  checkSize(n, d, 2);
  const rng = new Rng(seed);
  const { w, beta } = symmetricTruth(rng, opts);
  const { X, y } = sampleSymmetric(rng, n, d, w,
    (z, x, off) => (rng.uniform() < sigmoid(z * dot(beta, x, off)) ? 1 : -1));
  return { X, y, params: { experts: 'logistic', symmetric: true, k: 2, d, intercept: false, w, beta } };
}

export interface PaperSyntheticOptions {
  /** Instance seed: re-samples θ*, the data and the initial point (default 0). */
  seed?: number;
  n?: number;        // default 1000
  d?: number;        // default 10
  norm?: number;     // ‖w*‖ = ‖β*‖, default 4
  sigma?: number;    // default 1
  /**
   * Radius of the initial point's neighbourhood, relative to ‖θ*‖ (our choice, default 0.5): θ₀ = θ* + δ with δ
   * uniformly random in direction and ‖δ‖ = initRadius·‖θ*‖ exactly, θ = (w, β) stacked.
   */
  initRadius?: number;
}

export interface PaperSyntheticProblem extends SampledProblem {
  /** The shared starting point of EM, Gradient EM and GD. */
  init: MoEParams;
}

/**
 * The synthetic experiment of MATH.md §6: n = 1000, d = 10, ‖β*‖ = ‖w*‖ = 4, σ = 1, x ~ N(0, I), θ* a random
 * direction per instance, and a random start at distance initRadius·‖θ*‖ (= 0.5·√32 ≈ 2.83 by default) from θ*.
 * The start is drawn after the data from the same stream.
 */
export function paperSyntheticSymMoLinE(opts: PaperSyntheticOptions = {}): PaperSyntheticProblem {
  const { seed = 0, n = 1000, d = 10, norm = 4, sigma = 1, initRadius = 0.5 } = opts;
  if (!(initRadius >= 0)) throw new MoEError('E_OPTION', `initRadius must be ≥ 0, got ${initRadius}`);
  checkSize(n, d, 2);
  const rng = new Rng(seed);
  const { w, beta } = symmetricTruth(rng, { n, d, norm });
  const { X, y } = sampleSymmetric(rng, n, d, w, (z, x, off) => z * dot(beta, x, off) + sigma * rng.normal());
  const thetaNorm = Math.hypot(...w, ...beta);
  const delta = randomDirection(rng, 2 * d, initRadius * thetaNorm);
  const init: MoEParams = {
    experts: 'linear', symmetric: true, k: 2, d, intercept: false, sigma,
    w: w.map((a, f) => a + delta[f]!), beta: beta.map((a, f) => a + delta[d + f]!),
  };
  return { X, y, init, params: { experts: 'linear', symmetric: true, k: 2, d, intercept: false, w, beta, sigma } };
}
