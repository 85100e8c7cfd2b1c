import { describe, expect, it } from 'vitest';
import { MixtureOfExperts } from '../src/estimator.js';
import { sampleLinear, sampleLogistic, sampleMultinomial, sampleSymMoLinE, sampleSymMoLogE } from '../src/data/samplers.js';
import { isMoEError } from '../src/errors.js';
import type { IterationRecord } from '../src/types.js';

function rowsOf(X: { data: Float64Array; rows: number; cols: number }): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < X.rows; i++) out.push(Array.from(X.data.subarray(i * X.cols, (i + 1) * X.cols)));
  return out;
}

describe('MixtureOfExperts', () => {
  it('fits linear experts: history, predict, posterior, score, aic/bic, params, nParams', () => {
    const s = sampleLinear({ n: 600, d: 3, k: 2, seed: 1, sigma2: 0.1 });
    const est = new MixtureOfExperts({ experts: 'linear', k: 2, seed: 3, nInit: 2, backend: 'js', intercept: true });
    expect(est.fitted).toBe(false);
    const history = est.fitSync(s.X, s.y);
    expect(est.fitted).toBe(true);
    expect(history.backend).toBe('js');
    expect(history.restarts).toHaveLength(2);
    expect(history.restarts.map((r) => r.seed)).toEqual([3, 4]);
    const best = history.restarts[history.bestRestart]!.objective;
    for (const r of history.restarts) expect(best).toBeLessThanOrEqual(r.objective);
    expect(history.nIter).toBe(history.iterations.length - 1);
    expect(history.settings).toMatchObject({ experts: 'linear', k: 2, d: 4, algorithm: 'em', intercept: true });
    const pred = est.predict(s.X);
    expect(pred).toHaveLength(600);
    // The mixture mean explains much of y's variance.
    let mse = 0; let variance = 0; let mean = 0;
    for (let i = 0; i < 600; i++) mean += s.y[i]! / 600;
    for (let i = 0; i < 600; i++) { mse += (pred[i]! - s.y[i]!) ** 2 / 600; variance += (s.y[i]! - mean) ** 2 / 600; }
    expect(mse).toBeLessThan(variance);
    const post = est.posterior(s.X, s.y);
    expect(post.rows).toBe(600);
    expect(post.cols).toBe(2);
    for (let i = 0; i < 600; i++) expect(post.data[2 * i]! + post.data[2 * i + 1]!).toBeCloseTo(1, 12);
    const score = est.score(s.X, s.y);
    expect(score).toBeCloseTo(-history.iterations[history.iterations.length - 1]!.nll, 10);
    // nParams: gate (k−1)·d + k·(d + 1) with d = 4 (intercept).
    expect(est.nParams).toBe(4 + 2 * 5);
    expect(est.aic(s.X, s.y)).toBeCloseTo(2 * 14 - 2 * 600 * score, 8);
    expect(est.bic(s.X, s.y)).toBeCloseTo(14 * Math.log(600) - 2 * 600 * score, 8);
    const p = est.params;
    expect(p.gate).toHaveLength(2);
    expect(p.gate![1]).toEqual([0, 0, 0, 0]);
    expect(p.sigma2).toHaveLength(2);
    expect(est.history).toBe(history);
  });

  it('predicts classes and probabilities for logistic, multinomial and SymMoLogE experts', () => {
    const lg = sampleLogistic({ n: 400, d: 3, k: 2, seed: 2 });
    const est = new MixtureOfExperts({ experts: 'logistic', backend: 'js', maxIter: 30 });
    est.fitSync(rowsOf(lg.X), Array.from(lg.y));
    const proba = est.predictProba(lg.X);
    expect(proba.cols).toBe(2);
    const cls = est.predict(lg.X);
    let correct = 0;
    for (let i = 0; i < 400; i++) {
      expect(proba.data[2 * i]! + proba.data[2 * i + 1]!).toBeCloseTo(1, 12);
      expect(cls[i]).toBe(proba.data[2 * i + 1]! > proba.data[2 * i]! ? 1 : 0);
      if (cls[i] === lg.y[i]) correct++;
    }
    expect(correct / 400).toBeGreaterThan(0.55);

    const mn = sampleMultinomial({ n: 400, d: 3, k: 2, nClasses: 4, seed: 3 });
    const m = new MixtureOfExperts({ experts: 'multinomial', backend: 'js', maxIter: 20 });
    m.fitSync(mn.X, mn.y);
    const pm = m.predictProba(mn.X);
    expect(pm.cols).toBe(4);
    const cm = m.predict(mn.X);
    for (const c of cm) expect([0, 1, 2, 3]).toContain(c);
    expect(m.params.nClasses).toBe(4);

    const sl = sampleSymMoLogE({ n: 400, d: 3, seed: 4, norm: 3 });
    const sm = new MixtureOfExperts({ experts: 'logistic', symmetric: true, backend: 'js', maxIter: 30 });
    sm.fitSync(sl.X, sl.y);
    for (const c of sm.predict(sl.X)) expect([-1, 1]).toContain(c);
    expect(sm.posterior(sl.X, sl.y).cols).toBe(2);
    expect(sm.params.w).toHaveLength(3);
  });

  it('toJSON → fromJSON round trip predicts identically', () => {
    const s = sampleSymMoLinE({ n: 300, d: 3, seed: 5, norm: 3 });
    const est = new MixtureOfExperts({ experts: 'linear', symmetric: true, backend: 'js', maxIter: 20 });
    est.fitSync(s.X, s.y);
    const json = JSON.stringify(est.toJSON());
    const back = MixtureOfExperts.fromJSON(json);
    expect(back.fitted).toBe(true);
    expect(Array.from(back.predict(s.X))).toEqual(Array.from(est.predict(s.X)));
    expect(back.params).toEqual(est.params);
    expect(back.score(s.X, s.y)).toBe(est.score(s.X, s.y));
    expect(back.history?.nIter).toBe(est.history?.nIter);
    const mn = sampleMultinomial({ n: 200, d: 2, k: 2, nClasses: 3, seed: 6 });
    const m = new MixtureOfExperts({ experts: 'multinomial', intercept: true, backend: 'js', maxIter: 5 });
    m.fitSync(mn.X, mn.y);
    const m2 = MixtureOfExperts.fromJSON(m.toJSON());
    expect(Array.from(m2.predictProba(mn.X).data)).toEqual(Array.from(m.predictProba(mn.X).data));
    expect(() => MixtureOfExperts.fromJSON('{"format":"other"}')).toThrow(expect.objectContaining({ code: 'E_IO' }));
    expect(() => MixtureOfExperts.fromJSON('not json')).toThrow(expect.objectContaining({ code: 'E_IO' }));
  });

  it('takes float32 inputs (typed rows, a Float32Array X, y and weights) as their exact float64 values', () => {
    const s = sampleLinear({ n: 120, d: 2, k: 2, seed: 4 });
    const x32 = Float32Array.from(s.X.data);
    const y32 = Float32Array.from(s.y);
    const w32 = Float32Array.from({ length: 120 }, (_, i) => 1 + (i % 3));
    const options = { experts: 'linear' as const, k: 2, backend: 'js' as const, maxIter: 5 };
    const widened = new MixtureOfExperts(options);
    widened.fitSync({ data: Float64Array.from(x32), rows: 120, cols: 2 }, Float64Array.from(y32), { sampleWeight: Float64Array.from(w32) });
    const flat = new MixtureOfExperts(options);
    flat.fitSync({ data: x32, rows: 120, cols: 2 }, y32, { sampleWeight: w32 });
    expect(flat.params).toEqual(widened.params);
    const rows = Array.from({ length: 120 }, (_, i) => x32.subarray(2 * i, 2 * i + 2));
    const byRows = new MixtureOfExperts(options);
    byRows.fitSync(rows, y32, { sampleWeight: w32 });
    expect(byRows.params).toEqual(widened.params);
    expect(Array.from(byRows.predict(rows))).toEqual(Array.from(widened.predict({ data: Float64Array.from(x32), rows: 120, cols: 2 })));
    expect(() => flat.predict({ data: new Int32Array(4) as never, rows: 2, cols: 2 })).toThrow(expect.objectContaining({ code: 'E_SHAPE' }));
    expect(() => flat.predict([Float32Array.of(1, NaN)])).toThrow(expect.objectContaining({ code: 'E_NON_FINITE' }));
  });

  it("fromJSON's load options replace the saved backend and threads, and are checked", () => {
    const s = sampleLinear({ n: 200, d: 2, k: 2, seed: 8 });
    const est = new MixtureOfExperts({ experts: 'linear', k: 2, backend: 'js', threads: 2, maxIter: 5 });
    est.fitSync(s.X, s.y);
    const saved = { ...est.toJSON(), options: { ...est.toJSON().options, backend: 'cuda' as const } };
    const back = MixtureOfExperts.fromJSON(saved, { backend: 'js', threads: 1 });
    expect(back.options).toMatchObject({ backend: 'js', threads: 1 });
    expect(back.score(s.X, s.y)).toBe(est.score(s.X, s.y));
    // Without load options the saved settings stay.
    expect(MixtureOfExperts.fromJSON(saved).options.backend).toBe('cuda');
    expect(() => MixtureOfExperts.fromJSON(saved, { backend: 'gpu' as never })).toThrow(expect.objectContaining({ code: 'E_OPTION' }));
    expect(() => MixtureOfExperts.fromJSON(saved, { threads: -1 })).toThrow(expect.objectContaining({ code: 'E_OPTION' }));
    expect(() => MixtureOfExperts.fromJSON(saved, null as never)).toThrow(expect.objectContaining({ code: 'E_OPTION' }));
  });

  it('calls onIteration once per recorded iteration, reports paramError with true params, async fit matches sync', async () => {
    const s = sampleSymMoLinE({ n: 300, d: 3, seed: 7, norm: 3 });
    const seen: IterationRecord[] = [];
    const est = new MixtureOfExperts({ experts: 'linear', symmetric: true, backend: 'js', maxIter: 10, tol: 0 });
    const h = await est.fit(s.X, s.y, { onIteration: (r) => seen.push(r), trueParams: s.params });
    expect(seen.map((r) => r.iter)).toEqual(h.iterations.map((r) => r.iter));
    for (const r of h.iterations) expect(r.paramError).toBeGreaterThanOrEqual(0);
    const sync = new MixtureOfExperts({ experts: 'linear', symmetric: true, backend: 'js', maxIter: 10, tol: 0 });
    sync.fitSync(s.X, s.y);
    expect(sync.params).toEqual(est.params);
  });

  it('an AbortSignal stops a fit with E_ABORTED carrying the partial history', async () => {
    const s = sampleLinear({ n: 500, d: 3, k: 3, seed: 8 });
    const controller = new AbortController();
    const est = new MixtureOfExperts({ experts: 'linear', k: 3, backend: 'js', maxIter: 200, tol: 0 });
    const err = await est.fit(s.X, s.y, { signal: controller.signal, onIteration: (r) => { if (r.iter === 3) controller.abort(); } })
      .then(() => null, (e: unknown) => e);
    expect(isMoEError(err) && err.code).toBe('E_ABORTED');
    expect((err as { details: { partial: { iterations: unknown[] } } }).details.partial.iterations).toHaveLength(4);
    expect(est.fitted).toBe(false);
    // A signal aborted before the call stops fitSync too.
    expect(() => est.fitSync(s.X, s.y, { signal: AbortSignal.abort() })).toThrow(expect.objectContaining({ code: 'E_ABORTED' }));
  });

  it('information() delegates to the diagnostics and gives standard errors at the optimum', () => {
    const s = sampleSymMoLinE({ n: 400, d: 2, seed: 9, norm: 3 });
    const est = new MixtureOfExperts({ experts: 'linear', symmetric: true, backend: 'js', tol: 1e-12 });
    est.fitSync(s.X, s.y);
    const info = est.information(s.X, s.y);
    expect(info.p).toBe(4);
    expect(info.names).toEqual(['w[0]', 'w[1]', 'beta[0]', 'beta[1]']);
    expect(info.lambdaMax).toBeGreaterThanOrEqual(0);
    expect(info.lambdaMax).toBeLessThanOrEqual(1 + 1e-8);
    expect(info.standardErrors).not.toBeNull();
  });

  it('integer sample weights are equivalent to duplicated rows (EM from a shared start)', () => {
    const s = sampleLinear({ n: 120, d: 2, k: 2, seed: 10 });
    const X = rowsOf(s.X);
    const weights = X.map((_, i) => 1 + (i % 3));
    const dupX: number[][] = []; const dupY: number[] = [];
    X.forEach((row, i) => { for (let r = 0; r < weights[i]!; r++) { dupX.push(row); dupY.push(s.y[i]!); } });
    const init = { ...s.params, gate: [[0.3, -0.2], [0, 0]], coef: [[1, 0], [0, 1]], sigma2: [1, 1] };
    const opts = { experts: 'linear' as const, backend: 'js' as const, init, maxIter: 15, tol: 0 };
    const weighted = new MixtureOfExperts(opts);
    const hw = weighted.fitSync(X, s.y, { sampleWeight: weights });
    const duplicated = new MixtureOfExperts(opts);
    const hd = duplicated.fitSync(dupX, dupY);
    expect(hw.iterations.at(-1)!.objective).toBeCloseTo(hd.iterations.at(-1)!.objective, 10);
    const a = weighted.params; const b = duplicated.params;
    for (let j = 0; j < 2; j++) for (let f = 0; f < 2; f++) {
      expect((a.coef as number[][])[j]![f]).toBeCloseTo((b.coef as number[][])[j]![f]!, 8);
      expect(a.gate![j]![f]).toBeCloseTo(b.gate![j]![f]!, 8);
    }
    expect(weighted.score(X, s.y, weights)).toBeCloseTo(duplicated.score(dupX, dupY), 10);
  });

  it('the ridge never penalises the intercept column', () => {
    const s = sampleLinear({ n: 200, d: 2, k: 1, seed: 11 });
    const y = Array.from(s.y, (v) => v + 5);
    const est = new MixtureOfExperts({ experts: 'linear', k: 1, intercept: true, ridge: 1e9, backend: 'js', maxIter: 3 });
    est.fitSync(s.X, y);
    const coef = (est.params.coef as number[][])[0]!;
    const mean = y.reduce((a, b) => a + b, 0) / y.length;
    // Huge ridge: slopes vanish, the intercept is the mean of y.
    expect(coef[0]).toBeCloseTo(mean, 4);
    expect(Math.abs(coef[1]!)).toBeLessThan(1e-5);
    expect(Math.abs(coef[2]!)).toBeLessThan(1e-5);
  });

  it('predicting before fit is E_NOT_FITTED', () => {
    const est = new MixtureOfExperts({ experts: 'linear' });
    expect(() => est.predict([[1, 2]])).toThrow(expect.objectContaining({ code: 'E_NOT_FITTED' }));
    expect(() => est.params).toThrow(expect.objectContaining({ code: 'E_NOT_FITTED' }));
    expect(est.toJSON().params).toBeNull();
  });
});
