import { describe, expect, it } from 'vitest';
import type { FitRequest, FitSpec, ModelSpec, ProblemData } from '../src/backends/backend.js';
import {
  SoftmaxRegression, resolveSolver, emStep, gdStep, gradientEmStep, runFitSync, runFit,
} from '../src/algorithms/index.js';
import { parameterError } from '../src/data/param-error.js';
import { Rng } from '../src/data/rng.js';
import {
  paperSyntheticSymMoLinE, sampleLinear, sampleLogistic, sampleMultinomial, sampleSymMoLinE, sampleSymMoLogE,
  type SampledProblem,
} from '../src/data/samplers.js';
import { isMoEError } from '../src/errors.js';
import { resolveFitSpec } from '../src/input.js';
import { KroneckerStatistics } from '../src/algorithms/kronecker.js';
import { jacobi, preconditionedCg } from '../src/linalg/cg.js';
import { choleskyInPlace, choleskySolveInPlace, solveSpdWithRecovery } from '../src/linalg/cholesky.js';
import { weightedGrams } from '../src/linalg/gram.js';
import { evaluateObjective, fullLayout, readableToParams } from '../src/models/index.js';
import type { MStepSolver, RecoveryEvent } from '../src/types.js';
import { modelSpecOf, problemDataOf } from './support/sampled.js';

function fitSpec(over: Partial<FitSpec> = {}, mstep: Partial<FitSpec['mstep']> = {}): FitSpec {
  return resolveFitSpec({ mstep, ...over });
}

function request(s: SampledProblem, model: ModelSpec, fit: FitSpec, seed = 1, init: Float64Array | null = null): FitRequest {
  return { data: problemDataOf(s), model, fit, seed, init, trueParams: null };
}

const FAMILIES: [string, () => SampledProblem, Partial<ModelSpec>][] = [
  ['linear, fitted noise', () => sampleLinear({ n: 300, d: 3, k: 3, seed: 11 }), {}],
  ['linear, known noise', () => sampleLinear({ n: 300, d: 3, k: 2, seed: 12, sigma2: 0.25 }), { noise: 0.5 }],
  ['logistic', () => sampleLogistic({ n: 300, d: 3, k: 2, seed: 13 }), {}],
  ['multinomial', () => sampleMultinomial({ n: 300, d: 3, k: 2, nClasses: 3, seed: 14 }), {}],
  ['SymMoLinE', () => sampleSymMoLinE({ n: 300, d: 3, seed: 15, norm: 2 }), {}],
  ['SymMoLogE', () => sampleSymMoLogE({ n: 300, d: 3, seed: 16, norm: 2 }), {}],
];

describe('EM is monotone', () => {
  for (const [name, sample, over] of FAMILIES) {
    for (const solver of ['newton', 'newton-cg', 'gradient'] as MStepSolver[]) {
      for (const ridge of [0, 0.5]) {
        it(`${name}, solver ${solver}, ridge ${ridge}`, () => {
          const s = sample();
          const model = modelSpecOf(s, { ...over, ridge, intercept: ridge > 0 });
          if (ridge > 0) {
            // With the intercept on, prepend a column of ones.
            const { rows, cols, data } = s.X;
            const x = new Float64Array(rows * (cols + 1));
            for (let i = 0; i < rows; i++) { x[i * (cols + 1)] = 1; x.set(data.subarray(i * cols, (i + 1) * cols), i * (cols + 1) + 1); }
            s.X = { data: x, rows, cols: cols + 1 };
            model.d = cols + 1;
          }
          const res = runFitSync(request(s, model, fitSpec({ maxIter: 12, tol: 0 }, { solver })));
          expect(res.iterations).toHaveLength(13);
          for (let t = 1; t < res.iterations.length; t++) {
            const prev = res.iterations[t - 1]!.objective;
            const cur = res.iterations[t]!.objective;
            expect(Number.isFinite(cur)).toBe(true);
            if (res.iterations[t]!.events?.some((e) => e.type === 'reseed')) continue;
            expect(cur).toBeLessThanOrEqual(prev + 1e-12 * Math.abs(prev));
          }
          expect(res.iterations[12]!.objective).toBeLessThan(res.iterations[0]!.objective);
        });
      }
    }
  }
});

describe('gradient algorithms', () => {
  it("one Gradient EM step with one step size equals one GD step (Fisher's identity)", () => {
    for (const [, sample, over] of FAMILIES) {
      const s = sample();
      const model = modelSpecOf(s, over);
      const data = problemDataOf(s);
      const start = runFitSync(request(s, model, fitSpec({ maxIter: 0 }))).params;
      const fit = fitSpec({ stepSize: { gate: 0.3, experts: 0.3 }, innerSteps: 1 });
      const a = gradientEmStep(data, model, fit, start).params;
      const b = gdStep(data, model, fit, start).params;
      for (let q = 0; q < a.length; q++) expect(a[q]).toBeCloseTo(b[q]!, 13);
      // A full EM step moves further up F than one small gradient step from the same point.
      const em = emStep(data, model, fitSpec(), start).params;
      expect(evaluateObjective(data, model, em).objective).toBeLessThanOrEqual(evaluateObjective(data, model, b).objective + 1e-12);
    }
  });

  it('mini-batch runs of every algorithm and family finish with finite values', () => {
    for (const [name, sample, over] of FAMILIES) {
      for (const algorithm of ['em', 'gradient-em', 'gd'] as const) {
        const s = sample();
        const res = runFitSync(request(s, modelSpecOf(s, over), fitSpec({ algorithm, batchSize: 64, maxIter: 4, tol: 0, innerSteps: 2 })));
        expect(res.iterations, `${name} ${algorithm}`).toHaveLength(5);
        for (const r of res.iterations) expect(Number.isFinite(r.objective)).toBe(true);
        for (const v of res.params) expect(Number.isFinite(v)).toBe(true);
      }
    }
  });

  it('the mini-batch shuffle is reproducible from the seed and changes with it', () => {
    const s = sampleLinear({ n: 200, d: 2, k: 2, seed: 21 });
    const model = modelSpecOf(s);
    const fit = fitSpec({ algorithm: 'gd', batchSize: 50, maxIter: 3, tol: 0 });
    const a = runFitSync(request(s, model, fit, 5)).params;
    const b = runFitSync(request(s, model, fit, 5)).params;
    const c = runFitSync(request(s, model, fit, 6)).params;
    expect(Array.from(a)).toEqual(Array.from(b));
    expect(Array.from(a)).not.toEqual(Array.from(c));
  });
});

describe('fit loop', () => {
  it('EM converges on the paper\'s synthetic SymMoLinE faster than GD, in well under a second', () => {
    const prob = paperSyntheticSymMoLinE({ seed: 3 });
    const model = modelSpecOf(prob);
    const init = readableToParams(model, prob.init);
    const truth = readableToParams(model, prob.params);
    const t0 = performance.now();
    const em = runFitSync({ ...request(prob, model, fitSpec({ maxIter: 50, tol: 0 }), 0, init), trueParams: truth });
    const elapsed = performance.now() - t0;
    const gd = runFitSync({ ...request(prob, model, fitSpec({ algorithm: 'gd', maxIter: 50, tol: 0, stepSize: { gate: 0.5, experts: 0.5 } }), 0, init), trueParams: truth });
    // With tol = 0, EM stops only at an exact fixed point (no change in the objective) or after 50 iterations.
    const emLast = em.iterations[em.iterations.length - 1]!;
    expect(gd.iterations).toHaveLength(51);
    expect(emLast.nll).toBeLessThan(gd.iterations[50]!.nll);
    expect(em.iterations[5]!.paramError!).toBeLessThan(gd.iterations[5]!.paramError!);
    expect(emLast.paramError!).toBeLessThan(0.5 * em.iterations[0]!.paramError!);
    // "well under a second" on an idle core; the bound leaves room for a loaded shared machine.
    expect(elapsed).toBeLessThan(3000);
  });

  it('stops on tol with reason "tol", and reports max-iter otherwise', () => {
    const s = sampleLinear({ n: 400, d: 2, k: 2, seed: 31 });
    const model = modelSpecOf(s);
    const done = runFitSync(request(s, model, fitSpec({ maxIter: 500, tol: 1e-6 })));
    expect(done.reason).toBe('tol');
    expect(done.converged).toBe(true);
    const cut = runFitSync(request(s, model, fitSpec({ maxIter: 2, tol: 0 })));
    expect(cut.reason).toBe('max-iter');
    expect(cut.iterations.map((r) => r.iter)).toEqual([0, 1, 2]);
  });

  it('sync and async fits compute identical iterates; an aborted signal stops with E_ABORTED and a partial result', async () => {
    const s = sampleLogistic({ n: 200, d: 3, k: 2, seed: 41 });
    const model = modelSpecOf(s);
    const req = request(s, model, fitSpec({ maxIter: 5, tol: 0 }));
    const a = runFitSync(req);
    const b = await runFit(req);
    expect(Array.from(b.params)).toEqual(Array.from(a.params));
    const controller = new AbortController();
    const seen: number[] = [];
    const err = await runFit(req, { signal: controller.signal, onIteration: (r) => { seen.push(r.iter); if (r.iter === 2) controller.abort(); } })
      .then(() => null, (e: unknown) => e);
    expect(isMoEError(err) && err.code).toBe('E_ABORTED');
    const partial = (err as { details: { partial: { iterations: unknown[]; params: Float64Array } } }).details.partial;
    expect(partial.iterations).toHaveLength(3);
    expect(partial.params).toBeInstanceOf(Float64Array);
    expect(seen).toEqual([0, 1, 2]);
  });

  it('a vanishing component is re-seeded (event), or throws E_EMPTY_COMPONENT with onEmpty "error"', () => {
    const s = sampleLinear({ n: 300, d: 2, k: 3, seed: 51 });
    const model = modelSpecOf(s);
    const start = runFitSync(request(s, model, fitSpec({ maxIter: 0 }))).params;
    // Move expert 1 far away with a tiny variance: its responsibilities underflow to 0 on every row.
    const fl = fullLayout(model);
    start[fl.coef + 2] = 1e4; start[fl.coef + 3] = -1e4; start[fl.sigma2 + 1] = 1e-4;
    const res = runFitSync(request(s, model, fitSpec({ maxIter: 3, tol: 0 }), 1, start));
    const events = res.iterations.flatMap((r) => r.events ?? []);
    expect(events.some((e) => e.type === 'reseed' && e.expert === 1)).toBe(true);
    for (const r of res.iterations) expect(Number.isFinite(r.objective)).toBe(true);
    let code: unknown = null;
    try {
      runFitSync(request(s, model, fitSpec({ maxIter: 3, tol: 0, onEmpty: 'error' }), 1, start));
    } catch (e) { code = isMoEError(e) ? e.code : e; }
    expect(code).toBe('E_EMPTY_COMPONENT');
  });

  it('a singular design recovers with a ridge-fallback event or throws E_SINGULAR', () => {
    const rng = new Rng(61);
    const n = 200;
    const x = new Float64Array(n * 3);
    const y = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const a = rng.normal();
      x[i * 3] = a; x[i * 3 + 1] = 2 * a; x[i * 3 + 2] = rng.normal(); // column 1 = 2 × column 0
      y[i] = a + rng.normal();
    }
    const model: ModelSpec = { experts: 'linear', symmetric: false, k: 2, d: 3, nClasses: 0, noise: 'fitted', ridge: 0, intercept: false };
    let outcome = '';
    try {
      const res = runFitSync({ data: { x, y, s: null, n, d: 3 }, model, fit: fitSpec({ maxIter: 2, tol: 0 }), seed: 0, init: null, trueParams: null });
      outcome = res.iterations.some((r) => r.events?.some((e) => e.type === 'ridge-fallback')) ? 'fallback' : 'none';
    } catch (e) { outcome = isMoEError(e) ? e.code : String(e); }
    expect(['fallback', 'E_SINGULAR']).toContain(outcome);
  });
});

describe('M-step solvers', () => {
  it("'auto' picks Newton up to 256 free parameters per block and Newton-CG above", () => {
    expect(resolveSolver('auto', 256)).toBe('newton');
    expect(resolveSolver('auto', 257)).toBe('newton-cg');
    expect(resolveSolver('gradient', 10)).toBe('gradient');
  });

  it('with one expert, EM is ordinary least squares (σ² = RSS/n) and weighted logistic regression', () => {
    const s = sampleLinear({ n: 200, d: 3, k: 1, seed: 75 });
    const model = modelSpecOf(s);
    const res = runFitSync(request(s, model, fitSpec({ maxIter: 1, tol: 0 })));
    const { x, y } = problemDataOf(s);
    // Normal equations residual Xᵀ(y − Xβ) = 0 and σ² = mean squared residual.
    const fl = fullLayout(model);
    const beta = res.params.subarray(fl.coef, fl.coef + 3);
    const xtr = [0, 0, 0];
    let rss = 0;
    for (let i = 0; i < 200; i++) {
      let mu = 0;
      for (let f = 0; f < 3; f++) mu += beta[f]! * x[i * 3 + f]!;
      const r = y[i]! - mu;
      rss += r * r;
      for (let f = 0; f < 3; f++) xtr[f] += x[i * 3 + f]! * r;
    }
    for (const v of xtr) expect(Math.abs(v)).toBeLessThan(1e-9);
    expect(res.params[fl.sigma2]).toBeCloseTo(rss / 200, 12);
    const lg = sampleLogistic({ n: 300, d: 2, k: 1, seed: 76 });
    const lm = modelSpecOf(lg);
    const lr = runFitSync(request(lg, lm, fitSpec({ maxIter: 1, tol: 0 })));
    // Score equations of logistic regression: Σ (y − σ(βᵀx)) x = 0, up to Newton's stopping rule
    // (decrement/2 ≤ 1e-10·n, i.e. a gradient of order sqrt(1e-10·n·curvature)).
    const b = lr.params.subarray(fullLayout(lm).coef, fullLayout(lm).coef + 2);
    const score = [0, 0];
    for (let i = 0; i < 300; i++) {
      const eta = b[0]! * lg.X.data[i * 2]! + b[1]! * lg.X.data[i * 2 + 1]!;
      const r = lg.y[i]! - 1 / (1 + Math.exp(-eta));
      score[0] += r * lg.X.data[i * 2]!; score[1] += r * lg.X.data[i * 2 + 1]!;
    }
    for (const v of score) expect(Math.abs(v)).toBeLessThan(1e-3);
  });

  it('newton, newton-cg and gradient ascent agree on a softmax regression optimum', () => {
    const rng = new Rng(71);
    const n = 400; const d = 3; const C = 3;
    const x = new Float64Array(n * d);
    const soft = new Float64Array(n * C);
    const c = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      for (let f = 0; f < d; f++) x[i * d + f] = rng.normal();
      let z = 0;
      for (let a = 0; a < C; a++) { soft[i * C + a] = rng.uniform(); z += soft[i * C + a]!; }
      for (let a = 0; a < C; a++) soft[i * C + a] /= z;
      c[i] = 0.5 + rng.uniform();
    }
    const problem = { x, n, d, rowScale: null, c, C, soft, labels: null, ridge: 0.1, intercept: false, block: 'test' };
    const sr = new SoftmaxRegression(problem);
    const events: RecoveryEvent[] = [];
    const base = { maxIter: 25, tol: 1e-14, cgMaxIter: 50, innerSteps: 3000, stepScale: 1 / n };
    const vN = new Float64Array(sr.p); sr.solve(vN, { ...base, solver: 'newton' }, events);
    const vC = new Float64Array(sr.p); sr.solve(vC, { ...base, solver: 'newton-cg' }, events);
    const vG = new Float64Array(sr.p); sr.solve(vG, { ...base, solver: 'gradient', stepScale: 1 / n }, events);
    const g = new Float64Array(sr.p);
    sr.valueGradient(vN, g, null, null);
    for (const v of g) expect(Math.abs(v)).toBeLessThan(1e-5);
    for (let q = 0; q < sr.p; q++) {
      expect(vC[q]).toBeCloseTo(vN[q]!, 6);
      expect(vG[q]).toBeCloseTo(vN[q]!, 3);
    }
    expect(events).toHaveLength(0);
  });

  it.each(['gate', 'expert'] as const)("the Kronecker preconditioner of a %s needs far fewer CG products than Jacobi on correlated features, and newton-cg with it reaches newton's optimum", (kind) => {
    // Correlated features on scales 0.1–10, an intercept column, a ridge: what the Kronecker form captures.
    const rng = new Rng(72);
    const n = 600; const d = 12; const C = 4;
    const x = new Float64Array(n * d);
    const soft = new Float64Array(n * C);
    const c = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      x[i * d] = 1;
      for (let f = 1; f < d; f++) x[i * d + f] = rng.normal() + 0.9 * x[i * d + f - 1]!;
      for (let f = 1; f < d; f++) x[i * d + f] *= 10 ** ((f % 3) - 1);
      let z = 0;
      for (let a = 0; a < C; a++) { soft[i * C + a] = rng.uniform(); z += soft[i * C + a]!; }
      for (let a = 0; a < C; a++) soft[i * C + a] /= z;
      c[i] = 0.5 + rng.uniform();
    }
    // The gate: weights s, soft targets H. An expert: weights s·h_j (here the row's largest soft target), one-hot
    // labels; its preconditioner shares the statistics (Ĝ over s) and takes s·h_j at the sample rows.
    const s = c;
    const hj = new Float64Array(n).map((_, i) => Math.max(...soft.subarray(i * C, (i + 1) * C)));
    const labels = new Int32Array(n).map((_, i) => soft.subarray(i * C, (i + 1) * C).indexOf(hj[i]!));
    const weights = kind === 'gate' ? s : s.map((si, i) => si * hj[i]!);
    const base = { x, n, d, rowScale: null, c: weights, C, soft: kind === 'gate' ? soft : null, labels: kind === 'gate' ? null : labels,
      ridge: 0.1, intercept: true, block: kind };
    const stats = new KroneckerStatistics(x, n, d, s, true);
    const kronecker = { stats, sampleC: stats.sampleWeights(weights) };
    const sr = new SoftmaxRegression(base);
    const p = sr.p;
    const V = new Float64Array(p).map(() => 0.05 * rng.normal());
    const g = new Float64Array(p);
    const negH = new Float64Array(p * p);
    sr.valueGradient(V, g, null, negH);
    const diag = new Float64Array(p).map((_, q) => negH[q * p + q]!);
    const applyA = (v: Float64Array, out: Float64Array): void => {
      for (let a = 0; a < p; a++) { let s = 0; for (let b = 0; b < p; b++) s += negH[a * p + b]! * v[b]!; out[a] = s; }
    };
    let sumC = 0;
    for (const ci of weights) sumC += ci;
    const solve = (precondition: (r: Float64Array, z: Float64Array) => void): { its: number; delta: Float64Array } => {
      const delta = new Float64Array(p);
      return { its: preconditionedCg(applyA, g, precondition, { maxIter: 2000, eta: 1e-12 }, delta), delta };
    };
    const withJacobi = solve(jacobi(diag));
    const withKronecker = solve(stats.at(V, sumC, 0.1, kronecker.sampleC));
    expect(withKronecker.its).toBeLessThan(withJacobi.its / 2);
    const scale = Math.max(...withJacobi.delta.map(Math.abs));
    for (let q = 0; q < p; q++) expect(Math.abs(withKronecker.delta[q]! - withJacobi.delta[q]!)).toBeLessThan(1e-6 * scale);

    const events: RecoveryEvent[] = [];
    const opts = { maxIter: 25, tol: 1e-14, cgMaxIter: 50, innerSteps: 1, stepScale: 1 / n };
    const vN = new Float64Array(p); sr.solve(vN, { ...opts, solver: 'newton' }, events);
    const vK = new Float64Array(p); new SoftmaxRegression({ ...base, kronecker }).solve(vK, { ...opts, solver: 'newton-cg' }, events);
    for (let q = 0; q < p; q++) expect(vK[q]).toBeCloseTo(vN[q]!, 7);
    expect(events).toHaveLength(0);
  });
});

describe('linear algebra', () => {
  it('Cholesky solves an SPD system; the ridge fallback fires once; a zero matrix is E_SINGULAR', () => {
    const a = new Float64Array([4, 2, 2, 3]);
    const b = new Float64Array([2, 1]);
    const l = Float64Array.from(a);
    expect(choleskyInPlace(l, 2)).toBe(true);
    choleskySolveInPlace(l, 2, b);
    expect(4 * b[0]! + 2 * b[1]!).toBeCloseTo(2, 14);
    expect(2 * b[0]! + 3 * b[1]!).toBeCloseTo(1, 14);
    const events: RecoveryEvent[] = [];
    const singular = new Float64Array([1, 1, 1, 1]);
    solveSpdWithRecovery(singular, 2, new Float64Array([1, 1]), 'expert 0', events);
    expect(events).toEqual([{ type: 'ridge-fallback', block: 'expert 0', ridge: 1e-8 }]);
    expect(() => solveSpdWithRecovery(new Float64Array(4), 2, new Float64Array(2), 'gate', [])).toThrow(
      expect.objectContaining({ code: 'E_SINGULAR' }));
  });

  it('weighted Gram matrices match a direct sum (odd d, short last block)', () => {
    const rng = new Rng(81);
    const n = 300; const d = 5; const Q = 2;
    const x = new Float64Array(n * d).map(() => rng.normal());
    const w = new Float64Array(n * Q).map(() => rng.uniform() - 0.3);
    const g = weightedGrams(x, n, d, w, Q, new Float64Array(Q * d * d));
    for (let q = 0; q < Q; q++) for (let f = 0; f < d; f++) for (let h = 0; h < d; h++) {
      let acc = 0;
      for (let i = 0; i < n; i++) acc += w[i * Q + q]! * x[i * d + f]! * x[i * d + h]!;
      expect(g[q * d * d + f * d + h]).toBeCloseTo(acc, 10);
    }
  });
});

describe('parameter error', () => {
  it('is invariant to expert permutations, gate shifts, and the symmetric sign flip', () => {
    const s = sampleLinear({ n: 10, d: 2, k: 3, seed: 91 });
    const model = modelSpecOf(s);
    const truth = readableToParams(model, s.params);
    const fl = fullLayout(model);
    const permuted = Float64Array.from(truth);
    // Swap experts 0 and 2 (gate rows and coefficients), then re-reference the gate to row 2.
    for (let f = 0; f < 2; f++) {
      [permuted[f], permuted[4 + f]] = [truth[4 + f]!, truth[f]!];
      [permuted[fl.coef + f], permuted[fl.coef + 4 + f]] = [truth[fl.coef + 4 + f]!, truth[fl.coef + f]!];
    }
    for (let f = 0; f < 2; f++) { const last = permuted[4 + f]!; for (let j = 0; j < 3; j++) permuted[j * 2 + f] -= last; }
    expect(parameterError(model, permuted, truth)).toBeCloseTo(0, 12);
    const moved = Float64Array.from(truth); moved[fl.coef] += 0.3;
    expect(parameterError(model, moved, truth)).toBeCloseTo(0.3, 12);
    const sym = sampleSymMoLinE({ n: 5, d: 2, seed: 92 });
    const sm = modelSpecOf(sym);
    const st = readableToParams(sm, sym.params);
    expect(parameterError(sm, st.map((v) => -v), st)).toBeCloseTo(0, 14);
  });
});
