/**
 * Reading data files for `fit` and `predict`. Two formats, chosen by extension (anything but `.json` is CSV):
 * - CSV with a header row; every column numeric; the target column chosen by name.
 * - JSON: either `{ "X": [[...], ...], "y": [...] }` (columns named x0, x1, ...; the target is `y`), or an
 *   array of row objects `[{ "a": 1, "b": 2, "label": 0 }, ...]` (columns are the first row's keys).
 * Failures are MoEErrors: E_IO for unreadable or unparsable files (with the row and column), E_SHAPE for
 * ragged rows or a missing column, E_NON_FINITE for NaN/Infinity cells.
 */
import { extname } from 'node:path';
import { MoEError } from '../errors.js';
import { ioError, readTextFile } from './errors.js';

/** A table of numbers with named columns, as read from a file. */
export interface NumericTable {
  columns: string[];
  /** rows × columns, row-major. */
  data: Float64Array;
  rows: number;
}

/** Features and (optionally) target, split out of a NumericTable. */
export interface Dataset {
  X: { data: Float64Array; rows: number; cols: number };
  y: Float64Array | null;
  features: string[];
  target: string | null;
}

export function readTable(path: string): NumericTable {
  const text = readTextFile(path);
  return extname(path).toLowerCase() === '.json' ? parseJsonTable(path, text) : parseCsvTable(path, text);
}

/**
 * Split a table into features and target. `target` null: every column is a feature (prediction input).
 * `features`, when given, selects and orders the feature columns (a saved model's column order).
 */
export function toDataset(table: NumericTable, path: string, target: string | null, features?: string[]): Dataset {
  const index = new Map(table.columns.map((c, i) => [c, i]));
  let targetIndex = -1;
  if (target !== null) {
    const t = index.get(target);
    if (t === undefined) {
      throw new MoEError('E_SHAPE', `${path}: no column named '${target}' (columns: ${table.columns.join(', ')})`);
    }
    targetIndex = t;
  }
  const featureNames = features ?? table.columns.filter((_, i) => i !== targetIndex);
  const featureIndex = featureNames.map((f) => {
    const i = index.get(f);
    if (i === undefined) throw new MoEError('E_SHAPE', `${path}: missing feature column '${f}'`);
    return i;
  });
  if (featureIndex.length === 0) throw new MoEError('E_SHAPE', `${path}: no feature columns`);
  const n = table.rows;
  const p = table.columns.length;
  const d = featureIndex.length;
  const X = new Float64Array(n * d);
  const y = targetIndex >= 0 ? new Float64Array(n) : null;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) X[i * d + j] = table.data[i * p + featureIndex[j]!]!;
    if (y !== null) y[i] = table.data[i * p + targetIndex]!;
  }
  return { X: { data: X, rows: n, cols: d }, y, features: featureNames, target };
}

// ---------------------------------------------------------------------------------------------------- CSV

/** Split one CSV line, honouring double quotes ("" inside quotes is a literal quote). */
function splitCsvLine(line: string): string[] {
  const cells: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (quoted) {
      if (ch === '"' && line[i + 1] === '"') { cur += '"'; i++; }
      else if (ch === '"') quoted = false;
      else cur += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') { cells.push(cur); cur = ''; }
    else cur += ch;
  }
  cells.push(cur);
  return cells.map((c) => c.trim());
}

function parseCell(path: string, raw: string, row: number, column: string): number {
  if (raw === '') throw new MoEError('E_IO', `${path}: line ${row}, column '${column}': empty cell`, { path, row, column });
  const v = Number(raw);
  if (Number.isNaN(v) && !/^[+-]?nan$/i.test(raw)) {
    throw new MoEError('E_IO', `${path}: line ${row}, column '${column}': '${raw}' is not a number`, { path, row, column });
  }
  if (!Number.isFinite(v)) {
    throw new MoEError('E_NON_FINITE', `${path}: line ${row}, column '${column}': non-finite value '${raw}'`, { path, row, column });
  }
  return v;
}

export function parseCsvTable(path: string, text: string): NumericTable {
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  let first = 0;
  while (first < lines.length && lines[first]!.trim() === '') first++;
  if (first >= lines.length) throw ioError(path, 'empty file (a CSV needs a header row)');
  const columns = splitCsvLine(lines[first]!);
  if (columns.some((c) => c === '')) throw ioError(path, 'the header row has an empty column name');
  if (columns.every((c) => !Number.isNaN(Number(c)))) {
    throw ioError(path, 'the first row looks numeric: a CSV needs a header row naming the columns');
  }
  const values: number[] = [];
  let rows = 0;
  for (let li = first + 1; li < lines.length; li++) {
    const line = lines[li]!;
    if (line.trim() === '') continue;
    const cells = splitCsvLine(line);
    if (cells.length !== columns.length) {
      throw new MoEError('E_SHAPE', `${path}: line ${li + 1} has ${cells.length} cells, the header has ${columns.length}`,
        { path, row: li + 1 });
    }
    for (let j = 0; j < cells.length; j++) values.push(parseCell(path, cells[j]!, li + 1, columns[j]!));
    rows++;
  }
  if (rows === 0) throw ioError(path, 'no data rows after the header');
  return { columns, data: Float64Array.from(values), rows };
}

// --------------------------------------------------------------------------------------------------- JSON

function jsonNumber(path: string, v: unknown, row: number, column: string): number {
  if (typeof v !== 'number') {
    throw new MoEError('E_IO', `${path}: row ${row}, column '${column}': ${JSON.stringify(v)} is not a number`,
      { path, row, column });
  }
  return v;
}

export function parseJsonTable(path: string, text: string): NumericTable {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw ioError(path, `invalid JSON (${(e as Error).message})`);
  }
  if (Array.isArray(doc)) return rowObjectsTable(path, doc);
  if (typeof doc === 'object' && doc !== null && Array.isArray((doc as { X?: unknown }).X)) {
    return matrixTable(path, doc as { X: unknown[]; y?: unknown });
  }
  throw ioError(path, 'expected {"X": [[...]], "y": [...]} or an array of row objects');
}

function rowObjectsTable(path: string, rowsIn: unknown[]): NumericTable {
  if (rowsIn.length === 0) throw ioError(path, 'no rows');
  const firstRow = rowsIn[0];
  if (typeof firstRow !== 'object' || firstRow === null || Array.isArray(firstRow)) {
    throw ioError(path, 'expected an array of row objects');
  }
  const columns = Object.keys(firstRow);
  const data = new Float64Array(rowsIn.length * columns.length);
  rowsIn.forEach((r, i) => {
    if (typeof r !== 'object' || r === null) throw ioError(path, `row ${i} is not an object`);
    columns.forEach((c, j) => {
      if (!(c in r)) throw new MoEError('E_SHAPE', `${path}: row ${i} has no '${c}'`, { path, row: i });
      data[i * columns.length + j] = jsonNumber(path, (r as Record<string, unknown>)[c], i, c);
    });
  });
  return { columns, data, rows: rowsIn.length };
}

function matrixTable(path: string, doc: { X: unknown[]; y?: unknown }): NumericTable {
  const n = doc.X.length;
  if (n === 0) throw ioError(path, 'X has no rows');
  const firstRow = doc.X[0];
  if (!Array.isArray(firstRow)) throw ioError(path, 'X must be an array of rows');
  const d = firstRow.length;
  const y = doc.y;
  if (y !== undefined && (!Array.isArray(y) || y.length !== n)) {
    throw new MoEError('E_SHAPE', `${path}: y must be an array of ${n} numbers`, { path });
  }
  const columns = Array.from({ length: d }, (_, j) => `x${j}`);
  if (y !== undefined) columns.push('y');
  const p = columns.length;
  const data = new Float64Array(n * p);
  doc.X.forEach((row, i) => {
    if (!Array.isArray(row) || row.length !== d) {
      throw new MoEError('E_SHAPE', `${path}: X row ${i} does not have ${d} values`, { path, row: i });
    }
    row.forEach((v, j) => { data[i * p + j] = jsonNumber(path, v, i, `x${j}`); });
    if (y !== undefined) data[i * p + d] = jsonNumber(path, (y as unknown[])[i], i, 'y');
  });
  return { columns, data, rows: n };
}
