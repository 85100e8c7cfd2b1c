/**
 * Mini-batch epochs (docs/ALGORITHMS.md §4): the row order is a fresh Fisher–Yates shuffle of 0..n−1 by the
 * fit's RNG at every epoch; batches are consecutive slices of it (the last may be short). The penalty enters
 * every batch objective in full.
 */
import type { FitSpec, ModelSpec, ProblemData } from '../backends/backend.js';
import type { Rng } from '../data/rng.js';
import { componentCount, eStep, totalWeight } from '../models/objective.js';
import { gradientStepsOnQ, safeguardedGradientStepsOnQ } from './steps.js';

/** Copies the rows `order[start..end)` into a batch. */
export function gatherRows(data: ProblemData, order: Uint32Array, start: number, end: number): ProblemData {
  const m = end - start;
  const d = data.d;
  const x = new Float64Array(m * d);
  const y = new Float64Array(m);
  const s = data.s === null ? null : new Float64Array(m);
  for (let r = 0; r < m; r++) {
    const i = order[start + r]!;
    x.set(data.x.subarray(i * d, (i + 1) * d), r * d);
    y[r] = data.y[i]!;
    if (s !== null) s[r] = data.s![i]!;
  }
  return { x, y, s, n: m, d };
}

/** One epoch of mini-batch em / gradient-em / gd, updating `params` in place. */
export function miniBatchEpoch(data: ProblemData, model: ModelSpec, fit: FitSpec, params: Float64Array, rng: Rng): void {
  const order = new Uint32Array(data.n);
  for (let i = 0; i < data.n; i++) order[i] = i;
  rng.shuffle(order);
  const k = componentCount(model);
  for (let start = 0; start < data.n; start += fit.batchSize) {
    const batch = gatherRows(data, order, start, Math.min(data.n, start + fit.batchSize));
    const weight = totalWeight(batch);
    if (!(weight > 0)) continue;
    const h = new Float64Array(batch.n * k);
    eStep(batch, model, params, h);
    if (fit.algorithm === 'gd') gradientStepsOnQ(batch, model, fit, params, h, weight, 1);
    else if (fit.algorithm === 'gradient-em') gradientStepsOnQ(batch, model, fit, params, h, weight, fit.innerSteps);
    else safeguardedGradientStepsOnQ(batch, model, fit, params, h, weight, fit.mstep.innerSteps);
  }
}
