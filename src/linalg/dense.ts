/**
 * Small dense helpers on Float64Array (row-major). Kept deliberately minimal: the hot loops of the models
 * and algorithms are written inline where they are used; these are the shared building blocks.
 */

/** Dot product of `n` entries of `a` (from `aOff`) and `b` (from `bOff`). */
export function dot(a: Float64Array, aOff: number, b: Float64Array, bOff: number, n: number): number {
  let acc = 0;
  for (let f = 0; f < n; f++) acc += a[aOff + f]! * b[bOff + f]!;
  return acc;
}

/** `y[yOff..] += alpha · x[xOff..]` over `n` entries. */
export function axpy(alpha: number, x: Float64Array, xOff: number, y: Float64Array, yOff: number, n: number): void {
  for (let f = 0; f < n; f++) y[yOff + f] += alpha * x[xOff + f]!;
}

/** Euclidean norm of a whole vector. */
export function norm2(a: Float64Array): number {
  let acc = 0;
  for (let i = 0; i < a.length; i++) acc += a[i]! * a[i]!;
  return Math.sqrt(acc);
}

/** log Σ exp(a[off..off+n]) without overflow. */
export function logSumExp(a: Float64Array, off: number, n: number): number {
  let m = -Infinity;
  for (let j = 0; j < n; j++) if (a[off + j]! > m) m = a[off + j]!;
  if (m === -Infinity) return -Infinity;
  let acc = 0;
  for (let j = 0; j < n; j++) acc += Math.exp(a[off + j]! - m);
  return m + Math.log(acc);
}

/** softplus(η) = log(1 + e^η), the stable form of ALGORITHMS.md §2. */
export function softplus(eta: number): number {
  return Math.max(eta, 0) + Math.log1p(Math.exp(-Math.abs(eta)));
}

/** log sigmoid(η) = −softplus(−η). */
export function logSigmoid(eta: number): number {
  return -softplus(-eta);
}

export function sigmoid(eta: number): number {
  if (eta >= 0) return 1 / (1 + Math.exp(-eta));
  const e = Math.exp(eta);
  return e / (1 + e);
}

/**
 * Adds `weight · x xᵀ` (upper triangle only) to the p×p matrix `a` at block offset (`r0`, `c0`), with `x` the
 * d entries of `xs` from `xOff`. Callers mirror the triangle once at the end (`symmetrizeUpper`).
 */
export function addWeightedOuterUpper(a: Float64Array, p: number, r0: number, c0: number, weight: number,
  xs: Float64Array, xOff: number, d: number): void {
  for (let f = 0; f < d; f++) {
    const wf = weight * xs[xOff + f]!;
    if (wf === 0) continue;
    const row = (r0 + f) * p + c0;
    for (let g = f; g < d; g++) a[row + g] += wf * xs[xOff + g]!;
  }
}

/** Copies the upper triangle of a p×p matrix onto its lower triangle. */
export function symmetrizeUpper(a: Float64Array, p: number): void {
  for (let i = 0; i < p; i++) for (let j = i + 1; j < p; j++) a[j * p + i] = a[i * p + j]!;
}
