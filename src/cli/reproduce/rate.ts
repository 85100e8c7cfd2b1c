/**
 * `moe-em reproduce rate`: the theory's claim (MATH.md §5) that EM contracts near its fixed point θ̂ like
 * λ_max of the Missing Information Matrix at θ̂, and that λ_max falls as the SNR ‖β*‖/σ grows. For each
 * ‖β*‖ (‖w*‖ = 4, σ = 1, n = 1000, d = 10) and instance:
 *   1. θ̂: EM from a start near θ* (distance ‖θ*‖/2) until the objective stops changing, then single EM
 *      iterations until the parameters stop moving (a flat objective still leaves them ~sqrt(machine ε)
 *      away). The gate's Newton M-step runs with mstep.tol = 1e-20: with the default 1e-10 the Newton
 *      decrement test stops updating the gate once it is within ~1e-4 of its M-step target, and the tail of
 *      the path then contracts at the β-only rate, not at EM's.
 *   2. The MIM at θ̂ gives the predicted rate λ_max.
 *   3. The same EM path's distance ‖θ_t − θ̂‖ (sign-aware) at every iteration; the measured rate is the
 *      geometric-mean ratio ‖θ_{t+1} − θ̂‖ / ‖θ_t − θ̂‖ over the second half of the iterations where that
 *      distance lies in [1e-7, 1e-2]. Near θ̂ the ratio rises towards λ_max as the components along smaller
 *      eigenvalues fade (slowly when the leading eigenvalues are close), hence the second half; below ~1e-8
 *      the gate's Newton line search can no longer resolve its own improvement (f is a sum of n terms,
 *      rounded at ~1e-13) and the path stalls, hence the lower end.
 */
import { MixtureOfExperts } from '../../estimator.js';
import { Rng } from '../../data/rng.js';
import { randomDirection, sampleSymMoLinE } from '../../data/samplers.js';
import type { BackendKind, MoEOptions, MoEParams } from '../../types.js';
import { seriesPlotSpec, type ScatterPoint } from '../plot.js';
import type { Output } from '../output.js';
import { startProgress } from '../progress.js';
import { mean, median, sd } from '../stats.js';
import { formatNumber, meanSd, toMarkdown, type Table } from '../tables.js';
import { informationWithFallback } from '../information.js';
import { ArtifactWriter } from './artifacts.js';

export const RATE_DEFAULTS = {
  instances: 5,
  norms: [0.5, 1, 2, 4, 8],
  n: 1000,
  d: 10,
  gateNorm: 4,
  /** Cap on EM iterations for the reference fit (low SNR converges slowly). */
  maxIter: 5000,
  window: { high: 1e-2, low: 1e-7 },
  /** Single-iteration polishing of θ̂ stops when a step moves the parameters less than this. */
  polishStep: 1e-14,
  /** The exact M-step of the theory (see above). */
  mstepTol: 1e-20,
};

export interface RateOptions {
  instances: number;
  norms: number[];
  seed: number;
  backend: BackendKind;
  out: string;
  plots: boolean;
  /** Override the reference fit's iteration cap (tests use a small one). */
  maxIter?: number;
}

export interface RateMeasurement {
  norm: number;
  lambdaMax: number;
  measured: number;
  /** Iterations of the reference fit, and how many ratios entered the measured rate. */
  nIter: number;
  ratios: number;
}

function neighbourhoodStart(rng: Rng, truth: MoEParams, radiusFraction: number): MoEParams {
  const w = truth.w!;
  const beta = truth.beta!;
  const delta = randomDirection(rng, w.length + beta.length, radiusFraction * Math.hypot(...w, ...beta));
  return { ...truth, w: w.map((a, f) => a + delta[f]!), beta: beta.map((a, f) => a + delta[w.length + f]!) };
}

/** min(‖θ − θ̂‖, ‖θ + θ̂‖) over θ = (w, β): the symmetric models' sign-aware distance. */
function symmetricDistance(p: MoEParams, q: MoEParams): number {
  const a = [...p.w!, ...p.beta!];
  const b = [...q.w!, ...q.beta!];
  let minus = 0;
  let plus = 0;
  a.forEach((v, i) => { minus += (v - b[i]!) ** 2; plus += (v + b[i]!) ** 2; });
  return Math.sqrt(Math.min(minus, plus));
}

/** Geometric-mean contraction over the second half of the window's iterations; NaN when under 2 ratios. */
export function measuredRate(distances: number[], window = RATE_DEFAULTS.window): { rate: number; ratios: number } {
  let first = -1;
  let last = -1;
  for (let t = 0; t < distances.length; t++) {
    const e = distances[t]!;
    if (e <= window.high && e >= window.low) {
      if (first < 0) first = t;
      last = t;
    } else if (first >= 0 && e < window.low) break;
  }
  if (first < 0) return { rate: NaN, ratios: 0 };
  const from = first + Math.floor((last - first) / 2);
  if (last - from < 2) return { rate: NaN, ratios: Math.max(0, last - from) };
  return { rate: (distances[last]! / distances[from]!) ** (1 / (last - from)), ratios: last - from };
}

async function measureOne(norm: number, seed: number, o: RateOptions): Promise<RateMeasurement> {
  const { n, d, gateNorm } = RATE_DEFAULTS;
  const rng = new Rng(seed);
  const w = randomDirection(rng, d, gateNorm);
  const beta = randomDirection(rng, d, norm);
  const problem = sampleSymMoLinE({ n, d, seed, w, beta, sigma: 1 });
  const init = neighbourhoodStart(rng, problem.params, 0.5);
  const maxIter = o.maxIter ?? RATE_DEFAULTS.maxIter;
  const base: MoEOptions = {
    experts: 'linear', symmetric: true, k: 2, noise: 1, algorithm: 'em', backend: o.backend,
    mstep: { tol: RATE_DEFAULTS.mstepTol },
  };

  const reference = new MixtureOfExperts({ ...base, init, maxIter, tol: 0 });
  const first = await reference.fit(problem.X, problem.y);
  let estimator = reference;
  const tail: MoEParams[] = [];
  for (let polish = 0; polish < maxIter; polish++) {
    // One EM iteration from the current point; its paramError against that point is the step length.
    const step = new MixtureOfExperts({ ...base, init: estimator.params, maxIter: 1, tol: 0 });
    const h = await step.fit(problem.X, problem.y, { trueParams: estimator.params });
    estimator = step;
    tail.push(step.params);
    if ((h.iterations[1]?.paramError ?? 0) <= RATE_DEFAULTS.polishStep) break;
  }
  const thetaHat = estimator.params;
  const lambdaMax = informationWithFallback(estimator, problem.X, problem.y).result.lambdaMax;

  // The whole EM path's distance to θ̂: the first fit's iterations (replayed with θ̂ known), then the
  // polishing iterations, which continue the same path.
  const path = new MixtureOfExperts({ ...base, init, maxIter: first.nIter, tol: 0 });
  const history = await path.fit(problem.X, problem.y, { trueParams: thetaHat });
  const distances = [...history.iterations.map((r) => r.paramError ?? NaN), ...tail.map((p) => symmetricDistance(p, thetaHat))];
  const { rate, ratios } = measuredRate(distances);
  return { norm, lambdaMax, measured: rate, nIter: first.nIter + tail.length, ratios };
}

export async function reproduceRate(o: RateOptions, output: Output): Promise<RateMeasurement[]> {
  const writer = new ArtifactWriter(o.out, o.plots);
  const results: RateMeasurement[] = [];
  const progress = startProgress(output, 'rate', o.norms.length * o.instances);
  try {
    for (const norm of o.norms) {
      for (let inst = 0; inst < o.instances; inst++) {
        results.push(await measureOne(norm, o.seed + 1000 * inst + Math.round(norm * 100), o));
        progress.tick(1, `‖β*‖ = ${norm}`);
      }
    }
  } finally {
    progress.stop();
  }

  const table: Table = {
    columns: ['‖β*‖ (SNR)', 'λ_max of MIM at θ̂ (predicted rate)', 'measured EM rate', '|measured − predicted|',
      'EM iterations to θ̂', 'instances with a measured rate'],
    rows: [],
  };
  const points: ScatterPoint[] = [];
  for (const norm of o.norms) {
    const rs = results.filter((r) => r.norm === norm);
    const ok = rs.filter((r) => Number.isFinite(r.measured));
    const lam = rs.map((r) => r.lambdaMax);
    const meas = ok.map((r) => r.measured);
    table.rows.push([String(norm), meanSd(mean(lam), sd(lam)), ok.length > 0 ? meanSd(mean(meas), sd(meas)) : 'n/a',
      ok.length > 0 ? mean(ok.map((r) => Math.abs(r.measured - r.lambdaMax))) : null,
      meanSd(mean(rs.map((r) => r.nIter)), sd(rs.map((r) => r.nIter))), `${ok.length} / ${rs.length}`]);
    points.push({ x: norm, y: mean(lam), series: 'λ_max(MIM) at θ̂ (predicted)' });
    if (ok.length > 0) points.push({ x: norm, y: mean(meas), series: 'measured EM contraction' });
  }
  writer.table('rate-table', table);
  writer.table('rate-instances', {
    columns: ['norm', 'lambda_max', 'measured_rate', 'em_iterations', 'ratios_used'],
    rows: results.map((r) => [r.norm, r.lambdaMax, Number.isFinite(r.measured) ? r.measured : null, r.nIter, r.ratios]),
  });
  await writer.plot('rate', seriesPlotSpec('SymMoLinE: EM rate vs λ_max of the MIM (‖w*‖ = 4, σ = 1, n = 1000, d = 10)',
    '‖β*‖ / σ (log scale)', 'rate per iteration', points, { logX: true }));
  const summary = [
    `# EM rate vs MIM λ_max (${o.instances} instances per ‖β*‖)`, '', toMarkdown(table),
    `Measured rate: geometric mean of ‖θ_{t+1} − θ̂‖ / ‖θ_t − θ̂‖ over the second half of the iterations with ‖θ_t − θ̂‖ ∈ [${formatNumber(RATE_DEFAULTS.window.low)}, ${formatNumber(RATE_DEFAULTS.window.high)}]; θ̂ polished until an EM step moves it less than ${formatNumber(RATE_DEFAULTS.polishStep)}; gate M-step tolerance ${formatNumber(RATE_DEFAULTS.mstepTol)}.`, '',
    ...results.length > 0 ? [rateVerdict(results)] : [], '',
  ].join('\n');
  writer.text('summary.md', summary);
  output.out(summary);
  output.out(`Files written to ${o.out}: ${writer.written.length} (rate-table .md/.csv, rate.svg)`);
  return results;
}

function rateVerdict(results: RateMeasurement[]): string {
  const ok = results.filter((r) => Number.isFinite(r.measured) && r.lambdaMax > 0);
  const rel = ok.map((r) => Math.abs(r.measured - r.lambdaMax) / r.lambdaMax);
  const norms = [...new Set(results.map((r) => r.norm))].sort((a, b) => a - b);
  const lam = norms.map((nm) => mean(results.filter((r) => r.norm === nm).map((r) => r.lambdaMax)));
  const decreasing = lam.every((v, i) => i === 0 || v <= lam[i - 1]!);
  return [
    ok.length > 0
      ? `Measured vs predicted rate: median relative difference ${formatNumber(median(rel))}, max ${formatNumber(Math.max(...rel))} (${ok.length} of ${results.length} runs measurable).`
      : 'No run had enough iterations inside the window to measure a rate.',
    `λ_max by ‖β*‖ (${norms.join(', ')}): ${lam.map((v) => formatNumber(v)).join(', ')} — ${decreasing ? 'decreasing as the SNR grows' : 'NOT monotonically decreasing'}.`,
  ].join('\n');
}
