/**
 * The model file written by `moe-em fit` and read by `moe-em predict`: the estimator's own toJSON() output,
 * wrapped with the column names it was trained on, so prediction can pick the features by name and in the
 * right order. A bare toJSON() document (written by library code) is accepted too; its features are then
 * taken by position.
 */
import { writeFileSync } from 'node:fs';
import { MoEError } from '../errors.js';
import { MixtureOfExperts } from '../estimator.js';
import type { LoadOptions } from '../types.js';
import { ioError, readTextFile } from './errors.js';

export const MODEL_FILE_FORMAT = 'moe-em-model';

export interface ModelFile {
  format: typeof MODEL_FILE_FORMAT;
  version: 1;
  /** Feature columns, in the order the model expects them (without the intercept column). */
  features: string[] | null;
  /** The target column's name in the training file. */
  target: string | null;
  model: unknown;
}

export function writeModelFile(path: string, estimator: MixtureOfExperts, features: string[], target: string): void {
  const doc: ModelFile = { format: MODEL_FILE_FORMAT, version: 1, features, target, model: estimator.toJSON() };
  try {
    writeFileSync(path, JSON.stringify(doc, null, 2) + '\n');
  } catch (e) {
    throw ioError(path, `cannot write (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
}

/** The saved estimator, with `load`'s settings for this machine (fromJSON's). */
export function readModelFile(path: string, load: LoadOptions = {}): {
  estimator: MixtureOfExperts; features: string[] | null; target: string | null;
} {
  const text = readTextFile(path);
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw ioError(path, `not a model file: invalid JSON (${(e as Error).message})`);
  }
  if (typeof doc !== 'object' || doc === null) throw ioError(path, 'not a model file');
  const wrapped = (doc as { format?: unknown }).format === MODEL_FILE_FORMAT;
  const file = wrapped ? (doc as ModelFile) : { features: null, target: null, model: doc };
  let estimator: MixtureOfExperts;
  try {
    estimator = MixtureOfExperts.fromJSON(file.model as Parameters<typeof MixtureOfExperts.fromJSON>[0], load);
  } catch (e) {
    if (e instanceof MoEError) throw new MoEError(e.code, `${path}: ${e.message}`, e.details);
    throw ioError(path, `not a moe-em model (${(e as Error).message})`);
  }
  return { estimator, features: file.features ?? null, target: file.target ?? null };
}
