/**
 * `moe-em predict MODEL DATA [--posterior] [--out FILE]`: predictions as CSV. Linear experts: the mixture
 * mean. Classifiers: the most probable class and every class probability. `--posterior`: the n×k expert
 * responsibilities (symmetric models: z_plus, z_minus), which need the target column the model was trained with,
 * computed on `--backend` (default 'auto': what runs on this machine, whatever backend fitted the model).
 */
import { writeFileSync } from 'node:fs';
import { MoEError } from '../../errors.js';
import { readTable, toDataset } from '../data-file.js';
import { ioError } from '../errors.js';
import { readModelFile } from '../model-file.js';
import type { Output } from '../output.js';
import { toCsv, type Table } from '../tables.js';
import type { BackendKind } from '../../types.js';

export interface PredictCommandOptions {
  posterior: boolean;
  /** Target column for --posterior when the model file does not name one. */
  target?: string;
  out?: string;
  /** The backend for --posterior (predictions run natively on the CPU, or in TypeScript, whatever it is). */
  backend?: BackendKind;
}

export async function predictCommand(modelPath: string, dataPath: string, o: PredictCommandOptions,
  output: Output): Promise<void> {
  const { estimator, features, target: savedTarget } = readModelFile(modelPath, { backend: o.backend ?? 'auto' });
  const table = readTable(dataPath);
  const target = o.target ?? savedTarget;
  let result: Table;
  if (o.posterior) {
    if (target === null) {
      throw new MoEError('E_SHAPE', `${modelPath} does not name its target column: pass --target COL for --posterior`);
    }
    const ds = toDataset(table, dataPath, target, features ?? undefined);
    const h = estimator.posterior(ds.X, ds.y!);
    // Symmetric models' two components are z = +1 and z = −1 (columns in that order).
    const symmetric = estimator.params.symmetric;
    result = matrixTable(h, (j) => (symmetric ? (j === 0 ? 'z_plus' : 'z_minus') : `expert_${j}`));
  } else {
    // The target column, if present, is simply ignored: features are chosen by name (or by position).
    const featureNames = features ?? table.columns.filter((c) => c !== target);
    const ds = toDataset(table, dataPath, null, featureNames);
    const yhat = estimator.predict(ds.X);
    if (estimator.params.experts === 'linear') {
      result = { columns: ['prediction'], rows: Array.from(yhat, (v) => [v]) };
    } else {
      const proba = estimator.predictProba(ds.X);
      const probs = matrixTable(proba, (c) => `p_${c}`);
      result = { columns: ['prediction', ...probs.columns], rows: probs.rows.map((r, i) => [yhat[i]!, ...r]) };
    }
  }
  const csv = toCsv(result);
  if (o.out === undefined) {
    output.out(csv);
    return;
  }
  try {
    writeFileSync(o.out, csv);
  } catch (e) {
    throw ioError(o.out, `cannot write (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  output.err(`${result.rows.length} rows written to ${o.out}`);
}

function matrixTable(m: { data: Float64Array; rows: number; cols: number }, name: (j: number) => string): Table {
  const columns = Array.from({ length: m.cols }, (_, j) => name(j));
  const rows = Array.from({ length: m.rows }, (_, i) => Array.from(m.data.subarray(i * m.cols, (i + 1) * m.cols)));
  return { columns, rows };
}
