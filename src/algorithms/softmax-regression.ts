/**
 * Weighted softmax regression with soft or hard targets — the M-step sub-problem shared by the gate, logistic
 * and multinomial experts and the symmetric models (docs/ALGORITHMS.md §3):
 *   maximise f(V) = Σ_i c_i Σ_c t_ic log softmax([V x_i; 0])_c − (λ/2)‖V‖²   (column 0 unpenalised with intercept)
 * over V ((C−1)×d), class C−1 being the fixed-zero reference. Solvers: 'newton', 'newton-cg', 'gradient'.
 */
import type { MStepSolver, RecoveryEvent } from '../types.js';
import { solveSpdWithRecovery } from '../linalg/cholesky.js';
import { jacobi, preconditionedCg } from '../linalg/cg.js';
import { weightedGrams } from '../linalg/gram.js';
import type { KroneckerStatistics } from './kronecker.js';

export interface SoftmaxProblem {
  /** Features n×d row-major. */
  x: Float64Array;
  n: number;
  d: number;
  /** Per-row multiplier of the features (SymMoLogE uses y_i x_i), or null. */
  rowScale: Float64Array | null;
  /** Row weights c_i ≥ 0. */
  c: Float64Array;
  /** Number of classes C ≥ 2 (class C−1 is the reference). */
  C: number;
  /** Soft targets n×C, or null when `labels` gives one-hot targets. */
  soft: Float64Array | null;
  /** Hard targets: class index per row. */
  labels: Int32Array | null;
  ridge: number;
  /** Whether column 0 is unpenalised. */
  intercept: boolean;
  /** Names the block in recovery events and errors ('gate', 'expert 2'). */
  block: string;
  /**
   * Newton-CG's Kronecker preconditioner (the softmax problems of the general model): the fit's statistics and
   * the problem's row weights c at their sample rows; absent = Jacobi.
   */
  kronecker?: { stats: KroneckerStatistics; sampleC: Float64Array };
}

export interface SoftmaxSolverOptions {
  solver: Exclude<MStepSolver, 'auto'>;
  maxIter: number;
  tol: number;
  cgMaxIter: number;
  innerSteps: number;
  /** 'gradient' solver: the step is V ← V + stepScale·g (stepScale = η_b / S). */
  stepScale: number;
}

const ARMIJO = 1e-4;
const MAX_HALVINGS = 30;

/** Resolves 'auto': Newton when the block's free size p ≤ 256, else Newton-CG (§3). */
export function resolveSolver(solver: MStepSolver, p: number): Exclude<MStepSolver, 'auto'> {
  if (solver !== 'auto') return solver;
  return p <= 256 ? 'newton' : 'newton-cg';
}

export class SoftmaxRegression {
  readonly pr: SoftmaxProblem;
  /** Free size (C−1)·d. */
  readonly p: number;
  private readonly scores: Float64Array;
  private readonly probs: Float64Array;
  private readonly sumC: number;

  constructor(problem: SoftmaxProblem) {
    this.pr = problem;
    this.p = (problem.C - 1) * problem.d;
    this.scores = new Float64Array(problem.C);
    this.probs = new Float64Array(problem.C);
    let s = 0;
    for (let i = 0; i < problem.n; i++) s += problem.c[i]!;
    this.sumC = s;
  }

  /** Class probabilities of row i at V into this.probs; returns log Σ exp(scores). */
  private rowSoftmax(V: Float64Array, i: number): number {
    const { x, d, C, rowScale } = this.pr;
    const xo = i * d;
    const sc = rowScale === null ? 1 : rowScale[i]!;
    let m = 0; // the reference class scores 0
    for (let a = 0; a < C - 1; a++) {
      let s = 0;
      const r = a * d;
      for (let f = 0; f < d; f++) s += V[r + f]! * x[xo + f]!;
      s *= sc;
      this.scores[a] = s;
      if (s > m) m = s;
    }
    this.scores[C - 1] = 0;
    let sum = 0;
    for (let a = 0; a < C; a++) {
      const e = Math.exp(this.scores[a]! - m);
      this.probs[a] = e;
      sum += e;
    }
    for (let a = 0; a < C; a++) this.probs[a] /= sum;
    return m + Math.log(sum);
  }

  private penaltyValue(V: Float64Array): number {
    const { ridge, intercept, d, C } = this.pr;
    if (ridge === 0) return 0;
    let acc = 0;
    for (let a = 0; a < C - 1; a++) for (let f = intercept ? 1 : 0; f < d; f++) acc += V[a * d + f]! ** 2;
    return 0.5 * ridge * acc;
  }

  /** f(V). */
  value(V: Float64Array): number {
    const { n, C, c, soft, labels } = this.pr;
    let acc = 0;
    for (let i = 0; i < n; i++) {
      const ci = c[i]!;
      if (ci === 0) continue;
      const lse = this.rowSoftmax(V, i);
      if (labels !== null) {
        acc += ci * (this.scores[labels[i]!]! - lse);
      } else {
        let row = 0;
        for (let a = 0; a < C; a++) {
          const t = soft![i * C + a]!;
          if (t !== 0) row += t * (this.scores[a]! - lse);
        }
        acc += ci * row;
      }
    }
    return acc - this.penaltyValue(V);
  }

  /**
   * f(V) and its gradient g; optionally caches per-row c_i·T_i and probabilities (for Hessian products) and
   * accumulates the dense negative Hessian −H (p×p) when `negHessian` is given.
   */
  valueGradient(V: Float64Array, g: Float64Array, cache: { ct: Float64Array; probs: Float64Array } | null,
    negHessian: Float64Array | null): number {
    const { n, d, C, c, soft, labels, x, rowScale, ridge, intercept } = this.pr;
    const p = this.p;
    const P = C - 1;
    g.fill(0);
    // −H = Σ_i c_i T_i (diag(p_i) − p_i p_iᵀ) ⊗ x_i x_iᵀ: one weighted Gram per class pair (a ≤ b), with
    // row weights w_iab = c_i T_i p_ia (δ_ab − p_ib), assembled into the p×p matrix at the end.
    const pairs = (P * (P + 1)) / 2;
    const pairWeights = negHessian === null ? null : new Float64Array(n * pairs);
    let value = 0;
    for (let i = 0; i < n; i++) {
      const ci = c[i]!;
      if (ci === 0) {
        if (cache !== null) cache.ct[i] = 0;
        continue;
      }
      const lse = this.rowSoftmax(V, i);
      const probs = this.probs;
      let T: number;
      if (labels !== null) {
        T = 1;
        value += ci * (this.scores[labels[i]!]! - lse);
      } else {
        T = 0;
        let row = 0;
        for (let a = 0; a < C; a++) {
          const t = soft![i * C + a]!;
          T += t;
          if (t !== 0) row += t * (this.scores[a]! - lse);
        }
        value += ci * row;
      }
      const sc = rowScale === null ? 1 : rowScale[i]!;
      const xo = i * d;
      for (let a = 0; a < P; a++) {
        const t = labels !== null ? (labels[i] === a ? 1 : 0) : soft![i * C + a]!;
        const coef = ci * (t - T * probs[a]!) * sc;
        if (coef === 0) continue;
        const r = a * d;
        for (let f = 0; f < d; f++) g[r + f] += coef * x[xo + f]!;
      }
      const ct = ci * T;
      if (cache !== null) {
        cache.ct[i] = ct;
        for (let a = 0; a < C; a++) cache.probs[i * C + a] = probs[a]!;
      }
      if (pairWeights !== null) {
        const s2 = ct * sc * sc;
        let q = i * pairs;
        for (let a = 0; a < P; a++) for (let b = a; b < P; b++) pairWeights[q++] = s2 * probs[a]! * ((a === b ? 1 : 0) - probs[b]!);
      }
    }
    if (ridge !== 0) {
      for (let a = 0; a < P; a++) {
        for (let f = intercept ? 1 : 0; f < d; f++) g[a * d + f] -= ridge * V[a * d + f]!;
      }
    }
    if (negHessian !== null && pairWeights !== null) {
      const grams = weightedGrams(x, n, d, pairWeights, pairs, new Float64Array(pairs * d * d));
      let q = 0;
      for (let a = 0; a < P; a++) {
        for (let b = a; b < P; b++, q++) {
          for (let f = 0; f < d; f++) {
            for (let gg = 0; gg < d; gg++) {
              const v = grams[q * d * d + f * d + gg]!;
              negHessian[(a * d + f) * p + b * d + gg] = v;
              negHessian[(b * d + gg) * p + a * d + f] = v;
            }
          }
        }
      }
      if (ridge !== 0) {
        for (let a = 0; a < P; a++) for (let f = intercept ? 1 : 0; f < d; f++) negHessian[(a * d + f) * p + a * d + f] += ridge;
      }
    }
    return value - this.penaltyValue(V);
  }

  /** out = (−H) v using the cached probabilities. */
  private negHessianTimes(cache: { ct: Float64Array; probs: Float64Array }, v: Float64Array, out: Float64Array): void {
    const { n, d, C, x, rowScale, ridge, intercept } = this.pr;
    const P = C - 1;
    const u = this.scores; // reused as a per-row workspace
    out.fill(0);
    for (let i = 0; i < n; i++) {
      const ct = cache.ct[i]!;
      if (ct === 0) continue;
      const sc = rowScale === null ? 1 : rowScale[i]!;
      const xo = i * d;
      let pu = 0;
      for (let a = 0; a < P; a++) {
        let s = 0;
        const r = a * d;
        for (let f = 0; f < d; f++) s += v[r + f]! * x[xo + f]!;
        u[a] = s * sc;
        pu += cache.probs[i * C + a]! * u[a]!;
      }
      for (let a = 0; a < P; a++) {
        const coef = ct * cache.probs[i * C + a]! * (u[a]! - pu) * sc;
        if (coef === 0) continue;
        const r = a * d;
        for (let f = 0; f < d; f++) out[r + f] += coef * x[xo + f]!;
      }
    }
    if (ridge !== 0) {
      for (let a = 0; a < P; a++) for (let f = intercept ? 1 : 0; f < d; f++) out[a * d + f] += ridge * v[a * d + f]!;
    }
  }

  private negHessianDiagonal(cache: { ct: Float64Array; probs: Float64Array }, out: Float64Array): void {
    const { n, d, C, x, rowScale, ridge, intercept } = this.pr;
    const P = C - 1;
    out.fill(0);
    for (let i = 0; i < n; i++) {
      const ct = cache.ct[i]!;
      if (ct === 0) continue;
      const sc = rowScale === null ? 1 : rowScale[i]!;
      const xo = i * d;
      for (let a = 0; a < P; a++) {
        const pa = cache.probs[i * C + a]!;
        const w = ct * pa * (1 - pa) * sc * sc;
        const r = a * d;
        for (let f = 0; f < d; f++) out[r + f] += w * x[xo + f]! * x[xo + f]!;
      }
    }
    if (ridge !== 0) {
      for (let a = 0; a < P; a++) for (let f = intercept ? 1 : 0; f < d; f++) out[a * d + f] += ridge;
    }
  }

  /** Maximises f from V (updated in place). Never decreases f. */
  solve(V: Float64Array, opts: SoftmaxSolverOptions, events: RecoveryEvent[]): void {
    if (this.p === 0 || this.sumC === 0) return;
    if (opts.solver === 'gradient') this.solveGradient(V, opts);
    else this.solveNewton(V, opts, events);
  }

  private solveNewton(V: Float64Array, opts: SoftmaxSolverOptions, events: RecoveryEvent[]): void {
    const p = this.p;
    const { n, C } = this.pr;
    const g = new Float64Array(p);
    const delta = new Float64Array(p);
    const trial = new Float64Array(p);
    const dense = opts.solver === 'newton';
    const negH = dense ? new Float64Array(p * p) : null;
    const cache = dense ? null : { ct: new Float64Array(n), probs: new Float64Array(n * C) };
    const diag = dense ? null : new Float64Array(p);
    for (let it = 0; it < opts.maxIter; it++) {
      const f0 = this.valueGradient(V, g, cache, negH);
      if (dense) {
        delta.set(g);
        solveSpdWithRecovery(negH!, p, delta, this.pr.block, events);
      } else {
        const kronecker = this.pr.kronecker;
        let precondition;
        if (kronecker !== undefined) {
          precondition = kronecker.stats.at(V, this.sumC, this.pr.ridge, kronecker.sampleC);
        } else {
          this.negHessianDiagonal(cache!, diag!);
          precondition = jacobi(diag!);
        }
        let gNorm = 0;
        for (let q = 0; q < p; q++) gNorm += g[q]! * g[q]!;
        gNorm = Math.sqrt(gNorm);
        const eta = Math.min(0.5, Math.sqrt(gNorm / this.sumC));
        preconditionedCg((v, out) => this.negHessianTimes(cache!, v, out), g, precondition,
          { maxIter: opts.cgMaxIter, eta }, delta);
      }
      let decrement = 0;
      for (let q = 0; q < p; q++) decrement += g[q]! * delta[q]!;
      if (!(decrement / 2 > opts.tol * this.sumC)) {
        // Inside the tolerance the quadratic model is exact to rounding, and a line search could not see a
        // change of f this small: take the full Newton step unguarded and stop (ALGORITHMS.md §3).
        if (decrement > 0 && Number.isFinite(decrement)) for (let q = 0; q < p; q++) V[q] = V[q]! + delta[q]!;
        return;
      }
      let t = 1;
      let accepted = false;
      for (let h = 0; h <= MAX_HALVINGS; h++, t /= 2) {
        for (let q = 0; q < p; q++) trial[q] = V[q]! + t * delta[q]!;
        if (this.value(trial) >= f0 + ARMIJO * t * decrement) {
          accepted = true;
          break;
        }
      }
      if (!accepted) return;
      V.set(trial);
    }
  }

  private solveGradient(V: Float64Array, opts: SoftmaxSolverOptions): void {
    const p = this.p;
    const g = new Float64Array(p);
    const trial = new Float64Array(p);
    for (let step = 0; step < opts.innerSteps; step++) {
      const f0 = this.valueGradient(V, g, null, null);
      let t = opts.stepScale;
      let accepted = false;
      for (let h = 0; h <= MAX_HALVINGS; h++, t /= 2) {
        for (let q = 0; q < p; q++) trial[q] = V[q]! + t * g[q]!;
        if (this.value(trial) >= f0) {
          accepted = true;
          break;
        }
      }
      if (!accepted) return;
      V.set(trial);
    }
  }
}
