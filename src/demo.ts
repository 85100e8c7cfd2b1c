/**
 * `npm run demo`: the paper's synthetic SymMoLinE experiment in miniature (MATH.md §6). On a few instances
 * (each re-samples θ*, the data and a start near θ*), EM, Gradient EM and GD run 50 full-batch iterations
 * from the same start on backend 'auto' (native when it loads, else the TypeScript reference), and a table
 * compares the mean parameter error and NLL at iterations 1, 5, 10, 25, 50 and the time per iteration. The
 * first-order methods get their best step size from a small grid. Then, on the first instance, the MIM's
 * λ_max at EM's optimum is set against EM's measured contraction ‖θ_{t+1} − θ̂‖ / ‖θ_t − θ̂‖.
 */
import { pathToFileURL } from 'node:url';
import { paperSyntheticSymMoLinE, randomDirection, type PaperSyntheticProblem } from './data/samplers.js';
import { Rng } from './data/rng.js';
import type { ModelSpec, ProblemData } from './backends/backend.js';
import { computeInformation } from './diagnostics/information.js';
import { isMoEError } from './errors.js';
import { MixtureOfExperts } from './estimator.js';
import { readableToParams } from './models/layout.js';
import type { FitHistory, InformationResult, MoEOptions, MoEParams } from './types.js';

const INSTANCES = 10;
const ITERATIONS = 50;
const REPORTED = [1, 5, 10, 25, 50];
/** Step sizes tried for GD and (one size for both blocks) Gradient EM; 3 and above diverge here. */
const STEP_GRID = [0.3, 1, 2];
/** A Newton M-step tolerance far below the default, for the rate measurement only (see measuredContraction). */
const EXACT_MSTEP = { tol: 1e-18 };

interface Curve {
  error: number[];
  nll: number[];
  msPerIter: number;
  backend: string;
}

function run(options: MoEOptions, problem: PaperSyntheticProblem, trueParams: MoEParams = problem.params): Curve {
  const est = new MixtureOfExperts({ ...options, init: problem.init, maxIter: ITERATIONS, tol: 0 });
  const history: FitHistory = est.fitSync(problem.X, problem.y, { trueParams });
  const its = history.iterations;
  const last = its[its.length - 1]!;
  // A fit that stops early (its objective stopped changing at all) stays at its last point: carry it forward.
  const at = (t: number) => its[Math.min(t, its.length - 1)]!;
  return {
    error: Array.from({ length: ITERATIONS + 1 }, (_, t) => at(t).paramError ?? NaN),
    nll: Array.from({ length: ITERATIONS + 1 }, (_, t) => at(t).nll),
    msPerIter: last.elapsedMs / Math.max(1, last.iter),
    backend: history.backend,
  };
}

function meanCurve(curves: Curve[], key: 'error' | 'nll'): number[] {
  const len = Math.min(...curves.map((c) => c[key].length));
  return Array.from({ length: len }, (_, t) => curves.reduce((a, c) => a + c[key][t]!, 0) / curves.length);
}

const BASE: MoEOptions = { experts: 'linear', symmetric: true, k: 2, noise: 1, backend: 'auto' };

interface MethodSummary {
  label: string;
  curves: Curve[];
}

/** The step-size configuration (from the grid) with the lowest mean final parameter error. */
function bestOfGrid<T>(grid: T[], label: (eta: T) => string, options: (eta: T) => MoEOptions,
  problems: PaperSyntheticProblem[]): MethodSummary {
  let best: MethodSummary | null = null;
  let bestError = Infinity;
  for (const eta of grid) {
    const curves = problems.map((p) => run(options(eta), p));
    const finalError = meanCurve(curves, 'error').at(-1)!;
    if (finalError < bestError) {
      bestError = finalError;
      best = { label: label(eta), curves };
    }
  }
  return best!;
}

function pad(s: string, width: number): string {
  return s.length >= width ? s : s + ' '.repeat(width - s.length);
}

function fmt(v: number): string {
  return Number.isFinite(v) ? v.toExponential(2) : String(v);
}

/**
 * EM's contraction near its optimum θ̂: start at θ̂ + δ (‖δ‖ = 1e-2), run EM with θ̂ as the "true" parameters so
 * that paramError is ‖θ_t − θ̂‖, and report the geometric mean of the last three ratios while the distance is
 * in [1e-6, 1e-2] (inside the linear regime, above the M-step solver's accuracy; the ratio climbs to λ_max as
 * the error aligns with the leading eigenvector). The M-step runs with EXACT_MSTEP: the default Newton
 * tolerance (1e-10·Σc on the decrement) leaves the gate ~1e-5 from its exact M-step, which would swamp the
 * distances measured here.
 */
function measuredContraction(problem: PaperSyntheticProblem, optimum: MoEParams): number {
  const rng = new Rng(12345);
  const d = optimum.w!.length;
  const delta = randomDirection(rng, 2 * d, 1e-2);
  const start: MoEParams = {
    ...optimum, w: optimum.w!.map((a, f) => a + delta[f]!), beta: optimum.beta!.map((a, f) => a + delta[d + f]!),
  };
  const est = new MixtureOfExperts({ ...BASE, algorithm: 'em', init: start, maxIter: 30, tol: 0, mstep: EXACT_MSTEP });
  const errors = est.fitSync(problem.X, problem.y, { trueParams: optimum }).iterations.map((r) => r.paramError!);
  const ratios: number[] = [];
  for (let t = 1; t < errors.length; t++) {
    if (errors[t - 1]! <= 1e-2 + 1e-12 && errors[t]! >= 1e-6) ratios.push(errors[t]! / errors[t - 1]!);
  }
  const last = ratios.slice(-3);
  return last.length > 0 ? Math.exp(last.reduce((a, r) => a + Math.log(r), 0) / last.length) : NaN;
}

/**
 * The MIM at the fitted parameters through the estimator (its backend); if that backend cannot compute it
 * (a native build without information), the TypeScript reference computes the same quantities.
 */
function informationAt(problem: PaperSyntheticProblem, em: MixtureOfExperts, log: (line: string) => void): InformationResult {
  try {
    return em.information(problem.X, problem.y);
  } catch (e) {
    if (!isMoEError(e)) throw e;
    log(`(backend information unavailable: ${e.message}; using the TypeScript reference)`);
    const d = problem.X.cols;
    const model: ModelSpec = { experts: 'linear', symmetric: true, k: 2, d, nClasses: 0, noise: 1, ridge: 0, intercept: false };
    const data: ProblemData = { x: problem.X.data, n: problem.X.rows, d, y: problem.y, s: null };
    return computeInformation(data, model, readableToParams(model, em.params), { method: 'auto', steps: 60 });
  }
}

/** Runs the demo, writing lines through `log` (default: console.log). Returns the comparison in numbers. */
export function runDemo(log: (line: string) => void = (line) => console.log(line)): Record<string, number[]> {
  const started = performance.now();
  const problems = Array.from({ length: INSTANCES }, (_, seed) => paperSyntheticSymMoLinE({ seed }));
  log(`moe-em demo: the paper's synthetic SymMoLinE (n = 1000, d = 10, ‖w*‖ = ‖β*‖ = 4, σ = 1), ${INSTANCES} instances,`);
  log(`${ITERATIONS} full-batch iterations from a shared start at distance ‖θ*‖/2 from θ*. Step-size grid: ${STEP_GRID.join(', ')}`);
  log('(Gradient EM: every gate/experts pair; the best configuration by mean final error is shown).');
  log('');
  const methods: MethodSummary[] = [
    { label: 'EM', curves: problems.map((p) => run({ ...BASE, algorithm: 'em' }, p)) },
    // Gradient EM gets a step size per block (all pairs); with equal sizes it is GD (Fisher's identity).
    bestOfGrid(STEP_GRID.flatMap((gate) => STEP_GRID.map((experts) => ({ gate, experts }))),
      (s) => `Gradient EM (η = ${s.gate}/${s.experts})`,
      (s) => ({ ...BASE, algorithm: 'gradient-em', stepSize: s }), problems),
    bestOfGrid(STEP_GRID, (eta) => `GD (η = ${eta})`, (eta) => ({ ...BASE, algorithm: 'gd', stepSize: eta }), problems),
  ];
  const header = [pad('method', 26), pad('metric', 10), ...REPORTED.map((t) => pad(`t = ${t}`, 10)), 'ms/iter'];
  log(header.join(' '));
  log('-'.repeat(header.join(' ').length));
  const summary: Record<string, number[]> = {};
  for (const m of methods) {
    const err = meanCurve(m.curves, 'error');
    const nll = meanCurve(m.curves, 'nll');
    const ms = m.curves.reduce((a, c) => a + c.msPerIter, 0) / m.curves.length;
    log([pad(m.label, 26), pad('param err', 10), ...REPORTED.map((t) => pad(fmt(err[t]!), 10)), ms.toFixed(3)].join(' '));
    log([pad('', 26), pad('NLL', 10), ...REPORTED.map((t) => pad(nll[t]!.toFixed(4), 10))].join(' '));
    summary[m.label] = REPORTED.map((t) => err[t]!);
  }
  log('');
  log(`Backend: ${[...new Set(methods.flatMap((m) => m.curves.map((c) => c.backend)))].join(', ')}`);

  // The rate theory on the first instance: λ_max of the MIM at EM's optimum against the measured contraction.
  const problem = problems[0]!;
  const em = new MixtureOfExperts({ ...BASE, algorithm: 'em', init: problem.init, maxIter: 300, tol: 0, mstep: EXACT_MSTEP });
  em.fitSync(problem.X, problem.y);
  const info = informationAt(problem, em, log);
  const contraction = measuredContraction(problem, em.params);
  log(`Instance 0: λ_max(MIM) at EM's optimum = ${info.lambdaMax.toFixed(4)} (α = 1 − λ_max = ${info.alpha.toFixed(4)}); `
    + `measured EM contraction ‖θ_{t+1} − θ̂‖/‖θ_t − θ̂‖ = ${contraction.toFixed(4)}`);
  log(`Total time ${((performance.now() - started) / 1000).toFixed(1)} s.`);
  summary.rate = [info.lambdaMax, contraction];
  return summary;
}

const invokedDirectly = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (invokedDirectly) runDemo();
