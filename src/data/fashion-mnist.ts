/**
 * Fashion-MNIST from the IDX files that Debian's `dataset-fashion-mnist` installs (gzip-compressed, read with
 * node:zlib), and the alteration of MATH.md §6 that makes the data need two experts.
 *
 * IDX format: a big-endian header `0x00 0x00 <type> <ndim>` (type 0x08 = unsigned byte), then ndim u32 sizes,
 * then the values. Images are 28×28 (784 features, row-major), scaled from bytes to [0, 1]; labels are 0..9.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { MoEError } from '../errors.js';
import { Rng } from './rng.js';

/** Where `apt-get install dataset-fashion-mnist` puts the files. */
export const DEFAULT_FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

export interface FashionMnistSplit {
  X: { data: Float64Array; rows: number; cols: number };
  /** Labels 0..9 as float64 (the estimator's y type). */
  y: Float64Array;
}

export interface FashionMnistOptions {
  /** Directory holding the four `*-idx?-ubyte.gz` files (default DEFAULT_FASHION_MNIST_DIR). */
  dir?: string;
  /** Keep only the first `limit` rows of each split. */
  limit?: number;
  /** Which splits to read (default both). */
  splits?: ('train' | 'test')[];
}

export interface FashionMnist {
  train?: FashionMnistSplit;
  test?: FashionMnistSplit;
}

const FILES = {
  train: { images: 'train-images-idx3-ubyte.gz', labels: 'train-labels-idx1-ubyte.gz' },
  test: { images: 't10k-images-idx3-ubyte.gz', labels: 't10k-labels-idx1-ubyte.gz' },
} as const;

interface IdxArray {
  dims: number[];
  values: Uint8Array;
}

/** Parses an (uncompressed) IDX buffer of unsigned bytes; `name` only labels error messages. */
export function parseIdx(buf: Uint8Array, name: string): IdxArray {
  if (buf.length < 4 || buf[0] !== 0 || buf[1] !== 0) {
    throw new MoEError('E_IO', `${name}: not an IDX file (bad magic number)`);
  }
  if (buf[2] !== 0x08) throw new MoEError('E_IO', `${name}: IDX type 0x${buf[2]!.toString(16)} is not unsigned byte`);
  const ndim = buf[3]!;
  if (ndim < 1 || buf.length < 4 + 4 * ndim) throw new MoEError('E_IO', `${name}: truncated IDX header`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const dims: number[] = [];
  for (let a = 0; a < ndim; a++) dims.push(view.getUint32(4 + 4 * a, false));
  const count = dims.reduce((p, q) => p * q, 1);
  const start = 4 + 4 * ndim;
  if (buf.length - start !== count) {
    throw new MoEError('E_IO', `${name}: IDX header announces ${count} values but the file holds ${buf.length - start}`);
  }
  return { dims, values: buf.subarray(start) };
}

function readIdxGz(dir: string, file: string): IdxArray {
  const path = join(dir, file);
  if (!existsSync(path)) {
    throw new MoEError('E_IO',
      `Fashion-MNIST file ${path} not found: run \`apt-get install dataset-fashion-mnist\` or pass the directory `
      + 'holding the IDX files', { path });
  }
  let raw: Buffer;
  try {
    raw = gunzipSync(readFileSync(path));
  } catch (e) {
    throw new MoEError('E_IO', `${path}: cannot read or decompress (${(e as Error).message})`, { path });
  }
  return parseIdx(new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength), path);
}

function readSplit(dir: string, split: 'train' | 'test', limit: number | undefined): FashionMnistSplit {
  const images = readIdxGz(dir, FILES[split].images);
  const labels = readIdxGz(dir, FILES[split].labels);
  if (images.dims.length !== 3 || labels.dims.length !== 1 || images.dims[0] !== labels.dims[0]) {
    throw new MoEError('E_IO', `Fashion-MNIST ${split}: image and label files do not match `
      + `(${images.dims.join('×')} vs ${labels.dims.join('×')})`);
  }
  const cols = images.dims[1]! * images.dims[2]!;
  const rows = limit === undefined ? images.dims[0]! : Math.min(limit, images.dims[0]!);
  const data = new Float64Array(rows * cols);
  for (let t = 0; t < rows * cols; t++) data[t] = images.values[t]! / 255;
  const y = new Float64Array(rows);
  for (let i = 0; i < rows; i++) {
    const label = labels.values[i]!;
    if (label > 9) throw new MoEError('E_IO', `Fashion-MNIST ${split}: label ${label} at row ${i} is not in 0..9`);
    y[i] = label;
  }
  return { X: { data, rows, cols }, y };
}

/** Reads Fashion-MNIST; a missing file or a corrupt header is a `MoEError` E_IO. */
export function loadFashionMnist(opts: FashionMnistOptions = {}): FashionMnist {
  const { dir = DEFAULT_FASHION_MNIST_DIR, limit, splits = ['train', 'test'] } = opts;
  if (limit !== undefined && (!Number.isInteger(limit) || limit < 1)) {
    throw new MoEError('E_OPTION', `limit must be a positive integer, got ${limit}`);
  }
  const out: FashionMnist = {};
  for (const split of splits) out[split] = readSplit(dir, split, limit);
  return out;
}

/**
 * The label permutation applied to the altered half (our choice, fixed): c → (c + 5) mod 10, i.e. each
 * class swaps with its partner five places away (T-shirt ↔ Sandal, Trouser ↔ Shirt, Pullover ↔ Sneaker,
 * Dress ↔ Bag, Coat ↔ Ankle boot). It is an involution with no fixed point, so no class keeps its label.
 */
export const ALTERED_LABEL_PERMUTATION: readonly number[] = [5, 6, 7, 8, 9, 0, 1, 2, 3, 4];

export interface AlteredSplit extends FashionMnistSplit {
  /** 1 where the row was inverted and relabelled, else 0. */
  altered: Uint8Array;
}

/**
 * MATH.md §6's alteration: exactly floor(rows/2) rows, chosen as the first half of a Fisher–Yates shuffle of
 * 0..rows−1 by `Rng(seed)`, are inverted (x → 1 − x) and relabelled through ALTERED_LABEL_PERMUTATION. A
 * single linear classifier cannot serve both halves; a gate that detects inversion plus two experts can.
 * Returns new arrays; the input is not modified.
 */
export function alterFashionMnist(split: FashionMnistSplit, seed = 0): AlteredSplit {
  const { rows, cols } = split.X;
  const order = Uint32Array.from({ length: rows }, (_, i) => i);
  new Rng(seed).shuffle(order);
  const data = new Float64Array(split.X.data);
  const y = new Float64Array(split.y);
  const altered = new Uint8Array(rows);
  for (let t = 0; t < Math.floor(rows / 2); t++) {
    const i = order[t]!;
    altered[i] = 1;
    for (let f = i * cols; f < (i + 1) * cols; f++) data[f] = 1 - data[f]!;
    y[i] = ALTERED_LABEL_PERMUTATION[y[i]!]!;
  }
  return { X: { data, rows, cols }, y, altered };
}
