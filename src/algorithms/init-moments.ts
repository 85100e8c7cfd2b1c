/**
 * init 'moments' (MATH.md §7, docs/ALGORITHMS.md §5.1): the expert vectors of a mixture of linear experts from
 * cross-moments between standardised x and transformed y (Makkuva et al., "Breaking the gridlock in
 * Mixture-of-Experts", ICML 2019), then EM on the gate (and the experts' offsets and variances) with the
 * expert slopes held fixed. The result is an explicit starting point θ_0 in the flat layout, which any backend
 * then fits like `init: params`.
 *
 * In whitened coordinates x̃ (x ~ N(0, I)), with ỹ = y (centred by its mean when the model has an intercept):
 *   M2 = E[ỹ² (x̃x̃ᵀ − I)]                         = Σ_j 2 p_j a_j a_jᵀ
 *   M3 = E[(ỹ³ − 3 E[ỹ²] ỹ) S_3(x̃)]               = Σ_j 6 p_j a_j⊗a_j⊗a_j
 * exactly when the gate depends on x only through directions orthogonal to every a_j and ‖a_j‖² + σ_j² is
 * the same for all experts (the paper's setting); otherwise the moments are biased and the EM that follows
 * corrects the start. M3 is only ever formed projected on the k-dimensional whitened subspace of M2.
 */
import type { ComputeBackend, FitSpec, ModelSpec, MomentSums, ProblemData } from '../backends/backend.js';
import { Rng } from '../data/rng.js';
import { MoEError } from '../errors.js';
import { backSolveTransposeInPlace, choleskyInPlace } from '../linalg/cholesky.js';
import { symmetricEigen, whiten } from '../linalg/eigen.js';
import { fullLayout } from '../models/layout.js';
import { eStep, objectiveFromLogLik, totalWeight } from '../models/objective.js';
import type { RecoveryEvent } from '../types.js';
import { gateMStep, varianceFloor } from './mstep.js';
import { tensorPowerDecomposition } from './tensor-power.js';

/** The fixed constants of ALGORITHMS.md §5.1. */
export const MOMENTS_INIT = {
  powerRestarts: 10,
  powerIterations: 30,
  /** Gate-only EM: at most this many iterations, stopping early on the fit's own relative tolerance rule. */
  gateIterations: 25,
  gateTol: 1e-8,
  /** Whitening eigenvalues of M2 below this fraction of the largest are raised to it (a degenerate direction). */
  eigenFloor: 1e-6,
};

/** Weighted mean and covariance of the non-intercept features, and its Cholesky factor. */
interface Standardisation {
  /** First non-intercept column (1 with an intercept, else 0) and the number of such columns. */
  f0: number;
  p: number;
  mean: Float64Array;
  /** Σ = L Lᵀ (p×p, lower, row-major). */
  chol: Float64Array;
  /** The offset subtracted from y (its mean with an intercept, 0 without). */
  yShift: number;
  weight: number;
}

function rowWeight(data: ProblemData, i: number): number {
  return data.s === null ? 1 : data.s[i]!;
}

/** Row i's centred non-intercept features c = x − μ into `out`. */
function centredRow(data: ProblemData, f0: number, mean: Float64Array, i: number, out: Float64Array): void {
  const off = i * data.d + f0;
  for (let f = 0; f < mean.length; f++) out[f] = data.x[off + f]! - mean[f]!;
}

/** The lower triangle of Σ_i w(i) c_i c_iᵀ / weight, mirrored (p×p). */
function centredGram(data: ProblemData, f0: number, mean: Float64Array, w: (i: number) => number, weight: number): Float64Array {
  const p = mean.length;
  const g = new Float64Array(p * p);
  const c = new Float64Array(p);
  for (let i = 0; i < data.n; i++) {
    const wi = w(i);
    if (wi === 0) continue;
    centredRow(data, f0, mean, i, c);
    for (let a = 0; a < p; a++) for (let b = 0; b <= a; b++) g[a * p + b] += wi * c[a]! * c[b]!;
  }
  for (let a = 0; a < p; a++) {
    for (let b = 0; b <= a; b++) {
      g[a * p + b] = g[a * p + b]! / weight;
      g[b * p + a] = g[a * p + b]!;
    }
  }
  return g;
}

/** The data passes of the start (O(n·p²)): the TypeScript reference of `ComputeBackend.momentSums`. */
export function momentSums(data: ProblemData, model: ModelSpec): MomentSums {
  const { x, n, d, y } = data;
  const f0 = model.intercept ? 1 : 0;
  const p = d - f0;
  const weight = totalWeight(data);
  const mean = new Float64Array(p);
  let yMean = 0;
  let rows = 0;
  for (let i = 0; i < n; i++) {
    const s = rowWeight(data, i);
    if (s > 0) rows++;
    yMean += s * y[i]!;
    for (let f = 0; f < p; f++) mean[f] += s * x[i * d + f0 + f]!;
  }
  for (let f = 0; f < p; f++) mean[f] = mean[f]! / weight;
  const yShift = model.intercept ? yMean / weight : 0;
  const yWeight = (i: number): number => rowWeight(data, i) * (y[i]! - yShift) * (y[i]! - yShift);
  let yy = 0;
  for (let i = 0; i < n; i++) yy += yWeight(i);
  return {
    rows, weight, mean, yShift, yy: yy / weight,
    cov: centredGram(data, f0, mean, (i) => rowWeight(data, i), weight),
    second: centredGram(data, f0, mean, yWeight, weight),
  };
}

/** The standardisation x̃ = L⁻¹(x − μ): checks the rows, factors Σ = L Lᵀ. */
function standardise(sums: MomentSums, model: ModelSpec): Standardisation {
  const f0 = model.intercept ? 1 : 0;
  const p = model.d - f0;
  const { rows, weight, mean, yShift } = sums;
  // The covariance needs more rows than features; the tensors are useless long before that, but this is the
  // hard limit below which the whitening does not exist.
  if (rows <= p) {
    throw new MoEError('E_TOO_FEW_ROWS', `init 'moments' whitens the ${p} features by their covariance: it needs more `
      + `than ${p} rows with positive weight, got ${rows}`, { rows, required: p + 1 });
  }
  // The factor is written over the lower triangle; the upper one stays zero.
  const chol = new Float64Array(p * p);
  for (let a = 0; a < p; a++) for (let b = 0; b <= a; b++) chol[a * p + b] = sums.cov[a * p + b]!;
  if (!choleskyInPlace(chol, p)) {
    throw new MoEError('E_SINGULAR', "init 'moments': the feature covariance is singular (constant or collinear columns); "
      + 'drop them or use init \'random\'');
  }
  return { f0, p, mean, chol, yShift, weight };
}

/** M2 in whitened coordinates, L⁻¹ E[ỹ² c cᵀ] L⁻ᵀ − E[ỹ²] I, and m2 = E[ỹ²]. */
function secondMoment(sums: MomentSums, st: Standardisation): { m2: Float64Array; yy: number } {
  const { p } = st;
  const m2 = whiten(sums.second, st.chol, p);
  for (let r = 0; r < p; r++) m2[r * p + r] -= sums.yy;
  return { m2, yy: sums.yy };
}

/**
 * The top-k eigenpairs of M2 = U Λ Uᵀ give the whitening W = U_k Λ_k^{-1/2} (Wᵀ M2 W = I_k). Returns, as
 * p×k row-major matrices: `project` = L⁻ᵀ W, so that u = projectᵀ (x − μ) = Wᵀ x̃, and `unwhiten` = U_k Λ_k^{1/2},
 * which maps a whitened direction back to x̃ coordinates; `gram` = diag(WᵀW) = 1/λ.
 */
function whitening(m2: Float64Array, st: Standardisation, k: number): { project: Float64Array; unwhiten: Float64Array; gram: Float64Array } {
  const { p } = st;
  const eig = symmetricEigen(m2, p, { vectors: true });
  const top = eig.values[0]!;
  if (!(top > 0)) {
    throw new MoEError('E_SINGULAR', "init 'moments': the second cross-moment E[y²(xxᵀ − I)] has no positive eigenvalue, "
      + 'so the targets carry no second-order signal about the expert directions; use init \'random\'');
  }
  const project = new Float64Array(p * k);
  const unwhiten = new Float64Array(p * k);
  const gram = new Float64Array(k);
  const column = new Float64Array(p);
  for (let j = 0; j < k; j++) {
    const lambda = Math.max(eig.values[j]!, MOMENTS_INIT.eigenFloor * top);
    gram[j] = 1 / lambda;
    for (let f = 0; f < p; f++) {
      const u = eig.vectors![f * p + j]!;
      column[f] = u / Math.sqrt(lambda);
      unwhiten[f * k + j] = u * Math.sqrt(lambda);
    }
    backSolveTransposeInPlace(st.chol, p, column);
    for (let f = 0; f < p; f++) project[f * k + j] = column[f]!;
  }
  return { project, unwhiten, gram };
}

/**
 * M3(W, W, W) (k×k×k): E[T₃ u⊗u⊗u] − Σ_sym E[T₃ u] ⊗ WᵀW with T₃ = ỹ³ − 3 m2 ỹ and u = Wᵀx̃ — the Hermite
 * score S_3(x̃) = x̃⊗³ − Σ_sym x̃⊗I projected on the whitened subspace, so no p×p×p tensor is formed. O(n p k + n k³).
 */
function thirdMoment(data: ProblemData, st: Standardisation, project: Float64Array, gram: Float64Array, yy: number,
  k: number): Float64Array {
  const { p } = st;
  const t = new Float64Array(k * k * k);
  const m1 = new Float64Array(k);
  const c = new Float64Array(p);
  const u = new Float64Array(k);
  for (let i = 0; i < data.n; i++) {
    const s = rowWeight(data, i);
    if (s === 0) continue;
    const yt = data.y[i]! - st.yShift;
    const w = s * (yt * yt * yt - 3 * yy * yt);
    centredRow(data, st.f0, st.mean, i, c);
    u.fill(0);
    for (let f = 0; f < p; f++) {
      const cf = c[f]!;
      for (let j = 0; j < k; j++) u[j] += project[f * k + j]! * cf;
    }
    for (let a = 0; a < k; a++) {
      m1[a] += w * u[a]!;
      for (let b = 0; b < k; b++) {
        const wab = w * u[a]! * u[b]!;
        const row = (a * k + b) * k;
        for (let q = 0; q < k; q++) t[row + q] += wab * u[q]!;
      }
    }
  }
  for (let a = 0; a < k; a++) {
    for (let b = 0; b < k; b++) {
      for (let q = 0; q < k; q++) {
        // WᵀW is diagonal (U_k has orthonormal columns), so each symmetrised term needs two equal indices.
        let sym = 0;
        if (b === q) sym += m1[a]! * gram[b]!;
        if (a === q) sym += m1[b]! * gram[a]!;
        if (a === b) sym += m1[q]! * gram[a]!;
        const idx = (a * k + b) * k + q;
        t[idx] = (t[idx]! - sym) / st.weight;
      }
    }
  }
  return t;
}

/**
 * Expert slopes from the decomposition M3(W,W,W) = Σ λ_j v_j⊗³: with v_j = sqrt(2p_j) Wᵀa_j orthonormal,
 * λ_j = 6 p_j (2p_j)^{-3/2} = 3/sqrt(2p_j), hence Wᵀa_j = λ_j v_j / 3 and a_j = U_k Λ_k^{1/2} (λ_j v_j / 3) in x̃
 * coordinates; in the original coordinates β_j = L⁻ᵀ a_j, with intercept ȳ − β_jᵀμ when the model has one.
 */
function writeExpertSlopes(params: Float64Array, model: ModelSpec, st: Standardisation, unwhiten: Float64Array,
  components: { weight: number; vector: Float64Array }[]): void {
  const { k, d } = model;
  const { p, f0 } = st;
  const coef = fullLayout(model).coef;
  const a = new Float64Array(p);
  for (let j = 0; j < k; j++) {
    const { weight, vector } = components[j]!;
    for (let f = 0; f < p; f++) {
      let acc = 0;
      for (let q = 0; q < k; q++) acc += unwhiten[f * k + q]! * vector[q]!;
      a[f] = (weight / 3) * acc;
    }
    backSolveTransposeInPlace(st.chol, p, a);
    for (let f = 0; f < p; f++) params[coef + j * d + f0 + f] = a[f]!;
    if (model.intercept) {
      let offset = st.yShift;
      for (let f = 0; f < p; f++) offset -= a[f]! * st.mean[f]!;
      params[coef + j * d] = offset;
    }
  }
}

/** Squared residual of row i under expert j. */
function squaredResidual(data: ProblemData, params: Float64Array, coef: number, i: number): number {
  let mu = 0;
  for (let f = 0; f < data.d; f++) mu += params[coef + f]! * data.x[i * data.d + f]!;
  return (data.y[i]! - mu) ** 2;
}

/** Starting σ²: known noise, or the mean squared residual of each row's closest expert (all experts alike). */
function initialVariances(data: ProblemData, model: ModelSpec, params: Float64Array): void {
  const fl = fullLayout(model);
  const { k, d } = model;
  let s2: number;
  if (typeof model.noise === 'number') {
    s2 = model.noise * model.noise;
  } else {
    let acc = 0;
    for (let i = 0; i < data.n; i++) {
      let best = Infinity;
      for (let j = 0; j < k; j++) best = Math.min(best, squaredResidual(data, params, fl.coef + j * d, i));
      acc += rowWeight(data, i) * best;
    }
    s2 = Math.max(acc / totalWeight(data), varianceFloor(data));
  }
  for (let j = 0; j < k; j++) params[fl.sigma2 + j] = s2;
}

/**
 * The experts' half of the gate-only EM M-step: with the slopes fixed, the intercepts (when the model has one)
 * and the fitted σ_j² have closed forms — the weighted mean residual, then §3's penalised residual variance.
 */
function offsetsAndVariances(data: ProblemData, model: ModelSpec, params: Float64Array, h: Float64Array,
  events: RecoveryEvent[]): void {
  const fl = fullLayout(model);
  const { k, d } = model;
  const floor = varianceFloor(data);
  for (let j = 0; j < k; j++) {
    const off = fl.coef + j * d;
    let mass = 0;
    for (let i = 0; i < data.n; i++) mass += rowWeight(data, i) * h[i * k + j]!;
    if (!(mass > 0)) continue;
    if (model.intercept) {
      let acc = 0;
      for (let i = 0; i < data.n; i++) {
        const w = rowWeight(data, i) * h[i * k + j]!;
        if (w === 0) continue;
        let slope = 0;
        for (let f = 1; f < d; f++) slope += params[off + f]! * data.x[i * d + f]!;
        acc += w * (data.y[i]! - slope);
      }
      params[off] = acc / mass;
    }
    if (model.noise !== 'fitted') continue;
    let rss = 0;
    for (let i = 0; i < data.n; i++) {
      const w = rowWeight(data, i) * h[i * k + j]!;
      if (w !== 0) rss += w * squaredResidual(data, params, off, i);
    }
    let pen = 0;
    for (let f = model.intercept ? 1 : 0; f < d; f++) pen += params[off + f]! ** 2;
    let s2 = (rss + model.ridge * pen) / mass;
    if (!(s2 >= floor)) {
      s2 = floor;
      events.push({ type: 'variance-floor', expert: j, floor });
    }
    params[fl.sigma2 + j] = s2;
  }
}

/**
 * EM with the expert slopes fixed (the second stage of Makkuva et al.), from `params` (returned updated, a
 * copy): E-step; offsets and σ²; the gate by the fit's own softmax-regression M-step. Each step maximises Q
 * over its block, so the objective never increases (a test). The TypeScript reference of
 * `ComputeBackend.gateOnlyEm`; the native backends run it on their passes (moe_core::gate_only_em). Its
 * recovery events are not reported.
 */
export function gateOnlyEm(data: ProblemData, model: ModelSpec, fit: FitSpec, start: Float64Array): Float64Array {
  const params = Float64Array.from(start);
  const events: RecoveryEvent[] = [];
  const weight = totalWeight(data);
  const h = new Float64Array(data.n * model.k);
  let previous = 0;
  for (let it = 0; it < MOMENTS_INIT.gateIterations; it++) {
    const objective = objectiveFromLogLik(model, params, eStep(data, model, params, h), weight).objective;
    if (it > 0 && Math.abs(previous - objective) <= MOMENTS_INIT.gateTol * Math.max(1, Math.abs(previous))) break;
    previous = objective;
    offsetsAndVariances(data, model, params, h, events);
    gateMStep({ data, model, fit, weight, events }, params, h);
  }
  return params;
}

/** The stages of the start that read every row (the O(n·p²) sums, the EM stage), and run on a backend. */
export type MomentsStages = Pick<ComputeBackend, 'momentSums' | 'gateOnlyEm'>;

/** Why `init: 'moments'` does not apply to this model, or null when it does. */
export function momentsUnsupportedReason(model: { experts: string; symmetric: boolean; k: number }): string | null {
  if (model.experts !== 'linear') return `it needs linear experts (the moments are of a real-valued y), got ${model.experts}`;
  if (model.symmetric) {
    return 'symmetric models have experts ±β, which the moments cannot separate (their second moment has rank 1 and '
      + 'their third moment vanishes for a balanced gate)';
  }
  if (model.k < 2) return `it needs k ≥ 2 experts, got k = ${model.k}`;
  return null;
}

/**
 * θ_0 for `init: 'moments'` (flat full layout). Deterministic given `seed` (the fit's seed + restart index),
 * which drives only the power method's starting vectors. `stages`: where the data passes and the EM stage run
 * (the estimator gives the fit's backend; the same result to rounding).
 */
export function momentsInit(data: ProblemData, model: ModelSpec, fit: FitSpec, seed: number,
  stages: MomentsStages = { momentSums, gateOnlyEm }): Float64Array {
  const unsupported = momentsUnsupportedReason(model);
  if (unsupported !== null) throw new MoEError('E_OPTION', `init 'moments': ${unsupported}`);
  const { k } = model;
  const p = model.d - (model.intercept ? 1 : 0);
  if (k > p) {
    throw new MoEError('E_OPTION', `init 'moments' recovers at most one expert per feature direction: k = ${k} `
      + `exceeds the ${p} non-intercept features`);
  }
  const sums = stages.momentSums(data, model);
  const st = standardise(sums, model);
  const { m2, yy } = secondMoment(sums, st);
  const { project, unwhiten, gram } = whitening(m2, st, k);
  const t3 = thirdMoment(data, st, project, gram, yy, k);
  const components = tensorPowerDecomposition(t3, k, new Rng(seed >>> 0), {
    restarts: MOMENTS_INIT.powerRestarts, iterations: MOMENTS_INIT.powerIterations,
  });
  const params = new Float64Array(fullLayout(model).size);
  writeExpertSlopes(params, model, st, unwhiten, components);
  initialVariances(data, model, params);
  return stages.gateOnlyEm(data, model, fit, params);
}
