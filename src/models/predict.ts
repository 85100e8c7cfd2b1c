/**
 * Predictive distributions of the fitted mixture: the mixture mean (linear experts) and class probabilities
 * (logistic: columns [P(y=0), P(y=1)], symmetric logistic [P(y=−1), P(y=+1)]; multinomial: C columns).
 */
import type { ModelSpec } from '../backends/backend.js';
import { RowModel } from './row-model.js';

/** E[y | x] = Σ_j π_j(x) μ_j(x) for linear experts (symmetric: tanh(wᵀx/2)·βᵀx). */
export function mixtureMean(model: ModelSpec, params: Float64Array, x: Float64Array, n: number): Float64Array {
  const rm = new RowModel(model, params);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    rm.evaluateX(x, i * model.d);
    let acc = 0;
    for (let j = 0; j < rm.k; j++) acc += Math.exp(rm.logPi[j]!) * rm.eta[j]!;
    out[i] = acc;
  }
  return out;
}

/** Number of class columns `classProbabilities` returns. */
export function classCount(model: ModelSpec): number {
  return model.experts === 'multinomial' ? model.nClasses : 2;
}

/** P(y = c | x) = Σ_j π_j(x) p_j(c | x), n × classCount row-major. */
export function classProbabilities(model: ModelSpec, params: Float64Array, x: Float64Array, n: number): Float64Array {
  const rm = new RowModel(model, params);
  const C = classCount(model);
  const out = new Float64Array(n * C);
  for (let i = 0; i < n; i++) {
    rm.evaluateX(x, i * model.d);
    if (model.experts === 'logistic') {
      let p1 = 0;
      for (let j = 0; j < rm.k; j++) p1 += Math.exp(rm.logPi[j]!) * rm.probs[j]!;
      out[i * 2] = 1 - p1;
      out[i * 2 + 1] = p1;
    } else {
      for (let j = 0; j < rm.k; j++) {
        const pj = Math.exp(rm.logPi[j]!);
        for (let c = 0; c < C; c++) out[i * C + c] += pj * rm.probs[j * C + c]!;
      }
    }
  }
  return out;
}
