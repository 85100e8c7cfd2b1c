/**
 * The paper's claims, checked on the TypeScript reference (MATH.md §5–6):
 * - on the synthetic SymMoLinE setup, EM's mean parameter error after 50 iterations is below GD's with the
 *   best step size from the grid {0.3, 1, 2} (larger steps diverge on this problem);
 * - near the optimum of a large-n SymMoLinE instance, EM contracts like λ_max of the MIM (within 10%);
 * - in SymMoLinE, λ_max falls toward 0 as the SNR ‖β*‖/σ grows.
 */
import { describe, expect, it } from 'vitest';
import type { ModelSpec, ProblemData } from '../src/backends/backend.js';
import { Rng } from '../src/data/rng.js';
import { paperSyntheticSymMoLinE, randomDirection, sampleSymMoLinE, type SampledProblem } from '../src/data/samplers.js';
import { computeInformation } from '../src/diagnostics/information.js';
import { runDemo } from '../src/demo.js';
import { MixtureOfExperts } from '../src/estimator.js';
import { choleskyInPlace, choleskySolveInPlace } from '../src/linalg/cholesky.js';
import { gradientF } from '../src/models/gradient.js';
import type { MoEOptions, MoEParams } from '../src/types.js';
import { problemDataOf } from './support/sampled.js';

const SYM: MoEOptions = { experts: 'linear', symmetric: true, k: 2, noise: 1, backend: 'js' };

function symModel(d: number): ModelSpec {
  return { experts: 'linear', symmetric: true, k: 2, d, nClasses: 0, noise: 1, ridge: 0, intercept: false };
}

/** The exact maximum-likelihood θ̂ = [w, β] by Newton's method with I_o = −∇²ℓ, started at θ*. */
function maximumLikelihood(problem: SampledProblem): Float64Array {
  const d = problem.X.cols;
  const model = symModel(d);
  const data = problemDataOf(problem);
  const theta = Float64Array.from([...problem.params.w!, ...problem.params.beta!]);
  const g = new Float64Array(2 * d);
  for (let it = 0; it < 30; it++) {
    gradientF(data, model, theta, g);
    const io = computeInformation(data, model, theta, { method: 'dense', steps: 60 }).observed!;
    expect(choleskyInPlace(io, 2 * d)).toBe(true);
    choleskySolveInPlace(io, 2 * d, g);
    let change = 0;
    for (let t = 0; t < 2 * d; t++) { theta[t] += g[t]!; change = Math.max(change, Math.abs(g[t]!)); }
    if (change < 1e-13) break;
  }
  return theta;
}

function asParams(d: number, theta: Float64Array): MoEParams {
  return { experts: 'linear', symmetric: true, k: 2, d, intercept: false, sigma: 1,
    w: Array.from(theta.subarray(0, d)), beta: Array.from(theta.subarray(d)) };
}

describe("the paper's synthetic SymMoLinE experiment (n = 1000, d = 10, ‖w*‖ = ‖β*‖ = 4)", () => {
  it('EM ends more accurate than GD with its best step size from {0.3, 1, 2}, over 10 instances', () => {
    const problems = Array.from({ length: 10 }, (_, seed) => paperSyntheticSymMoLinE({ seed }));
    const finals = (options: Partial<MoEOptions>): { error: number; nll: number } => {
      let error = 0;
      let nll = 0;
      for (const p of problems) {
        const est = new MixtureOfExperts({ ...SYM, ...options, init: p.init, maxIter: 50, tol: 0 });
        const its = est.fitSync(p.X, p.y, { trueParams: p.params }).iterations;
        error += its.at(-1)!.paramError! / problems.length;
        nll += its.at(-1)!.nll / problems.length;
      }
      return { error, nll };
    };
    const em = finals({ algorithm: 'em' });
    const gd = [0.3, 1, 2].map((eta) => finals({ algorithm: 'gd', stepSize: eta }));
    const bestGd = Math.min(...gd.map((r) => r.error));
    expect(em.error).toBeLessThan(bestGd);
    // EM also reaches the lower NLL: after 50 iterations it sits at the maximum likelihood.
    for (const r of gd) expect(em.nll).toBeLessThanOrEqual(r.nll + 1e-12);
  });
});

describe('EM contraction near the optimum', () => {
  it('large-n SymMoLinE: the measured rate matches λ_max(MIM) within 10%', () => {
    const d = 2;
    const problem = sampleSymMoLinE({ n: 10000, d, seed: 3, norm: 1.5 });
    const thetaHat = maximumLikelihood(problem);
    const info = computeInformation(problemDataOf(problem), symModel(d), thetaHat, { method: 'dense', steps: 60 });
    expect(info.lambdaMax).toBeGreaterThan(0.2);
    expect(info.lambdaMax).toBeLessThan(0.9);
    // EM from θ̂ + δ (‖δ‖ = 1e-2), θ̂ given as "true" parameters so paramError = ‖θ_t − θ̂‖. A tight M-step
    // tolerance keeps the iterates exact well below the errors measured.
    const optimum = asParams(d, thetaHat);
    const delta = randomDirection(new Rng(1), 2 * d, 1e-2);
    const start = { ...optimum, w: optimum.w!.map((a, f) => a + delta[f]!), beta: optimum.beta!.map((a, f) => a + delta[d + f]!) };
    const est = new MixtureOfExperts({ ...SYM, algorithm: 'em', init: start, maxIter: 25, tol: 0, mstep: { tol: 1e-18 } });
    const errors = est.fitSync(problem.X, problem.y, { trueParams: optimum }).iterations.map((r) => r.paramError!);
    // The ratio after the transient (the error aligned with the leading eigenvector), above rounding level.
    const ratios: number[] = [];
    for (let t = 1; t < errors.length; t++) {
      if (errors[t - 1]! <= 1e-3 && errors[t]! >= 1e-6) ratios.push(errors[t]! / errors[t - 1]!);
    }
    expect(ratios.length).toBeGreaterThanOrEqual(5);
    const measured = Math.exp(ratios.reduce((a, r) => a + Math.log(r), 0) / ratios.length);
    expect(Math.abs(measured - info.lambdaMax) / info.lambdaMax).toBeLessThan(0.1);
  });

  it('SymMoLinE: λ_max falls toward 0 as the SNR ‖β*‖/σ grows', () => {
    // Gate fixed (w* = (1, 0)); only the expert's norm, hence the SNR, changes.
    const lambdas = [0.5, 1, 2, 4, 8].map((norm) => {
      const problem = sampleSymMoLinE({ n: 4000, d: 2, seed: 8, w: [1, 0], beta: [0.6 * norm, 0.8 * norm] });
      const thetaHat = maximumLikelihood(problem);
      return computeInformation(problemDataOf(problem), symModel(2), thetaHat, { method: 'dense', steps: 60 }).lambdaMax;
    });
    for (let t = 1; t < lambdas.length; t++) expect(lambdas[t]!).toBeLessThan(lambdas[t - 1]!);
    expect(lambdas.at(-1)!).toBeLessThan(0.2);
  });
});

describe('npm run demo', () => {
  it('prints the comparison table and the rate line; EM ends below GD', () => {
    const lines: string[] = [];
    const summary = runDemo((line) => lines.push(line));
    const text = lines.join('\n');
    for (const label of ['EM', 'Gradient EM', 'GD', 'λ_max(MIM)', 'Backend:', 'ms/iter']) expect(text).toContain(label);
    const gdLabel = Object.keys(summary).find((k) => k.startsWith('GD'))!;
    expect(summary.EM!.at(-1)!).toBeLessThan(summary[gdLabel]!.at(-1)!);
    const [lambdaMax, measured] = summary.rate!;
    expect(lambdaMax).toBeGreaterThan(0);
    expect(lambdaMax).toBeLessThan(1);
    expect(Math.abs(measured! - lambdaMax!) / lambdaMax!).toBeLessThan(0.25);
  });
});
