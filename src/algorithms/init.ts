/**
 * The 'random' initialisation (docs/ALGORITHMS.md §5): each row in order gets a component floor(u·k)
 * (symmetric: z = +1 when u < 0.5), the responsibilities are those hard assignments, and one M-step from
 * them — gate and softmax experts starting at 0 — gives θ_0. `initFromAssignment` is that last step for any
 * hard assignment (init 'kmeans' uses it with its clusters).
 */
import type { FitSpec, ModelSpec, ProblemData } from '../backends/backend.js';
import type { Rng } from '../data/rng.js';
import { fullLayout } from '../models/layout.js';
import { componentCount, totalWeight } from '../models/objective.js';
import type { RecoveryEvent } from '../types.js';
import { mStep } from './mstep.js';

export function randomInit(data: ProblemData, model: ModelSpec, fit: FitSpec, rng: Rng, events: RecoveryEvent[]): Float64Array {
  const k = componentCount(model);
  const assignment = new Int32Array(data.n);
  for (let i = 0; i < data.n; i++) {
    assignment[i] = model.symmetric ? (rng.uniform() < 0.5 ? 0 : 1) : Math.floor(rng.uniform() * k);
  }
  return initFromAssignment(data, model, fit, assignment, events);
}

/** θ_0 from hard assignments (component index per row): one M-step from those responsibilities. */
export function initFromAssignment(data: ProblemData, model: ModelSpec, fit: FitSpec, assignment: ArrayLike<number>,
  events: RecoveryEvent[]): Float64Array {
  const k = componentCount(model);
  const h = new Float64Array(data.n * k);
  for (let i = 0; i < data.n; i++) h[i * k + assignment[i]!] = 1;
  const fl = fullLayout(model);
  const params = new Float64Array(fl.size);
  if (!model.symmetric && model.experts === 'linear') {
    // Known noise stays fixed; fitted σ² starts at 1 and is replaced by the M-step.
    const s2 = typeof model.noise === 'number' ? model.noise * model.noise : 1;
    for (let j = 0; j < model.k; j++) params[fl.sigma2 + j] = s2;
  }
  mStep({ data, model, fit, weight: totalWeight(data), events }, params, h);
  return params;
}
