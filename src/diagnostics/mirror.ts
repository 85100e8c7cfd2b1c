/**
 * The mirror-descent view of EM (MATH.md §4).
 *
 * Symmetric models (SymMoLinE, SymMoLogE): the per-sample natural parameter is linear in θ = (w, β), so EM is
 * exactly mirror descent with unit step on L = −ℓ/S under the mirror map
 *   SymMoLinE  Φ(w, β) = (1/S) Σ s_i [ log 2cosh(wᵀx_i/2) + (βᵀx_i)²/(2σ²) ]
 *   SymMoLogE  Φ(w, β) = (1/S) Σ s_i [ log 2cosh(wᵀx_i/2) + log 2cosh(βᵀx_i/2) ]
 * i.e. ∇Φ(θ_{t+1}) = ∇Φ(θ_t) − ∇L(θ_t). This module gives Φ, ∇Φ, D_Φ and the mirror step (∇Φ inverted by
 * Cholesky for the quadratic part and by damped Newton for the log-cosh parts).
 *
 * General model: the identity Q(θ|θ_t) − Q(θ_t|θ_t) = −Σ_i s_i [⟨∇_ϑ(−ℓ_i)(ϑ_t,i), ϑ_i − ϑ_t,i⟩ + D_A(ϑ_i, ϑ_t,i)]
 * holds in each sample's natural coordinates ϑ_i of the complete-data exponential family p(y, z | x_i).
 * `qIdentityTerms` computes both sides. Our (overcomplete) natural coordinates: S(y, z) = (e_z, e_z ⊗ T(y)),
 * ϑ = (ν_1..ν_k, η_1..η_k) with η_j the expert's natural parameter and ν_j = log π_j − A_j(η_j), so that
 * A(ϑ) = lse_j(ν_j + A_j(η_j)). Expert families: Gaussian T = (y, y²), η = (μ/σ², −1/(2σ²)),
 * A = μ²/(2σ²) + ½log σ²; Bernoulli T = 1[y = 1], η = logit, A = softplus; categorical T = onehot(y)
 * without class C−1, η_c = logit of class c against C−1, A = log(1 + Σ e^η).
 *
 * The identities are about the likelihood itself: every function here requires ridge = 0 (E_OPTION otherwise).
 */
import type { ModelSpec, ProblemData } from '../backends/backend.js';
import { MoEError } from '../errors.js';
import { choleskyInPlace, choleskySolveInPlace } from '../linalg/cholesky.js';
import { sigmoid, softplus } from '../linalg/dense.js';
import { gradientF } from '../models/gradient.js';
import { eStep, qValue, totalWeight } from '../models/objective.js';
import { RowModel } from '../models/row-model.js';

/** log(2 cosh t), without overflow. */
export function logTwoCosh(t: number): number {
  const a = Math.abs(t);
  return a + Math.log1p(Math.exp(-2 * a));
}

function requireUnpenalised(model: ModelSpec, what: string): void {
  if (model.ridge !== 0) {
    throw new MoEError('E_OPTION', `${what}: the mirror-descent identities hold for the unpenalised likelihood; ridge must be 0`);
  }
}

function requireSymmetric(model: ModelSpec, what: string): void {
  if (!model.symmetric) throw new MoEError('E_OPTION', `${what}: defined for the symmetric models (SymMoLinE, SymMoLogE) only`);
  requireUnpenalised(model, what);
  if (model.experts === 'linear' && !(typeof model.noise === 'number' && model.noise > 0)) {
    throw new MoEError('E_OPTION', `${what}: SymMoLinE needs a known noise σ > 0`);
  }
}

function weightOf(data: ProblemData, i: number): number {
  return data.s === null ? 1 : data.s[i]!;
}

/** The two per-sample linear scores u = wᵀx and v = βᵀx. */
function scores(data: ProblemData, theta: Float64Array, i: number): [number, number] {
  const { x, d } = data;
  let u = 0;
  let v = 0;
  for (let f = 0; f < d; f++) {
    u += theta[f]! * x[i * d + f]!;
    v += theta[d + f]! * x[i * d + f]!;
  }
  return [u, v];
}

/** Φ(θ) for SymMoLinE / SymMoLogE (θ = [w, β]). */
export function mirrorPotential(data: ProblemData, model: ModelSpec, theta: Float64Array): number {
  requireSymmetric(model, 'mirrorPotential');
  const linear = model.experts === 'linear';
  const s2 = linear ? (model.noise as number) ** 2 : 1;
  let acc = 0;
  for (let i = 0; i < data.n; i++) {
    const [u, v] = scores(data, theta, i);
    acc += weightOf(data, i) * (logTwoCosh(u / 2) + (linear ? (v * v) / (2 * s2) : logTwoCosh(v / 2)));
  }
  return acc / totalWeight(data);
}

/** ∇Φ(θ) = (1/S) Σ s_i [tanh(u_i/2)/2 · x_i ; (v_i/σ² or tanh(v_i/2)/2) · x_i]. */
export function mirrorGradient(data: ProblemData, model: ModelSpec, theta: Float64Array): Float64Array {
  requireSymmetric(model, 'mirrorGradient');
  const { d, x } = data;
  const linear = model.experts === 'linear';
  const s2 = linear ? (model.noise as number) ** 2 : 1;
  const out = new Float64Array(2 * d);
  for (let i = 0; i < data.n; i++) {
    const si = weightOf(data, i);
    const [u, v] = scores(data, theta, i);
    const cw = (si * Math.tanh(u / 2)) / 2;
    const cb = si * (linear ? v / s2 : Math.tanh(v / 2) / 2);
    for (let f = 0; f < d; f++) {
      out[f] += cw * x[i * d + f]!;
      out[d + f] += cb * x[i * d + f]!;
    }
  }
  const S = totalWeight(data);
  for (let t = 0; t < out.length; t++) out[t] /= S;
  return out;
}

/** Bregman divergence D_Φ(θ, θ') = Φ(θ) − Φ(θ') − ⟨∇Φ(θ'), θ − θ'⟩. */
export function bregmanDivergence(data: ProblemData, model: ModelSpec, theta: Float64Array, thetaRef: Float64Array): number {
  const g = mirrorGradient(data, model, thetaRef);
  let inner = 0;
  for (let t = 0; t < g.length; t++) inner += g[t]! * (theta[t]! - thetaRef[t]!);
  return mirrorPotential(data, model, theta) - mirrorPotential(data, model, thetaRef) - inner;
}

/** ∇L(θ) with L = −ℓ/S, in the free layout (symmetric: [w, β]). */
export function lossGradient(data: ProblemData, model: ModelSpec, theta: Float64Array, p: number): Float64Array {
  requireUnpenalised(model, 'lossGradient');
  const g = new Float64Array(p);
  gradientF(data, model, theta, g);
  const S = totalWeight(data);
  for (let t = 0; t < p; t++) g[t] = -g[t]! / S;
  return g;
}

/**
 * Solves (1/S) Σ s_i tanh(cᵀx_i/2)/2 · x_i = target for c (the log-cosh half of ∇Φ inverted), by Newton's
 * method on the strictly convex ψ(c) = (1/S) Σ s_i log 2cosh(cᵀx_i/2) − targetᵀc with backtracking.
 */
function invertLogCoshGradient(data: ProblemData, target: Float64Array, start: Float64Array): Float64Array {
  const { d, x, n } = data;
  const S = totalWeight(data);
  const tNorm = Math.max(1, ...Array.from(target, Math.abs));
  /** ψ, ∇ψ and ∇²ψ at c (the Hessian only when asked). */
  const evaluate = (c: Float64Array, withHessian: boolean) => {
    let value = 0;
    const grad = new Float64Array(d);
    const hess = withHessian ? new Float64Array(d * d) : null;
    for (let i = 0; i < n; i++) {
      const si = weightOf(data, i);
      let t = 0;
      for (let f = 0; f < d; f++) t += c[f]! * x[i * d + f]!;
      value += si * logTwoCosh(t / 2);
      const gi = (si * Math.tanh(t / 2)) / 2;
      const sg = sigmoid(t);
      const hi = si * sg * (1 - sg); // d²/dt² log 2cosh(t/2) = sech²(t/2)/4 = σ(t)(1 − σ(t))
      for (let f = 0; f < d; f++) {
        grad[f] += gi * x[i * d + f]!;
        if (hess) for (let e = 0; e < d; e++) hess[f * d + e] += (hi * x[i * d + f]! * x[i * d + e]!) / S;
      }
    }
    let lin = 0;
    let gNorm = 0;
    for (let f = 0; f < d; f++) {
      lin += target[f]! * c[f]!;
      grad[f] = grad[f]! / S - target[f]!;
      gNorm = Math.max(gNorm, Math.abs(grad[f]!));
    }
    return { value: value / S - lin, grad, hess, gNorm };
  };
  let c = Float64Array.from(start);
  let cur = evaluate(c, true);
  for (let it = 0; it < 100 && cur.gNorm > 1e-15 * tNorm; it++) {
    if (!choleskyInPlace(cur.hess!, d)) throw new MoEError('E_SINGULAR', 'mirror step: Σ x xᵀ is singular');
    const step = Float64Array.from(cur.grad);
    choleskySolveInPlace(cur.hess!, d, step);
    let decrement = 0;
    for (let f = 0; f < d; f++) decrement += cur.grad[f]! * step[f]!;
    // Backtracking on ψ; once ψ's change drowns in rounding (at the optimum), a smaller gradient decides.
    let t = 1;
    let accepted = false;
    for (let halving = 0; halving < 60 && !accepted; halving++, t /= 2) {
      const trial = c.map((a, f) => a - t * step[f]!);
      const next = evaluate(trial, false);
      const roundingLevel = 1e-13 * Math.max(1, Math.abs(cur.value));
      if (next.value <= cur.value - 1e-4 * t * decrement
        || (Math.abs(next.value - cur.value) <= roundingLevel && next.gNorm < cur.gNorm)) {
        c = trial;
        accepted = true;
      }
    }
    if (!accepted) break;
    cur = evaluate(c, true);
  }
  return c;
}

/**
 * The mirror-descent step θ⁺ = argmin ⟨∇L(θ), θ' − θ⟩ + D_Φ(θ', θ)/η, i.e. ∇Φ(θ⁺) = ∇Φ(θ) − η∇L(θ). With
 * η = 1 this is one EM iteration (MATH.md §4).
 */
export function mirrorDescentStep(data: ProblemData, model: ModelSpec, theta: Float64Array, stepSize = 1): Float64Array {
  requireSymmetric(model, 'mirrorDescentStep');
  if (!(stepSize > 0)) throw new MoEError('E_OPTION', `mirror step size must be > 0, got ${stepSize}`);
  const { d, x, n } = data;
  const target = mirrorGradient(data, model, theta);
  const gradL = lossGradient(data, model, theta, 2 * d);
  for (let t = 0; t < 2 * d; t++) target[t] -= stepSize * gradL[t]!;
  const out = new Float64Array(2 * d);
  out.set(invertLogCoshGradient(data, target.subarray(0, d), theta.subarray(0, d)), 0);
  if (model.experts === 'logistic') {
    out.set(invertLogCoshGradient(data, target.subarray(d), theta.subarray(d)), d);
    return out;
  }
  // SymMoLinE: (1/(Sσ²)) XᵀSX β = target_β.
  const s2 = (model.noise as number) ** 2;
  const S = totalWeight(data);
  const gram = new Float64Array(d * d);
  for (let i = 0; i < n; i++) {
    const si = weightOf(data, i);
    for (let f = 0; f < d; f++) for (let e = 0; e < d; e++) gram[f * d + e] += si * x[i * d + f]! * x[i * d + e]!;
  }
  if (!choleskyInPlace(gram, d)) throw new MoEError('E_SINGULAR', 'mirror step: Σ x xᵀ is singular');
  const beta = Float64Array.from(target.subarray(d), (a) => a * S * s2);
  choleskySolveInPlace(gram, d, beta);
  out.set(beta, d);
  return out;
}

/** Both sides of the Q-identity (unnormalised sums over samples). */
export interface QIdentityTerms {
  /** Q(θ|θ_t) − Q(θ_t|θ_t), computed directly from log π + log p with the posterior at θ_t. */
  qDifference: number;
  /** Σ_i s_i ⟨∇_ϑ(−ℓ_i)(ϑ_t,i), ϑ_i − ϑ_t,i⟩ (= S·⟨∇L(θ_t), θ − θ_t⟩ in natural coordinates). */
  linear: number;
  /** Σ_i s_i D_A(ϑ_i, ϑ_t,i) (= S·D_Φ(θ, θ_t)). */
  bregman: number;
}

/** Per-sample natural coordinates ϑ, the log-partition A(ϑ) and its gradient (mean statistics). */
interface NaturalRow {
  /** ϑ = (ν_1..ν_k, η_1 (m entries), .., η_k). */
  theta: Float64Array;
  logPartition: number;
  /** ∇A(ϑ). */
  meanStat: Float64Array;
  /** E_{z|x,y}[S(y, z)] under this row model's posterior. */
  expectedStat: Float64Array;
}

/** Natural-parameter size per expert. */
function naturalSizePerExpert(model: ModelSpec): number {
  if (model.experts === 'linear') return 2;
  if (model.experts === 'logistic') return 1;
  return model.nClasses - 1;
}

/** Evaluates the complete-data exponential family of one row (rm must have `evaluate`d the row). */
function naturalRow(rm: RowModel, model: ModelSpec, y: number, out: NaturalRow): void {
  const k = rm.k;
  const m = naturalSizePerExpert(model);
  const { theta, meanStat, expectedStat } = out;
  const expertA = new Float64Array(k);
  const expertMean = new Float64Array(k * m);
  const stat = new Float64Array(m); // T(y)
  for (let j = 0; j < k; j++) {
    const eta = theta.subarray(k + j * m, k + (j + 1) * m);
    const mean = expertMean.subarray(j * m, (j + 1) * m);
    if (model.experts === 'linear') {
      const mu = rm.eta[j]!;
      const s2 = rm.sigma2[j]!;
      eta[0] = mu / s2;
      eta[1] = -1 / (2 * s2);
      expertA[j] = (mu * mu) / (2 * s2) + 0.5 * Math.log(s2);
      mean[0] = mu;
      mean[1] = mu * mu + s2;
    } else if (model.experts === 'logistic') {
      // Symmetric: p(y=+1 | z) = sigmoid(z·v) and eta holds [v, −v]; general: p(y=1|j) = sigmoid(η_j).
      eta[0] = rm.eta[j]!;
      expertA[j] = softplus(eta[0]);
      mean[0] = sigmoid(eta[0]);
    } else {
      const C = model.nClasses;
      const last = rm.eta[j * C + C - 1]!;
      let lse = 0; // log(1 + Σ_c e^{η_c}) with η_c relative to class C−1
      let mx = 0;
      for (let c = 0; c < C - 1; c++) { eta[c] = rm.eta[j * C + c]! - last; mx = Math.max(mx, eta[c]!); }
      let acc = Math.exp(-mx);
      for (let c = 0; c < C - 1; c++) acc += Math.exp(eta[c]! - mx);
      lse = mx + Math.log(acc);
      expertA[j] = lse;
      for (let c = 0; c < C - 1; c++) mean[c] = Math.exp(eta[c]! - lse);
    }
  }
  if (model.experts === 'linear') { stat[0] = y; stat[1] = y * y; }
  else if (model.experts === 'logistic') stat[0] = model.symmetric ? (y + 1) / 2 : y;
  else for (let c = 0; c < model.nClasses - 1; c++) stat[c] = y === c ? 1 : 0;
  // ν_j = log π_j − A_j(η_j); A(ϑ) = lse_j(ν_j + A_j) = lse_j(log π_j) = 0 up to rounding.
  let mx = -Infinity;
  for (let j = 0; j < k; j++) {
    theta[j] = rm.logPi[j]! - expertA[j]!;
    mx = Math.max(mx, theta[j]! + expertA[j]!);
  }
  let acc = 0;
  for (let j = 0; j < k; j++) acc += Math.exp(theta[j]! + expertA[j]! - mx);
  out.logPartition = mx + Math.log(acc);
  for (let j = 0; j < k; j++) {
    const rho = Math.exp(theta[j]! + expertA[j]! - out.logPartition);
    const h = rm.h[j]!;
    meanStat[j] = rho;
    expectedStat[j] = h;
    for (let c = 0; c < m; c++) {
      meanStat[k + j * m + c] = rho * expertMean[j * m + c]!;
      expectedStat[k + j * m + c] = h * stat[c]!;
    }
  }
}

/**
 * Both sides of the general-model Q-identity at (θ, θ_t) (flat full layouts): the identity says
 * qDifference = −(linear + bregman) up to rounding, for any θ, θ_t.
 */
export function qIdentityTerms(data: ProblemData, model: ModelSpec, theta: Float64Array, thetaT: Float64Array): QIdentityTerms {
  requireUnpenalised(model, 'qIdentityTerms');
  const k = model.symmetric ? 2 : model.k;
  const size = k + k * naturalSizePerExpert(model);
  const h = new Float64Array(data.n * k);
  eStep(data, model, thetaT, h);
  const qDifference = qValue(data, model, theta, h) - qValue(data, model, thetaT, h);
  const rmT = new RowModel(model, thetaT);
  const rm = new RowModel(model, theta);
  const mk = (): NaturalRow => ({
    theta: new Float64Array(size), logPartition: 0, meanStat: new Float64Array(size), expectedStat: new Float64Array(size),
  });
  const at = mk();
  const atT = mk();
  let linear = 0;
  let bregman = 0;
  for (let i = 0; i < data.n; i++) {
    const si = weightOf(data, i);
    if (si === 0) continue;
    const y = data.y[i]!;
    rmT.evaluate(data.x, i * data.d, y);
    naturalRow(rmT, model, y, atT);
    rm.evaluate(data.x, i * data.d, y);
    naturalRow(rm, model, y, at);
    let lin = 0;
    let inner = 0;
    for (let t = 0; t < size; t++) {
      const delta = at.theta[t]! - atT.theta[t]!;
      lin += (atT.meanStat[t]! - atT.expectedStat[t]!) * delta; // ∇(−ℓ_i) = ∇A − E_t[S]
      inner += atT.meanStat[t]! * delta;
    }
    linear += si * lin;
    bregman += si * (at.logPartition - atT.logPartition - inner);
  }
  return { qDifference, linear, bregman };
}
