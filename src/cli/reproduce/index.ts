/** `moe-em reproduce <experiment>`: option defaults per experiment, then the experiment itself. */
import { join } from 'node:path';
import { DEFAULT_FASHION_MNIST_DIR } from '../../data/fashion-mnist.js';
import type { BackendKind } from '../../types.js';
import { UsageError } from '../errors.js';
import type { Output } from '../output.js';
import { FASHION_DEFAULTS, FASHION_METHODS, reproduceFashionMnist } from './fashion-mnist.js';
import { renderFashionFromResults } from './fashion-mnist-report.js';
import { INIT_DEFAULTS, INIT_METHODS, reproduceInit } from './init.js';
import { RATE_DEFAULTS, reproduceRate } from './rate.js';
import { reproduceSynthetic, SYNTHETIC_DEFAULTS } from './synthetic.js';

export const EXPERIMENTS = ['synthetic', 'fashion-mnist', 'rate', 'init'] as const;

export interface ReproduceCliOptions {
  out?: string;
  backend: BackendKind;
  instances?: number;
  iterations?: number;
  seed: number;
  grid?: number[];
  snr?: number[];
  data?: string;
  rows?: number;
  testRows?: number;
  evalEvery: number;
  stepSize?: number;
  pool?: number;
  methods?: string[];
  plots: boolean;
  render?: string[];
}

export async function reproduceCommand(experiment: string, o: ReproduceCliOptions, output: Output): Promise<void> {
  const out = o.out ?? join('reproduce-out', experiment);
  switch (experiment) {
    case 'synthetic':
      await reproduceSynthetic({
        instances: o.instances ?? SYNTHETIC_DEFAULTS.instances,
        iterations: o.iterations ?? SYNTHETIC_DEFAULTS.iterations,
        seed: o.seed,
        grid: o.grid ?? SYNTHETIC_DEFAULTS.grid,
        backend: o.backend,
        out,
        plots: o.plots,
      }, output);
      return;
    case 'rate':
      await reproduceRate({
        instances: o.instances ?? RATE_DEFAULTS.instances,
        norms: o.snr ?? RATE_DEFAULTS.norms,
        seed: o.seed,
        backend: o.backend,
        out,
        plots: o.plots,
        ...(o.iterations !== undefined ? { maxIter: o.iterations } : {}),
      }, output);
      return;
    case 'init':
      await reproduceInit({
        instances: o.instances ?? INIT_DEFAULTS.instances,
        seed: o.seed,
        n: o.rows ?? INIT_DEFAULTS.n,
        maxIter: o.iterations ?? INIT_DEFAULTS.maxIter,
        methods: methodList(o.methods, INIT_METHODS),
        backend: o.backend,
        out,
      }, output);
      return;
    case 'fashion-mnist':
      if (o.render !== undefined) {
        await renderFashionFromResults(o.render, out, o.plots, output);
        return;
      }
      await reproduceFashionMnist({
        dataDir: o.data ?? DEFAULT_FASHION_MNIST_DIR,
        ...(o.rows !== undefined ? { rows: o.rows } : {}),
        ...(o.testRows !== undefined ? { testRows: o.testRows } : {}),
        iterations: o.iterations ?? FASHION_DEFAULTS.iterations,
        evalEvery: o.evalEvery,
        stepSize: o.stepSize ?? FASHION_DEFAULTS.stepSize,
        ...(o.pool !== undefined ? { pool: o.pool } : {}),
        methods: methodList(o.methods, FASHION_METHODS),
        plots: o.plots,
        seed: o.seed,
        backend: o.backend,
        out,
      }, output);
      return;
    default:
      throw new UsageError(`unknown experiment '${experiment}' (expected ${EXPERIMENTS.join(', ')})`);
  }
}

/** The --methods list of an experiment (all of them by default); a name not in `all` is a usage error. */
function methodList<T extends string>(names: string[] | undefined, all: readonly T[]): T[] {
  if (names === undefined) return [...all];
  for (const n of names) {
    if (!(all as readonly string[]).includes(n)) {
      throw new UsageError(`unknown method '${n}' for --methods (expected ${all.join(', ')})`);
    }
  }
  return names as T[];
}
