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
  for (let c = 0; c < m; c++) {
    let sw = 0; let mean = 0;
    for (let i = 0; i < n; i++) { const w = rowWeight(data, i); sw += w; mean += w * z[i * m + c]!; }
    mean /= sw;
    let v = 0;
    for (let i = 0; i < n; i++) v += rowWeight(data, i) * (z[i * m + c]! - mean) ** 2;
    const sd = Math.sqrt(v / sw);
    // A constant column carries no information: it becomes 0 rather than a division by zero.
    const scale = (sd > 0 ? 1 / sd : 0) * (c === p ? Math.sqrt(p) : 1);
    for (let i = 0; i < n; i++) z[i * m + c] = (z[i * m + c]! - mean) * scale;
  }
  return { z, m };
}

function squaredDistance(z: Float64Array, i: number, centres: Float64Array, j: number, m: number): number {
  let acc = 0;
  for (let c = 0; c < m; c++) acc += (z[i * m + c]! - centres[j * m + c]!) ** 2;
  return acc;
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
