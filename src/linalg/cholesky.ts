/**
 * Cholesky factorisation and solves with the fixed rules of docs/ALGORITHMS.md §6: a pivot
 * ≤ 1e-12·max(diag A) means "not positive definite"; M-step solves recover once by adding
 * τ = 1e-8·mean(diag A) to the diagonal (event `ridge-fallback`), and a second failure is `E_SINGULAR`.
 */
import { MoEError } from '../errors.js';
import type { RecoveryEvent } from '../types.js';

const PIVOT_RELATIVE = 1e-12;
const FALLBACK_RELATIVE = 1e-8;

/**
 * In-place lower Cholesky factor of the p×p row-major SPD matrix `a` (row-oriented, left-looking). Only the
 * lower triangle is read and written; the strict upper triangle is zeroed. Returns false when a pivot falls
 * at or below the threshold (the matrix is then partially overwritten).
 */
export function choleskyInPlace(a: Float64Array, p: number): boolean {
  let maxDiag = 0;
  for (let i = 0; i < p; i++) maxDiag = Math.max(maxDiag, a[i * p + i]!);
  const threshold = PIVOT_RELATIVE * maxDiag;
  for (let i = 0; i < p; i++) {
    const ri = i * p;
    for (let j = 0; j <= i; j++) {
      const rj = j * p;
      let s = a[ri + j]!;
      for (let m = 0; m < j; m++) s -= a[ri + m]! * a[rj + m]!;
      if (i === j) {
        if (!(s > threshold) || !(s > 0)) return false;
        a[ri + i] = Math.sqrt(s);
      } else {
        a[ri + j] = s / a[rj + j]!;
      }
    }
    for (let j = i + 1; j < p; j++) a[ri + j] = 0;
  }
  return true;
}

/** Solves L Lᵀ x = b in place in `b`, with `l` the factor from `choleskyInPlace`. */
export function choleskySolveInPlace(l: Float64Array, p: number, b: Float64Array): void {
  for (let i = 0; i < p; i++) {
    let s = b[i]!;
    const ri = i * p;
    for (let m = 0; m < i; m++) s -= l[ri + m]! * b[m]!;
    b[i] = s / l[ri + i]!;
  }
  for (let i = p - 1; i >= 0; i--) {
    let s = b[i]!;
    for (let m = i + 1; m < p; m++) s -= l[m * p + i]! * b[m]!;
    b[i] = s / l[i * p + i]!;
  }
}

/**
 * Solves L Lᵀ x = b in place as `choleskySolveInPlace`, except that the back substitution sums from row p − 1
 * down (the order native/core/src/linalg.rs `factor_solve_in_place` keeps, which lets the native solve of
 * several right-hand sides share each pass over L): the Kronecker preconditioner's solves.
 */
export function factorSolveInPlace(l: Float64Array, p: number, b: Float64Array): void {
  forwardSolveInPlace(l, p, b);
  for (let i = p - 1; i >= 0; i--) {
    let s = b[i]!;
    for (let m = p - 1; m > i; m--) s -= l[m * p + i]! * b[m]!;
    b[i] = s / l[i * p + i]!;
  }
}

/** Forward substitution L x = b in place (L lower, from `choleskyInPlace`). */
export function forwardSolveInPlace(l: Float64Array, p: number, b: Float64Array): void {
  for (let i = 0; i < p; i++) {
    let s = b[i]!;
    const ri = i * p;
    for (let m = 0; m < i; m++) s -= l[ri + m]! * b[m]!;
    b[i] = s / l[ri + i]!;
  }
}

/** Back substitution Lᵀ x = b in place. */
export function backSolveTransposeInPlace(l: Float64Array, p: number, b: Float64Array): void {
  for (let i = p - 1; i >= 0; i--) {
    let s = b[i]!;
    for (let m = i + 1; m < p; m++) s -= l[m * p + i]! * b[m]!;
    b[i] = s / l[i * p + i]!;
  }
}

/**
 * Solves the SPD system A x = b for an M-step (`a` is consumed; `b` is overwritten with x), with the §6
 * recovery. `block` names the sub-problem in the event (e.g. 'expert 2', 'gate').
 */
export function solveSpdWithRecovery(a: Float64Array, p: number, b: Float64Array, block: string,
  events: RecoveryEvent[]): void {
  const backup = Float64Array.from(a);
  if (choleskyInPlace(a, p)) {
    choleskySolveInPlace(a, p, b);
    return;
  }
  let meanDiag = 0;
  for (let i = 0; i < p; i++) meanDiag += backup[i * p + i]!;
  meanDiag /= p;
  const tau = FALLBACK_RELATIVE * meanDiag;
  a.set(backup);
  for (let i = 0; i < p; i++) a[i * p + i] += tau;
  if (!(tau > 0) || !choleskyInPlace(a, p)) {
    // A diagonal that overflowed (values near 1e154 or more, squared) is not singular data but unscaled data.
    const why = Number.isFinite(tau) ? `singular even after adding a ridge of ${tau}`
      : 'not finite: the data overflow float64 when squared (rescale X and y)';
    throw new MoEError('E_SINGULAR', `${block}: the linear system is ${why}`, { block, ridge: tau });
  }
  events.push({ type: 'ridge-fallback', block, ridge: tau });
  choleskySolveInPlace(a, p, b);
}
