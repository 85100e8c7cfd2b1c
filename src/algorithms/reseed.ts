/**
 * Degenerate components (docs/ALGORITHMS.md §3): after an E-step, an expert whose responsibility mass
 * N_j = Σ s h_ij is ≤ 1e-8·S is re-seeded by splitting the heaviest expert m (β_j = β_m(1+ε),
 * β_m ← β_m(1−ε), σ_j² = σ_m², gate row j = gate row m, then re-referencing the gate to row k−1).
 */
import type { ModelSpec, ProblemData } from '../backends/backend.js';
import { MoEError } from '../errors.js';
import { fullLayout, referenceParams } from '../models/layout.js';
import type { RecoveryEvent } from '../types.js';

const EMPTY_RELATIVE = 1e-8;
const SPLIT_EPSILON = 1e-3;

/** Responsibility mass per component. */
export function componentMass(data: ProblemData, k: number, h: Float64Array): Float64Array {
  const mass = new Float64Array(k);
  for (let i = 0; i < data.n; i++) {
    const s = data.s === null ? 1 : data.s[i]!;
    for (let j = 0; j < k; j++) mass[j] += s * h[i * k + j]!;
  }
  return mass;
}

/**
 * Re-seeds every degenerate expert of the general model in place. Returns true when something changed (the
 * caller then redoes the E-step). Throws E_EMPTY_COMPONENT with onEmpty 'error'.
 */
export function reseedDegenerate(data: ProblemData, model: ModelSpec, params: Float64Array, h: Float64Array,
  weight: number, onEmpty: 'reseed' | 'error', events: RecoveryEvent[]): boolean {
  if (model.symmetric || model.k < 2) return false;
  const k = model.k;
  const mass = componentMass(data, k, h);
  const threshold = EMPTY_RELATIVE * weight;
  let heaviest = 0;
  for (let j = 1; j < k; j++) if (mass[j]! > mass[heaviest]!) heaviest = j;
  let changed = false;
  const fl = fullLayout(model);
  const d = model.d;
  for (let j = 0; j < k; j++) {
    if (mass[j]! > threshold) continue;
    if (onEmpty === 'error') {
      throw new MoEError('E_EMPTY_COMPONENT', `expert ${j} has vanishing responsibility mass ${mass[j]}`,
        { expert: j, mass: mass[j] });
    }
    const m = heaviest;
    const len = fl.coefPerExpert;
    const bj = fl.coef + j * len;
    const bm = fl.coef + m * len;
    for (let q = 0; q < len; q++) {
      params[bj + q] = params[bm + q]! * (1 + SPLIT_EPSILON);
      params[bm + q] = params[bm + q]! * (1 - SPLIT_EPSILON);
    }
    if (model.experts === 'linear') params[fl.sigma2 + j] = params[fl.sigma2 + m]!;
    for (let f = 0; f < d; f++) params[j * d + f] = params[m * d + f]!;
    events.push({ type: 'reseed', expert: j, from: m });
    changed = true;
  }
  if (changed) referenceParams(model, params);
  return changed;
}
