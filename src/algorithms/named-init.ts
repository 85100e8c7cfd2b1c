/**
 * The named initialisations computed in TypeScript before a backend runs (docs/ALGORITHMS.md §5.1, §5.2):
 * which models each accepts, and the start itself. 'random' is not here: every backend draws it itself.
 */
import type { ComputeBackend, FitSpec, ModelSpec, ProblemData } from '../backends/backend.js';
import type { InitKind } from '../types.js';
import { kmeansInit, kmeansUnsupportedReason } from './init-kmeans.js';
import { momentsInit, momentsUnsupportedReason } from './init-moments.js';

export type ComputedInit = Exclude<InitKind, 'random'>;

type ModelShape = { experts: string; symmetric: boolean; k: number };

/** Why `init: kind` does not apply to the model, or null when it does (checked at construction: E_OPTION). */
export function initUnsupportedReason(kind: ComputedInit, model: ModelShape): string | null {
  return kind === 'moments' ? momentsUnsupportedReason(model) : kmeansUnsupportedReason(model);
}

/**
 * The starting parameters (flat full layout) of restart seed `seed`. With a `backend`, the stages that read
 * every row many times run on it (the fit's backend): the EM stage of 'moments' and the M-step from the
 * clusters of 'kmeans', which in TypeScript cost more than the fit on a large problem. Without, everything
 * runs in TypeScript.
 */
export function computeInit(kind: ComputedInit, data: ProblemData, model: ModelSpec, fit: FitSpec, seed: number,
  backend?: Pick<ComputeBackend, 'gateOnlyEm' | 'startFromAssignment'>): Float64Array {
  if (backend === undefined) return kind === 'moments' ? momentsInit(data, model, fit, seed) : kmeansInit(data, model, fit, seed);
  return kind === 'moments' ? momentsInit(data, model, fit, seed, (...args) => backend.gateOnlyEm(...args))
    : kmeansInit(data, model, fit, seed, (...args) => backend.startFromAssignment(...args));
}
