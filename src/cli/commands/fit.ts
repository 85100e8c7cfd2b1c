/** `moe-em fit DATA --target COL --experts KIND ...`: fit a mixture, save it, print a summary. */
import { nativeInfo } from '../../backends/native.js';
import { MixtureOfExperts } from '../../estimator.js';
import type { AlgorithmKind, BackendKind, ExpertKind, InformationResult, InitKind, MoEOptions, MStepSolver } from '../../types.js';
import { readTable, toDataset } from '../data-file.js';
import { informationWithFallback } from '../information.js';
import { writeModelFile } from '../model-file.js';
import type { Output } from '../output.js';
import { startProgress } from '../progress.js';
import { formatFitSummary } from '../report.js';

export interface FitCommandOptions {
  target: string;
  experts: ExpertKind;
  k: number;
  algorithm: AlgorithmKind;
  intercept: boolean;
  symmetric: boolean;
  ridge: number;
  maxIter: number;
  tol: number;
  seed: number;
  nInit: number;
  init: InitKind;
  stepSize?: number;
  solver?: MStepSolver;
  batchSize?: number;
  backend: BackendKind;
  out: string;
  /** Skip the MIM (it forms p×p matrices; slow for very many parameters). */
  information: boolean;
}

export async function fitCommand(dataPath: string, o: FitCommandOptions, output: Output): Promise<void> {
  const dataset = toDataset(readTable(dataPath), dataPath, o.target);
  const options: MoEOptions = {
    experts: o.experts,
    k: o.k,
    algorithm: o.algorithm,
    intercept: o.intercept,
    symmetric: o.symmetric,
    ridge: o.ridge,
    maxIter: o.maxIter,
    tol: o.tol,
    seed: o.seed,
    nInit: o.nInit,
    init: o.init,
    backend: o.backend,
  };
  if (o.stepSize !== undefined) options.stepSize = o.stepSize;
  if (o.solver !== undefined) options.mstep = { solver: o.solver };
  if (o.batchSize !== undefined) options.batchSize = o.batchSize;
  const estimator = new MixtureOfExperts(options);
  const X = dataset.X;
  const y = dataset.y!;
  const progress = startProgress(output, 'fit', o.maxIter * o.nInit);
  let history;
  try {
    history = await estimator.fit(X, y, {
      onIteration: (r) => { if (r.iter > 0) progress.tick(1, `nll ${r.nll.toPrecision(6)}`); },
    });
  } finally {
    progress.stop();
  }
  let information: InformationResult | { error: string };
  if (!o.information) {
    information = { error: 'skipped (--no-information)' };
  } else {
    try {
      const outcome = informationWithFallback(estimator, X, y);
      information = outcome.result;
      if (outcome.fallbackReason !== null) {
        output.err(`MIM computed by the TypeScript reference (the ${history.backend} backend could not: ${outcome.fallbackReason})`);
      }
    } catch (e) {
      information = { error: (e as Error).message };
    }
  }
  writeModelFile(o.out, estimator, dataset.features, o.target);
  output.out(formatFitSummary({
    params: estimator.params,
    history,
    rows: X.rows,
    features: dataset.features,
    aic: estimator.aic(X, y),
    bic: estimator.bic(X, y),
    nParams: estimator.nParams,
    information,
    gpu: history.backend === 'cuda' ? nativeInfo().gpu?.name : undefined,
  }));
  output.out(`Model written to ${o.out}`);
}
