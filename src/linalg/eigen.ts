/**
 * Symmetric eigenvalue problems with the fixed rules of docs/ALGORITHMS.md §6: cyclic Jacobi (pairs i < j in
 * row order) until the off-diagonal Frobenius norm is ≤ 1e-14·‖A‖_F or 100 sweeps; the generalized problem
 * A v = λ B v (B SPD) through B = LLᵀ and the symmetric form L⁻¹ A L⁻ᵀ. Used for the MIM (A = I_m, B = I_c).
 */
import { MoEError } from '../errors.js';
import { choleskyInPlace } from './cholesky.js';

const OFF_DIAGONAL_RELATIVE = 1e-14;
const MAX_SWEEPS = 100;

export interface SymmetricEigen {
  /** Eigenvalues, descending. */
  values: Float64Array;
  /** Matching eigenvectors as the columns of a p×p row-major matrix (only when requested). */
  vectors?: Float64Array;
  sweeps: number;
}

function offDiagonalNorm(a: Float64Array, p: number): number {
  let s = 0;
  for (let i = 0; i < p; i++) for (let j = 0; j < p; j++) if (i !== j) s += a[i * p + j]! ** 2;
  return Math.sqrt(s);
}

/**
 * Eigenvalues (and optionally eigenvectors) of the p×p symmetric row-major matrix `a` by cyclic Jacobi.
 * `a` is not modified. Only the symmetric part matters: the input is symmetrised first.
 */
export function symmetricEigen(a: Float64Array, p: number, opts: { vectors?: boolean } = {}): SymmetricEigen {
  if (a.length !== p * p) throw new MoEError('E_SHAPE', `symmetricEigen: expected ${p}×${p} entries, got ${a.length}`);
  const m = new Float64Array(p * p);
  for (let i = 0; i < p; i++) for (let j = 0; j < p; j++) m[i * p + j] = 0.5 * (a[i * p + j]! + a[j * p + i]!);
  for (let t = 0; t < m.length; t++) {
    if (!Number.isFinite(m[t]!)) throw new MoEError('E_NON_FINITE', 'symmetricEigen: the matrix has non-finite entries');
  }
  const v = opts.vectors ? new Float64Array(p * p) : null;
  if (v) for (let i = 0; i < p; i++) v[i * p + i] = 1;
  let frob = 0;
  for (let t = 0; t < m.length; t++) frob += m[t]! ** 2;
  const target = OFF_DIAGONAL_RELATIVE * Math.sqrt(frob);
  let sweeps = 0;
  while (sweeps < MAX_SWEEPS && offDiagonalNorm(m, p) > target) {
    sweeps++;
    for (let i = 0; i < p - 1; i++) {
      for (let j = i + 1; j < p; j++) {
        const aij = m[i * p + j]!;
        if (aij === 0) continue;
        // Rotation angle that zeroes m[i][j] (the numerically stable form: |t| ≤ 1).
        const theta = (m[j * p + j]! - m[i * p + i]!) / (2 * aij);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let r = 0; r < p; r++) { // columns i, j
          const mri = m[r * p + i]!;
          const mrj = m[r * p + j]!;
          m[r * p + i] = c * mri - s * mrj;
          m[r * p + j] = s * mri + c * mrj;
        }
        for (let r = 0; r < p; r++) { // rows i, j
          const mir = m[i * p + r]!;
          const mjr = m[j * p + r]!;
          m[i * p + r] = c * mir - s * mjr;
          m[j * p + r] = s * mir + c * mjr;
        }
        if (v) {
          for (let r = 0; r < p; r++) {
            const vri = v[r * p + i]!;
            const vrj = v[r * p + j]!;
            v[r * p + i] = c * vri - s * vrj;
            v[r * p + j] = s * vri + c * vrj;
          }
        }
      }
    }
  }
  const order = Array.from({ length: p }, (_, i) => i).sort((x, y) => m[y * p + y]! - m[x * p + x]!);
  const values = Float64Array.from(order, (i) => m[i * p + i]!);
  if (!v) return { values, sweeps };
  const vectors = new Float64Array(p * p);
  order.forEach((src, dst) => { for (let r = 0; r < p; r++) vectors[r * p + dst] = v[r * p + src]!; });
  return { values, vectors, sweeps };
}

/**
 * Eigenvalues of A v = λ B v (A symmetric, B symmetric positive definite), descending: B = LLᵀ, then the
 * eigenvalues of C = L⁻¹ A L⁻ᵀ by Jacobi. Throws E_SINGULAR when B is not positive definite.
 */
export function generalizedSymmetricEigenvalues(a: Float64Array, b: Float64Array, p: number): Float64Array {
  if (a.length !== p * p || b.length !== p * p) {
    throw new MoEError('E_SHAPE', `generalizedSymmetricEigenvalues: expected two ${p}×${p} matrices`);
  }
  const l = Float64Array.from(b);
  if (!choleskyInPlace(l, p)) {
    throw new MoEError('E_SINGULAR', 'generalized eigenproblem: the right-hand matrix is not positive definite');
  }
  return symmetricEigen(whiten(a, l, p), p).values;
}

/** C = L⁻¹ A L⁻ᵀ for lower-triangular L (row-major), by forward substitution on columns then rows. */
export function whiten(a: Float64Array, l: Float64Array, p: number): Float64Array {
  // Y = L⁻¹ A: forward-solve each column of A.
  const y = Float64Array.from(a);
  for (let col = 0; col < p; col++) {
    for (let i = 0; i < p; i++) {
      let s = y[i * p + col]!;
      for (let m = 0; m < i; m++) s -= l[i * p + m]! * y[m * p + col]!;
      y[i * p + col] = s / l[i * p + i]!;
    }
  }
  // C = Y L⁻ᵀ = (L⁻¹ Yᵀ)ᵀ: forward-solve each row of Y.
  const c = new Float64Array(p * p);
  for (let row = 0; row < p; row++) {
    for (let i = 0; i < p; i++) {
      let s = y[row * p + i]!;
      for (let m = 0; m < i; m++) s -= l[i * p + m]! * c[row * p + m]!;
      c[row * p + i] = s / l[i * p + i]!;
    }
  }
  return c;
}
