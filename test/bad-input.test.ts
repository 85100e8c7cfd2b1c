import { describe, expect, it } from 'vitest';
import { MixtureOfExperts } from '../src/estimator.js';
import { isMoEError } from '../src/errors.js';
import { codeOf } from './support/errors.js';
import type { MoEOptions } from '../src/types.js';
import { Rng } from '../src/data/rng.js';
import { CUDA_CROSSOVER_ND, resolveBackend } from '../src/backends/select.js';
import { nativeInfo } from '../src/backends/native.js';

function design(n: number, d: number, seed: number): number[][] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => Array.from({ length: d }, () => rng.normal()));
}

const X = design(40, 2, 1);
const yLin = X.map((r) => r[0]! + 0.1 * r[1]!);
const yBin: number[] = X.map((r) => (r[0]! > 0 ? 1 : 0));
const fitLinear = (opts: Partial<MoEOptions> = {}) => new MixtureOfExperts({ experts: 'linear', backend: 'js', maxIter: 2, ...opts });

describe('bad input gives typed errors', () => {
  it('E_SHAPE: ragged rows, wrong y length, wrong data length, wrong predict width, bad init shape', () => {
    expect(codeOf(() => fitLinear().fitSync([[1, 2], [3]], [1, 2]))).toBe('E_SHAPE');
    expect(codeOf(() => fitLinear().fitSync(X, yLin.slice(1)))).toBe('E_SHAPE');
    expect(codeOf(() => fitLinear().fitSync({ data: new Float64Array(5), rows: 2, cols: 3 }, [1, 2]))).toBe('E_SHAPE');
    expect(codeOf(() => fitLinear().fitSync([], []))).toBe('E_SHAPE');
    expect(codeOf(() => fitLinear().fitSync(X, 'abc' as unknown as number[]))).toBe('E_SHAPE');
    expect(codeOf(() => fitLinear().fitSync([[1, 'a' as unknown as number]], [1]))).toBe('E_SHAPE');
    const est = fitLinear();
    est.fitSync(X, yLin);
    expect(codeOf(() => est.predict([[1, 2, 3]]))).toBe('E_SHAPE');
    const init = { experts: 'linear' as const, symmetric: false, k: 2, d: 3, intercept: false, gate: [[0, 0, 0], [0, 0, 0]], coef: [[0, 0, 0], [0, 0, 0]], sigma2: [1, 1] };
    expect(codeOf(() => fitLinear({ init }).fitSync(X, yLin))).toBe('E_SHAPE');
    expect(codeOf(() => fitLinear().fitSync(X, yLin, { sampleWeight: [1, 2] }))).toBe('E_SHAPE');
  });

  it('E_NON_FINITE: NaN or Infinity in X, y, weights, starting parameters', () => {
    const bad = X.map((r) => r.slice());
    bad[3]![1] = Number.NaN;
    expect(codeOf(() => fitLinear().fitSync(bad, yLin))).toBe('E_NON_FINITE');
    const flat = new Float64Array(80); flat[7] = Infinity;
    expect(codeOf(() => fitLinear().fitSync({ data: flat, rows: 40, cols: 2 }, yLin))).toBe('E_NON_FINITE');
    const y = yLin.slice(); y[0] = -Infinity;
    expect(codeOf(() => fitLinear().fitSync(X, y))).toBe('E_NON_FINITE');
    const w = new Array(40).fill(1); w[5] = Number.NaN;
    expect(codeOf(() => fitLinear().fitSync(X, yLin, { sampleWeight: w }))).toBe('E_NON_FINITE');
    const init = { experts: 'linear' as const, symmetric: false, k: 2, d: 2, intercept: false, gate: [[0, NaN], [0, 0]], coef: [[0, 0], [0, 0]], sigma2: [1, 1] };
    expect(codeOf(() => fitLinear({ init }).fitSync(X, yLin))).toBe('E_NON_FINITE');
  });

  it('E_LABEL: labels outside their range for each family', () => {
    const y = yBin.slice(); y[2] = 2;
    expect(codeOf(() => new MixtureOfExperts({ experts: 'logistic', backend: 'js' }).fitSync(X, y))).toBe('E_LABEL');
    expect(codeOf(() => new MixtureOfExperts({ experts: 'logistic', symmetric: true, backend: 'js' }).fitSync(X, yBin))).toBe('E_LABEL');
    const ym = yBin.slice(); ym[4] = 1.5;
    expect(codeOf(() => new MixtureOfExperts({ experts: 'multinomial', backend: 'js' }).fitSync(X, ym))).toBe('E_LABEL');
    const yn = yBin.slice(); yn[4] = 3;
    expect(codeOf(() => new MixtureOfExperts({ experts: 'multinomial', nClasses: 3, backend: 'js' }).fitSync(X, yn))).toBe('E_LABEL');
    const yneg = yBin.slice(); yneg[4] = -1;
    expect(codeOf(() => new MixtureOfExperts({ experts: 'multinomial', backend: 'js' }).fitSync(X, yneg))).toBe('E_LABEL');
    // One class: nothing to learn, and without a ridge the coefficients would grow without bound.
    const oneClass = () => new MixtureOfExperts({ experts: 'logistic', backend: 'js' }).fitSync(X, X.map(() => 1));
    expect(codeOf(oneClass)).toBe('E_LABEL');
    expect(() => oneClass()).toThrow('every row has y = 1: a classifier needs at least two classes in y');
    // Two classes, one of them only in rows of weight 0, is one class too; both present is fine.
    const w = yBin.map((v) => (v === 1 ? 1 : 0));
    expect(codeOf(() => new MixtureOfExperts({ experts: 'logistic', backend: 'js' }).fitSync(X, yBin, { sampleWeight: w }))).toBe('E_LABEL');
    expect(codeOf(() => new MixtureOfExperts({ experts: 'logistic', backend: 'js', maxIter: 2 }).fitSync(X, yBin))).toBe('no error');
  });

  it('E_OPTION: k < 1, negative ridge, unknown algorithm/solver/backend, bad step sizes, symmetric constraints', () => {
    const bad: Partial<MoEOptions>[] = [
      { k: 0 }, { k: 1.5 }, { ridge: -1 }, { ridge: Number.NaN }, { algorithm: 'sgd' as never },
      { mstep: { solver: 'lbfgs' as never } }, { backend: 'tpu' as never }, { stepSize: 0 }, { stepSize: { gate: -1 } },
      { maxIter: -1 }, { tol: -1 }, { nInit: 0 }, { seed: -1 }, { seed: 2 ** 32 }, { batchSize: 0 }, { noise: -1 },
      { symmetric: true, k: 3 }, { symmetric: true, noise: 'fitted' }, { onEmpty: 'ignore' as never }, { threads: -2 },
      { innerSteps: 0 }, { init: 'spectral' as never }, { init: 'moments', k: 1 }, { init: 'moments', symmetric: true, noise: 1 },
    ];
    for (const opts of bad) expect(codeOf(() => fitLinear(opts)), JSON.stringify(opts)).toBe('E_OPTION');
    expect(codeOf(() => new MixtureOfExperts({} as MoEOptions))).toBe('E_OPTION');
    expect(codeOf(() => new MixtureOfExperts({ experts: 'poisson' as never }))).toBe('E_OPTION');
    expect(codeOf(() => new MixtureOfExperts({ experts: 'multinomial', symmetric: true }))).toBe('E_OPTION');
    expect(codeOf(() => new MixtureOfExperts({ experts: 'logistic', noise: 1 }))).toBe('E_OPTION');
    expect(codeOf(() => new MixtureOfExperts({ experts: 'logistic', init: 'moments' }))).toBe('E_OPTION');
    expect(codeOf(() => new MixtureOfExperts({ experts: 'multinomial', nClasses: 1 }))).toBe('E_OPTION');
    expect(codeOf(() => fitLinear().fitSync(X, yLin, { sampleWeight: new Array(40).fill(-1) }))).toBe('E_OPTION');
    const est = fitLinear();
    est.fitSync(X, yLin);
    expect(codeOf(() => est.information(X, yLin, { method: 'svd' as never }))).toBe('E_OPTION');
    expect(codeOf(() => est.predictProba(X))).toBe('E_OPTION');
  });

  it('E_OPTION: a misspelt option name is an error that suggests the name, never ignored', () => {
    const thrown = (f: () => unknown): Error => {
      try { f(); } catch (e) { expect(isMoEError(e) && e.code).toBe('E_OPTION'); return e as Error; }
      throw new Error('no error');
    };
    const misspelt = (opts: object) => fitLinear(opts as Partial<MoEOptions>);
    expect(thrown(() => misspelt({ n_init: 3 })).message).toContain("unknown option 'n_init'; did you mean 'nInit'?");
    expect(thrown(() => misspelt({ maxIters: 3 })).message).toContain("did you mean 'maxIter'?");
    expect(thrown(() => misspelt({ colour: 'red' })).message).toMatch(/^unknown option 'colour' \(options: experts, k,/);
    expect(thrown(() => misspelt({ mstep: { solvr: 'newton' } })).message).toContain("unknown mstep option 'solvr'; did you mean 'solver'?");
    expect(thrown(() => misspelt({ stepSize: { gates: 0.1 } })).message).toContain("did you mean 'gate'?");
    const est = fitLinear();
    // Fit options: a misspelt sampleWeight would otherwise fit without the weights.
    expect(thrown(() => est.fitSync(X, yLin, { sampleWeights: new Array(40).fill(1) } as object)).message)
      .toContain("unknown fit option 'sampleWeights'; did you mean 'sampleWeight'?");
    expect(thrown(() => est.fitSync(X, yLin, null as never)).message).toContain('fit options must be an object, got null');
    est.fitSync(X, yLin);
    expect(thrown(() => est.information(X, yLin, { Method: 'dense' } as object)).message).toContain("did you mean 'method'?");
    expect(thrown(() => est.information(X, yLin, 'dense' as never)).message).toContain('information options must be an object');
    expect(thrown(() => MixtureOfExperts.fromJSON(est.toJSON(), { thread: 1 } as object)).message).toContain("did you mean 'threads'?");
    // Known names with undefined values are fine (a spread of optional settings).
    expect(() => fitLinear({ seed: undefined, threads: undefined })).not.toThrow();
    // A document saved before names were checked still loads: the names its fit ignored are dropped.
    const legacy = { ...est.toJSON(), options: { ...est.toJSON().options, legacyName: 1 } };
    expect(MixtureOfExperts.fromJSON(legacy).options).not.toHaveProperty('legacyName');
    expect(MixtureOfExperts.fromJSON(legacy).score(X, yLin)).toBe(est.score(X, yLin));
  });

  it('E_TOO_FEW_ROWS: fewer weighted rows than the largest block, or zero total weight', () => {
    expect(codeOf(() => fitLinear({ k: 3 }).fitSync(design(3, 2, 2), [1, 2, 3]))).toBe('E_TOO_FEW_ROWS');
    const w = new Array(40).fill(0); w[0] = 1; w[1] = 1;
    expect(codeOf(() => fitLinear().fitSync(X, yLin, { sampleWeight: w }))).toBe('E_TOO_FEW_ROWS');
    expect(codeOf(() => fitLinear().fitSync(X, yLin, { sampleWeight: new Array(40).fill(0) }))).toBe('E_TOO_FEW_ROWS');
  });

  it('a ridge makes fewer rows than parameters well posed: no E_TOO_FEW_ROWS, a finite fit', () => {
    const est = fitLinear({ ridge: 0.1 });
    const w = new Array(40).fill(0); w[0] = 1; w[1] = 1;
    const history = est.fitSync(X, yLin, { sampleWeight: w });
    expect(Number.isFinite(history.iterations.at(-1)!.nll)).toBe(true);
  });

  it('a singular design gives a ridge-fallback event or E_SINGULAR, never a bare error', () => {
    const dup = X.map((r) => [r[0]!, r[0]!, r[1]!]);
    let outcome = '';
    try {
      const h = fitLinear({ k: 1 }).fitSync(dup, yLin);
      outcome = h.iterations.some((r) => r.events?.some((e) => e.type === 'ridge-fallback')) ? 'fallback' : 'none';
    } catch (e) {
      outcome = isMoEError(e) ? e.code : `bare ${String(e)}`;
    }
    expect(['fallback', 'E_SINGULAR']).toContain(outcome);
  });

  it('values that overflow when squared are E_SINGULAR saying to rescale, on every backend', () => {
    const huge = X.map((r) => [r[0]! * 1e200, r[1]!]);
    const backends = ['js', ...(nativeInfo().loaded ? ['cpu' as const] : [])] as const;
    for (const backend of backends) {
      const fit = () => fitLinear({ backend, maxIter: 3 }).fitSync(huge, yLin);
      expect(codeOf(fit), backend).toBe('E_SINGULAR');
      expect(fit, backend).toThrow('the data overflow float64 when squared (rescale X and y)');
    }
  });

  it('a vanishing component with onEmpty "error" is E_EMPTY_COMPONENT', () => {
    // Expert 1 starts far from every target with a tiny variance: its responsibilities are 0 on every row.
    const init = { experts: 'linear' as const, symmetric: false, k: 2, d: 2, intercept: false,
      gate: [[0, 0], [0, 0]], coef: [[1, 0.1], [1e4, -1e4]], sigma2: [1, 1e-4] };
    expect(codeOf(() => fitLinear({ init, onEmpty: 'error' }).fitSync(X, yLin))).toBe('E_EMPTY_COMPONENT');
    const h = fitLinear({ init }).fitSync(X, yLin);
    expect(h.iterations.some((r) => r.events?.some((e) => e.type === 'reseed'))).toBe(true);
  });

  it("backend 'js' always resolves to the TypeScript reference", () => {
    expect(resolveBackend('js', 1e9).name).toBe('js');
    expect(CUDA_CROSSOVER_ND).toBeGreaterThan(0);
  });
});
