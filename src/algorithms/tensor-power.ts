/**
 * The tensor power method with deflation (Anandkumar et al., "Tensor decompositions for learning latent
 * variable models", 2014) for a small symmetric k×k×k tensor T ≈ Σ_j λ_j v_j⊗v_j⊗v_j with orthonormal v_j:
 * the orthogonal decomposition behind init 'moments' (docs/ALGORITHMS.md §5). Everything is deterministic
 * given the Rng: the random starting vectors are the only source of randomness.
 */
import type { Rng } from '../data/rng.js';

export interface PowerMethodOptions {
  /** Random starting vectors per component; the one with the largest |T(v, v, v)| is kept. */
  restarts: number;
  /** Power iterations from every start, and again from the kept one. */
  iterations: number;
}

export interface TensorComponent {
  /** λ_j = T(v_j, v_j, v_j) ≥ 0 (the sign is moved into v_j). */
  weight: number;
  /** Unit vector v_j (length k). */
  vector: Float64Array;
}

/** T(I, v, v): the vector with entries Σ_bc T[a,b,c] v_b v_c (T flat, index (a·k + b)·k + c). */
function contractTwice(t: Float64Array, k: number, v: Float64Array, out: Float64Array): void {
  for (let a = 0; a < k; a++) {
    let acc = 0;
    for (let b = 0; b < k; b++) {
      const row = (a * k + b) * k;
      let inner = 0;
      for (let c = 0; c < k; c++) inner += t[row + c]! * v[c]!;
      acc += v[b]! * inner;
    }
    out[a] = acc;
  }
}

function dotK(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let q = 0; q < a.length; q++) s += a[q]! * b[q]!;
  return s;
}

/** Normalises v in place; returns false when it is (numerically) zero. */
function normalise(v: Float64Array): boolean {
  const len = Math.sqrt(dotK(v, v));
  if (!(len > 1e-300)) return false;
  for (let q = 0; q < v.length; q++) v[q] = v[q]! / len;
  return true;
}

/** `iterations` steps v ← T(I, v, v)/‖·‖ in place; returns T(v, v, v). */
function powerIterate(t: Float64Array, k: number, v: Float64Array, iterations: number): number {
  const next = new Float64Array(k);
  for (let it = 0; it < iterations; it++) {
    contractTwice(t, k, v, next);
    // A zero image means T vanishes along v (everything already deflated): keep v.
    if (!normalise(next)) break;
    v.set(next);
  }
  contractTwice(t, k, v, next);
  return dotK(v, next);
}

/**
 * The k leading components of the symmetric tensor `t` (k×k×k, not modified), in the order found. Per
 * component: `restarts` Gaussian starts from `rng` (k normals each), `iterations` power steps each, keep the
 * start with the largest |λ|, `iterations` more steps from it, fix the sign so that λ ≥ 0 (a cube is odd:
 * (−λ)(−v)⊗³ = λv⊗³), then deflate T ← T − λ v⊗³.
 */
export function tensorPowerDecomposition(t: Float64Array, k: number, rng: Rng, opts: PowerMethodOptions): TensorComponent[] {
  const work = Float64Array.from(t);
  const out: TensorComponent[] = [];
  for (let comp = 0; comp < k; comp++) {
    let best: Float64Array | null = null;
    let bestAbs = -1;
    for (let r = 0; r < opts.restarts; r++) {
      const v = new Float64Array(k);
      do {
        for (let q = 0; q < k; q++) v[q] = rng.normal();
      } while (!normalise(v));
      const lambda = powerIterate(work, k, v, opts.iterations);
      if (Math.abs(lambda) > bestAbs) {
        bestAbs = Math.abs(lambda);
        best = v;
      }
    }
    const v = best!;
    let lambda = powerIterate(work, k, v, opts.iterations);
    if (lambda < 0) {
      lambda = -lambda;
      for (let q = 0; q < k; q++) v[q] = -v[q]!;
    }
    for (let a = 0; a < k; a++) {
      for (let b = 0; b < k; b++) {
        for (let c = 0; c < k; c++) work[(a * k + b) * k + c] -= lambda * v[a]! * v[b]! * v[c]!;
      }
    }
    out.push({ weight: lambda, vector: v });
  }
  return out;
}
