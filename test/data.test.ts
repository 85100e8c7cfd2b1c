/**
 * Data: the seeded samplers (determinism, shapes, and that the maximum-likelihood fit lands near the true
 * parameters), the paper's synthetic setup, and the Fashion-MNIST IDX loader with its MATH.md §6 alteration.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import type { ModelSpec, ProblemData } from '../src/backends/backend.js';
import {
  ALTERED_LABEL_PERMUTATION, DEFAULT_FASHION_MNIST_DIR, alterFashionMnist, loadFashionMnist, parseIdx,
} from '../src/data/fashion-mnist.js';
import {
  paperSyntheticSymMoLinE, sampleLinear, sampleLogistic, sampleMultinomial, sampleSymMoLinE, sampleSymMoLogE,
  type SampledProblem,
} from '../src/data/samplers.js';
import { computeInformation } from '../src/diagnostics/information.js';
import { choleskyInPlace, choleskySolveInPlace } from '../src/linalg/cholesky.js';
import { gradientF } from '../src/models/gradient.js';
import { fromFree, readableToParams, toFree } from '../src/models/layout.js';
import { modelSpecOf, problemDataOf } from './support/sampled.js';

/** Maximum likelihood by Newton's method (observed information from the diagnostics) started at θ*. */
function maximumLikelihood(data: ProblemData, model: ModelSpec, start: Float64Array): Float64Array {
  let theta: Float64Array = Float64Array.from(start);
  const p = toFree(model, theta).length;
  const g = new Float64Array(p);
  for (let it = 0; it < 30; it++) {
    gradientF(data, model, theta, g);
    const io = computeInformation(data, model, theta, { method: 'dense', steps: 60 }).observed!;
    expect(choleskyInPlace(io, p)).toBe(true);
    choleskySolveInPlace(io, p, g);
    const free = toFree(model, theta);
    let change = 0;
    for (let t = 0; t < p; t++) { free[t] += g[t]!; change = Math.max(change, Math.abs(g[t]!)); }
    theta = fromFree(model, free, theta);
    if (change < 1e-10) break;
  }
  return theta;
}

function relativeDistance(a: Float64Array, b: Float64Array): number {
  let num = 0; let den = 0;
  for (let t = 0; t < a.length; t++) { num += (a[t]! - b[t]!) ** 2; den += b[t]! ** 2; }
  return Math.sqrt(num / den);
}

describe('samplers', () => {
  const families: { name: string; make: (seed: number) => SampledProblem; tol: number }[] = [
    { name: 'linear (fitted noise)', make: (seed) => sampleLinear({ n: 4000, d: 3, k: 2, seed, sigma2: [0.2, 0.5] }), tol: 0.1 },
    { name: 'logistic', make: (seed) => sampleLogistic({ n: 6000, d: 3, k: 2, seed, coefScale: 3 }), tol: 0.2 },
    { name: 'multinomial', make: (seed) => sampleMultinomial({ n: 6000, d: 3, k: 2, nClasses: 3, seed, coefScale: 3 }), tol: 0.2 },
    { name: 'SymMoLinE', make: (seed) => sampleSymMoLinE({ n: 3000, d: 4, seed }), tol: 0.1 },
    { name: 'SymMoLogE', make: (seed) => sampleSymMoLogE({ n: 6000, d: 4, seed, norm: 3 }), tol: 0.2 },
  ];
  for (const fam of families) {
    it(`${fam.name}: deterministic per seed, and the MLE recovers θ*`, () => {
      const a = fam.make(3);
      const again = fam.make(3);
      const other = fam.make(4);
      expect(again.X.data).toEqual(a.X.data);
      expect(again.y).toEqual(a.y);
      expect(other.y).not.toEqual(a.y);
      expect(a.X.data.length).toBe(a.X.rows * a.X.cols);
      expect(a.y.length).toBe(a.X.rows);
      const model = modelSpecOf(a);
      const truth = readableToParams(model, a.params);
      const mle = maximumLikelihood(problemDataOf(a), model, truth);
      expect(relativeDistance(mle, truth)).toBeLessThan(fam.tol);
    });
  }

  it('labels lie in each family\'s range', () => {
    expect(new Set(sampleLogistic({ n: 500, d: 2, seed: 1 }).y)).toEqual(new Set([0, 1]));
    expect(new Set(sampleSymMoLogE({ n: 500, d: 2, seed: 1 }).y)).toEqual(new Set([-1, 1]));
    expect(new Set(sampleMultinomial({ n: 2000, d: 2, nClasses: 4, seed: 1 }).y)).toEqual(new Set([0, 1, 2, 3]));
  });

  it('bad options are MoEError E_OPTION / E_SHAPE', () => {
    expect(() => sampleLinear({ n: 0, d: 2 })).toThrow(expect.objectContaining({ code: 'E_OPTION' }));
    expect(() => sampleLinear({ n: 10, d: 2, sigma2: -1 })).toThrow(expect.objectContaining({ code: 'E_OPTION' }));
    expect(() => sampleMultinomial({ n: 10, d: 2, nClasses: 1 })).toThrow(expect.objectContaining({ code: 'E_OPTION' }));
    expect(() => sampleSymMoLinE({ n: 10, d: 2, w: [1] })).toThrow(expect.objectContaining({ code: 'E_SHAPE' }));
  });

  it("the paper's synthetic SymMoLinE setup (MATH.md §6)", () => {
    const p = paperSyntheticSymMoLinE({ seed: 9 });
    expect(p.X.rows).toBe(1000);
    expect(p.X.cols).toBe(10);
    const w = p.params.w!; const beta = p.params.beta!;
    expect(Math.hypot(...w)).toBeCloseTo(4, 12);
    expect(Math.hypot(...beta)).toBeCloseTo(4, 12);
    expect(p.params.sigma).toBe(1);
    const dist = Math.hypot(...p.init.w!.map((a, f) => a - w[f]!), ...p.init.beta!.map((a, f) => a - beta[f]!));
    expect(dist).toBeCloseTo(0.5 * Math.sqrt(32), 10);
    // x ~ N(0, I): sample mean near 0, variance near 1; y has variance ‖β‖² + σ² = 17.
    const xs = p.X.data;
    const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
    const variance = xs.reduce((a, b) => a + b * b, 0) / xs.length;
    expect(Math.abs(mean)).toBeLessThan(0.05);
    expect(Math.abs(variance - 1)).toBeLessThan(0.05);
    const yVar = p.y.reduce((a, b) => a + b * b, 0) / p.y.length;
    expect(Math.abs(yVar - 17) / 17).toBeLessThan(0.15);
    expect(paperSyntheticSymMoLinE({ seed: 10 }).params.w).not.toEqual(w);
  });
});

describe('IDX parsing', () => {
  const header = (dims: number[], type = 0x08): Uint8Array => {
    const b = new Uint8Array(4 + 4 * dims.length);
    b[2] = type; b[3] = dims.length;
    const view = new DataView(b.buffer);
    dims.forEach((v, a) => view.setUint32(4 + 4 * a, v, false));
    return b;
  };
  const concat = (a: Uint8Array, b: Uint8Array): Uint8Array => { const c = new Uint8Array(a.length + b.length); c.set(a); c.set(b, a.length); return c; };

  it('reads dims and values', () => {
    const idx = parseIdx(concat(header([2, 3]), Uint8Array.from([1, 2, 3, 4, 5, 6])), 't');
    expect(idx.dims).toEqual([2, 3]);
    expect(Array.from(idx.values)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('corrupt headers are E_IO', () => {
    const bad = [
      Uint8Array.from([1, 2, 3]),
      concat(Uint8Array.from([7, 0, 8, 1]), new Uint8Array(4)),
      concat(header([2], 0x0d), new Uint8Array(8)),
      concat(header([5]), new Uint8Array(3)),
    ];
    for (const b of bad) expect(() => parseIdx(b, 'x')).toThrow(expect.objectContaining({ code: 'E_IO' }));
  });

  it('a missing directory names the Debian package; a corrupt file is E_IO', () => {
    const dir = mkdtempSync(join(tmpdir(), 'moe-em-idx-'));
    try {
      expect(() => loadFashionMnist({ dir }))
        .toThrow(expect.objectContaining({ code: 'E_IO', message: expect.stringContaining('apt-get install dataset-fashion-mnist') }));
      writeFileSync(join(dir, 'train-images-idx3-ubyte.gz'), gzipSync(Buffer.from([0, 0, 8, 3, 0, 0])));
      writeFileSync(join(dir, 'train-labels-idx1-ubyte.gz'), Buffer.from('not gzip'));
      expect(() => loadFashionMnist({ dir, splits: ['train'] })).toThrow(expect.objectContaining({ code: 'E_IO' }));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

const haveFashion = existsSync(join(DEFAULT_FASHION_MNIST_DIR, 'train-images-idx3-ubyte.gz'));
if (!haveFashion) {
  console.log(`Fashion-MNIST tests skipped: ${DEFAULT_FASHION_MNIST_DIR} is missing (apt-get install dataset-fashion-mnist)`);
}

describe.skipIf(!haveFashion)('Fashion-MNIST (installed dataset)', () => {
  it('loads a slice of both splits, scaled to [0, 1]', () => {
    const fm = loadFashionMnist({ limit: 200 });
    for (const split of [fm.train!, fm.test!]) {
      expect(split.X.rows).toBe(200);
      expect(split.X.cols).toBe(784);
      expect(split.y.length).toBe(200);
      let min = Infinity; let max = -Infinity;
      for (const v of split.X.data) { min = Math.min(min, v); max = Math.max(max, v); }
      expect(min).toBe(0);
      expect(max).toBe(1);
      for (const label of split.y) expect(Number.isInteger(label) && label >= 0 && label <= 9).toBe(true);
      expect(new Set(split.y).size).toBe(10);
    }
    // The first training and test images are both class 9 (ankle boot) in the published files.
    expect(fm.train!.y[0]).toBe(9);
    expect(fm.test!.y[0]).toBe(9);
  });

  it('the alteration inverts exactly half the rows and permutes their labels, reproducibly', () => {
    const { train } = loadFashionMnist({ limit: 300, splits: ['train'] });
    const alt = alterFashionMnist(train!, 7);
    const again = alterFashionMnist(train!, 7);
    expect(again.altered).toEqual(alt.altered);
    expect(alterFashionMnist(train!, 8).altered).not.toEqual(alt.altered);
    expect(alt.altered.reduce((a, b) => a + b, 0)).toBe(150);
    const d = 784;
    for (let i = 0; i < 300; i++) {
      const flipped = alt.altered[i] === 1;
      expect(alt.y[i]).toBe(flipped ? ALTERED_LABEL_PERMUTATION[train!.y[i]!] : train!.y[i]);
      for (const f of [0, 300, 783]) {
        expect(alt.X.data[i * d + f]).toBeCloseTo(flipped ? 1 - train!.X.data[i * d + f]! : train!.X.data[i * d + f]!, 15);
      }
    }
    // The permutation has no fixed point and is a bijection.
    expect(new Set(ALTERED_LABEL_PERMUTATION).size).toBe(10);
    ALTERED_LABEL_PERMUTATION.forEach((to, from) => expect(to).not.toBe(from));
  });
});
