/**
 * Gradient updates in the free layout applied to the flat full parameters (docs/ALGORITHMS.md §4): the gate
 * block moves with η_gate, the expert blocks with η_experts, and σ_j² on the log scale
 * (log σ² ← log σ² + η·σ²·∂/∂σ²) so it stays positive.
 */
import type { ModelSpec } from '../backends/backend.js';
import { freeLayout, fullLayout } from '../models/layout.js';

/**
 * params ← params + scale·η_b·grad (blockwise), written to `out` (may alias `params`). `grad` is in the free
 * layout; `scale` is typically 1/S (gradients of F/S or Q/S) times a line-search factor.
 */
export function applyGradientStep(model: ModelSpec, params: Float64Array, grad: Float64Array, etaGate: number,
  etaExperts: number, scale: number, out: Float64Array): Float64Array {
  if (out !== params) out.set(params);
  const fr = freeLayout(model);
  const tg = etaGate * scale;
  const te = etaExperts * scale;
  if (model.symmetric) {
    const d = model.d;
    for (let f = 0; f < d; f++) {
      out[f] += tg * grad[f]!;
      out[d + f] += te * grad[d + f]!;
    }
    return out;
  }
  const fl = fullLayout(model);
  const { k, d } = model;
  for (let q = 0; q < fr.gateSize; q++) out[q] += tg * grad[q]!;
  for (let j = 0; j < k; j++) {
    const start = fr.expertStart[j]!;
    const coefOff = fl.coef + j * fl.coefPerExpert;
    const coefLen = model.experts === 'multinomial' ? (model.nClasses - 1) * d : d;
    for (let q = 0; q < coefLen; q++) out[coefOff + q] += te * grad[start + q]!;
    if (fr.fittedSigma) {
      const s2 = out[fl.sigma2 + j]!;
      out[fl.sigma2 + j] = s2 * Math.exp(te * s2 * grad[start + d]!);
    }
  }
  return out;
}
