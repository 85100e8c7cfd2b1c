/**
 * The named initialisations computed in TypeScript before a backend runs (docs/ALGORITHMS.md §5.1, §5.2):
 * which models each accepts, and the start itself. 'random' is not here: every backend draws it itself.
 */
import type { FitSpec, ModelSpec, ProblemData } from '../backends/backend.js';
import type { InitKind } from '../types.js';
import { kmeansInit, kmeansUnsupportedReason, type KmeansStages } from './init-kmeans.js';
import { momentsInit, momentsUnsupportedReason, type MomentsStages } from './init-moments.js';

export type ComputedInit = Exclude<InitKind, 'random'>;

type ModelShape = { experts: string; symmetric: boolean; k: number };

/** Why `init: kind` does not apply to the model, or null when it does (checked at construction: E_OPTION). */
export function initUnsupportedReason(kind: ComputedInit, model: ModelShape): string | null {
  return kind === 'moments' ? momentsUnsupportedReason(model) : kmeansUnsupportedReason(model);
}

/**
 * The starting parameters (flat full layout) of restart seed `seed`. With a `backend`, the stages that read
 * every row many times run on it (the fit's backend): the EM stage of 'moments', the clusters of 'kmeans'
 * and the M-step from them, which in TypeScript cost more than the fit on a large problem. Without,
 * everything runs in TypeScript.
 */
export function computeInit(kind: ComputedInit, data: ProblemData, model: ModelSpec, fit: FitSpec, seed: number,
  backend?: MomentsStages & KmeansStages): Float64Array {
  return kind === 'moments' ? momentsInit(data, model, fit, seed, backend) : kmeansInit(data, model, fit, seed, backend);
}
