/**
 * Running one configured fit and keeping its per-iteration curves. Shared by the experiments: each run is a
 * fresh estimator from a given start, with tol = 0 so that every run has exactly `iterations` iterations
 * (curves can then be averaged iteration by iteration).
 */
import { MixtureOfExperts } from '../../estimator.js';
import type { FitHistory, Matrix, MoEOptions, MoEParams, Vector } from '../../types.js';

export interface RunCurves {
  /** Parameter error per iteration 0..T (when true parameters were given). */
  error: number[];
  /** Mean NLL per iteration 0..T. */
  nll: number[];
  /** Wall time per iteration, in milliseconds. */
  msPerIter: number;
  backend: FitHistory['backend'];
  /** The run diverged or failed: its curves are NaN from the failure on. */
  failed: string | null;
  estimator: MixtureOfExperts | null;
}

/**
 * Fit with `options` (tol forced to 0, maxIter = iterations) and return the curves padded to length
 * iterations + 1: a run that stops early has reached an exact fixed point, so its last value stands.
 */
export async function runCurves(options: MoEOptions, X: Matrix, y: Vector, iterations: number,
  trueParams?: MoEParams): Promise<RunCurves> {
  const length = iterations + 1;
  const nanCurve = (): number[] => new Array<number>(length).fill(NaN);
  let estimator: MixtureOfExperts;
  let history: FitHistory;
  try {
    estimator = new MixtureOfExperts({ ...options, maxIter: iterations, tol: 0 });
    history = await estimator.fit(X, y, trueParams ? { trueParams } : {});
  } catch (e) {
    // Too large a step size can overflow; such a run is reported as failed, not as an error of the tool.
    return { error: nanCurve(), nll: nanCurve(), msPerIter: NaN, backend: 'js', failed: (e as Error).message, estimator: null };
  }
  const records = history.iterations;
  const pad = (values: number[]): number[] => {
    const out = values.slice(0, length);
    while (out.length < length) out.push(out[out.length - 1] ?? NaN);
    return out;
  };
  const nll = pad(records.map((r) => r.nll));
  const error = pad(records.map((r) => r.paramError ?? NaN));
  const last = records[records.length - 1];
  const msPerIter = last && history.nIter > 0 ? last.elapsedMs / history.nIter : NaN;
  const finite = nll.every(Number.isFinite);
  return { error, nll, msPerIter, backend: history.backend, failed: finite ? null : 'non-finite NLL', estimator };
}
