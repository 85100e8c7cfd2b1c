/**
 * Distance between fitted and true parameters, invariant to the model's symmetries (docs/ALGORITHMS.md §8).
 * General model: min over expert permutations π of sqrt(‖G_π − G*‖² + ‖B_π − B*‖²), with G the gate rows
 * centred by their mean (softmax shift invariance) and B the expert coefficients (σ² excluded); all k!
 * permutations for k ≤ 8, a greedy matching on the expert coefficients beyond. Symmetric models:
 * min(‖θ − θ*‖, ‖θ + θ*‖) with θ = (w, β).
 */
import type { ModelSpec } from '../backends/backend.js';
import { fullLayout } from '../models/layout.js';

const EXHAUSTIVE_MAX_K = 8;

function centredGate(params: Float64Array, k: number, d: number): Float64Array {
  const g = Float64Array.from(params.subarray(0, k * d));
  for (let f = 0; f < d; f++) {
    let mean = 0;
    for (let j = 0; j < k; j++) mean += g[j * d + f]!;
    mean /= k;
    for (let j = 0; j < k; j++) g[j * d + f] -= mean;
  }
  return g;
}

function squaredDistance(a: Float64Array, aOff: number, b: Float64Array, bOff: number, len: number): number {
  let acc = 0;
  for (let q = 0; q < len; q++) acc += (a[aOff + q]! - b[bOff + q]!) ** 2;
  return acc;
}

/** Best assignment cost over all permutations (Heap-free recursive search with pruning by the running sum). */
function bestPermutationCost(cost: Float64Array, k: number): number {
  let best = Infinity;
  const used = new Uint8Array(k);
  const visit = (row: number, acc: number): void => {
    if (acc >= best) return;
    if (row === k) {
      best = acc;
      return;
    }
    for (let col = 0; col < k; col++) {
      if (used[col]) continue;
      used[col] = 1;
      visit(row + 1, acc + cost[row * k + col]!);
      used[col] = 0;
    }
  };
  visit(0, 0);
  return best;
}

/** Greedy matching: repeatedly pair the closest remaining (fitted, true) experts by coefficient distance. */
function greedyMatchingCost(cost: Float64Array, coefCost: Float64Array, k: number): number {
  const rowUsed = new Uint8Array(k);
  const colUsed = new Uint8Array(k);
  let total = 0;
  for (let step = 0; step < k; step++) {
    let br = -1; let bc = -1; let bv = Infinity;
    for (let r = 0; r < k; r++) {
      if (rowUsed[r]) continue;
      for (let c = 0; c < k; c++) {
        if (colUsed[c]) continue;
        if (coefCost[r * k + c]! < bv) { bv = coefCost[r * k + c]!; br = r; bc = c; }
      }
    }
    rowUsed[br] = 1;
    colUsed[bc] = 1;
    total += cost[br * k + bc]!;
  }
  return total;
}

/** The §8 parameter error between flat parameter vectors of the same model. */
export function parameterError(model: ModelSpec, params: Float64Array, trueParams: Float64Array): number {
  if (model.symmetric) {
    const d = model.d;
    const len = 2 * d;
    let minus = 0; let plus = 0;
    // SymMoLogE is also unchanged when w and β trade places (its density is symmetric in them).
    const swaps = model.experts === 'logistic';
    let swapMinus = 0; let swapPlus = 0;
    for (let q = 0; q < len; q++) {
      minus += (params[q]! - trueParams[q]!) ** 2;
      plus += (params[q]! + trueParams[q]!) ** 2;
      if (swaps) {
        const swapped = trueParams[(q + d) % len]!;
        swapMinus += (params[q]! - swapped) ** 2;
        swapPlus += (params[q]! + swapped) ** 2;
      }
    }
    const best = Math.min(minus, plus);
    return Math.sqrt(swaps ? Math.min(best, swapMinus, swapPlus) : best);
  }
  const { k, d } = model;
  const fl = fullLayout(model);
  const g = centredGate(params, k, d);
  const gStar = centredGate(trueParams, k, d);
  const len = fl.coefPerExpert;
  const cost = new Float64Array(k * k);
  const coefCost = new Float64Array(k * k);
  for (let a = 0; a < k; a++) {
    for (let b = 0; b < k; b++) {
      const cc = squaredDistance(params, fl.coef + a * len, trueParams, fl.coef + b * len, len);
      coefCost[a * k + b] = cc;
      cost[a * k + b] = cc + squaredDistance(g, a * d, gStar, b * d, d);
    }
  }
  const total = k <= EXHAUSTIVE_MAX_K ? bestPermutationCost(cost, k) : greedyMatchingCost(cost, coefCost, k);
  return Math.sqrt(total);
}
