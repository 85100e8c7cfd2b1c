/**
 * The Node-API addon and its TypeScript side (src/backends/native.ts): the loader, async and sync fits,
 * progress records, abort through an AbortSignal, and errors (bad requests, Rust panics) reaching JS as
 * MoEError with the codes of src/errors.ts. Needs the built addon (`npm run build:native`); without it
 * every test here is skipped with the reason printed.
 */
import { existsSync } from 'node:fs';
import { describe, expect, it, vi } from 'vitest';
import {
  asRestarts, startRequest, type FitRequest, type FitSpec, type ModelSpec, type ProblemData, type RestartsRequest,
} from '../src/backends/backend.js';
import {
  loadNativeBackend, loadNativeBinding, nativeInfo, NativeBackend, NATIVE_PATH_ENV, scanNonFinite, withInterceptNative,
  type NativeBinding,
} from '../src/backends/native.js';
import { MixtureOfExperts } from '../src/estimator.js';
import { sampleLinear } from '../src/data/samplers.js';
import { MoEError } from '../src/errors.js';
import { firstNonFinite, resolveFitSpec, withIntercept } from '../src/input.js';
import type { IterationRecord } from '../src/types.js';

const info = nativeInfo();
const missing = !info.loaded;
if (missing) console.warn(`native.test.ts: skipped, the addon is not available here (${info.reason})`);

function linearProblem(n: number, d: number, k: number, seed: number): { data: ProblemData; model: ModelSpec } {
  const { X, y } = sampleLinear({ n, d, k, seed });
  return {
    data: { x: X.data, n, d, y, s: null },
    model: { experts: 'linear', symmetric: false, k, d, nClasses: 0, noise: 'fitted', ridge: 0, intercept: false },
  };
}

function fitSpec(overrides: Partial<FitSpec> = {}): FitSpec {
  return resolveFitSpec({ maxIter: 8, tol: 0 /* run every iteration: the tests count them */, threads: 1, ...overrides });
}

function request(n = 400, d = 4, k = 2, seed = 11, fit: Partial<FitSpec> = {}): FitRequest {
  return { ...linearProblem(n, d, k, seed), fit: fitSpec(fit), seed, init: null, trueParams: null };
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error('expected the promise to reject');
}

function thrown(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  throw new Error('expected a throw');
}

describe.skipIf(missing)('native addon: loading', () => {
  it('loads and reports where from', () => {
    expect(info.loaded).toBe(true);
    expect(typeof info.from).toBe('string');
    expect(loadNativeBinding().version).toMatch(/^\d+\.\d+\.\d+/);
    expect(loadNativeBackend('cpu').name).toBe('cpu');
  });

  it('a bad override path gives E_BACKEND_UNAVAILABLE with the reason', async () => {
    const saved = process.env[NATIVE_PATH_ENV];
    process.env[NATIVE_PATH_ENV] = 'no-such-dir/moe-em.node';
    try {
      vi.resetModules();
      const fresh = await import('../src/backends/native.js');
      const status = fresh.nativeInfo();
      expect(status.loaded).toBe(false);
      expect(status.reason).toContain(NATIVE_PATH_ENV);
      const e = thrown(() => fresh.loadNativeBackend('cpu'));
      expect(e).toBeInstanceOf(Error);
      expect((e as MoEError).code).toBe('E_BACKEND_UNAVAILABLE');
      expect((e as MoEError).message).toContain('no-such-dir');
    } finally {
      if (saved === undefined) delete process.env[NATIVE_PATH_ENV];
      else process.env[NATIVE_PATH_ENV] = saved;
      vi.resetModules();
    }
  });

  it.skipIf(info.cudaAvailable)("'cuda' without a GPU gives E_BACKEND_UNAVAILABLE", () => {
    const e = thrown(() => loadNativeBackend('cuda'));
    expect(e).toBeInstanceOf(MoEError);
    expect((e as MoEError).code).toBe('E_BACKEND_UNAVAILABLE');
    expect(loadNativeBinding().deviceInfo().available).toBe(false);
    // nativeInfo says why, in words, and names no GPU.
    const described = nativeInfo();
    expect(described).toMatchObject({ loaded: true, cudaAvailable: false });
    expect(described.gpu).toBeUndefined();
    expect(described.gpuUnavailable).toMatch(/\w/);
    // The binding itself refuses too (a caller bypassing loadNativeBackend gets the same code).
    const direct = thrown(() => loadNativeBinding().fitSync({ ...asRestarts(request()), backend: 'cuda' }));
    expect((direct as { code: string }).code).toBe('E_BACKEND_UNAVAILABLE');
  });

  it.skipIf(info.cudaAvailable)("a model saved with 'cuda' predicts here, and is scored with fromJSON's backend", () => {
    const { X, y } = sampleLinear({ n: 300, d: 3, k: 2, seed: 21 });
    const onCpu = new MixtureOfExperts({ experts: 'linear', k: 2, intercept: true, backend: 'cpu', seed: 2, maxIter: 10 });
    onCpu.fitSync(X, y);
    const saved = JSON.parse(JSON.stringify(onCpu.toJSON()));
    saved.options.backend = 'cuda'; // as written by a fit on a GPU machine
    const asSaved = MixtureOfExperts.fromJSON(saved);
    // Predictions never need a GPU.
    expect(Array.from(asSaved.predict(X))).toEqual(Array.from(onCpu.predict(X)));
    // The queries that run on the backend say how to load the model here.
    for (const query of [() => asSaved.score(X, y), () => asSaved.posterior(X, y), () => asSaved.information(X, y)]) {
      const e = thrown(query);
      expect(e).toBeInstanceOf(MoEError);
      expect((e as MoEError).code).toBe('E_BACKEND_UNAVAILABLE');
      expect((e as MoEError).message).toContain("fromJSON(json, { backend: 'auto' })");
    }
    for (const backend of ['cpu', 'auto'] as const) {
      const here = MixtureOfExperts.fromJSON(saved, { backend, threads: 1 });
      expect(here.score(X, y)).toBe(onCpu.score(X, y));
      expect(Array.from(here.posterior(X, y).data)).toEqual(Array.from(onCpu.posterior(X, y).data));
      expect(here.toJSON().options).toMatchObject({ backend, threads: 1 });
    }
  });
});

describe.skipIf(missing)('native addon: errors', () => {
  it('a Rust panic becomes E_INTERNAL, and the addon keeps working', () => {
    const binding = loadNativeBinding();
    const e = thrown(() => binding.testPanic());
    expect((e as { code: string }).code).toBe('E_INTERNAL');
    expect((e as Error).message).toContain('deliberate panic');
    expect(binding.createCancelToken()).toHaveProperty('cancel');
  });

  it('malformed requests give E_SHAPE / E_OPTION as MoEError, sync and async', async () => {
    const backend = loadNativeBackend('cpu');
    const good = request();
    const badShape: FitRequest = { ...good, data: { ...good.data, n: good.data.n + 1 } };
    const notTyped = { ...good, data: { ...good.data, x: Array.from(good.data.x) } } as unknown as FitRequest;
    const badAlgorithm = { ...good, fit: { ...good.fit, algorithm: 'newton' } } as unknown as FitRequest;
    const badSeed: FitRequest = { ...good, seed: -1 };
    const negativeRows: FitRequest = { ...good, data: { ...good.data, n: -1 } };
    for (const [req, code] of [[badShape, 'E_SHAPE'], [notTyped, 'E_SHAPE'], [badAlgorithm, 'E_OPTION'],
      [badSeed, 'E_OPTION'], [negativeRows, 'E_SHAPE']] as const) {
      const e = thrown(() => backend.fitSync(req, {}));
      expect(e).toBeInstanceOf(MoEError);
      expect((e as MoEError).code).toBe(code);
      const a = await rejection(backend.fit(req, {}));
      expect(a).toBeInstanceOf(MoEError);
      expect((a as MoEError).code).toBe(code);
    }
    const q = linearProblem(50, 3, 2, 1);
    const e = thrown(() => backend.evaluate(q.data, q.model, new Float64Array(3)));
    expect(e).toBeInstanceOf(MoEError);
  });
});

describe.skipIf(missing)('native addon: fits', () => {
  const backend = loadNativeBackend('cpu');

  it('async fit: every record reaches onIteration before the promise settles, equal to fitSync', async () => {
    const req = request();
    const seen: IterationRecord[] = [];
    const result = await backend.fit(req, { onIteration: (r) => seen.push(r) });
    expect(result.iterations.length).toBe(9); // iteration 0 + maxIter
    expect(seen.map((r) => r.iter)).toEqual(result.iterations.map((r) => r.iter));
    expect(seen.map((r) => r.nll)).toEqual(result.iterations.map((r) => r.nll));
    const sync = backend.fitSync(req, {});
    expect(Array.from(sync.params)).toEqual(Array.from(result.params));
    expect(sync.iterations.map((r) => r.objective)).toEqual(result.iterations.map((r) => r.objective));
    expect(result.reason).toBe('max-iter');
    expect(result.params.every(Number.isFinite)).toBe(true);
  });

  it('the event loop keeps running during an async fit, and concurrent fits do not interfere', async () => {
    const big = request(60_000, 20, 4, 5, { maxIter: 6 });
    const small = [request(300, 3, 2, 21), request(300, 3, 2, 22)];
    const expected = small.map((r) => backend.fitSync(r, {}));
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const [bigResult, ...smallResults] = await Promise.all([backend.fit(big, {}), ...small.map((r) => backend.fit(r, {}))]);
    clearInterval(timer);
    expect(bigResult.iterations.length).toBe(7);
    expect(ticks).toBeGreaterThan(2);
    smallResults.forEach((r, i) => expect(Array.from(r.params)).toEqual(Array.from(expected[i]!.params)));
  });

  it('an AbortSignal stops an async fit between iterations with E_ABORTED and the partial history', async () => {
    const controller = new AbortController();
    // Records reach JS while the worker goes on: the fit must outlast the round trip of the abort by far
    // (200 iterations over 50000 rows: seconds; the abort lands within an iteration or two).
    const req = request(50_000, 10, 3, 3, { maxIter: 200 });
    const e = await rejection(backend.fit(req, {
      signal: controller.signal,
      onIteration: (r) => { if (r.iter === 2) controller.abort(); },
    }));
    expect(e).toBeInstanceOf(MoEError);
    expect((e as MoEError).code).toBe('E_ABORTED');
    const partial = (e as MoEError).details?.partial as { params: Float64Array; iterations: IterationRecord[] };
    expect(partial.iterations.length).toBeGreaterThanOrEqual(3);
    expect(partial.iterations.length).toBeLessThan(200);
    // The parameters when the fit stopped: evaluated, they give the last recorded objective.
    expect(partial.params).toBeInstanceOf(Float64Array);
    const { objective } = backend.evaluate(req.data, req.model, partial.params);
    expect(objective).toBeCloseTo(partial.iterations.at(-1)!.objective, 12);
  });

  it('abort works in fitSync too, and an already-aborted signal stops at once', async () => {
    const controller = new AbortController();
    const req = request(400, 4, 2, 4, { maxIter: 200 });
    const e = thrown(() => backend.fitSync(req, {
      signal: controller.signal,
      onIteration: (r) => { if (r.iter === 1) controller.abort(); },
    }));
    expect((e as MoEError).code).toBe('E_ABORTED');
    const partial = (e as MoEError).details?.partial as { params: Float64Array; iterations: IterationRecord[] };
    expect(partial.iterations.length).toBe(2);
    expect(partial.params.length).toBe(req.model.k * req.model.d * 2 + req.model.k);
    const early = await rejection(backend.fit(req, { signal: AbortSignal.abort() }));
    expect((early as MoEError).code).toBe('E_ABORTED');
    expect((early as MoEError).details?.partial).toBeNull();
    // A cancel token cancelled before the fit starts: the native loop stops after iteration 0.
    const binding = loadNativeBinding();
    const token = binding.createCancelToken();
    token.cancel();
    const direct = await rejection(binding.fit({ ...asRestarts(req), backend: 'cpu' }, undefined, token));
    expect((direct as { code: string }).code).toBe('E_ABORTED');
  });

  it('an onIteration that throws stops the fit and its error is what the caller sees', async () => {
    const boom = new Error('callback failed');
    const req = request(400, 4, 2, 6, { maxIter: 200 });
    const onIteration = (r: IterationRecord): void => { if (r.iter === 1) throw boom; };
    expect(await rejection(backend.fit(req, { onIteration }))).toBe(boom);
    expect(thrown(() => backend.fitSync(req, { onIteration }))).toBe(boom);
  });

  it('evaluate and posterior at the fitted parameters', () => {
    const req = request(500, 3, 3, 8);
    const result = backend.fitSync(req, {});
    const { nll, objective } = backend.evaluate(req.data, req.model, result.params);
    expect(nll).toBeCloseTo(result.iterations.at(-1)!.nll, 10);
    expect(objective).toBe(nll); // ridge 0
    const h = backend.posterior(req.data, req.model, result.params);
    expect(h.length).toBe(500 * 3);
    for (let i = 0; i < 500; i += 50) expect(h[3 * i]! + h[3 * i + 1]! + h[3 * i + 2]!).toBeCloseTo(1, 12);
  });

  it('NativeBackend is what loadNativeBackend returns', () => {
    expect(backend).toBeInstanceOf(NativeBackend);
  });
});

describe.skipIf(missing)('native addon: the restarts of one fit in one request', () => {
  const backend = loadNativeBackend('cpu');
  /** Three starts over one data set: two random ones and an explicit one, mini-batch EM (shuffles). */
  function restarts(): RestartsRequest {
    const base = request(600, 4, 3, 31, { batchSize: 150, maxIter: 6 });
    const explicit = backend.fitSync({ ...base, seed: 99 }, {}).params;
    return { ...asRestarts(base), starts: [{ seed: 5, init: null }, { seed: 6, init: explicit }, { seed: 7, init: null }] };
  }

  it('are the fits of their starts, in order, bit for bit, sync and async, every record delivered', async () => {
    const req = restarts();
    const separate = req.starts.map((start) => backend.fitSync(startRequest(req, start), {}));
    const seen: IterationRecord[] = [];
    const sync = backend.fitRestartsSync(req, { onIteration: (r) => seen.push(r) });
    const async = await backend.fitRestarts(req, {});
    for (const results of [sync, async]) {
      expect(results.length).toBe(3);
      results.forEach((r, i) => {
        expect(Array.from(r.params)).toEqual(Array.from(separate[i]!.params));
        expect(r.iterations.map((it) => it.objective)).toEqual(separate[i]!.iterations.map((it) => it.objective));
      });
    }
    expect(seen.map((r) => r.nll)).toEqual(separate.flatMap((r) => r.iterations.map((it) => it.nll)));
  });

  it('the first restart that fails ends the call; the partial state is its own', async () => {
    const req = restarts();
    const first = backend.fitSync(startRequest(req, req.starts[0]!), {});
    // Aborted two iterations into the second restart: the partial history is the second restart's.
    const controller = new AbortController();
    let began = 0;
    const aborted = await rejection(backend.fitRestarts(req, {
      signal: controller.signal,
      onIteration: (r) => { if (r.iter === 0) began++; if (began === 2 && r.iter === 2) controller.abort(); },
    }));
    expect((aborted as MoEError).code).toBe('E_ABORTED');
    const partial = (aborted as MoEError).details?.partial as { iterations: IterationRecord[] };
    expect(partial.iterations[0]!.iter).toBe(0);
    expect(partial.iterations[0]!.nll).not.toBe(first.iterations[0]!.nll);
    // A second start that is not a parameter vector of the model: its error, and no partial state (the
    // records received so far are the first restart's, not its own).
    const bad = { ...req, starts: [req.starts[0]!, { seed: 6, init: new Float64Array(3) }] };
    const seen: number[] = [];
    const e = thrown(() => backend.fitRestartsSync(bad, { onIteration: (r) => seen.push(r.iter) }));
    expect((e as MoEError).code).toBe('E_SHAPE');
    expect((e as MoEError).details?.partial).toBeNull();
    expect(seen).toEqual(first.iterations.map((r) => r.iter));
  });

  it('the addon refuses a request without starts', () => {
    const { starts: _, ...noStarts } = restarts();
    for (const starts of [undefined, [], [{ seed: -1, init: null }], [{ seed: 1, init: [1, 2] }]]) {
      const e = thrown(() => loadNativeBinding().fitSync({ ...noStarts, starts, backend: 'cpu' } as unknown as RestartsRequest & { backend: 'cpu' }));
      expect(['E_SHAPE', 'E_OPTION']).toContain((e as { code: string }).code);
    }
  });

  it("the estimator makes the moments' data passes once for all its restarts", () => {
    const { X, y } = sampleLinear({ n: 800, d: 3, k: 2, seed: 42 });
    const sums = vi.spyOn(NativeBackend.prototype, 'momentSums');
    const stage = vi.spyOn(NativeBackend.prototype, 'gateOnlyEm');
    const options = { experts: 'linear', k: 2, nInit: 3, init: 'moments', maxIter: 5, seed: 2 } as const;
    const native = new MixtureOfExperts({ ...options, backend: 'cpu' }).fitSync(X, y);
    expect([sums.mock.calls.length, stage.mock.calls.length]).toEqual([1, 3]);
    sums.mockRestore();
    stage.mockRestore();
    const reference = new MixtureOfExperts({ ...options, backend: 'js' }).fitSync(X, y);
    native.restarts.forEach((r, i) => {
      expect(Math.abs(r.objective - reference.restarts[i]!.objective)).toBeLessThanOrEqual(1e-9 * Math.abs(r.objective));
    });
  });

  it('the estimator hands all its restarts to the backend at once, and keeps the best', () => {
    const { X, y } = sampleLinear({ n: 500, d: 3, k: 2, seed: 41 });
    const options = { experts: 'linear', k: 2, nInit: 3, init: 'kmeans', maxIter: 20, seed: 8, intercept: true } as const;
    const spy = vi.spyOn(NativeBackend.prototype, 'fitRestartsSync');
    const native = new MixtureOfExperts({ ...options, backend: 'cpu' }).fitSync(X, y);
    expect(spy).toHaveBeenCalledTimes(1);
    spy.mockRestore();
    const reference = new MixtureOfExperts({ ...options, backend: 'js' }).fitSync(X, y);
    expect(native.restarts.map((r) => r.seed)).toEqual([8, 9, 10]);
    native.restarts.forEach((r, i) => {
      expect(Math.abs(r.objective - reference.restarts[i]!.objective)).toBeLessThanOrEqual(1e-9 * Math.abs(r.objective));
    });
    expect(native.bestRestart).toBe(reference.bestRestart);
  });
});

describe.skipIf(missing)("native addon: the named starts' stages refuse bad requests with coded errors", () => {
  const binding = (): NativeBinding => loadNativeBinding();
  const { data, model, fit } = request(300, 3, 2, 51);
  const code = (f: () => unknown): string => (thrown(f) as { code: string }).code;

  it('gateOnlyEm', () => {
    const params = loadNativeBackend('cpu').fitSync(request(300, 3, 2, 51), {}).params;
    const q = { data, model, fit, params, backend: 'cpu' as const, threads: 0 };
    expect(code(() => binding().gateOnlyEm({ ...q, params: new Float64Array(3) }))).toBe('E_SHAPE');
    expect(code(() => binding().gateOnlyEm({ ...q, params: Float64Array.from(params).fill(NaN, 0, 1) }))).toBe('E_NON_FINITE');
    expect(code(() => binding().gateOnlyEm({ ...q, fit: undefined as unknown as FitSpec }))).toBe('E_SHAPE');
    expect(code(() => binding().gateOnlyEm({ ...q, model: { ...model, k: 1 } }))).toBe('E_OPTION');
  });

  it('startFromAssignment, kmeansClusters and momentSums', () => {
    const q = { data, model, fit, backend: 'cpu' as const, threads: 0 };
    const assignment = new Uint32Array(data.n);
    expect(code(() => binding().startFromAssignment({ ...q, assignment: new Int32Array(data.n) as unknown as Uint32Array }))).toBe('E_SHAPE');
    expect(code(() => binding().startFromAssignment({ ...q, assignment: assignment.fill(2) }))).toBe('E_OPTION');
    expect(code(() => binding().kmeansClusters({ data, model, seed: -1, threads: 0 }))).toBe('E_OPTION');
    expect(code(() => binding().kmeansClusters({ data: { ...data, y: new Float64Array(3) }, model, seed: 1, threads: 0 }))).toBe('E_SHAPE');
    expect(binding().kmeansClusters({ data, model, seed: 1, threads: 0 }).length).toBe(data.n);
    expect(code(() => binding().momentSums({ data: { ...data, y: new Float64Array(3) }, model, threads: 0 }))).toBe('E_SHAPE');
    expect(code(() => binding().momentSums({ data, model: { ...model, d: 7 }, threads: 0 }))).toBe('E_SHAPE');
    expect(binding().momentSums({ data, model, threads: 0 }).mean.length).toBe(model.d);
  });
});

describe.skipIf(missing)('native addon: the intercept column', () => {
  it("copies X with a first column of ones on all cores, the same values as TypeScript's copy", () => {
    const rows = 1100, cols = 1000; // above the threshold (2^20 values): the threads split the rows
    const data = new Float64Array(rows * cols).map((_, i) => Math.sin(i));
    const ours = withInterceptNative({ data, rows, cols });
    expect(ours).not.toBeNull();
    expect(ours!.cols).toBe(cols + 1);
    const theirs = withIntercept({ data, rows, cols }, true).data;
    expect(ours!.data.length).toBe(theirs.length);
    expect(ours!.data.findIndex((v, i) => v !== theirs[i])).toBe(-1); // (toEqual is slow on 10⁶ values)
    // Small X stays in TypeScript; a malformed request is E_SHAPE.
    expect(withInterceptNative({ data: data.subarray(0, 30), rows: 10, cols: 3 })).toBeNull();
    expect(thrown(() => loadNativeBinding().withIntercept({ x: data, n: rows + 1, d: cols }))).toMatchObject({ code: 'E_SHAPE' });
  });

  it('scans X for NaN / ±Inf on all cores, the index TypeScript finds', () => {
    const data = new Float64Array((1 << 20) + 16).map((_, i) => Math.cos(i));
    expect(scanNonFinite(data)).toBe(-1);
    for (const [at, bad] of [[data.length - 1, NaN], [700_001, -Infinity], [3, Infinity]] as const) {
      data[at] = bad;
      expect(scanNonFinite(data)).toBe(at);
      expect(firstNonFinite(data)).toBe(at);
    }
    // Through the estimator: the same error, with the row and column.
    const e = thrown(() => new MixtureOfExperts({ experts: 'linear', backend: 'cpu' })
      .fitSync({ data, rows: data.length / 16, cols: 16 }, new Float64Array(data.length / 16)));
    expect(e).toMatchObject({ code: 'E_NON_FINITE', details: { row: 0, col: 3 } });
  });
});

describe.skipIf(missing)('native addon: benchmark exports', () => {
  it('times the weighted-Gram kernel and reports OpenBLAS DGEMM or why it is absent', () => {
    const binding = loadNativeBinding();
    const gram = binding.benchWeightedGram({ n: 4000, d: 16, m: 2, reps: 2 });
    expect(gram.seconds.length).toBe(2);
    expect(gram.flops).toBe(2 * 4000 * 16 * 17);
    expect(gram.gflops).toBeGreaterThan(0);
    const dgemm = binding.benchDgemm({ n: 4000, d: 16, m: 2, reps: 2 });
    if (dgemm.available) expect(dgemm.gflops).toBeGreaterThan(0);
    else expect(dgemm.reason).toContain('libopenblas');
    expect(existsSync('package.json')).toBe(true);
  });
});
