/**
 * `moe-em reproduce init`: MATH.md §7's measurement of the consistent initialiser against random and
 * k-means-style starts. On random planted mixtures of linear experts, EM runs to convergence from each
 * initialisation (same data, same seed) and we report the
 * fraction of instances whose final parameter error (docs/ALGORITHMS.md §8) is below a threshold, the median
 * errors at the start, after 10 iterations and at the end, the median iterations, and how often each start
 * reaches the best final likelihood among the starts. Two problem families:
 *   - 'orthogonal': Makkuva et al.'s setting (gate orthogonal to the experts, equal ‖β_j‖² + σ²), where the
 *     moments of init 'moments' are exact;
 *   - 'general': `sampleLinear`'s default (Gaussian gate and experts, not orthogonal), where they are biased.
 */
import { sampleLinear, sampleLinearOrthogonal, type SampledProblem } from '../../data/samplers.js';
import { MixtureOfExperts } from '../../estimator.js';
import type { BackendKind, MoEOptions } from '../../types.js';
import type { Output } from '../output.js';
import { startProgress } from '../progress.js';
import { mean, median } from '../stats.js';
import { formatNumber, toMarkdown, type Table } from '../tables.js';
import { ArtifactWriter } from './artifacts.js';

export const INIT_METHODS = ['random', 'moments', 'kmeans'] as const;
export type InitMethod = (typeof INIT_METHODS)[number];
export const INIT_SETTINGS = ['orthogonal', 'general'] as const;
export type InitSetting = (typeof INIT_SETTINGS)[number];

export const INIT_DEFAULTS = {
  instances: 50,
  n: 5000,
  d: 10,
  k: 4,
  maxIter: 200,
  /**
   * Success: final error below this. Fits in the right basin end at the statistical error (≈ 0.3–0.6 at
   * n = 5000, k = 4); a wrong basin (two experts merged, one split) costs an error above ~1.5.
   */
  threshold: 1,
  /** The intermediate iteration reported (a small iteration budget). */
  budget: 10,
  /** Two final NLLs within this (per row) count as the same optimum. */
  sameNll: 1e-6,
};

export interface InitOptions {
  instances: number;
  seed: number;
  n: number;
  maxIter: number;
  methods: InitMethod[];
  backend: BackendKind;
  out: string;
}

interface Run {
  startError: number;
  budgetError: number;
  finalError: number;
  finalNll: number;
  iterations: number;
  ms: number;
  failed: string | null;
}

function problemFor(setting: InitSetting, n: number, seed: number): SampledProblem {
  const { d, k } = INIT_DEFAULTS;
  return setting === 'orthogonal' ? sampleLinearOrthogonal({ n, d, k, seed }) : sampleLinear({ n, d, k, seed });
}

async function runOne(problem: SampledProblem, init: InitMethod, seed: number, o: InitOptions): Promise<Run> {
  const options: MoEOptions = { experts: 'linear', k: INIT_DEFAULTS.k, init, seed, maxIter: o.maxIter, backend: o.backend };
  const t0 = performance.now();
  try {
    const history = await new MixtureOfExperts(options).fit(problem.X, problem.y, { trueParams: problem.params });
    const its = history.iterations;
    const at = (t: number) => its[Math.min(t, its.length - 1)]!;
    return {
      startError: at(0).paramError!, budgetError: at(INIT_DEFAULTS.budget).paramError!,
      finalError: at(its.length - 1).paramError!, finalNll: at(its.length - 1).nll, iterations: history.nIter,
      ms: performance.now() - t0, failed: null,
    };
  } catch (e) {
    // A start the estimator rejects (e.g. a degenerate moment) is a failed instance, not a failure of the tool.
    return { startError: NaN, budgetError: NaN, finalError: NaN, finalNll: NaN, iterations: NaN, ms: NaN, failed: (e as Error).message };
  }
}

export interface InitResult {
  summary: string;
  /** Per setting and method: the fraction of instances with final error below the threshold. */
  success: Record<string, number>;
}

export async function reproduceInit(o: InitOptions, output: Output): Promise<InitResult> {
  const writer = new ArtifactWriter(o.out, false);
  const progress = startProgress(output, 'init', o.instances * INIT_SETTINGS.length * o.methods.length);
  const runs = new Map<string, Run[]>();
  const key = (setting: string, method: string): string => `${setting}/${method}`;
  try {
    for (const setting of INIT_SETTINGS) {
      for (let inst = 0; inst < o.instances; inst++) {
        const problem = problemFor(setting, o.n, o.seed + inst);
        for (const method of o.methods) {
          const list = runs.get(key(setting, method)) ?? [];
          list.push(await runOne(problem, method, o.seed + inst, o));
          runs.set(key(setting, method), list);
          progress.tick();
        }
      }
    }
  } finally {
    progress.stop();
  }

  const { threshold, budget, sameNll } = INIT_DEFAULTS;
  const table: Table = {
    columns: ['problem', 'init', `final error < ${threshold}`, `error < ${threshold} @ ${budget}`, 'best final NLL',
      'median start error', `median error @ ${budget}`, 'median final error', 'median iterations', 'mean ms / fit', 'failed'],
    rows: [],
  };
  const success: Record<string, number> = {};
  for (const setting of INIT_SETTINGS) {
    // Per instance, the lowest final NLL over the starts: how often does each start reach it?
    const bestNll = Array.from({ length: o.instances }, (_, i) =>
      Math.min(...o.methods.map((m) => runs.get(key(setting, m))![i]!.finalNll).filter(Number.isFinite)));
    for (const method of o.methods) {
      const rs = runs.get(key(setting, method))!;
      const ok = rs.filter((r) => r.failed === null);
      const frac = (pred: (r: Run, i: number) => boolean): number => rs.filter(pred).length / rs.length;
      success[key(setting, method)] = frac((r) => r.finalError < threshold);
      table.rows.push([
        setting, method,
        success[key(setting, method)]!, frac((r) => r.budgetError < threshold),
        frac((r, i) => r.finalNll <= bestNll[i]! + sameNll),
        median(ok.map((r) => r.startError)), median(ok.map((r) => r.budgetError)), median(ok.map((r) => r.finalError)),
        median(ok.map((r) => r.iterations)), mean(ok.map((r) => r.ms)), rs.length - ok.length,
      ]);
    }
  }
  writer.table('init-table', table);
  const perInstance: Table = {
    columns: ['problem', 'init', 'instance', 'start error', `error @ ${budget}`, 'final error', 'final nll', 'iterations', 'failed'],
    rows: [],
  };
  for (const [k, rs] of runs) {
    const [setting, method] = k.split('/');
    rs.forEach((r, i) => perInstance.rows.push([setting!, method!, o.seed + i, r.startError, r.budgetError, r.finalError,
      r.finalNll, r.iterations, r.failed ?? '']));
  }
  writer.table('init-runs', perInstance);

  const { d, k } = INIT_DEFAULTS;
  const summary = [
    `# Initialisation: ${o.methods.join(' vs ')} (${o.instances} instances per problem, n = ${o.n}, d = ${d}, k = ${k}, `
      + `EM to convergence, at most ${o.maxIter} iterations)`,
    '',
    `Success: final parameter error (ALGORITHMS.md §8) below ${threshold}. "best final NLL": the share of instances where `
      + `this start ends within ${formatNumber(sameNll)} of the lowest final NLL over the starts.`,
    '',
    toMarkdown(table),
  ].join('\n');
  writer.text('summary.md', summary);
  output.out(summary);
  output.out(`Files written to ${o.out}: ${writer.written.length} (tables .md/.csv)`);
  return { summary, success };
}
