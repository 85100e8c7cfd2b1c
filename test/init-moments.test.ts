/**
 * init 'moments' (docs/ALGORITHMS.md §5.1): the tensor power method, recovery of planted expert vectors with
 * an error that shrinks with n, determinism, EM from the moments start, the option errors, and the native
 * backend fitting from the same start.
 */
import { describe, expect, it } from 'vitest';
import { momentsInit } from '../src/algorithms/init-moments.js';
import { tensorPowerDecomposition } from '../src/algorithms/tensor-power.js';
import { nativeInfo } from '../src/backends/native.js';
import { parameterError } from '../src/data/param-error.js';
import { Rng } from '../src/data/rng.js';
import { sampleLinear, type SampledProblem } from '../src/data/samplers.js';
import { codeOf } from './support/errors.js';
import { MixtureOfExperts } from '../src/estimator.js';
import { resolveFitSpec } from '../src/input.js';
import { readableToParams } from '../src/models/layout.js';
import { modelSpecOf, problemDataOf } from './support/sampled.js';

const unit = (d: number, f: number, scale: number): number[] => Array.from({ length: d }, (_, q) => (q === f ? scale : 0));

/**
 * The paper's setting, where the moments are exact: experts 2e_0, 2e_1 (equal ‖β_j‖² + σ²) and a gate along
 * e_2, orthogonal to both.
 */
function planted(n: number, seed: number): SampledProblem {
  const d = 4;
  return sampleLinear({ n, d, k: 2, seed, sigma2: 0.25, gate: [unit(d, 2, 2), unit(d, 0, 0)], coef: [unit(d, 0, 2), unit(d, 1, 2)] });
}

function initError(problem: SampledProblem, seed = 0): number {
  const model = modelSpecOf(problem);
  const start = momentsInit(problemDataOf(problem), model, resolveFitSpec(), seed);
  return parameterError(model, start, readableToParams(model, problem.params));
}

describe('tensor power method', () => {
  it('recovers an orthogonal decomposition with positive weights, signs fixed', () => {
    const k = 3;
    // An orthonormal basis (a rotation of the standard one) and weights 3, 2, 1 with signs flipped in.
    const c = Math.cos(0.7); const s = Math.sin(0.7);
    const basis = [[c, s, 0], [-s, c, 0], [0, 0, 1]];
    const weights = [3, -2, 1];
    const t = new Float64Array(k * k * k);
    basis.forEach((v, j) => {
      for (let a = 0; a < k; a++) for (let b = 0; b < k; b++) for (let q = 0; q < k; q++) {
        t[(a * k + b) * k + q] += weights[j]! * v[a]! * v[b]! * v[q]!;
      }
    });
    const comps = tensorPowerDecomposition(t, k, new Rng(5), { restarts: 10, iterations: 30 });
    const found = comps.map((cmp) => cmp.weight).sort((a, b) => b - a);
    expect(found[0]).toBeCloseTo(3, 10);
    expect(found[1]).toBeCloseTo(2, 10);
    expect(found[2]).toBeCloseTo(1, 10);
    for (const cmp of comps) {
      const j = [3, 2, 1].findIndex((w) => Math.abs(w - cmp.weight) < 1e-8);
      const sign = Math.sign(weights[j]!);
      for (let a = 0; a < k; a++) expect(cmp.vector[a]!).toBeCloseTo(sign * basis[j]![a]!, 8);
    }
  });
});

describe("init 'moments'", () => {
  it('recovers planted experts and gate, with an error that shrinks with n', () => {
    const small = [2, 3].map((seed) => initError(planted(10_000, seed)));
    const large = [2, 3].map((seed) => initError(planted(100_000, seed)));
    // ‖θ*‖ = sqrt(4 + 4 + 4) ≈ 3.5. Measured: 0.31, 0.24 at n = 1e4; 0.11, 0.14 at 1e5 (and 0.03, 0.04 at 1e6:
    // the error falls like 1/√n, the moments are unbiased in this setting).
    for (const e of small) expect(e).toBeLessThan(0.5);
    for (const e of large) expect(e).toBeLessThan(0.2);
    expect(Math.max(...large)).toBeLessThan(Math.min(...small));
  });

  it('is deterministic given the seed, and the seed hardly matters', () => {
    const problem = planted(5_000, 3);
    const model = modelSpecOf(problem);
    const data = problemDataOf(problem);
    const a = momentsInit(data, model, resolveFitSpec(), 7);
    expect(momentsInit(data, model, resolveFitSpec(), 7)).toEqual(a);
    // The power method converges to the same components from other random starts (maybe in another order).
    const b = momentsInit(data, model, resolveFitSpec(), 8);
    expect(parameterError(model, b, a)).toBeLessThan(1e-6);
  });

  it('honours sample weights (doubling every row changes nothing) and a known noise', () => {
    const problem = planted(3_000, 8);
    const model = modelSpecOf(problem);
    const plain = momentsInit(problemDataOf(problem), model, resolveFitSpec(), 0);
    const doubled = momentsInit(problemDataOf(problem, new Float64Array(3_000).fill(2)), model, resolveFitSpec(), 0);
    for (let q = 0; q < plain.length; q++) expect(doubled[q]!).toBeCloseTo(plain[q]!, 8);
    const known = momentsInit(problemDataOf(problem), { ...model, noise: 0.5 }, resolveFitSpec(), 0);
    expect(Array.from(known.subarray(known.length - 2))).toEqual([0.25, 0.25]);
  });

  it('EM from the moments start never ends worse than it starts; history and restarts', () => {
    const problem = planted(5_000, 4);
    const est = new MixtureOfExperts({ experts: 'linear', k: 2, init: 'moments', nInit: 2, backend: 'js' });
    const history = est.fitSync(problem.X, problem.y, { trueParams: problem.params });
    const its = history.iterations;
    for (let t = 1; t < its.length; t++) expect(its[t]!.objective).toBeLessThanOrEqual(its[t - 1]!.objective + 1e-12);
    expect(its[its.length - 1]!.nll).toBeLessThanOrEqual(its[0]!.nll);
    // Iteration 0 is the moments start itself.
    const start = momentsInit(problemDataOf(problem), modelSpecOf(problem), resolveFitSpec(), 0);
    expect(its[0]!.paramError).toBeCloseTo(parameterError(modelSpecOf(problem), start,
      readableToParams(modelSpecOf(problem), problem.params)), 12);
    expect(its[its.length - 1]!.paramError!).toBeLessThan(0.3);
    expect(history.settings.init).toBe('moments');
    expect(history.restarts).toHaveLength(2);
    expect(history.restarts[1]!.objective).toBeCloseTo(history.restarts[0]!.objective, 9);
  });

  it('handles an intercept and correlated, shifted features (affine equivariance)', () => {
    const problem = planted(20_000, 5);
    const { rows, cols, data } = problem.X;
    // x' = A x + m with A lower triangular: the moments start predicts the same, so its likelihood is the same.
    const A = [[2, 0, 0, 0], [1, 1, 0, 0], [0, 0.5, 3, 0], [0, 0, 1, 0.5]];
    const m = [1, -2, 3, 0.5];
    const moved = new Float64Array(rows * cols);
    for (let i = 0; i < rows; i++) {
      for (let a = 0; a < cols; a++) {
        let acc = m[a]!;
        for (let b = 0; b < cols; b++) acc += A[a]![b]! * data[i * cols + b]!;
        moved[i * cols + a] = acc;
      }
    }
    const fit = (X: SampledProblem['X'], maxIter: number): number[] => {
      const est = new MixtureOfExperts({ experts: 'linear', k: 2, init: 'moments', intercept: true, maxIter, backend: 'js' });
      return est.fitSync(X, problem.y).iterations.map((r) => r.nll);
    };
    const plain = fit(problem.X, 50);
    expect(fit({ data: moved, rows, cols }, 0)[0]).toBeCloseTo(plain[0]!, 6);
    // And it is a good start: within 0.05 nats per row of where EM ends.
    expect(plain[0]! - plain[plain.length - 1]!).toBeLessThan(0.05);
  });

  it('typed errors: wrong family or model (E_OPTION), k above the feature count, too few rows, collinear features', () => {
    const problem = planted(200, 6);
    const fit = (opts: object, X: SampledProblem['X'] = problem.X, y: Float64Array = problem.y) =>
      new MixtureOfExperts({ experts: 'linear', init: 'moments', backend: 'js', maxIter: 1, ...opts }).fitSync(X, y);
    expect(codeOf(() => new MixtureOfExperts({ experts: 'multinomial', init: 'moments' }))).toBe('E_OPTION');
    expect(codeOf(() => new MixtureOfExperts({ experts: 'linear', symmetric: true, init: 'moments' }))).toBe('E_OPTION');
    expect(codeOf(() => new MixtureOfExperts({ experts: 'linear', k: 1, init: 'moments' }))).toBe('E_OPTION');
    expect(codeOf(() => fit({ k: 5, ridge: 1 }))).toBe('E_OPTION');
    const few = { data: problem.X.data.subarray(0, 4 * 4), rows: 4, cols: 4 };
    expect(codeOf(() => fit({ ridge: 1 }, few, problem.y.subarray(0, 4)))).toBe('E_TOO_FEW_ROWS');
    const collinear = Float64Array.from(problem.X.data);
    for (let i = 0; i < 200; i++) collinear[i * 4 + 3] = 2 * collinear[i * 4]!;
    expect(codeOf(() => fit({}, { data: collinear, rows: 200, cols: 4 }))).toBe('E_SINGULAR');
    try {
      new MixtureOfExperts({ experts: 'logistic', init: 'moments' });
    } catch (e) {
      expect((e as Error).message).toMatch(/linear experts/);
    }
  });

  const native = nativeInfo();
  it.skipIf(!native.loaded)('the cpu backend fits from the same moments start', () => {
    const problem = planted(5_000, 7);
    const fit = (backend: 'js' | 'cpu') => {
      const est = new MixtureOfExperts({ experts: 'linear', k: 2, init: 'moments', backend, maxIter: 20 });
      return { history: est.fitSync(problem.X, problem.y), params: est.params };
    };
    const js = fit('js');
    const cpu = fit('cpu');
    expect(cpu.history.backend).toBe('cpu');
    expect(cpu.history.iterations[0]!.nll).toBeCloseTo(js.history.iterations[0]!.nll, 10);
    expect(cpu.history.iterations.at(-1)!.nll).toBeCloseTo(js.history.iterations.at(-1)!.nll, 9);
  });
});
