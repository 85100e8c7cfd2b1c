/**
 * One iteration of each algorithm (docs/ALGORITHMS.md §3–4). The `*FromPosterior` forms take the
 * responsibilities at θ_t (the fit loop caches them from the previous objective evaluation); the plain forms
 * are self-contained low-level steps for people who study the algorithms.
 */
import type { FitSpec, ModelSpec, ProblemData } from '../backends/backend.js';
import { freeLayout } from '../models/layout.js';
import { componentCount, eStep, qValue, totalWeight } from '../models/objective.js';
import { gradientQ } from '../models/gradient.js';
import type { RecoveryEvent } from '../types.js';
import { applyGradientStep } from './gradient-step.js';
import { mStep, type MStepCache } from './mstep.js';

const MAX_HALVINGS = 30;

export interface StepResult {
  params: Float64Array;
  events: RecoveryEvent[];
}

/**
 * EM: M-step from h = posterior at θ_t (experts, then gate). Updates `params` in place. `cache`: shared by the
 * M-steps of one fit (the fit loop passes one).
 */
export function emStepFromPosterior(data: ProblemData, model: ModelSpec, fit: FitSpec, params: Float64Array,
  h: Float64Array, weight: number, events: RecoveryEvent[], cache?: MStepCache): void {
  mStep({ data, model, fit, weight, events, cache }, params, h);
}

/**
 * `steps` gradient steps on Q(·|h)/weight with the block step sizes, no safeguard (Gradient EM; with h the
 * posterior at params and one step it is a GD step). Updates `params` in place.
 */
export function gradientStepsOnQ(data: ProblemData, model: ModelSpec, fit: FitSpec, params: Float64Array,
  h: Float64Array, weight: number, steps: number): void {
  const g = new Float64Array(freeLayout(model).p);
  for (let t = 0; t < steps; t++) {
    gradientQ(data, model, params, h, g);
    applyGradientStep(model, params, g, fit.stepSize.gate, fit.stepSize.experts, 1 / weight, params);
  }
}

/**
 * `steps` gradient steps on Q(·|h)/weight where a step that would decrease Q is halved (≤ 30 times) and
 * skipped if still decreasing — the monotone safeguard of mini-batch EM.
 */
export function safeguardedGradientStepsOnQ(data: ProblemData, model: ModelSpec, fit: FitSpec,
  params: Float64Array, h: Float64Array, weight: number, steps: number): void {
  const g = new Float64Array(freeLayout(model).p);
  const trial = new Float64Array(params.length);
  for (let t = 0; t < steps; t++) {
    const q0 = qValue(data, model, params, h);
    gradientQ(data, model, params, h, g);
    let scale = 1 / weight;
    let accepted = false;
    for (let halving = 0; halving <= MAX_HALVINGS; halving++, scale /= 2) {
      applyGradientStep(model, params, g, fit.stepSize.gate, fit.stepSize.experts, scale, trial);
      if (qValue(data, model, trial, h) >= q0) {
        accepted = true;
        break;
      }
    }
    if (!accepted) return;
    params.set(trial);
  }
}

function posterior(data: ProblemData, model: ModelSpec, params: Float64Array): Float64Array {
  const h = new Float64Array(data.n * componentCount(model));
  eStep(data, model, params, h);
  return h;
}

/** One full-batch EM iteration from θ (returns θ_{t+1}; θ is not modified). */
export function emStep(data: ProblemData, model: ModelSpec, fit: FitSpec, params: Float64Array): StepResult {
  const next = Float64Array.from(params);
  const events: RecoveryEvent[] = [];
  emStepFromPosterior(data, model, fit, next, posterior(data, model, params), totalWeight(data), events);
  return { params: next, events };
}

/** One full-batch Gradient EM iteration (E-step, then `fit.innerSteps` gradient steps on Q(·|θ_t)/S). */
export function gradientEmStep(data: ProblemData, model: ModelSpec, fit: FitSpec, params: Float64Array): StepResult {
  const next = Float64Array.from(params);
  gradientStepsOnQ(data, model, fit, next, posterior(data, model, params), totalWeight(data), fit.innerSteps);
  return { params: next, events: [] };
}

/** One full-batch gradient-descent step θ ← θ + η∇(F/S) (σ² on the log scale). */
export function gdStep(data: ProblemData, model: ModelSpec, fit: FitSpec, params: Float64Array): StepResult {
  const next = Float64Array.from(params);
  gradientStepsOnQ(data, model, fit, next, posterior(data, model, params), totalWeight(data), 1);
  return { params: next, events: [] };
}
