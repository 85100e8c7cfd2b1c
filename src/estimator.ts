/**
 * `MixtureOfExperts`, the public estimator (scikit-learn spirit): hyper-parameters in the constructor,
 * `fit` / `fitSync`, then prediction, scoring and diagnostics. It validates inputs, resolves defaults, runs
 * the restarts (restart r from seed + r, all in one backend request; the lowest final objective wins) and keeps
 * the fitted state; the numerics live in the backends.
 */
import { computeInits } from './algorithms/named-init.js';
import type { ComputeBackend, FitResult, FitStart, ModelSpec, ProblemData, RestartsRequest } from './backends/backend.js';
import { scanNonFinite, withInterceptNative } from './backends/native.js';
import { resolveBackend } from './backends/select.js';
import { MoEError } from './errors.js';
import {
  checkEnoughRows, checkOptionNames, checkTwoClasses, inferClassCount, OPTION_NAMES, resolveOptions, toDenseMatrix,
  toSampleWeights, toVector, validateLabels, withIntercept, type DenseMatrix, type ResolvedOptions,
} from './input.js';
import { freeLayout, paramsToReadable, readableToParams } from './models/layout.js';
import { classCount } from './models/predict.js';
import type {
  FitHistory, FitOptions, InformationOptions, InformationResult, LoadOptions, Matrix, MoEOptions, MoEParams,
  Vector,
} from './types.js';

const JSON_FORMAT = 'moe-em/mixture-of-experts';
const JSON_VERSION = 1;

/** What `toJSON` writes and `fromJSON` reads. */
export interface MixtureOfExpertsJSON {
  format: typeof JSON_FORMAT;
  version: number;
  options: MoEOptions;
  params: MoEParams | null;
  /** Settings that are only known after fit (d with intercept, C, the backend that ran). */
  model: ModelSpec | null;
  history: FitHistory | null;
}

/** X with the intercept column when asked: copied by the addon's threads where it loads and X is large. */
function designMatrix(m: DenseMatrix, intercept: boolean): DenseMatrix {
  return intercept ? withInterceptNative(m) ?? withIntercept(m, true) : m;
}

interface FitPlan {
  data: ProblemData;
  model: ModelSpec;
  backend: ComputeBackend;
  /** Explicit starting parameters, or null (the named starts depend on the restart's seed). */
  init: Float64Array | null;
  trueParams: Float64Array | null;
}

export class MixtureOfExperts {
  readonly options: Readonly<MoEOptions>;
  private readonly resolved: ResolvedOptions;
  private model: ModelSpec | null = null;
  private flat: Float64Array | null = null;
  private fitHistory: FitHistory | null = null;
  /** The backend that ran the fit; queries (posterior, score, information) reuse it. */
  private fitBackend: ComputeBackend | null = null;

  constructor(options: MoEOptions) {
    this.resolved = resolveOptions(options);
    this.options = { ...options };
  }

  /** Whether fit has completed (or the estimator was restored from JSON with parameters). */
  get fitted(): boolean {
    return this.flat !== null;
  }

  get history(): FitHistory | null {
    return this.fitHistory;
  }

  /** Fitted parameters in readable form. */
  get params(): MoEParams {
    const { model, flat } = this.requireFitted();
    return paramsToReadable(model, flat);
  }

  /** Number of free parameters (gate rows 0..k−2, the expert blocks, fitted σ²). */
  get nParams(): number {
    return freeLayout(this.requireFitted().model).p;
  }

  /**
   * Fits the model, yielding to the event loop between iterations (so `opts.signal` can stop it with
   * E_ABORTED). `opts.onIteration` is called with every history record of every restart, iteration 0 included.
   */
  async fit(X: Matrix, y: Vector, opts: FitOptions = {}): Promise<FitHistory> {
    const plan = this.plan(X, y, opts);
    const hooks = { onIteration: opts.onIteration, signal: opts.signal };
    return this.finish(plan, await plan.backend.fitRestarts(this.request(plan), hooks));
  }

  /** The same fit without yielding to the event loop (an already-aborted signal still stops it). */
  fitSync(X: Matrix, y: Vector, opts: FitOptions = {}): FitHistory {
    const plan = this.plan(X, y, opts);
    const hooks = { onIteration: opts.onIteration, signal: opts.signal };
    return this.finish(plan, plan.backend.fitRestartsSync(this.request(plan), hooks));
  }

  /** Linear experts: the mixture mean E[y|x]; logistic / multinomial: the most probable class. */
  predict(X: Matrix): Float64Array {
    const { model, flat } = this.requireFitted();
    const x = this.design(X, model);
    const predictions = this.predictionBackend().predict(x.data, x.rows, model, flat);
    if (model.experts === 'linear') return predictions; // the mixture mean
    // Class probabilities: the most probable class of each row.
    const C = classCount(model);
    const probs = predictions;
    const out = new Float64Array(x.rows);
    for (let i = 0; i < x.rows; i++) {
      let best = 0;
      for (let c = 1; c < C; c++) if (probs[i * C + c]! > probs[i * C + best]!) best = c;
      // Symmetric logistic labels are −1/+1 (columns [P(y=−1), P(y=+1)]).
      out[i] = model.symmetric ? (best === 1 ? 1 : -1) : best;
    }
    return out;
  }

  /**
   * Class probabilities, rows × C: logistic [P(y=0), P(y=1)], symmetric logistic [P(y=−1), P(y=+1)],
   * multinomial C columns. E_OPTION for linear experts.
   */
  predictProba(X: Matrix): { data: Float64Array; rows: number; cols: number } {
    const { model, flat } = this.requireFitted();
    if (model.experts === 'linear') throw new MoEError('E_OPTION', 'predictProba needs logistic or multinomial experts');
    const x = this.design(X, model);
    const data = this.predictionBackend().predict(x.data, x.rows, model, flat);
    return { data, rows: x.rows, cols: classCount(model) };
  }

  /** Responsibilities p(z = j | x, y), rows × k (symmetric: columns z = +1, z = −1). */
  posterior(X: Matrix, y: Vector): { data: Float64Array; rows: number; cols: number } {
    const { model, flat } = this.requireFitted();
    const data = this.problem(X, y, undefined, model);
    const h = this.backendFor(data.n, data.d).posterior(data, model, flat);
    return { data: h, rows: data.n, cols: model.symmetric ? 2 : model.k };
  }

  /** Mean log-likelihood Σ s ℓ_i / Σ s. */
  score(X: Matrix, y: Vector, sampleWeight?: Vector): number {
    const { model, flat } = this.requireFitted();
    const data = this.problem(X, y, sampleWeight, model);
    return -this.backendFor(data.n, data.d).evaluate(data, model, flat).nll;
  }

  /** Fisher information, missing information, MIM eigenvalues and standard errors at the fitted parameters. */
  information(X: Matrix, y: Vector, opts: InformationOptions = {}): InformationResult {
    const { model, flat } = this.requireFitted();
    checkOptionNames(opts, OPTION_NAMES.information, 'information option');
    const data = this.problem(X, y, opts.sampleWeight, model);
    const method = opts.method ?? 'auto';
    if (method !== 'auto' && method !== 'dense' && method !== 'lanczos') {
      throw new MoEError('E_OPTION', `information method must be auto, dense or lanczos; got ${String(method)}`);
    }
    const steps = opts.steps ?? 60;
    if (!Number.isInteger(steps) || steps < 1) throw new MoEError('E_OPTION', `steps must be an integer ≥ 1, got ${steps}`);
    return this.backendFor(data.n, data.d).information(data, model, flat, { method, steps });
  }

  /** Akaike information criterion 2p − 2ℓ (ℓ the total log-likelihood on (X, y)). */
  aic(X: Matrix, y: Vector): number {
    const { logLik } = this.totalLogLik(X, y);
    return 2 * this.nParams - 2 * logLik;
  }

  /** Bayesian information criterion p·ln(n) − 2ℓ. */
  bic(X: Matrix, y: Vector): number {
    const { n, logLik } = this.totalLogLik(X, y);
    return this.nParams * Math.log(n) - 2 * logLik;
  }

  toJSON(): MixtureOfExpertsJSON {
    return {
      format: JSON_FORMAT,
      version: JSON_VERSION,
      options: { ...this.options },
      params: this.flat === null || this.model === null ? null : paramsToReadable(this.model, this.flat),
      model: this.model === null ? null : { ...this.model },
      history: this.fitHistory,
    };
  }

  /**
   * The estimator that `toJSON` saved. `load` replaces the saved backend or threads for this process (they are
   * settings of the machine, not of the model): a model fitted with `backend: 'cuda'` predicts anywhere, but
   * its `score`, `posterior`, `information`, `aic` and `bic` need `{ backend: 'auto' }` (or 'cpu') where no GPU
   * is (they throw E_BACKEND_UNAVAILABLE, naming this option, otherwise).
   */
  static fromJSON(json: MixtureOfExpertsJSON | string, load: LoadOptions = {}): MixtureOfExperts {
    let doc: MixtureOfExpertsJSON;
    try {
      doc = typeof json === 'string' ? JSON.parse(json) as MixtureOfExpertsJSON : json;
    } catch (e) {
      throw new MoEError('E_IO', `model JSON does not parse: ${(e as Error).message}`);
    }
    if (typeof doc !== 'object' || doc === null || doc.format !== JSON_FORMAT) {
      throw new MoEError('E_IO', `not a moe-em model document (format must be '${JSON_FORMAT}')`);
    }
    if (doc.version !== JSON_VERSION) throw new MoEError('E_IO', `unsupported model document version ${doc.version}`);
    checkOptionNames(load, OPTION_NAMES.load, 'load option');
    // Documents written before option names were checked may carry names the fit ignored: they still load.
    const options = Object.fromEntries(Object.entries(doc.options ?? {})
      .filter(([name]) => (OPTION_NAMES.options as readonly string[]).includes(name))) as unknown as MoEOptions;
    if (load.backend !== undefined) options.backend = load.backend;
    if (load.threads !== undefined) options.threads = load.threads;
    const est = new MixtureOfExperts(options);
    if (doc.params !== null && doc.params !== undefined) {
      const p = doc.params;
      const r = est.resolved;
      const model: ModelSpec = {
        experts: r.experts, symmetric: r.symmetric, k: r.symmetric ? 2 : r.k, d: p.d,
        nClasses: r.experts === 'multinomial' ? (p.nClasses ?? doc.model?.nClasses ?? 0) : r.experts === 'logistic' ? 2 : 0,
        noise: r.noise, ridge: r.ridge, intercept: r.intercept,
      };
      if (r.experts === 'multinomial' && !(model.nClasses >= 2)) throw new MoEError('E_IO', 'multinomial model without nClasses');
      est.flat = readableToParams(model, p);
      est.model = model;
    }
    est.fitHistory = doc.history ?? null;
    return est;
  }

  // --- internals ---------------------------------------------------------------------------------------

  private requireFitted(): { model: ModelSpec; flat: Float64Array } {
    if (this.flat === null || this.model === null) {
      throw new MoEError('E_NOT_FITTED', 'this estimator is not fitted yet: call fit() or fitSync() first');
    }
    return { model: this.model, flat: this.flat };
  }

  /** The design of a prediction input, checked against the fitted d, with the intercept column. */
  private design(X: Matrix, model: ModelSpec): { data: Float64Array; rows: number; cols: number } {
    const m = toDenseMatrix(X, 'X', scanNonFinite);
    const expected = model.d - (model.intercept ? 1 : 0);
    if (m.cols !== expected) throw new MoEError('E_SHAPE', `X has ${m.cols} columns; the model was fitted with ${expected}`);
    return designMatrix(m, model.intercept);
  }

  private problem(X: Matrix, y: Vector, sampleWeight: Vector | undefined, model: ModelSpec): ProblemData {
    const x = this.design(X, model);
    const yv = toVector(y, x.rows, 'y');
    validateLabels(model, yv);
    const s = toSampleWeights(sampleWeight, x.rows);
    if (s !== null) {
      let sum = 0;
      for (let i = 0; i < s.length; i++) sum += s[i]!;
      if (!(sum > 0)) throw new MoEError('E_TOO_FEW_ROWS', 'the sample weights sum to 0');
    }
    return { x: x.data, n: x.rows, d: x.cols, y: yv, s };
  }

  /** The backend of the fit, or (for a model loaded with fromJSON) the one the options pick for n×d rows. */
  private backendFor(n: number, d: number): ComputeBackend {
    if (this.fitBackend === null) {
      try {
        this.fitBackend = resolveBackend(this.resolved.backend, n * d, { threads: this.resolved.threads });
      } catch (e) {
        // Only a loaded model gets here with an explicit backend that this machine lacks: say how to load it.
        if (e instanceof MoEError && e.code === 'E_BACKEND_UNAVAILABLE') {
          throw new MoEError('E_BACKEND_UNAVAILABLE', `${e.message}. A model saved with backend `
            + `'${this.resolved.backend}' can be loaded for this machine with MixtureOfExperts.fromJSON(json, `
            + `{ backend: 'auto' }), which uses what can run here`, e.details);
        }
        throw e;
      }
    }
    return this.fitBackend;
  }

  /**
   * Predictions need no GPU (every native backend predicts on the CPU's cores), so a model predicts wherever it
   * is loaded: with the backend of its fit, or, loaded by fromJSON, with the native CPU backend where the addon
   * loads and the reference elsewhere ('js' models always with the reference).
   */
  private predictionBackend(): ComputeBackend {
    if (this.fitBackend !== null) return this.fitBackend;
    // 'auto' for a problem of size 0 never picks the GPU.
    return resolveBackend(this.resolved.backend === 'js' ? 'js' : 'auto', 0, { threads: this.resolved.threads });
  }

  private totalLogLik(X: Matrix, y: Vector): { n: number; logLik: number } {
    const { model, flat } = this.requireFitted();
    const data = this.problem(X, y, undefined, model);
    return { n: data.n, logLik: -this.backendFor(data.n, data.d).evaluate(data, model, flat).nll * data.n };
  }

  private plan(X: Matrix, y: Vector, opts: FitOptions): FitPlan {
    checkOptionNames(opts, OPTION_NAMES.fit, 'fit option');
    const r = this.resolved;
    const x = designMatrix(toDenseMatrix(X, 'X', scanNonFinite), r.intercept);
    const yv = toVector(y, x.rows, 'y');
    const s = toSampleWeights(opts.sampleWeight, x.rows);
    const model: ModelSpec = {
      experts: r.experts, symmetric: r.symmetric, k: r.symmetric ? 2 : r.k, d: x.cols,
      nClasses: inferClassCount(r, yv), noise: r.noise, ridge: r.ridge, intercept: r.intercept,
    };
    validateLabels(model, yv);
    const data: ProblemData = { x: x.data, n: x.rows, d: x.cols, y: yv, s };
    checkEnoughRows(model, data);
    checkTwoClasses(model, data);
    const init = typeof r.init === 'string' ? null : readableToParams(model, r.init);
    const trueParams = opts.trueParams === undefined ? null : readableToParams(model, opts.trueParams);
    if (opts.onIteration !== undefined && typeof opts.onIteration !== 'function') {
      throw new MoEError('E_OPTION', 'onIteration must be a function');
    }
    return { data, model, backend: resolveBackend(r.backend, data.n * data.d, { threads: r.threads }), init, trueParams };
  }

  /**
   * The backend request of the fit: every restart r from seed + r, in one request, so that the backend keeps
   * one copy of the data for all of them (on the GPU too). 'random' is drawn inside the backend; 'moments' and
   * 'kmeans' are computed here, with the restart's seed and their heavy stages on the fit's backend
   * (src/algorithms/named-init.ts), and reach the fit as explicit parameters, so iteration 0 of the history
   * is that start.
   */
  private request(plan: FitPlan): RestartsRequest {
    const kind = this.resolved.init;
    const seeds = Array.from({ length: this.resolved.nInit }, (_, r) => (this.resolved.seed + r) >>> 0);
    const inits = kind === 'moments' || kind === 'kmeans'
      ? computeInits(kind, plan.data, plan.model, this.resolved.fit, seeds, plan.backend) : seeds.map(() => plan.init);
    const starts = seeds.map((seed, r): FitStart => ({ seed, init: inits[r]! }));
    return { data: plan.data, model: plan.model, fit: this.resolved.fit, starts, trueParams: plan.trueParams };
  }

  private finish(plan: FitPlan, results: FitResult[]): FitHistory {
    let best = 0;
    const finalObjective = (res: FitResult): number => res.iterations[res.iterations.length - 1]!.objective;
    for (let r = 1; r < results.length; r++) if (finalObjective(results[r]!) < finalObjective(results[best]!)) best = r;
    const kept = results[best]!;
    this.model = plan.model;
    this.flat = Float64Array.from(kept.params);
    this.fitBackend = plan.backend;
    const r = this.resolved;
    const history: FitHistory = {
      iterations: kept.iterations,
      converged: kept.converged,
      reason: kept.reason,
      nIter: kept.iterations.length - 1,
      backend: plan.backend.name,
      restarts: results.map((res, i) => ({
        seed: (r.seed + i) >>> 0, objective: finalObjective(res), nIter: res.iterations.length - 1,
      })),
      bestRestart: best,
      settings: {
        experts: r.experts, k: plan.model.k, d: plan.model.d, nClasses: plan.model.nClasses, symmetric: r.symmetric,
        intercept: r.intercept, noise: r.noise, ridge: r.ridge, algorithm: r.fit.algorithm, mstep: { ...r.fit.mstep },
        stepSize: { ...r.fit.stepSize }, innerSteps: r.fit.innerSteps, batchSize: r.fit.batchSize,
        maxIter: r.fit.maxIter, tol: r.fit.tol, nInit: r.nInit, seed: r.seed,
        init: typeof r.init === 'string' ? r.init : 'params', onEmpty: r.fit.onEmpty, backend: plan.backend.name,
        threads: r.threads,
      },
    };
    this.fitHistory = history;
    return history;
  }
}
