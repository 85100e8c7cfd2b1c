/**
 * Backend 'cuda' through the package API. Where there is no GPU (CI, this machine): the typed
 * E_BACKEND_UNAVAILABLE from every entry point, and 'auto' still fitting on another backend. Where there is
 * one: whole fits and queries against backend 'cpu' to relative 1e-9 (the full GPU check, with the
 * benchmark, is scripts/gpu-check.mjs). Needs the built addon for the native parts; skipped with the
 * reason printed otherwise.
 */
import { describe, expect, it } from 'vitest';
import type { FitRequest, FitSpec, ModelSpec, ProblemData } from '../src/backends/backend.js';
import { loadNativeBackend, nativeInfo } from '../src/backends/native.js';
import { sampleLinear, sampleMultinomial } from '../src/data/samplers.js';
import { MoEError } from '../src/errors.js';
import { resolveFitSpec } from '../src/input.js';
import { MixtureOfExperts } from '../src/estimator.js';

const info = nativeInfo();
const noAddon = !info.loaded;
const noGpu = !info.cudaAvailable;
if (noAddon) console.warn(`cuda.test.ts: native parts skipped, the addon is not available here (${info.reason})`);
else if (noGpu) console.warn('cuda.test.ts: GPU parity skipped, no usable GPU here (the addon sees no CUDA device)');

function fitSpec(overrides: Partial<FitSpec> = {}): FitSpec {
  return resolveFitSpec({ stepSize: 0.2, maxIter: 10, tol: 0, threads: 1, ...overrides });
}

function linear(n: number, d: number, k: number, seed: number): { data: ProblemData; model: ModelSpec } {
  const { X, y } = sampleLinear({ n, d, k, seed });
  return {
    data: { x: X.data, n, d, y, s: null },
    model: { experts: 'linear', symmetric: false, k, d, nClasses: 0, noise: 'fitted', ridge: 1e-3, intercept: false },
  };
}

function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return diff === 0 ? 0 : diff / scale;
}

function caught(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  throw new Error('expected an error');
}

describe('backend cuda without a GPU', () => {
  it.skipIf(noAddon || !noGpu)('reports E_BACKEND_UNAVAILABLE from the loader and from the estimator', async () => {
    const e = caught(() => loadNativeBackend('cuda'));
    expect(e).toBeInstanceOf(MoEError);
    expect((e as MoEError).code).toBe('E_BACKEND_UNAVAILABLE');
    const { X, y } = sampleLinear({ n: 200, d: 3, k: 2, seed: 1 });
    const model = new MixtureOfExperts({ experts: 'linear', k: 2, maxIter: 5, backend: 'cuda' });
    await expect(model.fit(X, y)).rejects.toMatchObject({ code: 'E_BACKEND_UNAVAILABLE' });
    expect(() => model.fitSync(X, y)).toThrow(MoEError);
  });

  it('backend auto still fits (on the CPU or the TypeScript backend)', () => {
    const { X, y } = sampleLinear({ n: 300, d: 3, k: 2, seed: 2 });
    const history = new MixtureOfExperts({ experts: 'linear', k: 2, maxIter: 5, backend: 'auto' }).fitSync(X, y);
    expect(noGpu ? ['cpu', 'js'] : ['cpu', 'cuda', 'js']).toContain(history.backend);
    expect(history.iterations.at(-1)!.nll).toBeLessThanOrEqual(history.iterations[0]!.nll);
  });
});

describe('backend cuda on a GPU', () => {
  it.skipIf(noGpu)('nativeInfo names the GPU', () => {
    expect(info.gpu?.name).toMatch(/\w/);
    expect(info.gpu?.memoryBytes).toBeGreaterThan(0);
    expect(info.gpu?.computeCapability).toMatch(/^\d+\.\d+$/);
    expect(info.gpuUnavailable).toBeUndefined();
  });

  it.skipIf(noGpu)('whole fits match backend cpu to 1e-9 (linear EM, multinomial Gradient EM, mini-batch GD)', () => {
    const cuda = loadNativeBackend('cuda');
    const cpu = loadNativeBackend('cpu', { threads: 1 });
    const { X, y } = sampleMultinomial({ n: 3000, d: 4, k: 2, nClasses: 3, seed: 5 });
    const multinomial: ModelSpec = { experts: 'multinomial', symmetric: false, k: 2, d: 4, nClasses: 3, noise: 'fitted', ridge: 1e-3, intercept: false };
    const requests: FitRequest[] = [
      { ...linear(3000, 4, 3, 4), fit: fitSpec(), seed: 1, init: null, trueParams: null },
      { data: { x: X.data, n: 3000, d: 4, y, s: null }, model: multinomial, fit: fitSpec({ algorithm: 'gradient-em' }), seed: 2, init: null, trueParams: null },
      { ...linear(3000, 4, 2, 6), fit: fitSpec({ algorithm: 'gd', batchSize: 500 }), seed: 3, init: null, trueParams: null },
    ];
    for (const req of requests) {
      const g = cuda.fitSync(req, {});
      const c = cpu.fitSync(req, {});
      expect(g.iterations.length).toBe(c.iterations.length);
      expect(relErr(g.params, c.params)).toBeLessThanOrEqual(1e-9);
      expect(relErr(g.iterations.map((r) => r.nll), c.iterations.map((r) => r.nll))).toBeLessThanOrEqual(1e-9);
    }
  });

  it.skipIf(noGpu)('posterior and evaluate match backend cpu', () => {
    const cuda = loadNativeBackend('cuda');
    const cpu = loadNativeBackend('cpu', { threads: 1 });
    const { data, model } = linear(2000, 3, 2, 8);
    const params = cpu.fitSync({ data, model, fit: fitSpec(), seed: 1, init: null, trueParams: null }, {}).params;
    expect(relErr(cuda.posterior(data, model, params), cpu.posterior(data, model, params))).toBeLessThanOrEqual(1e-9);
    const g = cuda.evaluate(data, model, params);
    const c = cpu.evaluate(data, model, params);
    expect(Math.abs(g.nll - c.nll)).toBeLessThanOrEqual(1e-9 * Math.abs(c.nll));
  });
});
