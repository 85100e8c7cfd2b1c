/** Test helpers: a sampled problem (src/data/samplers.ts) as the backend's ModelSpec and ProblemData. */
import type { ModelSpec, ProblemData } from '../../src/backends/backend.js';
import type { SampledProblem } from '../../src/data/samplers.js';

/** The model that generated `problem` (no ridge, no intercept), with `over` applied. */
export function modelSpecOf(problem: SampledProblem, over: Partial<ModelSpec> = {}): ModelSpec {
  const p = problem.params;
  return {
    experts: p.experts, symmetric: p.symmetric, k: p.k, d: p.d,
    nClasses: p.experts === 'multinomial' ? p.nClasses! : p.experts === 'logistic' ? 2 : 0,
    noise: p.symmetric && p.experts === 'linear' ? p.sigma! : 'fitted', ridge: 0, intercept: false, ...over,
  };
}

/** The problem's rows, with optional sample weights. */
export function problemDataOf(problem: SampledProblem, s: Float64Array | null = null): ProblemData {
  return { x: problem.X.data, n: problem.X.rows, d: problem.X.cols, y: problem.y, s };
}
