/**
 * The fit loop (docs/ALGORITHMS.md §5): initialise, record iteration 0, then iterate the chosen algorithm
 * until the relative objective change falls under `tol` or `maxIter` is reached. One generator drives both
 * the synchronous and the asynchronous fit, so they compute identical iterates; the async driver yields to
 * the event loop between iterations so that an AbortSignal can fire.
 */
import type { FitHooks, FitRequest, FitResult } from '../backends/backend.js';
import { Rng } from '../data/rng.js';
import { parameterError } from '../data/param-error.js';
import { MoEError } from '../errors.js';
import { fullLayout, referenceParams } from '../models/layout.js';
import { componentCount, eStep, objectiveFromLogLik, totalWeight } from '../models/objective.js';
import type { IterationRecord, RecoveryEvent } from '../types.js';
import { randomInit } from './init.js';
import { miniBatchEpoch } from './minibatch.js';
import { reseedDegenerate } from './reseed.js';
import type { MStepCache } from './mstep.js';
import { emStepFromPosterior, gradientStepsOnQ } from './steps.js';

/** State visible after each yielded record (used for E_ABORTED's partial result). */
export interface FitProgress {
  record: IterationRecord;
  params: Float64Array;
  iterations: IterationRecord[];
}

function now(): number {
  return performance.now();
}

/** Generator of the fit: yields after every record (iteration 0 included); returns the result. */
export function* fitGenerator(req: FitRequest): Generator<FitProgress, FitResult, void> {
  const { data, model, fit } = req;
  const size = fullLayout(model).size;
  if (req.init !== null && req.init.length !== size) {
    throw new MoEError('E_SHAPE', `initial parameters have length ${req.init.length}, expected ${size}`);
  }
  if (req.trueParams !== null && req.trueParams.length !== size) {
    throw new MoEError('E_SHAPE', `true parameters have length ${req.trueParams.length}, expected ${size}`);
  }
  const start = now();
  const weight = totalWeight(data);
  const k = componentCount(model);
  const rng = new Rng(req.seed >>> 0);
  const fullBatch = fit.batchSize <= 0 || fit.batchSize >= data.n;

  let events: RecoveryEvent[] = [];
  const params = req.init !== null ? referenceParams(model, Float64Array.from(req.init))
    : randomInit(data, model, fit, rng, events);
  const h = new Float64Array(data.n * k);
  const iterations: IterationRecord[] = [];

  const record = (iter: number, logLik: number): IterationRecord => {
    const value = objectiveFromLogLik(model, params, logLik, weight);
    const rec: IterationRecord = { iter, nll: value.nll, objective: value.objective, elapsedMs: now() - start };
    if (req.trueParams !== null) rec.paramError = parameterError(model, params, req.trueParams);
    if (events.length > 0) rec.events = events;
    if (!Number.isFinite(rec.objective)) {
      throw new MoEError('E_NON_FINITE', `the objective became non-finite at iteration ${iter}`,
        { partial: { params: Float64Array.from(params), iterations } });
    }
    iterations.push(rec);
    return rec;
  };

  let rec = record(0, eStep(data, model, params, h));
  const mstepCache: MStepCache = {};
  yield { record: rec, params, iterations };
  let reason: FitResult['reason'] = 'max-iter';
  for (let t = 1; t <= fit.maxIter; t++) {
    events = [];
    if (fullBatch) {
      if (fit.algorithm !== 'gd' && reseedDegenerate(data, model, params, h, weight, fit.onEmpty, events)) {
        eStep(data, model, params, h);
      }
      if (fit.algorithm === 'em') emStepFromPosterior(data, model, fit, params, h, weight, events, mstepCache);
      else gradientStepsOnQ(data, model, fit, params, h, weight, fit.algorithm === 'gd' ? 1 : fit.innerSteps);
    } else {
      miniBatchEpoch(data, model, fit, params, rng);
    }
    const previous = rec.objective;
    rec = record(t, eStep(data, model, params, h));
    yield { record: rec, params, iterations };
    if (Math.abs(rec.objective - previous) <= fit.tol * Math.max(1, Math.abs(previous))) {
      reason = 'tol';
      break;
    }
  }
  return { params: Float64Array.from(params), iterations, converged: reason === 'tol', reason };
}

function abortedError(progress: FitProgress | null): MoEError {
  return new MoEError('E_ABORTED', 'the fit was aborted', {
    partial: progress === null ? null : {
      params: Float64Array.from(progress.params),
      iterations: progress.iterations.slice(),
    },
  });
}

/** Runs the fit to completion without yielding to the event loop. */
export function runFitSync(req: FitRequest, hooks: FitHooks = {}): FitResult {
  const gen = fitGenerator(req);
  let progress: FitProgress | null = null;
  for (;;) {
    if (hooks.signal?.aborted) throw abortedError(progress);
    const step = gen.next();
    if (step.done) return step.value;
    progress = step.value;
    hooks.onIteration?.(progress.record);
  }
}

const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Runs the fit, yielding to the event loop between iterations; an aborted signal throws E_ABORTED. */
export async function runFit(req: FitRequest, hooks: FitHooks = {}): Promise<FitResult> {
  const gen = fitGenerator(req);
  let progress: FitProgress | null = null;
  for (;;) {
    if (hooks.signal?.aborted) throw abortedError(progress);
    const step = gen.next();
    if (step.done) return step.value;
    progress = step.value;
    hooks.onIteration?.(progress.record);
    await yieldToEventLoop();
  }
}
