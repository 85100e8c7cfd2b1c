/**
 * The MIM diagnostics for the CLI's reports. A native backend may not offer `information` (or fail for a
 * reason unrelated to the model); the TypeScript reference computes the same quantities from the same
 * parameters, so the CLI falls back to it and says so, rather than dropping the diagnostics.
 */
import { isMoEError } from '../errors.js';
import { MixtureOfExperts } from '../estimator.js';
import type { InformationOptions, InformationResult, Matrix, Vector } from '../types.js';

const BACKEND_FAILURES = new Set(['E_INTERNAL', 'E_BACKEND_UNAVAILABLE', 'E_GPU', 'E_GPU_OOM']);

export interface InformationOutcome {
  result: InformationResult;
  /** Set when the fitting backend could not compute it and the JS reference did. */
  fallbackReason: string | null;
}

export function informationWithFallback(estimator: MixtureOfExperts, X: Matrix, y: Vector,
  opts: InformationOptions = {}): InformationOutcome {
  try {
    return { result: estimator.information(X, y, opts), fallbackReason: null };
  } catch (e) {
    if (!isMoEError(e) || !BACKEND_FAILURES.has(e.code) || estimator.options.backend === 'js') throw e;
    const reference = MixtureOfExperts.fromJSON(estimator.toJSON(), { backend: 'js' });
    return { result: reference.information(X, y, opts), fallbackReason: `${e.code}: ${e.message}` };
  }
}
