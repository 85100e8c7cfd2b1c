/**
 * backend 'auto' on a GPU that runs out of memory, or where the CUDA backend cannot start
 * (src/backends/gpu-fallback.ts): the call re-runs on the CPU backend, later calls go there directly, the
 * caller's onIteration sees one unbroken sequence, and no other error is swallowed. No GPU is needed: a stand-in "GPU" backend runs the reference and fails with E_GPU_OOM
 * where a test says, and the reference stands in for the CPU backend (they compute the same iterates).
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  asRestarts, fitEachStart, fitEachStartSync,
  type ComputeBackend, type FitHooks, type FitRequest, type FitResult, type FitSpec, type ModelSpec, type MomentSums,
  type ProblemData, type RestartsRequest,
} from '../src/backends/backend.js';
import { GpuWithCpuFallback, GPU_FALLBACK_WARNING } from '../src/backends/gpu-fallback.js';
import { jsBackend } from '../src/backends/js.js';
import { sampleLinear } from '../src/data/samplers.js';
import { MoEError, type ErrorCode } from '../src/errors.js';
import { resolveFitSpec } from '../src/input.js';
import type { IterationRecord } from '../src/types.js';

/** A "GPU" backend: the reference, failing with `code` after delivering `after` records (never: −1). */
class FailingGpu implements ComputeBackend {
  readonly name = 'cuda' as const;
  calls = 0;
  constructor(private readonly code: ErrorCode, private readonly after: number) {}

  private failing(hooks: FitHooks): FitHooks {
    let delivered = 0;
    return {
      ...hooks,
      onIteration: (record) => {
        if (this.after >= 0 && delivered === this.after) throw new MoEError(this.code, 'out of device memory (stand-in)');
        delivered++;
        hooks.onIteration?.(record);
      },
    };
  }

  fit(req: FitRequest, hooks: FitHooks): Promise<FitResult> {
    this.calls++;
    return jsBackend.fit(req, this.failing(hooks));
  }

  fitSync(req: FitRequest, hooks: FitHooks): FitResult {
    this.calls++;
    return jsBackend.fitSync(req, this.failing(hooks));
  }

  fitRestarts(req: RestartsRequest, hooks: FitHooks): Promise<FitResult[]> {
    this.calls++;
    const failing = this.failing(hooks); // counts the records of every restart together
    return fitEachStart(req, (r) => jsBackend.fit(r, failing));
  }

  fitRestartsSync(req: RestartsRequest, hooks: FitHooks): FitResult[] {
    this.calls++;
    const failing = this.failing(hooks);
    return fitEachStartSync(req, (r) => jsBackend.fitSync(r, failing));
  }

  evaluate(data: ProblemData, model: ModelSpec, params: Float64Array): { nll: number; objective: number } {
    return this.failingQuery(() => jsBackend.evaluate(data, model, params));
  }

  posterior(data: ProblemData, model: ModelSpec, params: Float64Array): Float64Array {
    this.calls++;
    return jsBackend.posterior(data, model, params);
  }

  /** A query that fails whenever this stand-in fails at all. */
  private failingQuery<T>(query: () => T): T {
    this.calls++;
    if (this.after >= 0) throw new MoEError(this.code, 'out of device memory (stand-in)');
    return query();
  }

  gateOnlyEm(data: ProblemData, model: ModelSpec, fit: FitSpec, params: Float64Array): Float64Array {
    return this.failingQuery(() => jsBackend.gateOnlyEm(data, model, fit, params));
  }

  startFromAssignment(data: ProblemData, model: ModelSpec, fit: FitSpec, assignment: Uint32Array): Float64Array {
    return this.failingQuery(() => jsBackend.startFromAssignment(data, model, fit, assignment));
  }

  kmeansClusters(data: ProblemData, model: ModelSpec, seed: number): Uint32Array {
    return this.failingQuery(() => jsBackend.kmeansClusters(data, model, seed));
  }

  momentSums(data: ProblemData, model: ModelSpec): MomentSums {
    return this.failingQuery(() => jsBackend.momentSums(data, model));
  }

  information(): never {
    throw new Error('not used');
  }

  predict(x: Float64Array, n: number, model: ModelSpec, params: Float64Array): Float64Array {
    this.calls++;
    return jsBackend.predict(x, n, model, params);
  }
}

function request(): FitRequest {
  const n = 400, d = 3, k = 2;
  const { X, y } = sampleLinear({ n, d, k, seed: 3 });
  const model: ModelSpec = { experts: 'linear', symmetric: false, k, d, nClasses: 0, noise: 'fitted', ridge: 0, intercept: false };
  return { data: { x: X.data, n, d, y, s: null }, model, fit: resolveFitSpec({ maxIter: 8, tol: 0 }), seed: 1, init: null, trueParams: null };
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe("backend 'auto' when the GPU runs out of memory", () => {
  const reference = jsBackend.fitSync(request(), {});

  it.each([0, 3])('a fit that fails after %i records re-runs on the CPU backend, each record delivered once', (after) => {
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => {});
    const gpu = new FailingGpu('E_GPU_OOM', after);
    const backend = new GpuWithCpuFallback(gpu, () => jsBackend);
    expect(backend.name).toBe('cuda');
    const seen: IterationRecord[] = [];
    const result = backend.fitSync(request(), { onIteration: (r) => seen.push(r) });
    expect(backend.name).toBe('js'); // the stand-in CPU backend ran it
    expect(result.params).toEqual(reference.params);
    expect(seen.map((r) => r.iter)).toEqual(reference.iterations.map((r) => r.iter));
    expect(seen.map((r) => r.nll)).toEqual(reference.iterations.map((r) => r.nll));
    // Later calls go to the CPU directly.
    backend.fitSync(request(), {});
    expect(backend.evaluate(request().data, request().model, result.params).nll).toBeGreaterThan(0);
    expect(gpu.calls).toBe(1);
    // Warned at most once per process (the first test of this file warns; the rest find it said).
    expect(warn.mock.calls.every(([, opts]) => (opts as { code?: string }).code === GPU_FALLBACK_WARNING)).toBe(true);
    expect(warn.mock.calls.length).toBe(after === 0 ? 1 : 0);
  });

  it('E_BACKEND_UNAVAILABLE from a call (the backend cannot start on this GPU) moves to the CPU backend too', async () => {
    const gpu = new FailingGpu('E_BACKEND_UNAVAILABLE', 0);
    const backend = new GpuWithCpuFallback(gpu, () => jsBackend);
    expect((await backend.fit(request(), {})).params).toEqual(reference.params);
    expect(backend.name).toBe('js');
  });

  it('the asynchronous fit the same', async () => {
    const gpu = new FailingGpu('E_GPU_OOM', 2);
    const backend = new GpuWithCpuFallback(gpu, () => jsBackend);
    const seen: number[] = [];
    const result = await backend.fit(request(), { onIteration: (r) => seen.push(r.iter) });
    expect(result.params).toEqual(reference.params);
    expect(seen).toEqual(reference.iterations.map((r) => r.iter));
    expect(backend.name).toBe('js');
  });

  it('a query re-runs on the CPU backend, and later queries go there', () => {
    const gpu = new FailingGpu('E_GPU_OOM', 0);
    const backend = new GpuWithCpuFallback(gpu, () => jsBackend);
    const { data, model } = request();
    expect(backend.evaluate(data, model, reference.params)).toEqual(jsBackend.evaluate(data, model, reference.params));
    expect(backend.posterior(data, model, reference.params)).toEqual(jsBackend.posterior(data, model, reference.params));
    expect(backend.predict(data.x, data.n, model, reference.params))
      .toEqual(jsBackend.predict(data.x, data.n, model, reference.params));
    expect(gpu.calls).toBe(1);
    // The stages of the named starts the same.
    const fit = request().fit;
    const moments = new GpuWithCpuFallback(new FailingGpu('E_GPU_OOM', 0), () => jsBackend);
    expect(moments.gateOnlyEm(data, model, fit, reference.params)).toEqual(jsBackend.gateOnlyEm(data, model, fit, reference.params));
    expect(moments.name).toBe('js');
    const kmeans = new GpuWithCpuFallback(new FailingGpu('E_GPU_OOM', 0), () => jsBackend);
    const clusters = Uint32Array.from({ length: data.n }, (_, i) => i % model.k);
    expect(kmeans.startFromAssignment(data, model, fit, clusters)).toEqual(jsBackend.startFromAssignment(data, model, fit, clusters));
    expect(kmeans.name).toBe('js');
  });

  it('any other error is thrown as it is, and the GPU stays in use', async () => {
    for (const code of ['E_GPU', 'E_ABORTED', 'E_SINGULAR'] as const) {
      const gpu = new FailingGpu(code, 1);
      const backend = new GpuWithCpuFallback(gpu, () => {
        throw new Error('the CPU backend must not be loaded');
      });
      expect(() => backend.fitSync(request(), { onIteration: () => {} })).toThrow(expect.objectContaining({ code }));
      await expect(backend.fit(request(), { onIteration: () => {} })).rejects.toMatchObject({ code });
      expect(() => backend.evaluate(request().data, request().model, reference.params)).toThrow(expect.objectContaining({ code }));
      expect(backend.name).toBe('cuda');
    }
  });

  it('restarts that fail in the second re-run on the CPU backend, every record delivered once', async () => {
    const restarts: RestartsRequest = { ...asRestarts(request()), starts: [{ seed: 1, init: null }, { seed: 2, init: null }] };
    const expected = jsBackend.fitRestartsSync(restarts, {});
    const records = expected.flatMap((r) => r.iterations.map((it) => it.nll));
    const after = expected[0]!.iterations.length + 2; // two records into the second restart
    for (const run of [
      (b: ComputeBackend, hooks: FitHooks) => Promise.resolve(b.fitRestartsSync(restarts, hooks)),
      (b: ComputeBackend, hooks: FitHooks) => b.fitRestarts(restarts, hooks),
    ]) {
      const gpu = new FailingGpu('E_GPU_OOM', after);
      const backend = new GpuWithCpuFallback(gpu, () => jsBackend);
      const seen: number[] = [];
      const results = await run(backend, { onIteration: (r) => seen.push(r.nll) });
      expect(results.map((r) => r.params)).toEqual(expected.map((r) => r.params));
      expect(seen).toEqual(records);
      expect(backend.name).toBe('js');
      expect(gpu.calls).toBe(1);
    }
  });

  it('without an onIteration hook, and on a GPU with room', () => {
    const fails = new GpuWithCpuFallback(new FailingGpu('E_GPU_OOM', 2), () => jsBackend);
    expect(fails.fitSync(request(), {}).params).toEqual(reference.params);
    expect(fails.name).toBe('js');
    const fits = new GpuWithCpuFallback(new FailingGpu('E_GPU_OOM', -1), () => jsBackend);
    expect(fits.fitSync(request(), {}).params).toEqual(reference.params);
    expect(fits.name).toBe('cuda');
  });
});
