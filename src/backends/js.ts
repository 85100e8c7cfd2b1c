/**
 * The TypeScript reference backend: float64, single-threaded, the oracle every native backend is checked
 * against. It runs the algorithms of src/algorithms and delegates information matrices to
 * src/diagnostics/information.ts.
 */
import { runFit, runFitSync } from '../algorithms/fit.js';
import { initFromAssignment } from '../algorithms/init.js';
import { kmeansClusters } from '../algorithms/init-kmeans.js';
import { gateOnlyEm, momentSums } from '../algorithms/init-moments.js';
import { computeInformation } from '../diagnostics/information.js';
import { componentCount, eStep, evaluateObjective } from '../models/objective.js';
import { classProbabilities, mixtureMean } from '../models/predict.js';
import type { InformationResult } from '../types.js';
import {
  fitEachStart, fitEachStartSync,
  type ComputeBackend, type FitHooks, type FitRequest, type FitResult, type FitSpec, type ModelSpec, type MomentSums,
  type ProblemData, type RestartsRequest,
} from './backend.js';

export class JsBackend implements ComputeBackend {
  readonly name = 'js' as const;

  fit(req: FitRequest, hooks: FitHooks): Promise<FitResult> {
    return runFit(req, hooks);
  }

  fitSync(req: FitRequest, hooks: FitHooks): FitResult {
    return runFitSync(req, hooks);
  }

  fitRestarts(req: RestartsRequest, hooks: FitHooks): Promise<FitResult[]> {
    return fitEachStart(req, (r) => runFit(r, hooks));
  }

  fitRestartsSync(req: RestartsRequest, hooks: FitHooks): FitResult[] {
    return fitEachStartSync(req, (r) => runFitSync(r, hooks));
  }

  evaluate(data: ProblemData, model: ModelSpec, params: Float64Array): { nll: number; objective: number } {
    const { nll, objective } = evaluateObjective(data, model, params);
    return { nll, objective };
  }

  posterior(data: ProblemData, model: ModelSpec, params: Float64Array): Float64Array {
    const h = new Float64Array(data.n * componentCount(model));
    eStep(data, model, params, h);
    return h;
  }

  information(data: ProblemData, model: ModelSpec, params: Float64Array,
    opts: { method: 'auto' | 'dense' | 'lanczos'; steps: number }): InformationResult {
    return computeInformation(data, model, params, opts);
  }

  predict(x: Float64Array, n: number, model: ModelSpec, params: Float64Array): Float64Array {
    return model.experts === 'linear' ? mixtureMean(model, params, x, n) : classProbabilities(model, params, x, n);
  }

  gateOnlyEm(data: ProblemData, model: ModelSpec, fit: FitSpec, params: Float64Array): Float64Array {
    return gateOnlyEm(data, model, fit, params);
  }

  startFromAssignment(data: ProblemData, model: ModelSpec, fit: FitSpec, assignment: Uint32Array): Float64Array {
    return initFromAssignment(data, model, fit, assignment, []);
  }

  kmeansClusters(data: ProblemData, model: ModelSpec, seed: number): Uint32Array {
    return kmeansClusters(data, model, seed);
  }

  momentSums(data: ProblemData, model: ModelSpec): MomentSums {
    return momentSums(data, model);
  }
}

/** The shared stateless instance. */
export const jsBackend = new JsBackend();
