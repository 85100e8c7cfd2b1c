/**
 * init 'kmeans' (docs/ALGORITHMS.md §5.2): the k-means-style start that MATH.md §7 compares the moments
 * initialiser against. Rows are points z_i = [x̃_i, √p·ỹ_i] — every non-intercept feature and y standardised
 * by its weighted mean and standard deviation, y scaled so that it weighs as much as all p features together
 * (otherwise p isotropic feature columns drown the one column that tells the experts apart). Weighted k-means
 * with k-means++ seeding from the seeded RNG and Lloyd iterations; the clusters are then hard
 * responsibilities for one M-step, exactly as the 'random' start uses its random ones.
 */
import type { ComputeBackend, FitSpec, ModelSpec, ProblemData } from '../backends/backend.js';
import { Rng } from '../data/rng.js';
import { initFromAssignment } from './init.js';

export const KMEANS_INIT = {
  /** Lloyd iterations at most; they stop earlier when no assignment changes. */
  maxIter: 50,
};

function rowWeight(data: ProblemData, i: number): number {
  return data.s === null ? 1 : data.s[i]!;
}

/** The n×(p+1) standardised points [x̃, √p·ỹ] (row-major). */
function standardisedPoints(data: ProblemData, model: ModelSpec): { z: Float64Array; m: number } {
  const { x, y, n, d } = data;
  const f0 = model.intercept ? 1 : 0;
  const p = d - f0;
  const m = p + 1;
  const z = new Float64Array(n * m);
  for (let i = 0; i < n; i++) {
    for (let f = 0; f < p; f++) z[i * m + f] = x[i * d + f0 + f]!;
    z[i * m + p] = y[i]!;
  }
  // Row by row, every column's sums at once: each column's sum runs over the rows in order.
  let sw = 0;
  const mean = new Float64Array(m);
  for (let i = 0; i < n; i++) {
    const w = rowWeight(data, i);
    sw += w;
    for (let c = 0; c < m; c++) mean[c] += w * z[i * m + c]!;
  }
  for (let c = 0; c < m; c++) mean[c] /= sw;
  const variance = new Float64Array(m);
  for (let i = 0; i < n; i++) {
    const w = rowWeight(data, i);
    for (let c = 0; c < m; c++) { const dev = z[i * m + c]! - mean[c]!; variance[c] += w * (dev * dev); }
  }
  const scale = new Float64Array(m);
  for (let c = 0; c < m; c++) {
    const sd = Math.sqrt(variance[c]! / sw);
    // A constant column carries no information: it becomes 0 rather than a division by zero.
    scale[c] = (sd > 0 ? 1 / sd : 0) * (c === p ? Math.sqrt(p) : 1);
  }
  for (let i = 0; i < n; i++) for (let c = 0; c < m; c++) z[i * m + c] = (z[i * m + c]! - mean[c]!) * scale[c]!;
  return { z, m };
}

/**
 * ‖z_i − centre_j‖² as four interleaved partial sums (entry c into sum c mod 4) added as (s₀ + s₁) + (s₂ + s₃):
 * the order moe_core::kmeans computes four entries at a time on AVX2, so both find the same clusters, bit for
 * bit (a nearest centre is a discrete choice). Four independent sums are faster here too.
 */
function squaredDistance(z: Float64Array, i: number, centres: Float64Array, j: number, m: number): number {
  const a = i * m; const b = j * m;
  const whole = m - (m % 4);
  let s0 = 0; let s1 = 0; let s2 = 0; let s3 = 0;
  for (let c = 0; c < whole; c += 4) {
    const e0 = z[a + c]! - centres[b + c]!; s0 += e0 * e0;
    const e1 = z[a + c + 1]! - centres[b + c + 1]!; s1 += e1 * e1;
    const e2 = z[a + c + 2]! - centres[b + c + 2]!; s2 += e2 * e2;
    const e3 = z[a + c + 3]! - centres[b + c + 3]!; s3 += e3 * e3;
  }
  // At most three entries are left: into s₀, s₁, s₂ in turn.
  if (whole < m) { const e = z[a + whole]! - centres[b + whole]!; s0 += e * e; }
  if (whole + 1 < m) { const e = z[a + whole + 1]! - centres[b + whole + 1]!; s1 += e * e; }
  if (whole + 2 < m) { const e = z[a + whole + 2]! - centres[b + whole + 2]!; s2 += e * e; }
  return (s0 + s1) + (s2 + s3);
}

/** k-means++: the first centre by weight, each next one with probability ∝ s_i·D_i² (one uniform each). */
function seedCentres(data: ProblemData, z: Float64Array, m: number, k: number, rng: Rng): Float64Array {
  const n = data.n;
  const centres = new Float64Array(k * m);
  const dist = new Float64Array(n).fill(Infinity);
  const pick = (weightOf: (i: number) => number): number => {
    let total = 0;
    for (let i = 0; i < n; i++) total += weightOf(i);
    let u = rng.uniform() * total;
    for (let i = 0; i < n; i++) {
      u -= weightOf(i);
      if (u < 0) return i;
    }
    // Rounding (or every point on a centre already): the last row with positive weight.
    for (let i = n - 1; i >= 0; i--) if (weightOf(i) > 0) return i;
    return n - 1;
  };
  for (let j = 0; j < k; j++) {
    const chosen = j === 0 ? pick((i) => rowWeight(data, i)) : pick((i) => rowWeight(data, i) * dist[i]!);
    centres.set(z.subarray(chosen * m, (chosen + 1) * m), j * m);
    for (let i = 0; i < n; i++) dist[i] = Math.min(dist[i]!, squaredDistance(z, i, centres, j, m));
  }
  return centres;
}

/** Lloyd iterations from the seeded centres; returns the final assignment. An emptied cluster keeps its centre. */
function lloyd(data: ProblemData, z: Float64Array, m: number, k: number, centres: Float64Array): Int32Array {
  const n = data.n;
  const assignment = new Int32Array(n).fill(-1);
  for (let it = 0; it < KMEANS_INIT.maxIter; it++) {
    let changed = false;
    for (let i = 0; i < n; i++) {
      let best = 0; let bestDist = Infinity;
      for (let j = 0; j < k; j++) {
        const dj = squaredDistance(z, i, centres, j, m);
        if (dj < bestDist) { bestDist = dj; best = j; }
      }
      if (assignment[i] !== best) { assignment[i] = best; changed = true; }
    }
    if (!changed) break;
    const sums = new Float64Array(k * m);
    const mass = new Float64Array(k);
    for (let i = 0; i < n; i++) {
      const w = rowWeight(data, i);
      const j = assignment[i]!;
      mass[j] += w;
      for (let c = 0; c < m; c++) sums[j * m + c] += w * z[i * m + c]!;
    }
    for (let j = 0; j < k; j++) {
      if (!(mass[j]! > 0)) continue;
      for (let c = 0; c < m; c++) centres[j * m + c] = sums[j * m + c]! / mass[j]!;
    }
  }
  return assignment;
}

/** Why `init: 'kmeans'` does not apply to this model, or null when it does. */
export function kmeansUnsupportedReason(model: { experts: string; symmetric: boolean; k: number }): string | null {
  if (model.experts !== 'linear') return `it clusters a real-valued y with x and needs linear experts, got ${model.experts}`;
  if (model.symmetric) return "symmetric models are not supported (it is the comparison start of init 'moments', which needs general models)";
  if (model.k < 2) return `it needs k ≥ 2 experts, got k = ${model.k}`;
  return null;
}

/**
 * init 'kmeans'' clusters, one component index per row, deterministic given `seed`: the TypeScript reference
 * of `ComputeBackend.kmeansClusters` (moe_core::kmeans_clusters on the native backends).
 */
export function kmeansClusters(data: ProblemData, model: ModelSpec, seed: number): Uint32Array {
  const { z, m } = standardisedPoints(data, model);
  const centres = seedCentres(data, z, m, model.k, new Rng(seed >>> 0));
  return Uint32Array.from(lloyd(data, z, m, model.k, centres));
}

/** The two stages of the start that read every row many times, and run on a backend. */
export type KmeansStages = Pick<ComputeBackend, 'kmeansClusters' | 'startFromAssignment'>;

/** Both stages in TypeScript (the reference's code). */
export const KMEANS_STAGES_IN_TYPESCRIPT: KmeansStages = {
  kmeansClusters,
  startFromAssignment: (data, model, fit, assignment) => initFromAssignment(data, model, fit, assignment, []),
};

/**
 * θ_0 for `init: 'kmeans'` (flat full layout), deterministic given `seed` (the fit's seed + restart index):
 * the clusters, then one M-step from them. `stages`: where those run (the estimator gives the fit's backend;
 * the same result to rounding). Its recovery events are not reported.
 */
export function kmeansInit(data: ProblemData, model: ModelSpec, fit: FitSpec, seed: number,
  stages: KmeansStages = KMEANS_STAGES_IN_TYPESCRIPT): Float64Array {
  return stages.startFromAssignment(data, model, fit, stages.kmeansClusters(data, model, seed));
}
