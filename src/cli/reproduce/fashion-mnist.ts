/**
 * `moe-em reproduce fashion-mnist`: the paper's Fashion-MNIST experiment (MATH.md §6) on the altered data
 * (a random half of the images inverted and relabelled, so that two experts are needed). Model: linear gate
 * + two multinomial logistic experts (10 classes) on the 784 pixels plus a bias column (our choice), every
 * layer initialised to unit Frobenius norm, the same start for every method. Methods, all full batch:
 *   - EM with the paper's M-step (a few inner gradient steps per block),
 *   - EM with our Newton-CG M-step (capped outer/CG iterations so an EM iteration stays affordable),
 *   - Gradient EM and GD with one step size.
 * Train NLL every iteration; test accuracy and NLL after every `evalEvery` iterations, obtained by running the fit
 * in chunks of `evalEvery` iterations (a full-batch iteration depends only on the current parameters, so the
 * chunked path is the same path). Baseline: one multinomial logistic regression (k = 1) on the same data.
 */
import { alterFashionMnist, loadFashionMnist } from '../../data/fashion-mnist.js';
import { Rng } from '../../data/rng.js';
import { MoEError } from '../../errors.js';
import { resolveBackend } from '../../backends/select.js';
import { MixtureOfExperts } from '../../estimator.js';
import type { BackendKind, MoEOptions, MoEParams } from '../../types.js';
import type { Output } from '../output.js';
import { startProgress } from '../progress.js';
import { ArtifactWriter } from './artifacts.js';
import { renderFashionReport, type FashionRun } from './fashion-mnist-report.js';

type Split = { X: { data: Float64Array; rows: number; cols: number }; y: Float64Array };

export const FASHION_METHODS = ['em-gradient', 'em-newton', 'gradient-em', 'gd', 'baseline'] as const;
export type FashionMethod = typeof FASHION_METHODS[number];

export const FASHION_DEFAULTS = {
  iterations: 100,
  /**
   * Default data size per backend, so that the whole command (4 methods × 100 iterations + the baseline)
   * finishes in under 30 minutes: CUDA takes the full data (about 6 minutes on an H100); the CPU backend on
   * a 2-core machine gets 8000 rows (an expert has 9 × 785 = 7065 free parameters, and the estimator needs
   * at least that many rows: E_TOO_FEW_ROWS); the JS reference gets 2×2-pooled images (196 pixels), the
   * only way to stay under 30 minutes there. Every default is overridable and printed with the results.
   */
  rows: { cuda: 60000, cpu: 8000, js: 4000 },
  testRows: { cuda: 10000, cpu: 5000, js: 2000 },
  pool: { cuda: 1, cpu: 1, js: 2 },
  /**
   * Step size of GD, Gradient EM and the paper's gradient M-step, on the mean log-likelihood. Our choice, not
   * tuned: with pixels in [0, 1], λ_max(E[xxᵀ]) ≈ 240 and class probabilities near 1/10 at the start, the
   * curvature along the worst direction is about 0.09·240 ≈ 21, so steps below 2/21 ≈ 0.095 are stable.
   */
  stepSize: 0.05,
  /** Baseline (k = 1): EM iterations, each a capped Newton-CG solve of the logistic regression. */
  baselineIterations: 5,
  /** The paper's EM: inner gradient steps per block and EM iteration. */
  innerSteps: 10,
  /** Our EM: Newton-CG M-step capped at this many outer and CG iterations. */
  newton: { maxIter: 3, cgMaxIter: 20 },
  nClasses: 10,
  alterationSeed: 0,
};

export interface FashionOptions {
  dataDir: string;
  rows?: number;
  testRows?: number;
  iterations: number;
  evalEvery: number;
  stepSize: number;
  /** Average-pool the images p×p first (1 = the paper's 784 pixels; default per backend). */
  pool?: number;
  /** Which methods to run (all by default; runs can be split and merged with --render). */
  methods: FashionMethod[];
  /** Render the SVG plot (off where vega is not installed; re-render later with --render). */
  plots: boolean;
  seed: number;
  backend: BackendKind;
  out: string;
}

export interface MethodResult {
  method: string;
  trainNll: number[];
  /** [iteration, accuracy, test NLL] at each evaluation. */
  test: [number, number, number][];
  seconds: number;
  backend: string;
}

/**
 * The design the model sees: optional p×p average pooling of the 28×28 images (quick runs only: fewer
 * features need fewer rows and less time), then a leading column of ones (the bias), so that the
 * unit-norm start covers the bias too.
 */
export function prepareDesign(split: Split, pool: number): Split {
  const { rows, data } = split.X;
  const side = 28;
  const pooledSide = Math.floor(side / pool);
  const cols = pooledSide * pooledSide;
  const out = new Float64Array(rows * (cols + 1));
  const scale = 1 / (pool * pool);
  for (let i = 0; i < rows; i++) {
    const src = i * side * side;
    const dst = i * (cols + 1);
    out[dst] = 1;
    for (let r = 0; r < pooledSide; r++) {
      for (let c = 0; c < pooledSide; c++) {
        let sum = 0;
        for (let a = 0; a < pool; a++) for (let b = 0; b < pool; b++) sum += data[src + (r * pool + a) * side + c * pool + b]!;
        out[dst + 1 + r * pooledSide + c] = sum * scale;
      }
    }
  }
  return { X: { data: out, rows, cols: cols + 1 }, y: split.y };
}

function unitNormRows(rng: Rng, rows: number, cols: number): number[][] {
  const m = Array.from({ length: rows }, () => Array.from({ length: cols }, () => rng.normal()));
  const norm = Math.hypot(...m.flat());
  return m.map((r) => r.map((v) => v / norm));
}

/** Gate (free row unit norm, reference row 0) and each expert (free class rows unit norm, last row 0). */
export function unitNormStart(d: number, k: number, nClasses: number, seed: number): MoEParams {
  const rng = new Rng(seed);
  const zeros = (): number[] => new Array<number>(d).fill(0);
  const gate = [...unitNormRows(rng, k - 1, d), zeros()];
  const coef = Array.from({ length: k }, () => [...unitNormRows(rng, nClasses - 1, d), zeros()]);
  return { experts: 'multinomial', symmetric: false, k, d, intercept: false, nClasses, gate, coef };
}

function accuracy(estimator: MixtureOfExperts, split: Split): number {
  const yhat = estimator.predict(split.X);
  let hits = 0;
  for (let i = 0; i < split.y.length; i++) if (yhat[i] === split.y[i]) hits++;
  return hits / split.y.length;
}

/** Runs `iterations` iterations in chunks of `evalEvery`, evaluating on the test split between chunks. */
async function runMethod(method: string, options: MoEOptions, start: MoEParams, train: Split, test: Split,
  o: FashionOptions, tick: () => void): Promise<MethodResult> {
  const began = performance.now();
  let params = start;
  const trainNll: number[] = [];
  const results: [number, number, number][] = [];
  let backend = '';
  let done = 0;
  while (done < o.iterations) {
    const chunk = Math.min(o.evalEvery, o.iterations - done);
    const estimator = new MixtureOfExperts({ ...options, init: params, maxIter: chunk, tol: 0 });
    const history = await estimator.fit(train.X, train.y);
    backend = history.backend;
    const records = history.iterations;
    if (done === 0) trainNll.push(records[0]!.nll);
    for (const r of records.slice(1)) trainNll.push(r.nll);
    // A chunk that stopped early reached an exact fixed point: the remaining iterations repeat it.
    while (trainNll.length < done + chunk + 1) trainNll.push(trainNll[trainNll.length - 1]!);
    done += chunk;
    params = estimator.params;
    results.push([done, accuracy(estimator, test), -estimator.score(test.X, test.y)]);
    for (let c = 0; c < chunk; c++) tick();
  }
  return { method, trainNll, test: results, seconds: (performance.now() - began) / 1000, backend };
}

/**
 * Which backend 'auto' (or the named one) resolves to for a problem of this size (the data-size defaults
 * depend on it); a named native backend that cannot load fails here, before the data is read.
 */
function resolvedBackend(kind: BackendKind): 'js' | 'cpu' | 'cuda' {
  return resolveBackend(kind, FASHION_DEFAULTS.rows.cuda * 785).name;
}

export async function reproduceFashionMnist(o: FashionOptions, output: Output): Promise<MethodResult[]> {
  const backend = resolvedBackend(o.backend);
  const rows = o.rows ?? FASHION_DEFAULTS.rows[backend];
  const testRows = o.testRows ?? FASHION_DEFAULTS.testRows[backend];
  const pool = o.pool ?? FASHION_DEFAULTS.pool[backend];
  let raw;
  try {
    raw = {
      train: loadFashionMnist({ dir: o.dataDir, limit: rows, splits: ['train'] }).train!,
      test: loadFashionMnist({ dir: o.dataDir, limit: testRows, splits: ['test'] }).test!,
    };
  } catch (e) {
    if (e instanceof MoEError && e.code === 'E_IO') {
      throw new MoEError('E_IO', `Fashion-MNIST not found in ${o.dataDir} (${e.message}). Install it with `
        + '`apt-get install dataset-fashion-mnist`, or pass --data DIR with the four *-ubyte.gz files.');
    }
    throw e;
  }
  const train = prepareDesign(alterFashionMnist(raw.train, FASHION_DEFAULTS.alterationSeed), pool);
  const test = prepareDesign(alterFashionMnist(raw.test, FASHION_DEFAULTS.alterationSeed + 1), pool);
  const d = train.X.cols;
  const C = FASHION_DEFAULTS.nClasses;
  const start = unitNormStart(d, 2, C, o.seed);
  const base: MoEOptions = { experts: 'multinomial', k: 2, nClasses: C, backend: o.backend };
  const eta = o.stepSize;
  const methods: [string, MoEOptions, FashionMethod][] = [
    [`EM, gradient M-step (${FASHION_DEFAULTS.innerSteps} inner steps, η=${eta})`, { ...base, algorithm: 'em',
      mstep: { solver: 'gradient', innerSteps: FASHION_DEFAULTS.innerSteps }, stepSize: { gate: eta, experts: eta } }, 'em-gradient'],
    [`EM, Newton-CG M-step (≤${FASHION_DEFAULTS.newton.maxIter} outer, ≤${FASHION_DEFAULTS.newton.cgMaxIter} CG)`, { ...base,
      algorithm: 'em', mstep: { solver: 'newton-cg', ...FASHION_DEFAULTS.newton } }, 'em-newton'],
    [`Gradient EM (η=${eta})`, { ...base, algorithm: 'gradient-em', stepSize: { gate: eta, experts: eta } }, 'gradient-em'],
    [`GD (η=${eta})`, { ...base, algorithm: 'gd', stepSize: eta }, 'gd'],
  ];

  const settings: FashionRun['settings'] = {
    trainRows: train.X.rows, testRows: test.X.rows, pixels: d - 1, pool, iterations: o.iterations,
    evalEvery: o.evalEvery, stepSize: eta, seed: o.seed, backend, alterationSeed: FASHION_DEFAULTS.alterationSeed,
  };
  output.err(`fashion-mnist: ${d - 1} pixels + bias, ${train.X.rows} train rows, ${test.X.rows} test rows, ${o.iterations} iterations, backend ${backend}`);
  const selected = methods.filter(([, , key]) => o.methods.includes(key));
  const progress = startProgress(output, 'fashion-mnist', selected.length * o.iterations);
  const results: MethodResult[] = [];
  let baseline: FashionRun['baseline'] = null;
  try {
    for (const [name, options] of selected) {
      results.push(await runMethod(name, options, start, train, test, o, () => progress.tick(1, name.split(',')[0]!)));
      output.err(`  ${name}: ${results[results.length - 1]!.seconds.toFixed(1)} s`);
    }
    if (o.methods.includes('baseline')) {
      const began = performance.now();
      const single = new MixtureOfExperts({ experts: 'multinomial', k: 1, nClasses: C, backend: o.backend, algorithm: 'em',
        mstep: { solver: 'newton-cg', ...FASHION_DEFAULTS.newton }, maxIter: FASHION_DEFAULTS.baselineIterations, tol: 1e-8 });
      const h = await single.fit(train.X, train.y);
      baseline = {
        method: `Baseline: one multinomial logistic regression (k = 1, ${h.nIter} EM iterations × ≤${FASHION_DEFAULTS.newton.maxIter} Newton-CG steps)`,
        accuracy: accuracy(single, test), testNll: -single.score(test.X, test.y),
        trainNll: h.iterations[h.iterations.length - 1]!.nll, seconds: (performance.now() - began) / 1000,
      };
    }
  } finally {
    progress.stop();
  }
  const run: FashionRun = { settings, methods: results, baseline };
  const writer = new ArtifactWriter(o.out, o.plots);
  writer.text('results.json', JSON.stringify(run) + '\n');
  await renderFashionReport(run, writer, output);
  return results;
}
