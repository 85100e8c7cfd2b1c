/** init 'kmeans' (docs/ALGORITHMS.md §5.2): determinism, clusters on separable data, EM from it, option errors. */
import { describe, expect, it } from 'vitest';
import { kmeansInit } from '../src/algorithms/init-kmeans.js';
import { sampleLinearOrthogonal } from '../src/data/samplers.js';
import { isMoEError } from '../src/errors.js';
import { MixtureOfExperts } from '../src/estimator.js';
import { resolveFitSpec } from '../src/input.js';
import { modelSpecOf, problemDataOf } from './support/sampled.js';

describe("init 'kmeans'", () => {
  it('is deterministic given the seed', () => {
    const problem = sampleLinearOrthogonal({ n: 2000, d: 6, k: 3, seed: 1 });
    const data = problemDataOf(problem);
    const model = modelSpecOf(problem);
    const a = kmeansInit(data, model, resolveFitSpec(), 4);
    expect(kmeansInit(data, model, resolveFitSpec(), 4)).toEqual(a);
    expect(a.every(Number.isFinite)).toBe(true);
  });

  it('finds well-separated clusters of y: two constant experts far apart', () => {
    // y = ±10 + noise, independent of x: the clusters are the experts, so the start has slopes ≈ 0 and
    // intercepts ≈ ±10 (up to order).
    const n = 1000;
    const x = new Float64Array(n * 2);
    const y = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      x[i * 2] = Math.sin(i);
      x[i * 2 + 1] = Math.cos(3 * i);
      y[i] = (i % 2 === 0 ? 10 : -10) + 0.1 * Math.sin(7 * i);
    }
    const est = new MixtureOfExperts({ experts: 'linear', k: 2, intercept: true, init: 'kmeans', maxIter: 0, backend: 'js' });
    est.fitSync({ data: x, rows: n, cols: 2 }, y);
    const coef = est.params.coef as number[][];
    const intercepts = coef.map((c) => c[0]!).sort((p, q) => p - q);
    expect(intercepts[0]).toBeCloseTo(-10, 1);
    expect(intercepts[1]).toBeCloseTo(10, 1);
    for (const c of coef) for (const v of c.slice(1)) expect(Math.abs(v)).toBeLessThan(0.05);
  });

  it('EM from it never ends worse than it starts', () => {
    const problem = sampleLinearOrthogonal({ n: 3000, d: 6, k: 3, seed: 2 });
    const history = new MixtureOfExperts({ experts: 'linear', k: 3, init: 'kmeans', backend: 'js' }).fitSync(problem.X, problem.y);
    const its = history.iterations;
    for (let t = 1; t < its.length; t++) expect(its[t]!.objective).toBeLessThanOrEqual(its[t - 1]!.objective + 1e-12);
    expect(history.settings.init).toBe('kmeans');
  });

  it('E_OPTION for other families, symmetric models and k = 1', () => {
    for (const opts of [{ experts: 'logistic' as const }, { experts: 'linear' as const, symmetric: true },
      { experts: 'linear' as const, k: 1 }]) {
      let code = 'no error';
      try {
        new MixtureOfExperts({ ...opts, init: 'kmeans' });
      } catch (e) {
        code = isMoEError(e) ? e.code : String(e);
      }
      expect(code, JSON.stringify(opts)).toBe('E_OPTION');
    }
  });
});
