/**
 * The named initialisations, computed before the fit (docs/ALGORITHMS.md §5.1, §5.2): which models each
 * accepts, and the start itself, its heavy stages on a backend. 'random' is not here: every backend draws it
 * itself.
 */
import type { FitSpec, ModelSpec, ProblemData } from '../backends/backend.js';
import type { InitKind } from '../types.js';
import { KMEANS_STAGES_IN_TYPESCRIPT, kmeansInit, kmeansUnsupportedReason, type KmeansStages } from './init-kmeans.js';
import { gateOnlyEm, momentSums, momentsInit, momentsUnsupportedReason, type MomentsStages } from './init-moments.js';

export type ComputedInit = Exclude<InitKind, 'random'>;

/** Every stage in TypeScript (the reference's code). */
const IN_TYPESCRIPT: MomentsStages & KmeansStages = { momentSums, gateOnlyEm, ...KMEANS_STAGES_IN_TYPESCRIPT };

type ModelShape = { experts: string; symmetric: boolean; k: number };

/** Why `init: kind` does not apply to the model, or null when it does (checked at construction: E_OPTION). */
export function initUnsupportedReason(kind: ComputedInit, model: ModelShape): string | null {
  return kind === 'moments' ? momentsUnsupportedReason(model) : kmeansUnsupportedReason(model);
}

/**
 * The starting parameters (flat full layout) of restart seed `seed`. With a `backend`, the stages that read
 * every row run on it (the fit's backend): the data passes and the EM stage of 'moments', the clusters of
 * 'kmeans' and the M-step from them, which in TypeScript cost more than the fit on a large problem. Without,
 * everything runs in TypeScript.
 */
export function computeInit(kind: ComputedInit, data: ProblemData, model: ModelSpec, fit: FitSpec, seed: number,
  backend: MomentsStages & KmeansStages = IN_TYPESCRIPT): Float64Array {
  return kind === 'moments' ? momentsInit(data, model, fit, seed, backend) : kmeansInit(data, model, fit, seed, backend);
}

/**
 * The starts of several restarts (one per seed) over the same data: as `computeInit` for each, with the
 * moments' data passes made once, since they do not depend on the seed.
 */
export function computeInits(kind: ComputedInit, data: ProblemData, model: ModelSpec, fit: FitSpec, seeds: number[],
  backend: MomentsStages & KmeansStages = IN_TYPESCRIPT): Float64Array[] {
  let sums: ReturnType<MomentsStages['momentSums']> | undefined;
  const once: MomentsStages & KmeansStages = {
    momentSums: (d, m) => (sums ??= backend.momentSums(d, m)),
    gateOnlyEm: (...args) => backend.gateOnlyEm(...args),
    kmeansClusters: (...args) => backend.kmeansClusters(...args),
    startFromAssignment: (...args) => backend.startFromAssignment(...args),
  };
  return seeds.map((seed) => computeInit(kind, data, model, fit, seed, once));
}
