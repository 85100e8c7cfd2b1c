/**
 * The mirror-descent view of EM (MATH.md §4): EM's update satisfies ∇Φ(θ_{t+1}) = ∇Φ(θ_t) − ∇L(θ_t) in the
 * symmetric models, the mirror step equals an EM step computed from MATH's closed forms, and the general
 * model's Q-identity holds in per-sample natural coordinates on random θ, θ_t.
 */
import { describe, expect, it } from 'vitest';
import type { FitSpec, ModelSpec, ProblemData } from '../src/backends/backend.js';
import { runFitSync } from '../src/algorithms/fit.js';
import { Rng } from '../src/data/rng.js';
import {
  sampleLinear, sampleLogistic, sampleMultinomial, sampleSymMoLinE, sampleSymMoLogE, type SampledProblem,
} from '../src/data/samplers.js';
import {
  bregmanDivergence, lossGradient, mirrorDescentStep, mirrorGradient, mirrorPotential, qIdentityTerms,
} from '../src/diagnostics/mirror.js';
import { choleskyInPlace, choleskySolveInPlace } from '../src/linalg/cholesky.js';
import { sigmoid } from '../src/linalg/dense.js';
import { readableToParams } from '../src/models/layout.js';
import { qValue, eStep } from '../src/models/objective.js';
import { modelSpecOf, problemDataOf } from './support/sampled.js';

function randomVector(rng: Rng, len: number, scale: number): Float64Array {
  return Float64Array.from({ length: len }, () => scale * rng.normal());
}

function maxAbsDiff(a: Float64Array, b: Float64Array): number {
  let m = 0;
  for (let t = 0; t < a.length; t++) m = Math.max(m, Math.abs(a[t]! - b[t]!));
  return m;
}

// One EM iteration with a Newton M-step tolerance far below the default 1e-10·Σc: the identity is a statement
// about the exact M-step, and the default tolerance alone leaves a gradient residual near 1e-6.
const emOnce: FitSpec = {
  algorithm: 'em',
  mstep: { solver: 'newton', maxIter: 25, tol: 1e-14, cgMaxIter: 50, innerSteps: 10 },
  stepSize: { gate: 0.1, experts: 0.1 }, innerSteps: 1, batchSize: 0, maxIter: 1, tol: 0, onEmpty: 'reseed', threads: 0,
};

/** One EM iteration from MATH.md §2's closed forms, written independently of the library's M-step. */
function textbookEmStep(data: ProblemData, model: ModelSpec, theta: Float64Array): Float64Array {
  const { n, d, x, y } = data;
  const s2 = model.experts === 'linear' ? (model.noise as number) ** 2 : 1;
  const m = new Float64Array(n); // E[z | x, y]
  for (let i = 0; i < n; i++) {
    let u = 0; let v = 0;
    for (let f = 0; f < d; f++) { u += theta[f]! * x[i * d + f]!; v += theta[d + f]! * x[i * d + f]!; }
    m[i] = Math.tanh(u / 2 + (model.experts === 'linear' ? (y[i]! * v) / s2 : (y[i]! * v) / 2));
  }
  /** Newton for Σ ((1+m_i)/2 − σ(cᵀz_i)) z_i = 0 with features z_i = sign_i·x_i. */
  const logistic = (sign: (i: number) => number, start: Float64Array): Float64Array => {
    const c = Float64Array.from(start);
    for (let it = 0; it < 60; it++) {
      const g = new Float64Array(d); const hs = new Float64Array(d * d);
      for (let i = 0; i < n; i++) {
        let t = 0;
        for (let f = 0; f < d; f++) t += c[f]! * sign(i) * x[i * d + f]!;
        const p = sigmoid(t);
        for (let f = 0; f < d; f++) {
          const zf = sign(i) * x[i * d + f]!;
          g[f] += ((1 + m[i]!) / 2 - p) * zf;
          for (let e = 0; e < d; e++) hs[f * d + e] += p * (1 - p) * zf * sign(i) * x[i * d + e]!;
        }
      }
      choleskyInPlace(hs, d); choleskySolveInPlace(hs, d, g);
      for (let f = 0; f < d; f++) c[f] += g[f]!;
    }
    return c;
  };
  const out = new Float64Array(2 * d);
  out.set(logistic(() => 1, theta.subarray(0, d)), 0);
  if (model.experts === 'logistic') {
    out.set(logistic((i) => y[i]!, theta.subarray(d)), d);
  } else {
    const gram = new Float64Array(d * d); const rhs = new Float64Array(d);
    for (let i = 0; i < n; i++) for (let f = 0; f < d; f++) {
      rhs[f] += m[i]! * y[i]! * x[i * d + f]!;
      for (let e = 0; e < d; e++) gram[f * d + e] += x[i * d + f]! * x[i * d + e]!;
    }
    choleskyInPlace(gram, d); choleskySolveInPlace(gram, d, rhs);
    out.set(rhs, d);
  }
  return out;
}

const symmetricCases = [
  { name: 'SymMoLinE', problem: sampleSymMoLinE({ n: 600, d: 4, seed: 41, norm: 2, sigma: 0.9 }) },
  { name: 'SymMoLogE', problem: sampleSymMoLogE({ n: 600, d: 4, seed: 42, norm: 3 }) },
];

describe('EM is mirror descent with unit step (symmetric models)', () => {
  for (const [index, c] of symmetricCases.entries()) {
    it(`${c.name}: ∇Φ(θ_{t+1}) = ∇Φ(θ_t) − ∇L(θ_t) for the library's EM step`, () => {
      const model = modelSpecOf(c.problem);
      const data = problemDataOf(c.problem);
      const rng = new Rng(500 + index);
      const truth = readableToParams(model, c.problem.params);
      for (let trial = 0; trial < 3; trial++) {
        const thetaT = truth.map((a) => a + 0.7 * rng.normal());
        const next = runFitSync({ data, model, fit: emOnce, seed: 0, init: thetaT, trueParams: null }).params;
        const target = mirrorGradient(data, model, thetaT);
        const gL = lossGradient(data, model, thetaT, 2 * model.d);
        for (let t = 0; t < target.length; t++) target[t] -= gL[t]!;
        const residual = (theta: Float64Array): number => maxAbsDiff(mirrorGradient(data, model, theta), target);
        // The exact EM step: the mirror step, and MATH's textbook closed form computed independently.
        const md = mirrorDescentStep(data, model, thetaT);
        expect(residual(md)).toBeLessThan(1e-12);
        expect(residual(textbookEmStep(data, model, thetaT))).toBeLessThan(1e-8);
        // The library's EM iterate, with its default M-step tolerance: the Newton solver ends with a full
        // step from inside the tolerance (ALGORITHMS.md §3), which lands at the exact M-step to rounding.
        expect(residual(next)).toBeLessThan(1e-8);
        expect(maxAbsDiff(md, next)).toBeLessThan(1e-8);
      }
    });

    it(`${c.name}: Q(θ|θ_t) − Q(θ_t|θ_t) = −S[⟨∇L(θ_t), θ − θ_t⟩ + D_Φ(θ, θ_t)], D_Φ ≥ 0`, () => {
      const model = modelSpecOf(c.problem);
      const rng = new Rng(600 + index);
      const weights = Float64Array.from({ length: c.problem.X.rows }, () => 0.1 + rng.uniform());
      const data = problemDataOf(c.problem, weights);
      const S = weights.reduce((a, b) => a + b, 0);
      for (let trial = 0; trial < 4; trial++) {
        const theta = randomVector(rng, 2 * model.d, 1.5);
        const thetaT = randomVector(rng, 2 * model.d, 1.5);
        const h = new Float64Array(data.n * 2);
        eStep(data, model, thetaT, h);
        const qDiff = qValue(data, model, theta, h) - qValue(data, model, thetaT, h);
        const gL = lossGradient(data, model, thetaT, 2 * model.d);
        let inner = 0;
        for (let t = 0; t < gL.length; t++) inner += gL[t]! * (theta[t]! - thetaT[t]!);
        const breg = bregmanDivergence(data, model, theta, thetaT);
        expect(breg).toBeGreaterThanOrEqual(0);
        expect(Math.abs(qDiff + S * (inner + breg))).toBeLessThan(1e-9 * Math.max(1, Math.abs(qDiff)));
        // The general natural-coordinate form agrees on the symmetric models too.
        const terms = qIdentityTerms(data, model, theta, thetaT);
        expect(terms.qDifference).toBeCloseTo(qDiff, 8);
        expect(terms.bregman).toBeCloseTo(S * breg, 6);
      }
    });
  }

  it('mirror step with a small step size moves along −∇L (first order)', () => {
    const c = symmetricCases[0]!;
    const model = modelSpecOf(c.problem);
    const data = problemDataOf(c.problem);
    const theta = readableToParams(model, c.problem.params).map((a) => a * 0.8);
    const eta = 1e-6;
    const next = mirrorDescentStep(data, model, theta, eta);
    const moved = mirrorGradient(data, model, next);
    const start = mirrorGradient(data, model, theta);
    const gL = lossGradient(data, model, theta, 2 * model.d);
    for (let t = 0; t < gL.length; t++) expect((moved[t]! - start[t]!) / eta).toBeCloseTo(-gL[t]!, 6);
    expect(mirrorPotential(data, model, theta)).toBeGreaterThan(0);
  });

  it('rejects a ridge and non-symmetric models with E_OPTION', () => {
    const c = symmetricCases[0]!;
    const data = problemDataOf(c.problem);
    const theta = readableToParams(modelSpecOf(c.problem), c.problem.params);
    expect(() => mirrorPotential(data, { ...modelSpecOf(c.problem), ridge: 1 }, theta))
      .toThrow(expect.objectContaining({ code: 'E_OPTION' }));
    const lin = sampleLinear({ n: 20, d: 2, seed: 1 });
    expect(() => mirrorGradient(problemDataOf(lin), modelSpecOf(lin), readableToParams(modelSpecOf(lin), lin.params)))
      .toThrow(expect.objectContaining({ code: 'E_OPTION' }));
  });
});

describe('Q-identity in per-sample natural coordinates (general model, random θ and θ_t)', () => {
  const general = [
    { name: 'linear, fitted σ², k = 3', problem: sampleLinear({ n: 300, d: 3, k: 3, seed: 51 }) },
    { name: 'logistic', problem: sampleLogistic({ n: 300, d: 3, k: 2, seed: 52 }) },
    { name: 'multinomial, C = 4', problem: sampleMultinomial({ n: 300, d: 3, k: 3, nClasses: 4, seed: 53 }) },
  ];
  for (const [index, c] of general.entries()) {
    it(c.name, () => {
      const model = modelSpecOf(c.problem);
      const rng = new Rng(700 + index);
      const weights = Float64Array.from({ length: c.problem.X.rows }, () => 0.1 + rng.uniform());
      const data = problemDataOf(c.problem, weights);
      const truth = readableToParams(model, c.problem.params);
      for (let trial = 0; trial < 4; trial++) {
        const draw = (): Float64Array => {
          const t = truth.map((a) => a + rng.normal());
          if (model.experts === 'linear') for (let j = 0; j < model.k; j++) t[t.length - model.k + j] = 0.2 + rng.uniform();
          return readableToParams(model, { ...c.problem.params, ...paramsShape(model, t) });
        };
        const theta = draw();
        const thetaT = draw();
        const terms = qIdentityTerms(data, model, theta, thetaT);
        expect(terms.bregman).toBeGreaterThanOrEqual(0);
        const scale = Math.max(1, Math.abs(terms.qDifference), Math.abs(terms.bregman));
        expect(Math.abs(terms.qDifference + terms.linear + terms.bregman)).toBeLessThan(1e-10 * scale);
      }
    });
  }
});

/** Readable gate/coef/sigma2 from a flat vector (only what readableToParams needs). */
function paramsShape(model: ModelSpec, flat: Float64Array): Record<string, unknown> {
  const { k, d } = model;
  const rows = (off: number, r: number): number[][] =>
    Array.from({ length: r }, (_, i) => Array.from(flat.subarray(off + i * d, off + (i + 1) * d)));
  const gate = rows(0, k);
  if (model.experts === 'multinomial') {
    const C = model.nClasses;
    return { gate, coef: Array.from({ length: k }, (_, j) => rows(k * d + j * C * d, C)) };
  }
  const out: Record<string, unknown> = { gate, coef: rows(k * d, k) };
  if (model.experts === 'linear') out.sigma2 = Array.from(flat.subarray(2 * k * d, 2 * k * d + k));
  return out;
}
