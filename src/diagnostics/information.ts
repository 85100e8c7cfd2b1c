/**
 * Fisher information and the Missing Information Matrix (MATH.md §5, docs/ALGORITHMS.md §6–7): the reference
 * implementation every backend's `information` is checked against.
 *
 * Per row i and component j, the complete-data score S_ij and the complete-data negative Hessian have a
 * structure we exploit everywhere: every free parameter block either multiplies x_i (a gate row, an expert's
 * coefficient row) or is a scalar (a fitted σ_j²). Calling each such block a *slot*, S_ij = E_i s_ij with
 * s_ij ∈ R^q (q = number of slots, small) and E_i the embedding "slot a ↦ (its value)·x_i in its block, or the
 * value itself for a scalar slot". The same holds for the Hessians, so per row we only compute q×q matrices:
 *   hess_i    = Σ_j h_ij (−∇² log p(y_i, z=j | x_i))      (slot coordinates)
 *   missing_i = Σ_j h_ij s_ij s_ijᵀ − s̄_i s̄_iᵀ,  s̄_i = Σ_j h_ij s_ij
 * and I_c = Σ_i s_i E_i hess_i E_iᵀ + ∇²penalty, I_m = Σ_i s_i E_i missing_i E_iᵀ, I_o = I_c − I_m (Louis).
 * Dense matrices cost n·p² to assemble; the matrix-free products cost n·p each (two passes over x_i).
 */
import type { ModelSpec, ProblemData } from '../backends/backend.js';
import { MoEError } from '../errors.js';
import { choleskyInPlace, choleskySolveInPlace, forwardSolveInPlace } from '../linalg/cholesky.js';
import { jacobi, preconditionedCg } from '../linalg/cg.js';
import { addWeightedOuterUpper, sigmoid, symmetrizeUpper } from '../linalg/dense.js';
import { generalizedSymmetricEigenvalues } from '../linalg/eigen.js';
import { lanczos } from '../linalg/lanczos.js';
import { freeLayout, freeParameterNames, fullLayout } from '../models/layout.js';
import { isPenalised } from '../models/objective.js';
import { RowModel } from '../models/row-model.js';
import type { InformationResult } from '../types.js';

/** Above this free-parameter count, method 'auto' goes matrix-free (ALGORITHMS.md §6). */
export const DENSE_LIMIT = 2000;

export interface InformationComputeOptions {
  method: 'auto' | 'dense' | 'lanczos';
  /** Lanczos steps (default 60). */
  steps: number;
  /**
   * Lanczos path: I_c blocks up to this size are factorised densely, larger ones are solved by CG (default
   * 2000, ALGORITHMS.md §6). Exposed so tests can exercise the CG path on small problems.
   */
  maxDenseBlock?: number;
}

/** A block of the free vector that multiplies x (`'x'`, d entries) or is one scalar (`'one'`). */
export interface Slot {
  offset: number;
  times: 'x' | 'one';
}

/** Slots in free-layout order (their offsets increase): gate rows, then each expert's rows (+ σ² slot). */
export function informationSlots(model: ModelSpec): Slot[] {
  const { d } = model;
  if (model.symmetric) return [{ offset: 0, times: 'x' }, { offset: d, times: 'x' }];
  const fr = freeLayout(model);
  const slots: Slot[] = [];
  for (let l = 0; l < model.k - 1; l++) slots.push({ offset: l * d, times: 'x' });
  for (let j = 0; j < model.k; j++) {
    const start = fr.expertStart[j]!;
    if (model.experts === 'multinomial') {
      for (let c = 0; c < model.nClasses - 1; c++) slots.push({ offset: start + c * d, times: 'x' });
    } else {
      slots.push({ offset: start, times: 'x' });
      if (fr.fittedSigma) slots.push({ offset: start + d, times: 'one' });
    }
  }
  return slots;
}

/**
 * Per-row complete-data scores and Hessians in slot coordinates (see the module comment). Built on the
 * shared per-row model (src/models/row-model.ts); allocates nothing per row.
 */
export class RowInformation {
  readonly rm: RowModel;
  readonly model: ModelSpec;
  /** Components (symmetric: 2, j = 0 ↔ z = +1). */
  readonly k: number;
  /** Slot count. */
  readonly q: number;
  /** s_ij at j·q + a. */
  readonly score: Float64Array;
  /** Σ_j h_ij (−∇² log p(y, z=j | x)) at a·q + b. */
  readonly hess: Float64Array;
  /** Cov_{z|x,y}[s] at a·q + b. */
  readonly missing: Float64Array;
  private readonly mean: Float64Array;
  /** Slots per expert and the first expert slot (general model). */
  private readonly perExpert: number;

  constructor(model: ModelSpec, params: Float64Array) {
    this.model = model;
    this.rm = new RowModel(model, params);
    this.k = this.rm.k;
    this.q = informationSlots(model).length;
    this.score = new Float64Array(this.k * this.q);
    this.hess = new Float64Array(this.q * this.q);
    this.missing = new Float64Array(this.q * this.q);
    this.mean = new Float64Array(this.q);
    this.perExpert = model.symmetric ? 1 : (this.q - (model.k - 1)) / model.k;
  }

  /** Evaluates row (x at `off`, y); fills score, hess, missing and rm.h. Returns ℓ_i. */
  evaluate(x: Float64Array, off: number, y: number): number {
    const { rm, q, k, score, hess } = this;
    const ell = rm.evaluate(x, off, y);
    score.fill(0);
    hess.fill(0);
    if (this.model.symmetric) this.symmetricTerms(y);
    else this.generalTerms(y);
    // Covariance of the score over the posterior of z.
    const mean = this.mean;
    mean.fill(0);
    for (let j = 0; j < k; j++) for (let a = 0; a < q; a++) mean[a] += rm.h[j]! * score[j * q + a]!;
    const miss = this.missing;
    for (let a = 0; a < q; a++) {
      for (let b = a; b < q; b++) {
        let acc = 0;
        for (let j = 0; j < k; j++) acc += rm.h[j]! * score[j * q + a]! * score[j * q + b]!;
        acc -= mean[a]! * mean[b]!;
        miss[a * q + b] = acc;
        miss[b * q + a] = acc;
      }
    }
    return ell;
  }

  private symmetricTerms(y: number): void {
    const { rm, score, hess } = this;
    const g = rm.gateScore;
    const u = rm.eta[0]!;
    const halfTanh = 0.5 * Math.tanh(0.5 * g);
    const sg = sigmoid(g);
    hess[0] = sg * (1 - sg); // gate: −∇² log sigmoid(z·g) does not depend on z
    for (let j = 0; j < 2; j++) {
      const z = j === 0 ? 1 : -1;
      score[j * 2] = 0.5 * z - halfTanh; // z(1 − σ(z g)) = (z − tanh(g/2))/2
      if (this.model.experts === 'linear') {
        score[j * 2 + 1] = (z * y - u) / rm.sigma2[0]!;
      } else {
        score[j * 2 + 1] = z * y * (1 - sigmoid(z * y * u));
      }
    }
    if (this.model.experts === 'linear') {
      hess[3] = 1 / rm.sigma2[0]!;
    } else {
      const su = sigmoid(u);
      hess[3] = su * (1 - su);
    }
  }

  private generalTerms(y: number): void {
    const { rm, q, k, score, hess, model, perExpert } = this;
    const g = k - 1; // gate slots
    // Gate: score of log π_j w.r.t. row l is δ_jl − π_l; its negative Hessian diag(π) − ππᵀ is the same for all j.
    for (let l = 0; l < g; l++) {
      const pl = Math.exp(rm.logPi[l]!);
      for (let j = 0; j < k; j++) score[j * q + l] = (j === l ? 1 : 0) - pl;
      for (let m = 0; m < g; m++) {
        hess[l * q + m] = (l === m ? pl : 0) - pl * Math.exp(rm.logPi[m]!);
      }
    }
    for (let j = 0; j < k; j++) {
      const e = g + j * perExpert; // first slot of expert j
      const hj = rm.h[j]!;
      if (model.experts === 'linear') {
        const r = y - rm.eta[j]!;
        const iv = 1 / rm.sigma2[j]!;
        score[j * q + e] = r * iv;
        hess[e * q + e] = hj * iv;
        if (perExpert === 2) {
          score[j * q + e + 1] = 0.5 * r * r * iv * iv - 0.5 * iv;
          hess[e * q + e + 1] = hess[(e + 1) * q + e] = hj * r * iv * iv;
          hess[(e + 1) * q + e + 1] = hj * (r * r * iv * iv * iv - 0.5 * iv * iv);
        }
      } else if (model.experts === 'logistic') {
        const pj = rm.probs[j]!;
        score[j * q + e] = y - pj;
        hess[e * q + e] = hj * pj * (1 - pj);
      } else {
        const C = model.nClasses;
        for (let c = 0; c < C - 1; c++) {
          const pc = rm.probs[j * C + c]!;
          score[j * q + e + c] = (y === c ? 1 : 0) - pc;
          for (let c2 = 0; c2 < C - 1; c2++) {
            hess[(e + c) * q + e + c2] = hj * ((c === c2 ? pc : 0) - pc * rm.probs[j * C + c2]!);
          }
        }
      }
    }
  }
}

/** One entry (row, col, value) of the penalty's Hessian; the list holds both (i, j) and (j, i). */
interface SparseEntry { row: number; col: number; value: number }

/** Hessian of the ridge penalty of ALGORITHMS.md §2 in the free layout (it adds to I_c). */
export function penaltyHessian(model: ModelSpec, params: Float64Array): SparseEntry[] {
  const lambda = model.ridge;
  const out: SparseEntry[] = [];
  if (lambda === 0) return out;
  const { d, k } = model;
  const diagonal = (start: number, value: number): void => {
    for (let f = 0; f < d; f++) if (isPenalised(model, f)) out.push({ row: start + f, col: start + f, value });
  };
  if (model.symmetric) {
    diagonal(0, lambda);
    diagonal(d, model.experts === 'linear' ? lambda / (model.noise as number) ** 2 : lambda);
    return out;
  }
  const fl = fullLayout(model);
  const fr = freeLayout(model);
  for (let l = 0; l < k - 1; l++) diagonal(l * d, lambda);
  for (let j = 0; j < k; j++) {
    const start = fr.expertStart[j]!;
    if (model.experts === 'linear') {
      // P_j = λ‖β_j‖²_{I'} / (2σ_j²).
      const s2 = params[fl.sigma2 + j]!;
      diagonal(start, lambda / s2);
      if (fr.fittedSigma) {
        let sq = 0;
        for (let f = 0; f < d; f++) {
          if (!isPenalised(model, f)) continue;
          const b = params[fl.coef + j * d + f]!;
          sq += b * b;
          const cross = -lambda * b / (s2 * s2);
          out.push({ row: start + f, col: start + d, value: cross }, { row: start + d, col: start + f, value: cross });
        }
        out.push({ row: start + d, col: start + d, value: lambda * sq / (s2 * s2 * s2) });
      }
    } else {
      for (let r = 0; r < fr.expertSize / d; r++) diagonal(start + r * d, lambda);
    }
  }
  return out;
}

/** Which per-row matrix an assembly or product uses. */
type Part = 'hess' | 'missing';

/** The information operators of one (data, model, θ), assembled densely or applied matrix-free. */
class InformationOperators {
  readonly p: number;
  readonly slots: Slot[];
  private readonly row: RowInformation;
  private readonly penalty: SparseEntry[];

  constructor(private readonly data: ProblemData, private readonly model: ModelSpec, params: Float64Array) {
    this.p = freeLayout(model).p;
    this.slots = informationSlots(model);
    this.row = new RowInformation(model, params);
    this.penalty = penaltyHessian(model, params);
  }

  /**
   * Σ_i s_i E_i part_i E_iᵀ restricted to the free indices [lo, hi) (a union of whole slots), as a dense
   * (hi−lo)² matrix; with part 'hess' the penalty's Hessian is added (that is I_c).
   */
  assemble(part: Part, lo = 0, hi = this.p): Float64Array {
    const { data, row, slots } = this;
    const { x, y, s, n, d } = data;
    const m = hi - lo;
    const out = new Float64Array(m * m);
    const active = slots.map((sl, a) => ({ ...sl, a })).filter((sl) => sl.offset >= lo && sl.offset < hi);
    const q = row.q;
    for (let i = 0; i < n; i++) {
      const si = s === null ? 1 : s[i]!;
      if (si === 0) continue;
      const xo = i * d;
      row.evaluate(x, xo, y[i]!);
      const mat = part === 'hess' ? row.hess : row.missing;
      for (let ia = 0; ia < active.length; ia++) {
        const A = active[ia]!;
        const oa = A.offset - lo;
        for (let ib = ia; ib < active.length; ib++) {
          const B = active[ib]!;
          const c = si * mat[A.a * q + B.a]!;
          if (c === 0) continue;
          const ob = B.offset - lo;
          // Slots are in increasing offset order, so every block written here lies in the upper triangle.
          if (A.times === 'x' && B.times === 'x') {
            if (ia === ib) addWeightedOuterUpper(out, m, oa, oa, c, x, xo, d);
            else for (let f = 0; f < d; f++) {
              const cf = c * x[xo + f]!;
              const r = (oa + f) * m + ob;
              for (let g = 0; g < d; g++) out[r + g] += cf * x[xo + g]!;
            }
          } else if (A.times === 'x') {
            for (let f = 0; f < d; f++) out[(oa + f) * m + ob] += c * x[xo + f]!;
          } else if (B.times === 'x') {
            for (let f = 0; f < d; f++) out[oa * m + ob + f] += c * x[xo + f]!;
          } else {
            out[oa * m + ob] += c;
          }
        }
      }
    }
    symmetrizeUpper(out, m);
    if (part === 'hess') {
      for (const e of this.penalty) {
        if (e.row >= lo && e.row < hi && e.col >= lo && e.col < hi) out[(e.row - lo) * m + e.col - lo] += e.value;
      }
    }
    return out;
  }

  /** out = (Σ_i s_i E_i part_i E_iᵀ [+ penalty]) v over the free indices [lo, hi); v and out have length hi−lo. */
  apply(part: Part, v: Float64Array, out: Float64Array, lo = 0, hi = this.p): void {
    const { data, row, slots } = this;
    const { x, y, s, n, d } = data;
    const q = row.q;
    const active = slots.map((sl, a) => ({ ...sl, a })).filter((sl) => sl.offset >= lo && sl.offset < hi);
    const proj = new Float64Array(q);
    const coef = new Float64Array(q);
    out.fill(0);
    for (let i = 0; i < n; i++) {
      const si = s === null ? 1 : s[i]!;
      if (si === 0) continue;
      const xo = i * d;
      row.evaluate(x, xo, y[i]!);
      const mat = part === 'hess' ? row.hess : row.missing;
      for (const A of active) { // E_iᵀ v
        const o = A.offset - lo;
        if (A.times === 'one') { proj[A.a] = v[o]!; continue; }
        let acc = 0;
        for (let f = 0; f < d; f++) acc += v[o + f]! * x[xo + f]!;
        proj[A.a] = acc;
      }
      for (const A of active) {
        let acc = 0;
        for (const B of active) acc += mat[A.a * q + B.a]! * proj[B.a]!;
        coef[A.a] = si * acc;
      }
      for (const A of active) { // out += E_i (coef)
        const o = A.offset - lo;
        const c = coef[A.a]!;
        if (A.times === 'one') { out[o] += c; continue; }
        if (c === 0) continue;
        for (let f = 0; f < d; f++) out[o + f] += c * x[xo + f]!;
      }
    }
    if (part === 'hess') {
      for (const e of this.penalty) {
        if (e.row >= lo && e.row < hi && e.col >= lo && e.col < hi) out[e.row - lo] += e.value * v[e.col - lo]!;
      }
    }
  }

  /** diag(I_c) over [lo, hi) in one pass (the Jacobi preconditioner of the CG solves). */
  completeDiagonal(lo: number, hi: number): Float64Array {
    const { data, row, slots } = this;
    const { x, y, s, n, d } = data;
    const q = row.q;
    const out = new Float64Array(hi - lo);
    const active = slots.map((sl, a) => ({ ...sl, a })).filter((sl) => sl.offset >= lo && sl.offset < hi);
    for (let i = 0; i < n; i++) {
      const si = s === null ? 1 : s[i]!;
      if (si === 0) continue;
      const xo = i * d;
      row.evaluate(x, xo, y[i]!);
      for (const A of active) {
        const c = si * row.hess[A.a * q + A.a]!;
        const o = A.offset - lo;
        if (A.times === 'one') out[o] += c;
        else for (let f = 0; f < d; f++) out[o + f] += c * x[xo + f]! * x[xo + f]!;
      }
    }
    for (const e of this.penalty) if (e.row === e.col && e.row >= lo && e.row < hi) out[e.row - lo] += e.value;
    return out;
  }

  /** Free-index ranges of I_c's diagonal blocks: the gate (or w), then each expert (or β). */
  completeBlocks(): [number, number][] {
    const fr = freeLayout(this.model);
    const blocks: [number, number][] = [];
    if (fr.gateSize > 0) blocks.push([0, fr.gateSize]);
    for (const start of fr.expertStart) blocks.push([start, start + fr.expertSize]);
    return blocks;
  }
}

function validate(data: ProblemData, model: ModelSpec, params: Float64Array, opts: InformationComputeOptions): void {
  if (data.d !== model.d || data.x.length !== data.n * data.d || data.y.length !== data.n) {
    throw new MoEError('E_SHAPE', `information: data is ${data.n}×${data.d} with ${data.y.length} targets, model d = ${model.d}`);
  }
  const size = fullLayout(model).size;
  if (params.length !== size) {
    throw new MoEError('E_SHAPE', `information: expected ${size} parameters, got ${params.length}`);
  }
  for (let t = 0; t < params.length; t++) {
    if (!Number.isFinite(params[t]!)) throw new MoEError('E_NON_FINITE', `information: parameter ${t} is not finite`);
  }
  if (!['auto', 'dense', 'lanczos'].includes(opts.method)) {
    throw new MoEError('E_OPTION', `information: unknown method '${String(opts.method)}'`);
  }
  if (!Number.isInteger(opts.steps) || opts.steps < 1) {
    throw new MoEError('E_OPTION', `information: steps must be a positive integer, got ${opts.steps}`);
  }
}

/** sqrt(diag(A⁻¹)) for SPD A (p×p), or null when A is not positive definite. */
function inverseDiagonalSqrt(a: Float64Array, p: number): number[] | null {
  const l = Float64Array.from(a);
  if (!choleskyInPlace(l, p)) return null;
  // A⁻¹ = L⁻ᵀL⁻¹, so diag(A⁻¹)_i = ‖L⁻¹ e_i‖²: one forward solve per i (L⁻¹e_i is zero above entry i).
  const out: number[] = [];
  const e = new Float64Array(p);
  for (let i = 0; i < p; i++) {
    e.fill(0);
    e[i] = 1;
    forwardSolveInPlace(l, p, e);
    let acc = 0;
    for (let t = i; t < p; t++) acc += e[t]! * e[t]!;
    out.push(Math.sqrt(acc));
  }
  return out;
}

function summary(eigenvalues: number[]): Pick<InformationResult, 'eigenvalues' | 'lambdaMax' | 'rate' | 'alpha'> {
  const lambdaMax = eigenvalues[0]!;
  return { eigenvalues, lambdaMax, rate: lambdaMax, alpha: 1 - lambdaMax };
}

function denseInformation(ops: InformationOperators, names: string[]): InformationResult {
  const p = ops.p;
  const complete = ops.assemble('hess');
  const missing = ops.assemble('missing');
  const observed = new Float64Array(p * p);
  for (let t = 0; t < p * p; t++) observed[t] = complete[t]! - missing[t]!;
  const eig = generalizedSymmetricEigenvalues(missing, complete, p);
  return {
    p, names, complete, missing, observed, ...summary(Array.from(eig)),
    standardErrors: inverseDiagonalSqrt(observed, p), method: 'dense',
  };
}

/** I_c⁻¹ v block by block: dense Cholesky for blocks ≤ maxDenseBlock, Jacobi-preconditioned CG above. */
function completeInverse(ops: InformationOperators, maxDenseBlock: number): (v: Float64Array, out: Float64Array) => void {
  const solvers = ops.completeBlocks().map(([lo, hi]) => {
    const m = hi - lo;
    if (m <= maxDenseBlock) {
      const l = ops.assemble('hess', lo, hi);
      if (!choleskyInPlace(l, m)) {
        throw new MoEError('E_SINGULAR', `information: the complete-data information block [${lo}, ${hi}) is not positive definite`);
      }
      return (v: Float64Array, out: Float64Array) => {
        const b = v.slice(lo, hi);
        choleskySolveInPlace(l, m, b);
        out.set(b, lo);
      };
    }
    const diag = ops.completeDiagonal(lo, hi);
    return (v: Float64Array, out: Float64Array) => {
      const g = v.slice(lo, hi);
      const x = new Float64Array(m);
      // CG converges in ≤ m steps in exact arithmetic; 1e-10 is far below what the Ritz values need.
      preconditionedCg((a, r) => ops.apply('hess', a, r, lo, hi), g, jacobi(diag),
        { maxIter: Math.min(2 * m, 2000), eta: 1e-10 }, x);
      out.set(x, lo);
    };
  });
  return (v, out) => { for (const solve of solvers) solve(v, out); };
}

function lanczosInformation(ops: InformationOperators, names: string[], steps: number,
  maxDenseBlock: number): InformationResult {
  const p = ops.p;
  const solve = completeInverse(ops, maxDenseBlock);
  const { values } = lanczos({ n: p, steps, applyA: (v, out) => ops.apply('missing', v, out), solveB: solve });
  return { p, names, ...summary(Array.from(values)), standardErrors: null, method: 'lanczos' };
}

/**
 * Complete, missing and observed information over the free parameters at θ (flat full layout), the MIM's
 * eigenvalues (descending), λ_max, the predicted rate, α = 1 − λ_max and standard errors (ALGORITHMS.md §7).
 * 'auto' is dense for p ≤ 2000 and matrix-free Lanczos above. Throws E_SINGULAR when I_c is not positive
 * definite (the MIM is then undefined).
 */
export function computeInformation(data: ProblemData, model: ModelSpec, params: Float64Array,
  opts: InformationComputeOptions): InformationResult {
  validate(data, model, params, opts);
  const ops = new InformationOperators(data, model, params);
  const names = freeParameterNames(model);
  const method = opts.method === 'auto' ? (ops.p <= DENSE_LIMIT ? 'dense' : 'lanczos') : opts.method;
  if (method === 'dense') return denseInformation(ops, names);
  return lanczosInformation(ops, names, opts.steps, opts.maxDenseBlock ?? DENSE_LIMIT);
}
