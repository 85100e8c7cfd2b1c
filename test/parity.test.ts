/**
 * Parity of the native CPU backend (Rust, through the addon) with the TypeScript reference, the oracle:
 * for fresh random instances of every model family and every algorithm, the parameters and the nll /
 * objective history after a fixed number of iterations agree to relative 1e-9; information matrices and
 * MIM eigenvalues to 1e-8; predictions to 1e-12; bad inputs give the same error codes. The native fits run with 1 and with 2
 * threads, which must be bit-identical (moe-core reduces over a fixed partition of the rows).
 * Skipped, with the reason printed, only when the addon is not built.
 */
import { describe, expect, it } from 'vitest';
import { asRestarts, type FitRequest, type FitSpec, type ModelSpec, type ProblemData } from '../src/backends/backend.js';
import { computeInit } from '../src/algorithms/named-init.js';
import { momentSums, momentsInit } from '../src/algorithms/init-moments.js';
import { jsBackend } from '../src/backends/js.js';
import { loadNativeBackend, nativeInfo } from '../src/backends/native.js';
import {
  sampleLinear, sampleLogistic, sampleMultinomial, sampleSymMoLinE, sampleSymMoLogE, type SampledProblem,
} from '../src/data/samplers.js';
import { MixtureOfExperts } from '../src/estimator.js';
import { resolveFitSpec } from '../src/input.js';
import type { MoEOptions } from '../src/types.js';
import { readableToParams } from '../src/models/layout.js';

const FIT_RTOL = 1e-9;
const INFO_RTOL = 1e-8;

const info = nativeInfo();
if (!info.loaded) console.warn(`parity.test.ts: skipped, the native addon is not available (${info.reason})`);

/** A problem instance at the backend boundary (data, resolved model, true parameters in the flat layout). */
interface Instance {
  data: ProblemData;
  model: ModelSpec;
  truth: Float64Array;
}

function instance(sampled: SampledProblem, model: ModelSpec, opts: { weights?: boolean; intercept?: boolean } = {}): Instance {
  const { X, y } = sampled;
  let x = X.data;
  let d = X.cols;
  if (opts.intercept) {
    // What the estimator does for `intercept: true`: prepend a column of ones.
    x = new Float64Array(X.rows * (d + 1));
    for (let i = 0; i < X.rows; i++) {
      x[i * (d + 1)] = 1;
      x.set(X.data.subarray(i * d, (i + 1) * d), i * (d + 1) + 1);
    }
    d += 1;
  }
  let s: Float64Array | null = null;
  if (opts.weights) {
    s = new Float64Array(X.rows);
    for (let i = 0; i < X.rows; i++) s[i] = 0.5 + ((i * 7919) % 13) / 12; // fixed, uneven, positive
  }
  const resolved: ModelSpec = { ...model, d, intercept: opts.intercept ?? false };
  const truthModel: ModelSpec = { ...resolved, d: X.cols, intercept: false };
  let truth = readableToParams(truthModel, sampled.params);
  if (opts.intercept) truth = new Float64Array(0); // the sampler's truth has no intercept entry
  return { data: { x, n: X.rows, d, y, s }, model: resolved, truth };
}

const base = { symmetric: false, nClasses: 0, noise: 'fitted', ridge: 0, intercept: false } as const;

/** Every model family, with fresh data per (n, seed). */
const families: { name: string; make: (n: number, seed: number) => Instance }[] = [
  { name: 'linear, fitted noise, k=3, weights',
    make: (n, seed) => instance(sampleLinear({ n, d: 3, k: 3, seed }), { ...base, experts: 'linear', k: 3, d: 3 },
      { weights: true }) },
  { name: 'linear, known noise, intercept, ridge',
    make: (n, seed) => instance(sampleLinear({ n, d: 3, k: 2, seed, sigma2: 0.25 }),
      { ...base, experts: 'linear', k: 2, d: 3, noise: 0.5, ridge: 0.1 }, { intercept: true }) },
  { name: 'logistic, k=2',
    make: (n, seed) => instance(sampleLogistic({ n, d: 3, k: 2, seed }),
      { ...base, experts: 'logistic', k: 2, d: 3, nClasses: 2 }) },
  { name: 'multinomial, k=2, C=3, ridge',
    make: (n, seed) => instance(sampleMultinomial({ n, d: 3, k: 2, seed, nClasses: 3 }),
      { ...base, experts: 'multinomial', k: 2, d: 3, nClasses: 3, ridge: 0.05 }) },
  { name: 'SymMoLinE',
    make: (n, seed) => instance(sampleSymMoLinE({ n, d: 3, seed, norm: 2 }),
      { ...base, experts: 'linear', symmetric: true, k: 2, d: 3, noise: 1 }) },
  { name: 'SymMoLogE',
    make: (n, seed) => instance(sampleSymMoLogE({ n, d: 3, seed, norm: 2 }),
      { ...base, experts: 'logistic', symmetric: true, k: 2, d: 3, nClasses: 2 }) },
];

function fitSpec(overrides: Partial<FitSpec> & { solver?: FitSpec['mstep']['solver'] }): FitSpec {
  const { solver = 'auto', ...rest } = overrides;
  // A fixed number of iterations (tol 0).
  return resolveFitSpec({ mstep: { solver }, stepSize: { gate: 0.2, experts: 0.1 }, maxIter: 6, tol: 0, threads: 1, ...rest });
}

const algorithms: { name: string; spec: FitSpec }[] = [
  { name: 'em/newton', spec: fitSpec({ solver: 'newton' }) },
  { name: 'em/newton-cg', spec: fitSpec({ solver: 'newton-cg' }) },
  { name: 'em/gradient', spec: fitSpec({ solver: 'gradient' }) },
  { name: 'gradient-em', spec: fitSpec({ algorithm: 'gradient-em', innerSteps: 2 }) },
  { name: 'gd', spec: fitSpec({ algorithm: 'gd' }) },
  { name: 'em mini-batch', spec: fitSpec({ batchSize: 64, maxIter: 3 }) },
  { name: 'gradient-em mini-batch', spec: fitSpec({ algorithm: 'gradient-em', batchSize: 50, maxIter: 3 }) },
  { name: 'gd mini-batch', spec: fitSpec({ algorithm: 'gd', batchSize: 77, maxIter: 3 }) },
];

function request(c: Instance, a: { spec: FitSpec }, seed: number, threads: number): FitRequest {
  return {
    data: c.data, model: c.model, fit: { ...a.spec, threads }, seed, init: null,
    trueParams: c.truth.length > 0 ? c.truth : null,
  };
}

/** max_i |a_i − b_i| / max(max_i |b_i|, tiny): relative error of a vector against the reference b. */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return diff / Math.max(scale, 1e-300);
}

/** Entry-wise relative error of a history column (values of order 1 or larger). */
function historyErr(a: number[], b: number[]): number {
  expect(a.length).toBe(b.length);
  return Math.max(0, ...a.map((v, i) => Math.abs(v - b[i]!) / Math.max(1, Math.abs(b[i]!))));
}

describe.skipIf(!info.loaded)('native CPU backend = TypeScript reference: fits', () => {
  const native = info.loaded ? loadNativeBackend('cpu') : jsBackend;
  let seed = 1000;

  for (const family of families) {
    for (const algorithm of algorithms) {
      it(`${family.name} · ${algorithm.name}`, () => {
        seed += 1;
        const c = family.make(300, seed);
        const reference = jsBackend.fitSync(request(c, algorithm, seed, 1), {});
        const one = native.fitSync(request(c, algorithm, seed, 1), {});
        const two = native.fitSync(request(c, algorithm, seed, 2), {});

        expect(one.iterations.length).toBe(reference.iterations.length);
        expect(relErr(one.params, reference.params)).toBeLessThanOrEqual(FIT_RTOL);
        expect(historyErr(one.iterations.map((r) => r.nll), reference.iterations.map((r) => r.nll))).toBeLessThanOrEqual(FIT_RTOL);
        expect(historyErr(one.iterations.map((r) => r.objective), reference.iterations.map((r) => r.objective)))
          .toBeLessThanOrEqual(FIT_RTOL);
        if (c.truth.length > 0) {
          expect(historyErr(one.iterations.map((r) => r.paramError!), reference.iterations.map((r) => r.paramError!)))
            .toBeLessThanOrEqual(FIT_RTOL);
        }
        expect(one.iterations.map((r) => r.events ?? [])).toEqual(reference.iterations.map((r) => r.events ?? []));
        expect(one.reason).toBe(reference.reason);

        // Threads change who computes each chunk, never the arithmetic.
        expect(Array.from(two.params)).toEqual(Array.from(one.params));
        expect(two.iterations.map((r) => r.nll)).toEqual(one.iterations.map((r) => r.nll));

        // Restarts share one backend: what another start's fit leaves in it (row stores, the mini-batch order)
        // never changes a fit, bit for bit.
        const shared = asRestarts(request(c, algorithm, seed, 1));
        const [, again] = native.fitRestartsSync({ ...shared, starts: [{ seed: seed + 7, init: null }, ...shared.starts] }, {});
        expect(Array.from(again!.params)).toEqual(Array.from(one.params));
        expect(again!.iterations.map((r) => r.objective)).toEqual(one.iterations.map((r) => r.objective));
      });
    }
  }

});

describe.skipIf(!info.loaded)('native CPU backend = TypeScript reference: the stages of the named starts', () => {
  const native = info.loaded ? loadNativeBackend('cpu') : jsBackend;
  const linearFamilies = families.filter((f) => f.name.startsWith('linear'));

  for (const family of linearFamilies) {
    for (const solver of ['newton', 'newton-cg'] as const) {
      it(`${family.name} · ${solver}`, () => {
        const c = family.make(400, 77);
        // The start the stage gets from the moments: some slopes, a zero gate, σ² > 0.
        const start = momentsInit(c.data, c.model, fitSpec({ solver }), 3, { momentSums, gateOnlyEm: (_d, _m, _f, p) => p });
        const fit = { ...fitSpec({ solver }), threads: 2 };
        const reference = jsBackend.gateOnlyEm(c.data, c.model, fit, start);
        const got = native.gateOnlyEm(c.data, c.model, fit, start);
        expect(relErr(got, reference)).toBeLessThanOrEqual(FIT_RTOL);
        expect(Array.from(reference)).not.toEqual(Array.from(start)); // the stage moved the gate
        // The objective never increases over the stage.
        expect(native.evaluate(c.data, c.model, got).objective)
          .toBeLessThanOrEqual(native.evaluate(c.data, c.model, start).objective + 1e-12);
      });
    }
  }

  it("init 'moments'' data passes on the native backend: the reference's bits, every linear family, 1 and 2 threads", () => {
    // Bit for bit, not to a tolerance: the tensor power method keeps the best of its restarts, and a last-bit
    // difference in these sums has picked another start on a near-tie.
    for (const family of linearFamilies) {
      const c = family.make(9000, 83);
      const reference = jsBackend.momentSums(c.data, c.model);
      expect(native.momentSums(c.data, c.model), family.name).toEqual(reference);
      expect(loadNativeBackend('cpu', { threads: 1 }).momentSums(c.data, c.model), family.name).toEqual(reference);
    }
  });

  it('the whole moments start, with the stage on the native backend, matches the reference', () => {
    const c = linearFamilies[0]!.make(600, 78);
    const fit = fitSpec({});
    const reference = momentsInit(c.data, c.model, fit, 5);
    const got = computeInit('moments', c.data, c.model, fit, 5, native);
    expect(relErr(got, reference)).toBeLessThanOrEqual(FIT_RTOL);
  });

  it("init 'kmeans'': the clusters, and the M-step from clusters for every family, on the native backend", () => {
    for (const family of families) {
      const c = family.make(300, 80);
      const width = c.model.symmetric ? 2 : c.model.k;
      const clusters = Uint32Array.from({ length: c.data.n }, (_, i) => (i * 7 + (i >> 3)) % width);
      const fit = fitSpec({});
      const got = native.startFromAssignment(c.data, c.model, fit, clusters);
      expect(relErr(got, jsBackend.startFromAssignment(c.data, c.model, fit, clusters)), family.name).toBeLessThanOrEqual(FIT_RTOL);
    }
    const c = linearFamilies[0]!.make(600, 81);
    // The clusters themselves: the same, with weights and with the intercept column skipped, on 1 and 2 threads.
    for (const family of linearFamilies) {
      const big = family.make(9000, 82); // more than one thread's share of rows
      const reference = jsBackend.kmeansClusters(big.data, big.model, 6);
      expect(native.kmeansClusters(big.data, big.model, 6), family.name).toEqual(reference);
      expect(loadNativeBackend('cpu', { threads: 1 }).kmeansClusters(big.data, big.model, 6)).toEqual(reference);
      expect(new Set(reference).size).toBe(big.model.k);
    }
    const reference = computeInit('kmeans', c.data, c.model, fitSpec({}), 5);
    expect(relErr(computeInit('kmeans', c.data, c.model, fitSpec({}), 5, native), reference)).toBeLessThanOrEqual(FIT_RTOL);
    const bad = new Uint32Array(c.data.n).fill(c.model.k);
    expect(() => native.startFromAssignment(c.data, c.model, fitSpec({}), bad)).toThrow(expect.objectContaining({ code: 'E_OPTION' }));
    expect(() => native.startFromAssignment(c.data, c.model, fitSpec({}), new Uint32Array(3))).toThrow(expect.objectContaining({ code: 'E_SHAPE' }));
  });

  it('refuses models the stage is not for', () => {
    const c = families.find((f) => f.name.startsWith('logistic'))!.make(200, 79);
    const params = jsBackend.fitSync(request(c, algorithms[0]!, 1, 1), {}).params;
    expect(() => native.gateOnlyEm(c.data, c.model, fitSpec({}), params)).toThrow(expect.objectContaining({ code: 'E_OPTION' }));
  });
});

describe.skipIf(!info.loaded)('native CPU backend = TypeScript reference: information', () => {
  const native = info.loaded ? loadNativeBackend('cpu') : jsBackend;
  let seed = 5000;

  for (const family of families) {
    it(`information and MIM eigenvalues · ${family.name}`, () => {
      seed += 1;
      const c = family.make(400, seed);
      const fitted = jsBackend.fitSync(request(c, algorithms[0]!, seed, 1), {}).params;
      const opts = { method: 'dense', steps: 60 } as const;
      const reference = jsBackend.information(c.data, c.model, fitted, opts);
      const ours = native.information(c.data, c.model, fitted, opts);
      expect(ours.p).toBe(reference.p);
      expect(ours.names).toEqual(reference.names);
      expect(ours.method).toBe('dense');
      for (const m of ['complete', 'missing', 'observed'] as const) {
        expect(relErr(ours[m]!, reference[m]!)).toBeLessThanOrEqual(INFO_RTOL);
      }
      expect(relErr(ours.eigenvalues, reference.eigenvalues)).toBeLessThanOrEqual(INFO_RTOL);
      expect(Math.abs(ours.lambdaMax - reference.lambdaMax)).toBeLessThanOrEqual(INFO_RTOL * Math.max(1, reference.lambdaMax));
      if (reference.standardErrors === null) expect(ours.standardErrors).toBeNull();
      else expect(relErr(ours.standardErrors!, reference.standardErrors)).toBeLessThanOrEqual(INFO_RTOL);

      // Threads change who computes each chunk, never the arithmetic.
      const twoThreads = loadNativeBackend('cpu', { threads: 2 }).information(c.data, c.model, fitted, opts);
      const oneThread = loadNativeBackend('cpu', { threads: 1 }).information(c.data, c.model, fitted, opts);
      expect(Array.from(twoThreads.complete!)).toEqual(Array.from(oneThread.complete!));
      expect(Array.from(twoThreads.missing!)).toEqual(Array.from(oneThread.missing!));
      expect(twoThreads.eigenvalues).toEqual(oneThread.eigenvalues);

      const e1 = native.evaluate(c.data, c.model, fitted);
      const e0 = jsBackend.evaluate(c.data, c.model, fitted);
      expect(historyErr([e1.nll, e1.objective], [e0.nll, e0.objective])).toBeLessThanOrEqual(FIT_RTOL);
      expect(relErr(native.posterior(c.data, c.model, fitted), jsBackend.posterior(c.data, c.model, fitted)))
        .toBeLessThanOrEqual(FIT_RTOL);
    });
  }
});

describe.skipIf(!info.loaded)('native CPU backend = TypeScript reference: predictions', () => {
  // One pass of row arithmetic, no solve to amplify rounding: both sides agree to a few ulps.
  const PREDICT_RTOL = 1e-12;
  let seed = 6000;

  for (const family of families) {
    it(`mixture mean / class probabilities · ${family.name}`, () => {
      seed += 1;
      const train = family.make(300, seed);
      const fitted = jsBackend.fitSync(request(train, algorithms[0]!, seed, 1), {}).params;
      // Fresh rows (a handful too: predictions need no minimum row count), with the threads' partition varied.
      for (const n of [3, 1000]) {
        const { data, model } = family.make(n, seed + n);
        const reference = jsBackend.predict(data.x, n, model, fitted);
        const oneThread = loadNativeBackend('cpu', { threads: 1 }).predict(data.x, n, model, fitted);
        const twoThreads = loadNativeBackend('cpu', { threads: 2 }).predict(data.x, n, model, fitted);
        expect(oneThread.length).toBe(n * (model.experts === 'linear' ? 1 : model.experts === 'multinomial' ? model.nClasses : 2));
        expect(relErr(oneThread, reference)).toBeLessThanOrEqual(PREDICT_RTOL);
        expect(Array.from(twoThreads)).toEqual(Array.from(oneThread));
      }
    });
  }

  it("the estimator's predict and predictProba on the CPU backend = on the reference (intercept added alike)", () => {
    const { X, y } = sampleMultinomial({ n: 300, d: 3, k: 2, seed: 6200, nClasses: 3 });
    const onCpu = new MixtureOfExperts({ experts: 'multinomial', k: 2, intercept: true, maxIter: 5, backend: 'cpu' });
    onCpu.fitSync(X, y);
    const onJs = MixtureOfExperts.fromJSON({ ...onCpu.toJSON(), options: { ...onCpu.toJSON().options, backend: 'js' } });
    expect(relErr(onCpu.predictProba(X).data, onJs.predictProba(X).data)).toBeLessThanOrEqual(PREDICT_RTOL);
    expect(Array.from(onCpu.predict(X))).toEqual(Array.from(onJs.predict(X)));
    const lin = sampleLinear({ n: 300, d: 3, k: 2, seed: 6201 });
    const linCpu = new MixtureOfExperts({ experts: 'linear', k: 2, intercept: true, maxIter: 5, backend: 'cpu' });
    linCpu.fitSync(lin.X, lin.y);
    const linJs = MixtureOfExperts.fromJSON({ ...linCpu.toJSON(), options: { ...linCpu.toJSON().options, backend: 'js' } });
    expect(relErr(linCpu.predict(lin.X), linJs.predict(lin.X))).toBeLessThanOrEqual(PREDICT_RTOL);
    // A model saved from a 'cuda' fit predicts wherever it is loaded, GPU or none (predictions need none).
    const saved = { ...linCpu.toJSON(), options: { ...linCpu.toJSON().options, backend: 'cuda' as const } };
    expect(relErr(MixtureOfExperts.fromJSON(saved).predict(lin.X), linJs.predict(lin.X))).toBeLessThanOrEqual(PREDICT_RTOL);
  });

  it('bad rows or parameters are coded errors, labels are never read', () => {
    const native = loadNativeBackend('cpu');
    const { data, model } = families[5]!.make(20, 6100); // SymMoLogE: labels ±1 would be checked if read
    const params = new Float64Array(2 * model.d).fill(0.3);
    const x = Float64Array.from(data.x);
    expect(native.predict(x, 20, model, params).length).toBe(40);
    x[7] = NaN;
    expect(codeOf(() => native.predict(x, 20, model, params))).toBe('E_NON_FINITE');
    expect(codeOf(() => native.predict(data.x, 19, model, params))).toBe('E_SHAPE');
    expect(codeOf(() => native.predict(data.x, 20, model, params.subarray(1)))).toBe('E_SHAPE');
  });
});

/** A bad input, as the estimator receives it and as a request at the backend boundary. */
interface BadInput {
  name: string;
  code: string;
  options: MoEOptions;
  rows: number;
  cols: number;
  /** Edits the fresh data in place. */
  spoil: (x: Float64Array, y: Float64Array, s: Float64Array) => void;
  /** Whether to pass the sample weights. */
  weights?: boolean;
}

const badInputs: BadInput[] = [
  { name: 'NaN in X', code: 'E_NON_FINITE', options: { experts: 'linear' }, rows: 40, cols: 3, spoil: (x) => { x[17] = NaN; } },
  { name: 'Infinity in y', code: 'E_NON_FINITE', options: { experts: 'linear' }, rows: 40, cols: 3, spoil: (_, y) => { y[5] = Infinity; } },
  { name: 'logistic label 2', code: 'E_LABEL', options: { experts: 'logistic' }, rows: 40, cols: 3, spoil: (_, y) => { y[3] = 2; } },
  { name: 'multinomial label 1.5', code: 'E_LABEL', options: { experts: 'multinomial', nClasses: 3 }, rows: 40, cols: 3,
    spoil: (_, y) => { y[9] = 1.5; } },
  { name: 'multinomial label = C', code: 'E_LABEL', options: { experts: 'multinomial', nClasses: 3 }, rows: 40, cols: 3,
    spoil: (_, y) => { y[0] = 3; } },
  { name: 'SymMoLogE label 0', code: 'E_LABEL', options: { experts: 'logistic', symmetric: true }, rows: 40, cols: 3,
    spoil: (_, y) => { y[2] = 0; } },
  { name: 'logistic: one class', code: 'E_LABEL', options: { experts: 'logistic' }, rows: 40, cols: 3, spoil: (_, y) => { y.fill(1); } },
  { name: 'multinomial: one class among the weighted rows', code: 'E_LABEL', options: { experts: 'multinomial', nClasses: 3 },
    rows: 40, cols: 3, weights: true, spoil: (_, y, s) => { y.forEach((v, i) => { if (v !== 2) s[i] = 0; }); } },
  { name: 'SymMoLogE: one class', code: 'E_LABEL', options: { experts: 'logistic', symmetric: true }, rows: 40, cols: 3,
    spoil: (_, y) => { y.fill(-1); } },
  { name: 'negative sample weight', code: 'E_OPTION', options: { experts: 'linear' }, rows: 40, cols: 3, weights: true,
    spoil: (_, __, s) => { s[4] = -1; } },
  { name: 'NaN sample weight', code: 'E_NON_FINITE', options: { experts: 'linear' }, rows: 40, cols: 3, weights: true,
    spoil: (_, __, s) => { s[4] = NaN; } },
  { name: 'weights sum to 0', code: 'E_TOO_FEW_ROWS', options: { experts: 'linear' }, rows: 40, cols: 3, weights: true,
    spoil: (_, __, s) => { s.fill(0); } },
  { name: 'fewer rows than a block has parameters', code: 'E_TOO_FEW_ROWS', options: { experts: 'multinomial', nClasses: 3 },
    rows: 9, cols: 5, spoil: () => {} },
];

function badData(b: BadInput, seed: number): { x: Float64Array; y: Float64Array; s: Float64Array } {
  const sym = b.options.symmetric === true;
  const { X, y } = b.options.experts === 'logistic'
    ? (sym ? sampleSymMoLogE({ n: b.rows, d: b.cols, seed }) : sampleLogistic({ n: b.rows, d: b.cols, seed }))
    : b.options.experts === 'multinomial' ? sampleMultinomial({ n: b.rows, d: b.cols, seed, nClasses: 3 })
      : sampleLinear({ n: b.rows, d: b.cols, seed });
  const s = new Float64Array(b.rows).fill(1);
  b.spoil(X.data, y, s);
  return { x: X.data, y, s };
}

function codeOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    return (e as { code?: string }).code ?? `uncoded: ${String(e)}`;
  }
  return 'no error';
}

describe.skipIf(!info.loaded)('native CPU backend = TypeScript reference: error codes on bad input', () => {
  const native = info.loaded ? loadNativeBackend('cpu') : jsBackend;
  let seed = 9000;
  for (const b of badInputs) {
    it(b.name, () => {
      const { x, y, s } = badData(b, ++seed);
      // The reference: the estimator on backend 'js' (its validation is src/input.ts).
      const X = { data: x, rows: b.rows, cols: b.cols };
      const sampleWeight = b.weights ? s : undefined;
      const viaReference = codeOf(() => new MixtureOfExperts({ ...b.options, backend: 'js', maxIter: 2 }).fitSync(X, y, { sampleWeight }));
      // The estimator on backend 'cpu'.
      const viaEstimator = codeOf(() => new MixtureOfExperts({ ...b.options, backend: 'cpu', maxIter: 2 }).fitSync(X, y, { sampleWeight }));
      // moe-core's own validation, reached through the addon without the TypeScript checks.
      const experts = b.options.experts;
      const model: ModelSpec = {
        experts, symmetric: b.options.symmetric ?? false, k: 2, d: b.cols,
        nClasses: experts === 'multinomial' ? 3 : experts === 'logistic' ? 2 : 0,
        noise: b.options.symmetric && experts === 'linear' ? 1 : 'fitted', ridge: 0, intercept: false,
      };
      const viaCore = codeOf(() => native.fitSync({
        data: { x, n: b.rows, d: b.cols, y, s: b.weights ? s : null }, model,
        fit: fitSpec({ maxIter: 2 }), seed: 0, init: null, trueParams: null,
      }, {}));
      expect(viaReference).toBe(b.code);
      expect(viaEstimator).toBe(b.code);
      expect(viaCore).toBe(b.code);
    });
  }
});

describe.skipIf(!info.loaded)('native CPU backend = TypeScript reference: queries on a few rows', () => {
  it('evaluate and posterior need no minimum row count (a small test set), and agree', () => {
    const native = loadNativeBackend('cpu');
    const train = families[3]!.make(300, 77); // multinomial: blocks of (C−1)·d = 6 free parameters
    const params = jsBackend.fitSync(request(train, algorithms[0]!, 77, 1), {}).params;
    const few = families[3]!.make(4, 78);
    const e0 = jsBackend.evaluate(few.data, few.model, params);
    const e1 = native.evaluate(few.data, few.model, params);
    expect(historyErr([e1.nll, e1.objective], [e0.nll, e0.objective])).toBeLessThanOrEqual(FIT_RTOL);
    expect(relErr(native.posterior(few.data, few.model, params), jsBackend.posterior(few.data, few.model, params)))
      .toBeLessThanOrEqual(FIT_RTOL);
  });
});
