/**
 * The gate's Kronecker preconditioner for Newton-CG (docs/ALGORITHMS.md §3; native/core/src/kronecker.rs).
 *
 * The gate's curvature is −H = Σ_i s_i M_i ⊗ x_i x_iᵀ + λI', with M_i = diag(π_i) − π_i π_iᵀ over the k−1 free
 * classes. Replacing every M_i by their weighted mean C gives −H ≈ S·C ⊗ Ĝ + λI' with Ĝ = Σ s x xᵀ / S, whose
 * inverse is two small Cholesky solves: Ĝ's (d×d) and C's ((k−1)×(k−1), from a fixed sample of rows at each
 * Newton iterate). Unlike the Jacobi preconditioner it sees the features' correlations and scales and the
 * classes' coupling.
 */
import { choleskyInPlace, choleskySolveInPlace } from '../linalg/cholesky.js';
import { weightedGrams } from '../linalg/gram.js';

/** Rows in the sample that C is averaged over: rows ⌊j·n/count⌋, j < count = min(n, SAMPLE_ROWS). */
export const SAMPLE_ROWS = 512;
/** Ĝ's and C's diagonals are scaled by 1 + JITTER (see `spdFactor`): a preconditioner needs to be SPD, not exact. */
const JITTER = 1e-6;
/**
 * With a ridge, μ moves at every Newton iterate (with C's trace); Ĝ + μI' is factored again only when μ has
 * moved by more than this factor since the factor in hand was built (a d×d factor is O(d³); a
 * preconditioner's μ need not be exact). As native/core/src/kronecker.rs `MU_REUSE_RATIO`.
 */
const MU_REUSE_RATIO = 1.25;

/** Whether Ĝ's factor built with ridge term `built` serves for `mu`: the same value, or both positive and close. */
function closeEnough(built: number, mu: number): boolean {
  return Object.is(built, mu) || (built > 0 && mu > 0 && mu <= built * MU_REUSE_RATIO && built <= mu * MU_REUSE_RATIO);
}

/** The sample's row indices. */
export function sampleRows(n: number): number[] {
  const count = Math.min(n, SAMPLE_ROWS);
  // j·n < 2^53 for any n a Float64Array can index.
  return Array.from({ length: count }, (_, j) => Math.floor((j * n) / count));
}

/** What the gate's preconditioner needs from the data (rows x, n×d, with weights c). */
export class GateStatistics {
  private readonly gramMean: Float64Array;
  private readonly sampleX: Float64Array;
  private readonly sampleC: Float64Array;
  /** Ĝ + μI' factored and the μ it was built with (0 without a ridge: one factor per fit). */
  private factor: { mu: number; l: Float64Array } | null = null;

  constructor(x: Float64Array, n: number, private readonly d: number, c: Float64Array,
    private readonly intercept: boolean) {
    let total = 0;
    for (let i = 0; i < n; i++) total += c[i]!;
    this.gramMean = weightedGrams(x, n, d, c, 1, new Float64Array(d * d));
    for (let q = 0; q < d * d; q++) this.gramMean[q] /= total;
    const rows = sampleRows(n);
    this.sampleX = new Float64Array(rows.length * d);
    this.sampleC = new Float64Array(rows.length);
    rows.forEach((i, j) => {
      this.sampleX.set(x.subarray(i * d, (i + 1) * d), j * d);
      this.sampleC[j] = c[i]!;
    });
  }

  /** The preconditioner's inverse at the gate V ((k−1)×d) for Σ c = sumC and ridge λ: z = M⁻¹ r. */
  at(V: Float64Array, sumC: number, ridge: number): (r: Float64Array, z: Float64Array) => void {
    const d = this.d;
    const m = V.length / d;
    const cls = classCovariance(V, m, d, this.sampleX, this.sampleC);
    // S·C ⊗ Ĝ + λI' ≈ S·C ⊗ (Ĝ + μI') with μ = λ/(S·c̄), c̄ = tr(C)/m: exact when C = c̄I.
    let cBar = 0;
    for (let a = 0; a < m; a++) cBar += cls[a * m + a]!;
    cBar /= m;
    const mu = ridge > 0 ? ridge / (sumC * cBar) : 0;
    if (this.factor === null || !closeEnough(this.factor.mu, mu)) {
      const g = Float64Array.from(this.gramMean);
      for (let f = this.intercept ? 1 : 0; f < d; f++) g[f * d + f] += mu;
      this.factor = { mu, l: spdFactor(g, d) };
    }
    const gramFactor = this.factor.l;
    const classFactor = spdFactor(cls, m);
    const scale = 1 / sumC;
    const column = new Float64Array(m);
    return (r, z) => {
      z.set(r);
      for (let a = 0; a < m; a++) choleskySolveInPlace(gramFactor, d, z.subarray(a * d, (a + 1) * d));
      for (let f = 0; f < d; f++) {
        for (let a = 0; a < m; a++) column[a] = z[a * d + f]!;
        choleskySolveInPlace(classFactor, m, column);
        for (let a = 0; a < m; a++) z[a * d + f] = column[a]! * scale;
      }
    };
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
