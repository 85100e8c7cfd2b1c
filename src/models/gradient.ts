/**
 * Gradients in the free layout (docs/ALGORITHMS.md §1, §4). `gradientQ` is the gradient of
 * Q(θ | h) = Σ s_i Σ_j h_ij [log π_ij + log p_ij] − penalty(θ) at θ with h held fixed; with h the posterior at
 * θ itself it is the gradient of F(θ) (Fisher's identity), which `gradientF` uses. σ² derivatives are on
 * the natural scale; the log-scale update of §4 is applied by the step functions.
 */
import type { ModelSpec, ProblemData } from '../backends/backend.js';
import { sigmoid } from '../linalg/dense.js';
import { freeLayout, fullLayout } from './layout.js';
import { componentCount, eStep } from './objective.js';
import { RowModel } from './row-model.js';

/** ∇_θ Q(θ | h) (unnormalised: divide by S for the mean), written into `out` (length p). */
export function gradientQ(data: ProblemData, model: ModelSpec, params: Float64Array, h: Float64Array,
  out: Float64Array): Float64Array {
  out.fill(0);
  const rm = new RowModel(model, params);
  const fr = freeLayout(model);
  const k = rm.k;
  const { x, y, s, n, d } = data;
  const experts = model.experts;
  for (let i = 0; i < n; i++) {
    const si = s === null ? 1 : s[i]!;
    if (si === 0) continue;
    const xo = i * d;
    const yi = y[i]!;
    rm.evaluateX(x, xo);
    const hi = i * k;
    if (model.symmetric) {
      const hp = h[hi]!;
      const hm = h[hi + 1]!;
      const g = rm.gateScore;
      const u = rm.eta[0]!;
      // ∂/∂w: h+(1 − σ(g)) − h−σ(g) = h+ − (h+ + h−)σ(g).
      const cw = si * (hp - (hp + hm) * sigmoid(g));
      let cb: number;
      if (experts === 'linear') {
        // ∂/∂β: [h+(y − u) − h−(y + u)]/σ².
        cb = si * ((hp - hm) * yi - (hp + hm) * u) / rm.sigma2[0]!;
      } else {
        // ∂/∂β of log sigmoid(z·y·u): y[h+ − (h+ + h−)σ(y u)].
        cb = si * yi * (hp - (hp + hm) * sigmoid(yi * u));
      }
      for (let f = 0; f < d; f++) {
        const xf = x[xo + f]!;
        out[f] += cw * xf;
        out[d + f] += cb * xf;
      }
      continue;
    }
    // Gate rows 0..k−2: Σ_j h_ij = H_i; ∂/∂w_j = s (h_ij − H_i π_ij) x.
    let hsum = 0;
    for (let j = 0; j < k; j++) hsum += h[hi + j]!;
    for (let j = 0; j < k - 1; j++) {
      const c = si * (h[hi + j]! - hsum * Math.exp(rm.logPi[j]!));
      if (c === 0) continue;
      const r = j * d;
      for (let f = 0; f < d; f++) out[r + f] += c * x[xo + f]!;
    }
    for (let j = 0; j < k; j++) {
      const w = si * h[hi + j]!;
      if (w === 0) continue;
      const start = fr.expertStart[j]!;
      if (experts === 'linear') {
        const r = yi - rm.eta[j]!;
        const iv = 1 / rm.sigma2[j]!;
        const c = w * r * iv;
        for (let f = 0; f < d; f++) out[start + f] += c * x[xo + f]!;
        if (fr.fittedSigma) out[start + d] += w * (0.5 * r * r * iv * iv - 0.5 * iv);
      } else if (experts === 'logistic') {
        const c = w * (yi - rm.probs[j]!);
        for (let f = 0; f < d; f++) out[start + f] += c * x[xo + f]!;
      } else {
        const C = model.nClasses;
        for (let cl = 0; cl < C - 1; cl++) {
          const c = w * ((yi === cl ? 1 : 0) - rm.probs[j * C + cl]!);
          const r = start + cl * d;
          for (let f = 0; f < d; f++) out[r + f] += c * x[xo + f]!;
        }
      }
    }
  }
  subtractPenaltyGradient(model, params, out);
  return out;
}

/** out −= ∇ penalty(θ) in the free layout. */
export function subtractPenaltyGradient(model: ModelSpec, params: Float64Array, out: Float64Array): void {
  const lambda = model.ridge;
  if (lambda === 0) return;
  const { k, d } = model;
  const fl = fullLayout(model);
  const fr = freeLayout(model);
  const f0 = model.intercept ? 1 : 0;
  if (model.symmetric) {
    const scale = model.experts === 'linear' ? 1 / (model.noise as number) ** 2 : 1;
    for (let f = f0; f < d; f++) {
      out[f] -= lambda * params[f]!;
      out[d + f] -= lambda * scale * params[d + f]!;
    }
    return;
  }
  for (let j = 0; j < k - 1; j++) for (let f = f0; f < d; f++) out[j * d + f] -= lambda * params[j * d + f]!;
  for (let j = 0; j < k; j++) {
    const start = fr.expertStart[j]!;
    if (model.experts === 'linear') {
      const s2 = params[fl.sigma2 + j]!;
      let sq = 0;
      for (let f = f0; f < d; f++) {
        const b = params[fl.coef + j * d + f]!;
        out[start + f] -= lambda * b / s2;
        sq += b * b;
      }
      if (fr.fittedSigma) out[start + d] += lambda * sq / (2 * s2 * s2);
    } else if (model.experts === 'logistic') {
      for (let f = f0; f < d; f++) out[start + f] -= lambda * params[fl.coef + j * d + f]!;
    } else {
      const C = model.nClasses;
      for (let c = 0; c < C - 1; c++) {
        for (let f = f0; f < d; f++) out[start + c * d + f] -= lambda * params[fl.coef + (j * C + c) * d + f]!;
      }
    }
  }
}

/** ∇F(θ) (unnormalised) in the free layout, by Fisher's identity ∇F = ∇Q(θ | h(θ)). Returns ℓ(θ) too. */
export function gradientF(data: ProblemData, model: ModelSpec, params: Float64Array, out: Float64Array): number {
  const h = new Float64Array(data.n * componentCount(model));
  const ll = eStep(data, model, params, h);
  gradientQ(data, model, params, h, out);
  return ll;
}
