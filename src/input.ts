/**
 * Input validation with typed errors. The Rust core mirrors these rules; keep the table in sync.
 *
 * | what                                   | rule                                                         | code            |
 * |----------------------------------------|--------------------------------------------------------------|-----------------|
 * | X                                      | number[][] (equal row lengths) or {data: Float64Array, rows, cols}, data.length = rows·cols, rows ≥ 1, cols ≥ 1 | E_SHAPE |
 * | y, sampleWeight                        | number[] or Float64Array of length n                        | E_SHAPE         |
 * | X, y, sampleWeight, parameters         | every entry finite                                           | E_NON_FINITE    |
 * | sampleWeight                           | every entry ≥ 0                                              | E_OPTION        |
 * | X at predict time                      | cols = d of the fitted model (without the intercept column)  | E_SHAPE         |
 * | y, logistic                            | y ∈ {0, 1}                                                   | E_LABEL         |
 * | y, symmetric logistic (SymMoLogE)      | y ∈ {−1, +1}                                                 | E_LABEL         |
 * | y, multinomial                         | integer in 0..C−1 (C = nClasses, default max(y) + 1, at least 2) | E_LABEL     |
 * | options                                | see `resolveOptions` (k ≥ 1 integer, ridge ≥ 0, step sizes > 0, ...) | E_OPTION |
 * | init 'moments', 'kmeans'               | linear experts, not symmetric, k ≥ 2; 'moments' at fit time: k ≤ non-intercept features | E_OPTION |
 * | init 'moments', rows                   | more rows with positive weight than non-intercept features  | E_TOO_FEW_ROWS  |
 * | rows                                   | Σ s > 0; without a ridge, #{i: s_i > 0} ≥ the largest block's free parameter count | E_TOO_FEW_ROWS |
 *
 * Largest block: gate (k−1)·d; linear expert d (+1 with fitted σ²); logistic d; multinomial (C−1)·d;
 * symmetric d. Here d counts the intercept column. The two init rows are TypeScript's alone: the named starts
 * are computed before a backend runs and reach the Rust core as explicit parameters.
 */
import type { FitSpec, ModelSpec, ProblemData } from './backends/backend.js';
import { initUnsupportedReason } from './algorithms/named-init.js';
import { MoEError } from './errors.js';
import type {
  AlgorithmKind, BackendKind, ExpertKind, FitOptions, InformationOptions, InitKind, LoadOptions, Matrix, MoEOptions,
  MoEParams, MStepOptions, MStepSolver, Row, StepSizes, Vector,
} from './types.js';

export interface DenseMatrix {
  data: Float64Array;
  rows: number;
  cols: number;
}

/** The index of the first NaN or ±Inf in `data`, or −1. */
export type NonFiniteScan = (data: Float64Array) => number;

/** `NonFiniteScan` on this thread. */
export function firstNonFinite(data: Float64Array): number {
  for (let q = 0; q < data.length; q++) if (!Number.isFinite(data[q]!)) return q;
  return -1;
}

/**
 * Converts and checks a design matrix (E_SHAPE, E_NON_FINITE). `scan` finds a non-finite value of a
 * Float64Array X (the estimator passes the addon's, which reads large X on all cores).
 */
export function toDenseMatrix(X: Matrix, name = 'X', scan: NonFiniteScan = firstNonFinite): DenseMatrix {
  if (Array.isArray(X)) {
    const rows = X.length;
    if (rows === 0) throw new MoEError('E_SHAPE', `${name} has no rows`);
    const first = X[0];
    if (!isRow(first) || first.length === 0) throw new MoEError('E_SHAPE', `${name}[0] must be a non-empty array`);
    const cols = first.length;
    const data = new Float64Array(rows * cols);
    for (let i = 0; i < rows; i++) {
      const row = X[i];
      if (!isRow(row) || row.length !== cols) {
        throw new MoEError('E_SHAPE', `${name}[${i}] must be an array of ${cols} numbers`, { row: i });
      }
      for (let f = 0; f < cols; f++) {
        const v = row[f];
        if (typeof v !== 'number') throw new MoEError('E_SHAPE', `${name}[${i}][${f}] is not a number`, { row: i, col: f });
        if (!Number.isFinite(v)) throw new MoEError('E_NON_FINITE', `${name}[${i}][${f}] is ${v}`, { row: i, col: f });
        data[i * cols + f] = v;
      }
    }
    return { data, rows, cols };
  }
  if (typeof X !== 'object' || X === null || !(X.data instanceof Float64Array || X.data instanceof Float32Array)) {
    throw new MoEError('E_SHAPE', `${name} must be an array of rows or {data: Float64Array | Float32Array, rows, cols}`);
  }
  const { rows, cols } = X;
  if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows < 1 || cols < 1 || X.data.length !== rows * cols) {
    throw new MoEError('E_SHAPE', `${name}: data.length ${X.data.length} does not equal rows·cols = ${rows}·${cols}`);
  }
  // The backends compute in float64: float32 values widen exactly, in one copy.
  const data = X.data instanceof Float64Array ? X.data : Float64Array.from(X.data);
  const q = scan(data);
  if (q >= 0) {
    throw new MoEError('E_NON_FINITE', `${name}[${Math.floor(q / cols)}][${q % cols}] is ${data[q]}`,
      { row: Math.floor(q / cols), col: q % cols });
  }
  return { data, rows, cols };
}

function isRow(r: unknown): r is Row {
  return Array.isArray(r) || r instanceof Float64Array || r instanceof Float32Array;
}

/** Converts and checks a vector of length n (E_SHAPE, E_NON_FINITE). */
export function toVector(v: Vector, n: number, name: string): Float64Array {
  if (!isRow(v)) throw new MoEError('E_SHAPE', `${name} must be number[], Float64Array or Float32Array`);
  if (v.length !== n) throw new MoEError('E_SHAPE', `${name} has length ${v.length}, expected ${n}`);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const e = v[i];
    if (typeof e !== 'number') throw new MoEError('E_SHAPE', `${name}[${i}] is not a number`, { row: i });
    if (!Number.isFinite(e)) throw new MoEError('E_NON_FINITE', `${name}[${i}] is ${e}`, { row: i });
    out[i] = e;
  }
  return out;
}

/** Sample weights: finite, ≥ 0 (null when absent). */
export function toSampleWeights(v: Vector | undefined, n: number): Float64Array | null {
  if (v === undefined) return null;
  const s = toVector(v, n, 'sampleWeight');
  for (let i = 0; i < n; i++) {
    if (s[i]! < 0) throw new MoEError('E_OPTION', `sampleWeight[${i}] is negative (${s[i]})`, { row: i });
  }
  return s;
}

/** The design with the intercept column prepended when asked (one copy). */
export function withIntercept(m: DenseMatrix, intercept: boolean): DenseMatrix {
  if (!intercept) return m;
  const d = m.cols + 1;
  const data = new Float64Array(m.rows * d);
  for (let i = 0; i < m.rows; i++) {
    data[i * d] = 1;
    data.set(m.data.subarray(i * m.cols, (i + 1) * m.cols), i * d + 1);
  }
  return { data, rows: m.rows, cols: d };
}

/** Options with every default filled in; d and C are completed from the data at fit time. */
export interface ResolvedOptions {
  experts: ExpertKind;
  k: number;
  nClasses: number | null;
  symmetric: boolean;
  intercept: boolean;
  noise: 'fitted' | number;
  ridge: number;
  fit: FitSpec;
  nInit: number;
  seed: number;
  init: InitKind | MoEParams;
  backend: BackendKind;
  threads: number;
}

const EXPERTS: readonly ExpertKind[] = ['linear', 'logistic', 'multinomial'];
const ALGORITHMS: readonly AlgorithmKind[] = ['em', 'gradient-em', 'gd'];
const SOLVERS: readonly MStepSolver[] = ['auto', 'newton', 'newton-cg', 'gradient'];
const BACKENDS: readonly BackendKind[] = ['js', 'cpu', 'cuda', 'auto'];

function optionError(message: string): MoEError {
  return new MoEError('E_OPTION', message);
}

function intOption(value: unknown, name: string, min: number, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    throw optionError(`${name} must be an integer ≥ ${min}, got ${String(value)}`);
  }
  return value;
}

function positiveOption(value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw optionError(`${name} must be a finite number > 0, got ${String(value)}`);
  }
  return value;
}

function nonNegativeOption(value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw optionError(`${name} must be a finite number ≥ 0, got ${String(value)}`);
  }
  return value;
}

function oneOf<T extends string>(value: unknown, allowed: readonly T[], name: string, fallback: T): T {
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || !allowed.includes(value as T)) {
    throw optionError(`${name} must be one of ${allowed.join(', ')}; got ${String(value)}`);
  }
  return value as T;
}

/**
 * The names each options object takes. A misspelt option (`n_init`, `maxIters`, `sampleWeights`) would
 * otherwise be ignored without a word and the fit run with the default, so every name is checked. `satisfies`
 * ties each list to its interface; `Complete` below fails to compile when an interface gains a name that is
 * not listed.
 */
export const OPTION_NAMES = {
  options: ['experts', 'k', 'nClasses', 'symmetric', 'intercept', 'noise', 'ridge', 'algorithm', 'mstep', 'stepSize',
    'innerSteps', 'batchSize', 'maxIter', 'tol', 'nInit', 'seed', 'init', 'onEmpty', 'backend', 'threads',
  ] as const satisfies readonly (keyof MoEOptions)[],
  mstep: ['solver', 'maxIter', 'tol', 'cgMaxIter', 'innerSteps'] as const satisfies readonly (keyof MStepOptions)[],
  stepSize: ['gate', 'experts'] as const satisfies readonly (keyof StepSizes)[],
  fit: ['sampleWeight', 'trueParams', 'onIteration', 'signal'] as const satisfies readonly (keyof FitOptions)[],
  information: ['method', 'steps', 'sampleWeight'] as const satisfies readonly (keyof InformationOptions)[],
  load: ['backend', 'threads'] as const satisfies readonly (keyof LoadOptions)[],
};
type Unlisted<T, K extends readonly PropertyKey[]> = Exclude<keyof T, K[number]>;
type Complete = [
  Unlisted<MoEOptions, typeof OPTION_NAMES.options>, Unlisted<MStepOptions, typeof OPTION_NAMES.mstep>,
  Unlisted<StepSizes, typeof OPTION_NAMES.stepSize>, Unlisted<FitOptions, typeof OPTION_NAMES.fit>,
  Unlisted<InformationOptions, typeof OPTION_NAMES.information>, Unlisted<LoadOptions, typeof OPTION_NAMES.load>,
];
const everyNameListed: Complete extends [never, never, never, never, never, never] ? true : Complete = true;
void everyNameListed;

/** Lower case without '_' and '-': `n_init` and `nInit` compare equal. */
function squashed(name: string): string {
  return name.toLowerCase().replace(/[_-]/g, '');
}

/** Edit distance, for the suggestion (short names: the plain O(a·b) table). */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row.push(Math.min(previous[j]! + 1, row[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1)));
    }
    previous = row;
  }
  return previous[b.length]!;
}

/**
 * E_OPTION unless `given` is an object whose names `known` lists; a name it does not list is reported with the
 * nearest known name as a suggestion.
 */
export function checkOptionNames(given: unknown, known: readonly string[], what: string): void {
  if (typeof given !== 'object' || given === null) throw optionError(`${what}s must be an object, got ${String(given)}`);
  for (const name of Object.keys(given)) {
    if (known.includes(name)) continue;
    const near = known
      .map((k) => ({ k, distance: squashed(k) === squashed(name) ? 0 : editDistance(squashed(k), squashed(name)) }))
      .filter(({ distance }) => distance <= 2)
      .sort((a, b) => a.distance - b.distance)[0];
    throw optionError(`unknown ${what} '${name}'${near ? `; did you mean '${near.k}'?` : ''} (${what}s: ${known.join(', ')})`);
  }
}

const DEFAULT_STEP = 0.1;

/** Validates the hyper-parameters (E_OPTION) and fills in every default of docs/ALGORITHMS.md. */
export function resolveOptions(options: MoEOptions): ResolvedOptions {
  checkOptionNames(options, OPTION_NAMES.options, 'option');
  if (options.experts === undefined) throw optionError(`options.experts is required (${EXPERTS.join(', ')})`);
  const experts = oneOf(options.experts, EXPERTS, 'experts', 'linear');
  const symmetric = options.symmetric ?? false;
  if (typeof symmetric !== 'boolean') throw optionError('symmetric must be a boolean');
  const k = intOption(options.k, 'k', 1, 2);
  if (symmetric && k !== 2) throw optionError(`symmetric models have exactly k = 2 experts, got k = ${k}`);
  if (symmetric && experts === 'multinomial') throw optionError('symmetric models have linear or logistic experts');
  let nClasses: number | null = null;
  if (options.nClasses !== undefined) {
    if (experts !== 'multinomial') throw optionError('nClasses applies to multinomial experts only');
    nClasses = intOption(options.nClasses, 'nClasses', 2, 2);
  }
  const intercept = options.intercept ?? false;
  if (typeof intercept !== 'boolean') throw optionError('intercept must be a boolean');
  let noise: 'fitted' | number;
  if (experts !== 'linear') {
    if (options.noise !== undefined) throw optionError('noise applies to linear experts only');
    noise = 'fitted';
  } else if (options.noise === undefined) {
    noise = symmetric ? 1 : 'fitted';
  } else if (options.noise === 'fitted') {
    if (symmetric) throw optionError('SymMoLinE has a known noise σ (a number); fitted noise is not supported');
    noise = 'fitted';
  } else {
    noise = positiveOption(options.noise, 'noise', 1);
  }
  const ridge = nonNegativeOption(options.ridge, 'ridge', 0);
  const algorithm = oneOf(options.algorithm, ALGORITHMS, 'algorithm', 'em');
  const m = options.mstep ?? {};
  checkOptionNames(m, OPTION_NAMES.mstep, 'mstep option');
  const mstep: FitSpec['mstep'] = {
    solver: oneOf(m.solver, SOLVERS, 'mstep.solver', 'auto'),
    maxIter: intOption(m.maxIter, 'mstep.maxIter', 1, 25),
    tol: nonNegativeOption(m.tol, 'mstep.tol', 1e-10),
    cgMaxIter: intOption(m.cgMaxIter, 'mstep.cgMaxIter', 1, 50),
    innerSteps: intOption(m.innerSteps, 'mstep.innerSteps', 1, 10),
  };
  let stepSize: FitSpec['stepSize'];
  if (typeof options.stepSize === 'number' || options.stepSize === undefined) {
    const eta = positiveOption(options.stepSize, 'stepSize', DEFAULT_STEP);
    stepSize = { gate: eta, experts: eta };
  } else if (typeof options.stepSize === 'object' && options.stepSize !== null) {
    checkOptionNames(options.stepSize, OPTION_NAMES.stepSize, 'stepSize field');
    stepSize = {
      gate: positiveOption(options.stepSize.gate, 'stepSize.gate', DEFAULT_STEP),
      experts: positiveOption(options.stepSize.experts, 'stepSize.experts', DEFAULT_STEP),
    };
  } else {
    throw optionError('stepSize must be a number or {gate, experts}');
  }
  const fit: FitSpec = {
    algorithm,
    mstep,
    stepSize,
    innerSteps: intOption(options.innerSteps, 'innerSteps', 1, 1),
    batchSize: intOption(options.batchSize, 'batchSize', 1, 0),
    maxIter: intOption(options.maxIter, 'maxIter', 0, 200),
    tol: nonNegativeOption(options.tol, 'tol', 1e-8),
    onEmpty: oneOf(options.onEmpty, ['reseed', 'error'] as const, 'onEmpty', 'reseed'),
    threads: intOption(options.threads, 'threads', 0, 0),
  };
  const seed = intOption(options.seed, 'seed', 0, 0);
  if (seed > 0xffffffff) throw optionError(`seed must be < 2^32, got ${seed}`);
  const init = options.init ?? 'random';
  if (init === 'moments' || init === 'kmeans') {
    const unsupported = initUnsupportedReason(init, { experts, symmetric, k });
    if (unsupported !== null) throw optionError(`init '${init}' does not apply: ${unsupported}`);
  } else if (init !== 'random' && (typeof init !== 'object' || init === null)) {
    throw optionError(`init must be 'random', 'moments', 'kmeans' or a parameter object`);
  }
  return {
    experts, k, nClasses, symmetric, intercept, noise, ridge, fit,
    nInit: intOption(options.nInit, 'nInit', 1, 1),
    seed,
    init,
    backend: oneOf(options.backend, BACKENDS, 'backend', 'auto'),
    threads: fit.threads,
  };
}

/**
 * The algorithm settings (FitSpec) for these hyper-parameters, every default of docs/ALGORITHMS.md filled in:
 * the estimator's own resolution, for code that drives a backend directly (tests, benchmarks, the GPU check).
 */
export function resolveFitSpec(options: Omit<MoEOptions, 'experts'> = {}): FitSpec {
  return resolveOptions({ experts: 'linear', ...options }).fit;
}

/** Number of classes of a multinomial problem: the option, or max(y) + 1 (at least 2). */
export function inferClassCount(opts: ResolvedOptions, y: Float64Array): number {
  if (opts.experts === 'logistic') return 2;
  if (opts.experts !== 'multinomial') return 0;
  if (opts.nClasses !== null) return opts.nClasses;
  let max = 0;
  for (let i = 0; i < y.length; i++) if (y[i]! > max) max = y[i]!;
  return Math.max(2, Math.floor(max) + 1);
}

/** Checks the labels of y for the model (E_LABEL). */
export function validateLabels(model: ModelSpec, y: Float64Array): void {
  for (let i = 0; i < y.length; i++) {
    const v = y[i]!;
    let ok = true;
    let expected = '';
    if (model.experts === 'logistic' && model.symmetric) {
      ok = v === -1 || v === 1;
      expected = '−1 or +1';
    } else if (model.experts === 'logistic') {
      ok = v === 0 || v === 1;
      expected = '0 or 1';
    } else if (model.experts === 'multinomial') {
      ok = Number.isInteger(v) && v >= 0 && v < model.nClasses;
      expected = `an integer in 0..${model.nClasses - 1}`;
    }
    if (!ok) throw new MoEError('E_LABEL', `y[${i}] = ${v}; expected ${expected}`, { row: i, value: v });
  }
}

/**
 * Classifiers: at least two classes among the rows with positive weight (E_LABEL). With one class there is no
 * decision to learn, and without a ridge the experts' coefficients grow without bound (the likelihood's
 * supremum is not attained), so the fit would stop wherever maxIter cuts it.
 */
export function checkTwoClasses(model: ModelSpec, data: ProblemData): void {
  if (model.experts === 'linear') return;
  let seen: number | null = null;
  for (let i = 0; i < data.n; i++) {
    if (data.s !== null && !(data.s[i]! > 0)) continue;
    if (seen === null) seen = data.y[i]!;
    else if (data.y[i] !== seen) return;
  }
  throw new MoEError('E_LABEL', `every row${data.s === null ? '' : ' with positive weight'} has y = ${String(seen)}: `
    + 'a classifier needs at least two classes in y', { value: seen });
}

/** Free parameter count of the largest block (gate, one expert). */
export function largestBlockSize(model: ModelSpec): number {
  const { k, d } = model;
  if (model.symmetric) return d;
  const expert = model.experts === 'multinomial' ? (model.nClasses - 1) * d
    : d + (model.experts === 'linear' && model.noise === 'fitted' ? 1 : 0);
  return Math.max((k - 1) * d, expert);
}

/** Σ s > 0 and, without a ridge, enough rows with positive weight for the largest block (E_TOO_FEW_ROWS). */
export function checkEnoughRows(model: ModelSpec, data: ProblemData): void {
  let rows = 0;
  let sum = 0;
  for (let i = 0; i < data.n; i++) {
    const s = data.s === null ? 1 : data.s[i]!;
    if (s > 0) rows++;
    sum += s;
  }
  if (!(sum > 0)) throw new MoEError('E_TOO_FEW_ROWS', 'the sample weights sum to 0');
  // A ridge makes every M-step problem strictly concave, so fewer rows than parameters is then well posed.
  const need = model.ridge > 0 ? 0 : largestBlockSize(model);
  if (rows < need) {
    throw new MoEError('E_TOO_FEW_ROWS', `${rows} rows with positive weight, but a block has ${need} free parameters`,
      { rows, required: need });
  }
}
