import { describe, expect, it } from 'vitest';
import type { ModelSpec, ProblemData } from '../src/backends/backend.js';
import { Rng } from '../src/data/rng.js';
import {
  eStep, evaluateObjective, freeLayout, fromFree, fullLayout, gradientF, gradientQ, paramsToReadable, penalty,
  qValue, readableToParams, toFree, componentCount, classProbabilities, mixtureMean,
} from '../src/models/index.js';

// Small self-contained generators: random data and parameters of the right kind for each family.
function makeModel(experts: ModelSpec['experts'], opts: Partial<ModelSpec> = {}): ModelSpec {
  const symmetric = opts.symmetric ?? false;
  return {
    experts, symmetric, k: symmetric ? 2 : (opts.k ?? 3), d: opts.d ?? 4,
    nClasses: experts === 'multinomial' ? (opts.nClasses ?? 3) : experts === 'logistic' ? 2 : 0,
    noise: opts.noise ?? (symmetric && experts === 'linear' ? 1 : 'fitted'),
    ridge: opts.ridge ?? 0, intercept: opts.intercept ?? false,
  };
}

function makeData(model: ModelSpec, n: number, rng: Rng, weighted = false): ProblemData {
  const { d } = model;
  const x = new Float64Array(n * d);
  const y = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    for (let f = 0; f < d; f++) x[i * d + f] = model.intercept && f === 0 ? 1 : rng.normal();
    if (model.experts === 'linear') y[i] = 2 * rng.normal();
    else if (model.experts === 'multinomial') y[i] = rng.int(model.nClasses);
    else if (model.symmetric) y[i] = rng.uniform() < 0.5 ? -1 : 1;
    else y[i] = rng.int(2);
  }
  let s: Float64Array | null = null;
  if (weighted) {
    s = new Float64Array(n);
    for (let i = 0; i < n; i++) s[i] = 0.5 + rng.uniform();
  }
  return { x, y, s, n, d };
}

function makeParams(model: ModelSpec, rng: Rng): Float64Array {
  const fl = fullLayout(model);
  const p = new Float64Array(fl.size);
  for (let i = 0; i < fl.size; i++) p[i] = 0.7 * rng.normal();
  if (!model.symmetric) {
    const { k, d } = model;
    for (let f = 0; f < d; f++) p[(k - 1) * d + f] = 0;
    if (model.experts === 'multinomial') {
      for (let j = 0; j < k; j++) for (let f = 0; f < d; f++) p[fl.coef + (j * model.nClasses + model.nClasses - 1) * d + f] = 0;
    }
    if (model.experts === 'linear') {
      for (let j = 0; j < k; j++) p[fl.sigma2 + j] = typeof model.noise === 'number' ? model.noise ** 2 : 0.5 + rng.uniform() * 2;
    }
  }
  return p;
}

const FAMILIES: [string, ModelSpec['experts'], Partial<ModelSpec>][] = [
  ['linear, fitted noise', 'linear', {}],
  ['linear, known noise', 'linear', { noise: 0.8 }],
  ['logistic', 'logistic', {}],
  ['multinomial', 'multinomial', { nClasses: 4 }],
  ['SymMoLinE', 'linear', { symmetric: true, noise: 1.3 }],
  ['SymMoLogE', 'logistic', { symmetric: true }],
];

function fObjective(data: ProblemData, model: ModelSpec, params: Float64Array): number {
  return eStep(data, model, params, null) - penalty(model, params);
}

describe('models: gradients', () => {
  for (const [name, experts, opts] of FAMILIES) {
    for (const ridge of [0, 0.7]) {
      it(`∇F matches central finite differences: ${name}, ridge ${ridge}`, () => {
        const rng = new Rng(101 + Math.round(ridge * 10));
        const model = makeModel(experts, { ...opts, ridge, intercept: ridge > 0 });
        const data = makeData(model, 60, rng, true);
        const params = makeParams(model, rng);
        const fr = freeLayout(model);
        const g = new Float64Array(fr.p);
        gradientF(data, model, params, g);
        const free = toFree(model, params);
        const fd = new Float64Array(fr.p);
        for (let q = 0; q < fr.p; q++) {
          const step = 1e-5 * Math.max(1, Math.abs(free[q]!));
          const plus = Float64Array.from(free); plus[q] += step;
          const minus = Float64Array.from(free); minus[q] -= step;
          fd[q] = (fObjective(data, model, fromFree(model, plus, params))
            - fObjective(data, model, fromFree(model, minus, params))) / (2 * step);
        }
        let num = 0; let den = 0;
        for (let q = 0; q < fr.p; q++) { num += (g[q]! - fd[q]!) ** 2; den += g[q]! ** 2; }
        expect(Math.sqrt(num / den)).toBeLessThan(1e-6);
      });
    }
  }

  it("Fisher's identity: ∇Q(θ_t | θ_t) = ∇ℓ(θ_t), and ∇Q at another θ differs", () => {
    const rng = new Rng(7);
    const model = makeModel('logistic', { k: 3 });
    const data = makeData(model, 80, rng);
    const theta = makeParams(model, rng);
    const h = new Float64Array(data.n * model.k);
    eStep(data, model, theta, h);
    const p = freeLayout(model).p;
    const gq = gradientQ(data, model, theta, h, new Float64Array(p));
    const gl = new Float64Array(p);
    gradientF(data, model, theta, gl);
    for (let q = 0; q < p; q++) expect(gq[q]).toBeCloseTo(gl[q]!, 12);
    // Q(·|θ_t) ≤ ℓ(·) − ℓ(θ_t) + Q(θ_t|θ_t) (minorisation) at a random other point.
    const other = makeParams(model, rng);
    const lhs = qValue(data, model, other, h) - qValue(data, model, theta, h);
    const rhs = fObjective(data, model, other) - fObjective(data, model, theta);
    expect(lhs).toBeLessThanOrEqual(rhs + 1e-9);
  });
});

describe('models: evaluation', () => {
  it('responsibilities sum to one and ℓ matches a direct mixture density (linear)', () => {
    const rng = new Rng(3);
    const model = makeModel('linear', { k: 3, d: 2 });
    const data = makeData(model, 5, rng);
    const params = makeParams(model, rng);
    const h = new Float64Array(5 * 3);
    const rows = new Float64Array(5);
    eStep(data, model, params, h, rows);
    const fl = fullLayout(model);
    for (let i = 0; i < 5; i++) {
      let sum = 0;
      for (let j = 0; j < 3; j++) sum += h[i * 3 + j]!;
      expect(sum).toBeCloseTo(1, 14);
      const x0 = data.x[i * 2]!; const x1 = data.x[i * 2 + 1]!;
      const scores = [0, 1, 2].map((j) => params[j * 2]! * x0 + params[j * 2 + 1]! * x1);
      const z = scores.reduce((a, b) => a + Math.exp(b), 0);
      let dens = 0;
      for (let j = 0; j < 3; j++) {
        const mu = params[fl.coef + j * 2]! * x0 + params[fl.coef + j * 2 + 1]! * x1;
        const s2 = params[fl.sigma2 + j]!;
        dens += (Math.exp(scores[j]!) / z) * Math.exp(-((data.y[i]! - mu) ** 2) / (2 * s2)) / Math.sqrt(2 * Math.PI * s2);
      }
      expect(rows[i]).toBeCloseTo(Math.log(dens), 12);
    }
  });

  it('SymMoLinE posterior equals (1 + tanh(wᵀx/2 + y βᵀx/σ²))/2', () => {
    const rng = new Rng(4);
    const model = makeModel('linear', { symmetric: true, noise: 0.9, d: 3 });
    const data = makeData(model, 20, rng);
    const params = makeParams(model, rng);
    const h = new Float64Array(40);
    eStep(data, model, params, h);
    for (let i = 0; i < 20; i++) {
      let wx = 0; let bx = 0;
      for (let f = 0; f < 3; f++) { wx += params[f]! * data.x[i * 3 + f]!; bx += params[3 + f]! * data.x[i * 3 + f]!; }
      const m = Math.tanh(wx / 2 + data.y[i]! * bx / 0.81);
      expect(h[i * 2]).toBeCloseTo((1 + m) / 2, 12);
    }
  });

  it('readable ↔ flat round trip for every family, with the reference convention', () => {
    const rng = new Rng(5);
    for (const [, experts, opts] of FAMILIES) {
      const model = makeModel(experts, opts);
      const params = makeParams(model, rng);
      const back = readableToParams(model, paramsToReadable(model, params));
      expect(Array.from(back)).toEqual(Array.from(params));
      expect(componentCount(model)).toBe(model.symmetric ? 2 : model.k);
    }
    // Gate rows are re-referenced to row k−1 = 0 without changing the model.
    const model = makeModel('logistic', { k: 2, d: 2 });
    const readable = paramsToReadable(model, new Float64Array([1, 2, 0.5, 0.5, 3, 4, 5, 6]));
    readable.gate = [[1.5, 2.5], [0.5, 0.5]];
    expect(Array.from(readableToParams(model, readable).subarray(0, 4))).toEqual([1, 2, 0, 0]);
  });

  it('the E-step stays finite in the log domain for extreme parameters', () => {
    const rng = new Rng(8);
    for (const [, experts, opts] of FAMILIES) {
      const model = makeModel(experts, opts);
      const data = makeData(model, 20, rng);
      const params = makeParams(model, rng).map((v) => v * 500);
      if (model.experts === 'linear' && !model.symmetric) {
        const fl = fullLayout(model);
        for (let j = 0; j < model.k; j++) params[fl.sigma2 + j] = typeof model.noise === 'number' ? model.noise ** 2 : 1e-6;
      }
      const h = new Float64Array(20 * componentCount(model));
      const rows = new Float64Array(20);
      eStep(data, model, params, h, rows);
      for (const v of rows) expect(Number.isFinite(v)).toBe(true);
      for (const v of h) expect(v >= 0 && v <= 1).toBe(true);
    }
  });

  it('objective equals nll plus penalty / S, and predictions are proper', () => {
    const rng = new Rng(6);
    const model = makeModel('multinomial', { nClasses: 3, ridge: 0.5 });
    const data = makeData(model, 30, rng);
    const params = makeParams(model, rng);
    const v = evaluateObjective(data, model, params);
    expect(v.objective).toBeCloseTo(v.nll + penalty(model, params) / 30, 12);
    const probs = classProbabilities(model, params, data.x, 30);
    for (let i = 0; i < 30; i++) expect(probs[i * 3]! + probs[i * 3 + 1]! + probs[i * 3 + 2]!).toBeCloseTo(1, 12);
    const lin = makeModel('linear', { k: 1, d: 4 });
    const lp = makeParams(lin, rng);
    const mean = mixtureMean(lin, lp, data.x, 30);
    const fl = fullLayout(lin);
    let direct = 0;
    for (let f = 0; f < 4; f++) direct += lp[fl.coef + f]! * data.x[f]!;
    expect(mean[0]).toBeCloseTo(direct, 12);
  });
});
