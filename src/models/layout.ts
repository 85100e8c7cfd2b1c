/**
 * Parameter layouts of docs/ALGORITHMS.md §1: the flat full vector that crosses the TS↔native boundary, the
 * free parameter vector (gradients, information matrices), and conversion to/from the readable `MoEParams`.
 */
import type { ModelSpec } from '../backends/backend.js';
import { MoEError } from '../errors.js';
import type { MoEParams } from '../types.js';

/** Offsets into the flat full parameter vector. */
export interface FullLayout {
  /** Total length. */
  size: number;
  /** General model: gate W (k×d) at 0. */
  gate: number;
  /** Expert coefficients: k×d (linear/logistic) or k×C×d (multinomial). */
  coef: number;
  /** Per-expert coefficient block length: d, or C·d (multinomial). */
  coefPerExpert: number;
  /** Linear experts: σ² per expert (−1 when absent). */
  sigma2: number;
  /** Symmetric: w at 0, β at d. */
  w: number;
  beta: number;
}

export function fullLayout(model: ModelSpec): FullLayout {
  const { k, d } = model;
  if (model.symmetric) {
    return { size: 2 * d, gate: -1, coef: -1, coefPerExpert: d, sigma2: -1, w: 0, beta: d };
  }
  const coefPerExpert = model.experts === 'multinomial' ? model.nClasses * d : d;
  const coef = k * d;
  const sigma2 = model.experts === 'linear' ? coef + k * coefPerExpert : -1;
  const size = coef + k * coefPerExpert + (model.experts === 'linear' ? k : 0);
  return { size, gate: 0, coef, coefPerExpert, sigma2, w: -1, beta: -1 };
}

/** Offsets into the free parameter vector. */
export interface FreeLayout {
  p: number;
  /** Gate rows 0..k−2 ((k−1)·d), at 0. Symmetric: w (d). */
  gateSize: number;
  /** Start of expert j's block. */
  expertStart: number[];
  /** Free size of one expert block: linear d (+1 when σ² is fitted), logistic d, multinomial (C−1)·d. Symmetric: β (d). */
  expertSize: number;
  /** Whether linear experts carry a fitted σ² (the last entry of each expert block). */
  fittedSigma: boolean;
}

export function freeLayout(model: ModelSpec): FreeLayout {
  const { k, d } = model;
  if (model.symmetric) {
    return { p: 2 * d, gateSize: d, expertStart: [d], expertSize: d, fittedSigma: false };
  }
  const fittedSigma = model.experts === 'linear' && model.noise === 'fitted';
  const expertSize = model.experts === 'multinomial' ? (model.nClasses - 1) * d : d + (fittedSigma ? 1 : 0);
  const gateSize = (k - 1) * d;
  const expertStart: number[] = [];
  for (let j = 0; j < k; j++) expertStart.push(gateSize + j * expertSize);
  return { p: gateSize + k * expertSize, gateSize, expertStart, expertSize, fittedSigma };
}

/** The free parameters of θ (full layout) in the free layout. */
export function toFree(model: ModelSpec, params: Float64Array): Float64Array {
  const fl = fullLayout(model);
  const fr = freeLayout(model);
  const out = new Float64Array(fr.p);
  if (model.symmetric) {
    out.set(params.subarray(0, 2 * model.d));
    return out;
  }
  const { k, d } = model;
  out.set(params.subarray(0, (k - 1) * d));
  for (let j = 0; j < k; j++) {
    const start = fr.expertStart[j]!;
    if (model.experts === 'multinomial') {
      out.set(params.subarray(fl.coef + j * fl.coefPerExpert, fl.coef + j * fl.coefPerExpert + (model.nClasses - 1) * d), start);
    } else {
      out.set(params.subarray(fl.coef + j * d, fl.coef + (j + 1) * d), start);
      if (fr.fittedSigma) out[start + d] = params[fl.sigma2 + j]!;
    }
  }
  return out;
}

/** Writes the free vector back into a full parameter vector (fixed entries of `base` are kept). */
export function fromFree(model: ModelSpec, free: Float64Array, base: Float64Array): Float64Array {
  const fl = fullLayout(model);
  const fr = freeLayout(model);
  const out = Float64Array.from(base);
  if (model.symmetric) {
    out.set(free.subarray(0, 2 * model.d));
    return out;
  }
  const { k, d } = model;
  out.set(free.subarray(0, (k - 1) * d));
  for (let j = 0; j < k; j++) {
    const start = fr.expertStart[j]!;
    if (model.experts === 'multinomial') {
      out.set(free.subarray(start, start + (model.nClasses - 1) * d), fl.coef + j * fl.coefPerExpert);
    } else {
      out.set(free.subarray(start, start + d), fl.coef + j * d);
      if (fr.fittedSigma) out[fl.sigma2 + j] = free[start + d]!;
    }
  }
  return out;
}

/** Names of the free parameters, in order ('gate[0][3]', 'beta[1][2]', 'coef[1][c][f]', 'sigma2[0]', 'w[2]'). */
export function freeParameterNames(model: ModelSpec): string[] {
  const names: string[] = [];
  const { k, d } = model;
  if (model.symmetric) {
    for (let f = 0; f < d; f++) names.push(`w[${f}]`);
    for (let f = 0; f < d; f++) names.push(`beta[${f}]`);
    return names;
  }
  for (let j = 0; j < k - 1; j++) for (let f = 0; f < d; f++) names.push(`gate[${j}][${f}]`);
  const fittedSigma = model.experts === 'linear' && model.noise === 'fitted';
  for (let j = 0; j < k; j++) {
    if (model.experts === 'multinomial') {
      for (let c = 0; c < model.nClasses - 1; c++) for (let f = 0; f < d; f++) names.push(`coef[${j}][${c}][${f}]`);
    } else {
      for (let f = 0; f < d; f++) names.push(`beta[${j}][${f}]`);
      if (fittedSigma) names.push(`sigma2[${j}]`);
    }
  }
  return names;
}

function rowsOf(a: Float64Array, off: number, rows: number, cols: number): number[][] {
  const out: number[][] = [];
  for (let r = 0; r < rows; r++) out.push(Array.from(a.subarray(off + r * cols, off + (r + 1) * cols)));
  return out;
}

/** Flat full vector → readable parameters. */
export function paramsToReadable(model: ModelSpec, params: Float64Array): MoEParams {
  const fl = fullLayout(model);
  const { k, d } = model;
  const base: MoEParams = { experts: model.experts, symmetric: model.symmetric, k, d, intercept: model.intercept };
  if (model.symmetric) {
    base.w = Array.from(params.subarray(0, d));
    base.beta = Array.from(params.subarray(d, 2 * d));
    if (model.experts === 'linear') base.sigma = model.noise as number;
    return base;
  }
  base.gate = rowsOf(params, 0, k, d);
  if (model.experts === 'multinomial') {
    base.nClasses = model.nClasses;
    const coef: number[][][] = [];
    for (let j = 0; j < k; j++) coef.push(rowsOf(params, fl.coef + j * fl.coefPerExpert, model.nClasses, d));
    base.coef = coef;
  } else {
    base.coef = rowsOf(params, fl.coef, k, d);
  }
  if (model.experts === 'linear') base.sigma2 = Array.from(params.subarray(fl.sigma2, fl.sigma2 + k));
  return base;
}

function shapeError(what: string): MoEError {
  return new MoEError('E_SHAPE', `parameters: ${what}`);
}

function copyRows(src: unknown, rows: number, cols: number, out: Float64Array, off: number, what: string): void {
  if (!Array.isArray(src) || src.length !== rows) throw shapeError(`${what} must have ${rows} rows`);
  for (let r = 0; r < rows; r++) {
    const row = src[r] as unknown;
    if (!Array.isArray(row) || row.length !== cols) throw shapeError(`${what}[${r}] must have ${cols} entries`);
    for (let c = 0; c < cols; c++) {
      const v = row[c] as unknown;
      if (typeof v !== 'number') throw shapeError(`${what}[${r}][${c}] is not a number`);
      if (!Number.isFinite(v)) throw new MoEError('E_NON_FINITE', `parameters: ${what}[${r}][${c}] is not finite`);
      out[off + r * cols + c] = v;
    }
  }
}

function copyVector(src: unknown, len: number, out: Float64Array, off: number, what: string): void {
  copyRows(src === undefined ? undefined : [src], 1, len, out, off, what);
}

/**
 * Readable parameters → flat full vector, checked against the model (E_SHAPE / E_NON_FINITE). The fixed
 * entries (gate row k−1, multinomial class C−1 rows) are written as given: callers that need the reference
 * convention re-reference them with `referenceParams`.
 */
export function readableToParams(model: ModelSpec, p: MoEParams): Float64Array {
  const fl = fullLayout(model);
  const out = new Float64Array(fl.size);
  const { k, d } = model;
  if (typeof p !== 'object' || p === null) throw shapeError('expected an object');
  if (p.experts !== model.experts || Boolean(p.symmetric) !== model.symmetric || p.k !== k || p.d !== d) {
    throw shapeError(`expected experts=${model.experts}, symmetric=${model.symmetric}, k=${k}, d=${d}; got `
      + `experts=${p.experts}, symmetric=${p.symmetric}, k=${p.k}, d=${p.d}`);
  }
  if (model.symmetric) {
    copyVector(p.w, d, out, 0, 'w');
    copyVector(p.beta, d, out, d, 'beta');
    return out;
  }
  copyRows(p.gate, k, d, out, 0, 'gate');
  if (model.experts === 'multinomial') {
    const coef = p.coef as unknown;
    if (!Array.isArray(coef) || coef.length !== k) throw shapeError(`coef must have ${k} experts`);
    for (let j = 0; j < k; j++) copyRows(coef[j], model.nClasses, d, out, fl.coef + j * fl.coefPerExpert, `coef[${j}]`);
  } else {
    copyRows(p.coef, k, d, out, fl.coef, 'coef');
  }
  if (model.experts === 'linear') {
    if (model.noise === 'fitted') {
      copyVector(p.sigma2, k, out, fl.sigma2, 'sigma2');
      for (let j = 0; j < k; j++) {
        if (!(out[fl.sigma2 + j]! > 0)) throw new MoEError('E_OPTION', `parameters: sigma2[${j}] must be > 0`);
      }
    } else {
      for (let j = 0; j < k; j++) out[fl.sigma2 + j] = model.noise * model.noise;
    }
  }
  return referenceParams(model, out);
}

/**
 * Enforces the reference conventions in place: gate rows minus row k−1 (softmax shift invariance), and for
 * multinomial experts each class row minus row C−1. The model is unchanged; the fixed rows become 0.
 */
export function referenceParams(model: ModelSpec, params: Float64Array): Float64Array {
  if (model.symmetric) return params;
  const fl = fullLayout(model);
  const { k, d } = model;
  subtractLastRow(params, 0, k, d);
  if (model.experts === 'multinomial') {
    for (let j = 0; j < k; j++) subtractLastRow(params, fl.coef + j * fl.coefPerExpert, model.nClasses, d);
  }
  return params;
}

function subtractLastRow(a: Float64Array, off: number, rows: number, cols: number): void {
  const last = off + (rows - 1) * cols;
  for (let r = 0; r < rows - 1; r++) for (let c = 0; c < cols; c++) a[off + r * cols + c] -= a[last + c]!;
  for (let c = 0; c < cols; c++) a[last + c] = 0;
}
