/**
 * The Kronecker preconditioner for Newton-CG on the softmax problems of the general model, the gate and the
 * logistic / multinomial experts (docs/ALGORITHMS.md §3; native/core/src/kronecker.rs).
 *
 * A problem with row weights c (the gate: s; expert j: s·h_j) has the curvature −H = Σ_i c_i M_i ⊗ x_i x_iᵀ + λI',
 * with M_i = diag(π_i) − π_i π_iᵀ over its m free classes. Replacing every M_i by their c-weighted mean C and
 * x xᵀ by the data's mean Ĝ = Σ s x xᵀ / S gives −H ≈ (Σc)·C ⊗ Ĝ + λI', whose inverse is two small Cholesky
 * solves: Ĝ's (d×d, shared by every problem) and C's (m×m, from a fixed sample of rows at each Newton iterate).
 * Unlike the Jacobi preconditioner it sees the features' correlations and scales and the classes' coupling.
 */
import { choleskyInPlace, factorSolveInPlace } from '../linalg/cholesky.js';
import { weightedGrams } from '../linalg/gram.js';

/** Rows in the sample that C is averaged over: rows ⌊j·n/count⌋, j < count = min(n, SAMPLE_ROWS). */
export const SAMPLE_ROWS = 512;
/** Ĝ's and C's diagonals are scaled by 1 + JITTER (see `spdFactor`): a preconditioner needs to be SPD, not exact. */
const JITTER = 1e-6;
/**
 * With a ridge, each problem's μ moves at every Newton iterate (with C's trace), and the problems' μ differ. A
 * factor of Ĝ + μ_b I' serves a μ whose difference from μ_b is at most MU_REUSE_RATIO − 1 times the smallest
 * diagonal entry of Ĝ + min(μ, μ_b) I' (`serves`). As native/core/src/kronecker.rs.
 */
const MU_REUSE_RATIO = 1.25;
/** Factors of Ĝ + μI' kept for reuse, the most recently built first. */
const KEPT_FACTORS = 4;

/** Whether the factor of Ĝ + μ_b I' (`built`) serves μ (native/core/src/kronecker.rs `serves`). */
function serves(built: number, mu: number, gramDiagMin: number): boolean {
  return Object.is(built, mu) || Math.abs(mu - built) <= (MU_REUSE_RATIO - 1) * (gramDiagMin + Math.min(mu, built));
}

/** The sample's row indices. */
export function sampleRows(n: number): number[] {
  const count = Math.min(n, SAMPLE_ROWS);
  // j·n < 2^53 for any n a Float64Array can index.
  return Array.from({ length: count }, (_, j) => Math.floor((j * n) / count));
}

/** What the preconditioners need from the data (rows x, n×d, with weights s), computed once per fit. */
export class KroneckerStatistics {
  private readonly gramMean: Float64Array;
  private readonly sampleX: Float64Array;
  /** The sample's row indices (`sampleRows`). */
  private readonly sampleIndex: number[];
  /** The smallest diagonal entry of Ĝ over the penalised features (∞ without one): the scale μ is compared with. */
  private readonly gramDiagMin: number;
  /** Factors of Ĝ + μI' with the μ each was built with, the most recent first (at most KEPT_FACTORS). */
  private factors: { mu: number; l: Float64Array }[] = [];

  constructor(x: Float64Array, n: number, private readonly d: number, s: Float64Array,
    private readonly intercept: boolean) {
    let total = 0;
    for (let i = 0; i < n; i++) total += s[i]!;
    this.gramMean = weightedGrams(x, n, d, s, 1, new Float64Array(d * d));
    for (let q = 0; q < d * d; q++) this.gramMean[q] /= total;
    let gramDiagMin = Infinity;
    for (let f = intercept ? 1 : 0; f < d; f++) gramDiagMin = Math.min(gramDiagMin, this.gramMean[f * d + f]!);
    this.gramDiagMin = gramDiagMin;
    this.sampleIndex = sampleRows(n);
    this.sampleX = new Float64Array(this.sampleIndex.length * d);
    this.sampleIndex.forEach((i, j) => this.sampleX.set(x.subarray(i * d, (i + 1) * d), j * d));
  }

  /** A problem's row weights c (length n) at the sample rows. */
  sampleWeights(c: Float64Array): Float64Array {
    return Float64Array.from(this.sampleIndex, (i) => c[i]!);
  }

  /**
   * The preconditioner's inverse at V (m×d) of a problem with Σ c = sumC, ridge λ and row weights `sampleC` at
   * the sample rows: z = M⁻¹ r.
   */
  at(V: Float64Array, sumC: number, ridge: number, sampleC: Float64Array): (r: Float64Array, z: Float64Array) => void {
    const d = this.d;
    const m = V.length / d;
    const cls = classCovariance(V, m, d, this.sampleX, sampleC);
    // (Σc)·C ⊗ Ĝ + λI' ≈ (Σc)·C ⊗ (Ĝ + μI') with μ = λ/((Σc)·c̄), c̄ = tr(C)/m: exact when C = c̄I.
    let cBar = 0;
    for (let a = 0; a < m; a++) cBar += cls[a * m + a]!;
    cBar /= m;
    const mu = ridge > 0 ? ridge / (sumC * cBar) : 0;
    const gramFactor = this.gramFactor(mu);
    const classFactor = spdFactor(cls, m);
    const scale = 1 / sumC;
    const column = new Float64Array(m);
    return (r, z) => {
      z.set(r);
      for (let a = 0; a < m; a++) factorSolveInPlace(gramFactor, d, z.subarray(a * d, (a + 1) * d));
      for (let f = 0; f < d; f++) {
        for (let a = 0; a < m; a++) column[a] = z[a * d + f]!;
        factorSolveInPlace(classFactor, m, column);
        for (let a = 0; a < m; a++) z[a * d + f] = column[a]! * scale;
      }
    };
  }

  /** A factor of Ĝ + μI': the most recent kept one that `serves` μ, else a new one. */
  private gramFactor(mu: number): Float64Array {
    const kept = this.factors.find((f) => serves(f.mu, mu, this.gramDiagMin));
    if (kept !== undefined) return kept.l;
    const d = this.d;
    const g = Float64Array.from(this.gramMean);
    for (let f = this.intercept ? 1 : 0; f < d; f++) g[f * d + f] += mu;
    const l = spdFactor(g, d);
    this.factors.unshift({ mu, l });
    this.factors.length = Math.min(this.factors.length, KEPT_FACTORS);
    return l;
  }
}

/** C = Σ_j c_j M_j / Σ_j c_j over the sample at V (M_j = diag(π_j) − π_j π_jᵀ, m free classes of m+1). */
function classCovariance(V: Float64Array, m: number, d: number, x: Float64Array, c: Float64Array): Float64Array {
  const cls = new Float64Array(m * m);
  const pi = new Float64Array(m + 1);
  let total = 0;
  for (let j = 0; j < c.length; j++) {
    const w = c[j]!;
    for (let a = 0; a < m; a++) {
      let s = 0;
      for (let f = 0; f < d; f++) s += V[a * d + f]! * x[j * d + f]!;
      pi[a] = s;
    }
    pi[m] = 0;
    let top = -Infinity;
    for (let a = 0; a <= m; a++) if (pi[a]! > top) top = pi[a]!;
    let z = 0;
    for (let a = 0; a <= m; a++) {
      pi[a] = Math.exp(pi[a]! - top);
      z += pi[a]!;
    }
    for (let a = 0; a <= m; a++) pi[a] /= z;
    for (let a = 0; a < m; a++) {
      cls[a * m + a] += w * pi[a]!;
      for (let b = 0; b < m; b++) cls[a * m + b] -= w * pi[a]! * pi[b]!;
    }
    total += w;
  }
  if (total > 0) for (let q = 0; q < m * m; q++) cls[q] /= total;
  return cls;
}

/**
 * The Cholesky factor of A with its diagonal scaled by 1 + JITTER (scale-free, and SPD when A is only
 * semi-definite: repeated features, one-hot probabilities); a zero diagonal entry (a feature that is zero in
 * every row) gets the mean of the others. The identity's factor when that still fails.
 */
function spdFactor(a: Float64Array, p: number): Float64Array {
  let sum = 0;
  let count = 0;
  for (let i = 0; i < p; i++) if (a[i * p + i]! > 0) { sum += a[i * p + i]!; count++; }
  const empty = count > 0 ? sum / count : 1;
  const f = Float64Array.from(a);
  for (let i = 0; i < p; i++) f[i * p + i] = f[i * p + i]! > 0 ? f[i * p + i]! * (1 + JITTER) : empty;
  if (Number.isFinite(empty) && choleskyInPlace(f, p)) return f;
  const id = new Float64Array(p * p);
  for (let i = 0; i < p; i++) id[i * p + i] = 1;
  return id;
}
