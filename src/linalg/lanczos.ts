/**
 * Lanczos with full re-orthogonalisation for the leading eigenvalues of a symmetric operator, or of the
 * generalized problem A v = λ B v (B SPD) in the B inner product (docs/ALGORITHMS.md §6). Matrix-free: A is
 * given by products, B only through solves. This is how the MIM's top eigenvalues are found for large p
 * (A = I_m, B = I_c, neither formed).
 *
 * The iteration runs on M = B⁻¹A, which is self-adjoint in ⟨u, v⟩_B = uᵀBv. It keeps Z_l = B q_l next to each
 * Lanczos vector q_l so that every B inner product is a plain dot product and B itself is never applied:
 * for w = B⁻¹(A q_j), B w = A q_j exactly, and re-orthogonalising w against q_l updates Bw against Z_l.
 */
import { MoEError } from '../errors.js';
import { Rng } from '../data/rng.js';
import { symmetricEigen } from './eigen.js';

export interface LanczosOptions {
  /** Dimension of the operator. */
  n: number;
  /** Writes A·v into out (A symmetric). */
  applyA: (v: Float64Array, out: Float64Array) => void;
  /** Writes B⁻¹·v into out (B SPD). Omit for the standard problem (B = I). */
  solveB?: (v: Float64Array, out: Float64Array) => void;
  /** Lanczos steps (Krylov dimension), default 60, capped at n. */
  steps?: number;
  /** Seed of the random start vector (default 0). */
  seed?: number;
}

export interface LanczosResult {
  /** Ritz values, descending (the leading ones converge first). */
  values: Float64Array;
  /** Steps actually taken (fewer than asked when an invariant subspace is found). */
  steps: number;
}

function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

export function lanczos(opts: LanczosOptions): LanczosResult {
  const { n, applyA, seed = 0 } = opts;
  if (!Number.isInteger(n) || n < 1) throw new MoEError('E_OPTION', `lanczos: dimension must be ≥ 1, got ${n}`);
  const steps = Math.min(opts.steps ?? 60, n);
  if (!Number.isInteger(steps) || steps < 1) throw new MoEError('E_OPTION', `lanczos: steps must be ≥ 1, got ${opts.steps}`);
  const solveB = opts.solveB ?? ((v: Float64Array, out: Float64Array) => out.set(v));

  // Start: q₁ = B⁻¹z / ‖B⁻¹z‖_B for a random z, so that B q₁ = z / norm is known without applying B.
  const rng = new Rng(seed >>> 0);
  const z0 = Float64Array.from({ length: n }, () => rng.normal());
  const q0 = new Float64Array(n);
  solveB(z0, q0);
  const norm0 = Math.sqrt(dot(q0, z0));
  if (!(norm0 > 0)) throw new MoEError('E_SINGULAR', 'lanczos: B is not positive definite');
  const qs: Float64Array[] = [q0.map((a) => a / norm0)];
  const zs: Float64Array[] = [z0.map((a) => a / norm0)];
  const alpha: number[] = [];
  const beta: number[] = [];
  const aq = new Float64Array(n);
  for (let j = 0; j < steps; j++) {
    const q = qs[j]!;
    applyA(q, aq);
    alpha.push(dot(q, aq));
    if (j === steps - 1) break;
    const w = new Float64Array(n);
    solveB(aq, w);
    const bw = Float64Array.from(aq);
    // Full re-orthogonalisation against every earlier vector, twice ("twice is enough").
    for (let pass = 0; pass < 2; pass++) {
      for (let l = 0; l <= j; l++) {
        const c = dot(w, zs[l]!);
        const ql = qs[l]!;
        const zl = zs[l]!;
        for (let i = 0; i < n; i++) {
          w[i] -= c * ql[i]!;
          bw[i] -= c * zl[i]!;
        }
      }
    }
    const b = Math.sqrt(Math.max(dot(w, bw), 0));
    // An (almost) invariant Krylov subspace: its Ritz values are exact eigenvalues; stop there.
    if (!(b > 1e-12 * Math.max(1, Math.abs(alpha[j]!)))) break;
    beta.push(b);
    qs.push(w.map((a) => a / b));
    zs.push(bw.map((a) => a / b));
  }
  const m = alpha.length;
  const t = new Float64Array(m * m);
  for (let i = 0; i < m; i++) {
    t[i * m + i] = alpha[i]!;
    if (i + 1 < m) {
      t[i * m + i + 1] = beta[i]!;
      t[(i + 1) * m + i] = beta[i]!;
    }
  }
  return { values: symmetricEigen(t, m).values, steps: m };
}
