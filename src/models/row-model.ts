/**
 * Per-row evaluation of a mixture of experts at fixed parameters — the single place where the model's
 * mathematics (docs/ALGORITHMS.md §2) lives. The E-step, the objective, the gradients, predictions and the
 * information matrices all read these per-row quantities.
 *
 * Component order: general model j = 0..k−1; symmetric models j = 0 ↔ z = +1, j = 1 ↔ z = −1.
 * Workspaces are allocated once per RowModel; `evaluate` allocates nothing.
 */
import type { ModelSpec } from '../backends/backend.js';
import { logSigmoid, sigmoid } from '../linalg/dense.js';
import { fullLayout } from './layout.js';

const HALF_LOG_2PI = 0.5 * Math.log(2 * Math.PI);

export class RowModel {
  readonly model: ModelSpec;
  readonly params: Float64Array;
  /** Number of mixture components (symmetric: 2). */
  readonly k: number;
  readonly d: number;
  /** Classes per expert: multinomial C, otherwise 1 (one linear predictor per expert). */
  readonly etaPerExpert: number;

  /** log π_j(x). */
  readonly logPi: Float64Array;
  /**
   * Expert linear predictors: linear experts their means β_jᵀx, logistic η_j = β_jᵀx (P(y=1|j) = sigmoid(η_j)),
   * multinomial η_jc = B_jcᵀx at j·C + c. Symmetric: [u, −u] with u = βᵀx (the component means, or the
   * logits of P(y=+1|z) for SymMoLogE).
   */
  readonly eta: Float64Array;
  /** Logistic (incl. symmetric): P(y=1|x, j) per expert; multinomial: class probabilities at j·C + c; linear: unused. */
  readonly probs: Float64Array;
  /** log p_j(y|x) (after `evaluate`). */
  readonly logP: Float64Array;
  /** Responsibilities h_j (after `evaluate`). */
  readonly h: Float64Array;
  /** Symmetric models: the gate score wᵀx; general: unused. */
  gateScore = 0;

  /** Linear experts: σ_j² (symmetric linear: σ²), with −½log(2πσ²) and 1/σ² cached. */
  readonly sigma2: Float64Array;
  private readonly logNorm: Float64Array;
  private readonly invVar: Float64Array;
  private readonly gateScores: Float64Array;
  private readonly coefOff: number;

  constructor(model: ModelSpec, params: Float64Array) {
    this.model = model;
    this.params = params;
    this.k = model.symmetric ? 2 : model.k;
    this.d = model.d;
    this.etaPerExpert = model.experts === 'multinomial' && !model.symmetric ? model.nClasses : 1;
    const k = this.k;
    this.logPi = new Float64Array(k);
    this.eta = new Float64Array(k * this.etaPerExpert);
    this.probs = new Float64Array(k * this.etaPerExpert);
    this.logP = new Float64Array(k);
    this.h = new Float64Array(k);
    this.gateScores = new Float64Array(k);
    this.sigma2 = new Float64Array(k);
    this.logNorm = new Float64Array(k);
    this.invVar = new Float64Array(k);
    const fl = fullLayout(model);
    this.coefOff = model.symmetric ? fl.beta : fl.coef;
    if (model.experts === 'linear') {
      for (let j = 0; j < k; j++) {
        const s2 = model.symmetric ? (model.noise as number) ** 2 : params[fl.sigma2 + j]!;
        this.sigma2[j] = s2;
        this.logNorm[j] = -HALF_LOG_2PI - 0.5 * Math.log(s2);
        this.invVar[j] = 1 / s2;
      }
    }
  }

  /** Gate and expert predictions at x (row `off` of `x`): fills logPi, eta, probs. */
  evaluateX(x: Float64Array, off: number): void {
    const { d, k, params } = this;
    if (this.model.symmetric) {
      let g = 0;
      let u = 0;
      const b = this.coefOff;
      for (let f = 0; f < d; f++) {
        const xf = x[off + f]!;
        g += params[f]! * xf;
        u += params[b + f]! * xf;
      }
      this.gateScore = g;
      this.logPi[0] = logSigmoid(g);
      this.logPi[1] = logSigmoid(-g);
      this.eta[0] = u;
      this.eta[1] = -u;
      if (this.model.experts === 'logistic') {
        this.probs[0] = sigmoid(u);
        this.probs[1] = sigmoid(-u);
      }
      return;
    }
    // Gate: log-softmax of W x (row k−1 of W is 0 by convention but is read like the others).
    const a = this.gateScores;
    let amax = -Infinity;
    for (let j = 0; j < k; j++) {
      let s = 0;
      const r = j * d;
      for (let f = 0; f < d; f++) s += params[r + f]! * x[off + f]!;
      a[j] = s;
      if (s > amax) amax = s;
    }
    let sum = 0;
    for (let j = 0; j < k; j++) sum += Math.exp(a[j]! - amax);
    const lse = amax + Math.log(sum);
    for (let j = 0; j < k; j++) this.logPi[j] = a[j]! - lse;
    // Experts.
    const C = this.etaPerExpert;
    const m = k * C;
    const b = this.coefOff;
    for (let r = 0; r < m; r++) {
      let s = 0;
      const ro = b + r * d;
      for (let f = 0; f < d; f++) s += params[ro + f]! * x[off + f]!;
      this.eta[r] = s;
    }
    if (this.model.experts === 'logistic') {
      for (let j = 0; j < k; j++) this.probs[j] = sigmoid(this.eta[j]!);
    } else if (this.model.experts === 'multinomial') {
      for (let j = 0; j < k; j++) {
        let emax = -Infinity;
        for (let c = 0; c < C; c++) if (this.eta[j * C + c]! > emax) emax = this.eta[j * C + c]!;
        let es = 0;
        for (let c = 0; c < C; c++) {
          const e = Math.exp(this.eta[j * C + c]! - emax);
          this.probs[j * C + c] = e;
          es += e;
        }
        for (let c = 0; c < C; c++) this.probs[j * C + c] /= es;
      }
    }
  }

  /** log p_j(y|x) for every component, after `evaluateX`. */
  expertLogDensities(y: number): void {
    const k = this.k;
    const experts = this.model.experts;
    if (experts === 'linear') {
      for (let j = 0; j < k; j++) {
        const r = y - this.eta[j]!;
        this.logP[j] = this.logNorm[j]! - 0.5 * r * r * this.invVar[j]!;
      }
    } else if (experts === 'logistic') {
      if (this.model.symmetric) {
        // p(y|x,z) = sigmoid(z·y·u), y ∈ {−1,+1}; eta = [u, −u].
        for (let j = 0; j < k; j++) this.logP[j] = logSigmoid(y * this.eta[j]!);
      } else {
        // y·η − softplus(η) = log sigmoid(η) for y = 1, log sigmoid(−η) for y = 0.
        for (let j = 0; j < k; j++) this.logP[j] = y === 1 ? logSigmoid(this.eta[j]!) : logSigmoid(-this.eta[j]!);
      }
    } else {
      const C = this.etaPerExpert;
      for (let j = 0; j < k; j++) {
        let emax = -Infinity;
        for (let c = 0; c < C; c++) if (this.eta[j * C + c]! > emax) emax = this.eta[j * C + c]!;
        let es = 0;
        for (let c = 0; c < C; c++) es += Math.exp(this.eta[j * C + c]! - emax);
        this.logP[j] = this.eta[j * C + y]! - emax - Math.log(es);
      }
    }
  }

  /** Full evaluation of row (x, y): fills logPi, eta, probs, logP and h; returns ℓ_i = log p(y|x). */
  evaluate(x: Float64Array, off: number, y: number): number {
    this.evaluateX(x, off);
    this.expertLogDensities(y);
    const k = this.k;
    let m = -Infinity;
    for (let j = 0; j < k; j++) {
      const v = this.logPi[j]! + this.logP[j]!;
      this.h[j] = v;
      if (v > m) m = v;
    }
    let sum = 0;
    for (let j = 0; j < k; j++) sum += Math.exp(this.h[j]! - m);
    const ell = m + Math.log(sum);
    for (let j = 0; j < k; j++) this.h[j] = Math.exp(this.h[j]! - ell);
    return ell;
  }
}
