/**
 * Weighted Gram matrices G_q = Σ_i w_iq x_i x_iᵀ for several weight columns q at once — the cost centre of
 * the linear M-step and of the Newton M-step's Hessian. Rows are processed in blocks transposed to
 * feature-major order so that the innermost loop is a contiguous dot product over the block's rows, with a
 * 2×2 register block over (f, g) (four accumulators share four loads): about 2.5× faster than row-by-row
 * rank-one updates in V8.
 */

const BLOCK_ROWS = 128;

/**
 * Writes G_q (full symmetric d×d, row-major) to out[q·d·d ..] for q = 0..Q−1, with the weights read as
 * `weights[i·Q + q]` (n×Q row-major).
 */
export function weightedGrams(x: Float64Array, n: number, d: number, weights: Float64Array, Q: number,
  out: Float64Array): Float64Array {
  out.fill(0, 0, Q * d * d);
  const xt = new Float64Array(d * BLOCK_ROWS);
  const wx = new Float64Array(Q * d * BLOCK_ROWS);
  for (let start = 0; start < n; start += BLOCK_ROWS) {
    const B = Math.min(BLOCK_ROWS, n - start);
    if (B < BLOCK_ROWS) {
      // The short last block runs the full-length loop over zero padding.
      xt.fill(0);
      wx.fill(0);
    }
    for (let r = 0; r < B; r++) {
      const xo = (start + r) * d;
      const wo = (start + r) * Q;
      for (let f = 0; f < d; f++) {
        const v = x[xo + f]!;
        xt[f * BLOCK_ROWS + r] = v;
        for (let q = 0; q < Q; q++) wx[(q * d + f) * BLOCK_ROWS + r] = weights[wo + q]! * v;
      }
    }
    for (let q = 0; q < Q; q++) {
      const go = q * d * d;
      for (let f = 0; f < d; f += 2) {
        const f1 = f + 1 < d ? f + 1 : f;
        const w0 = (q * d + f) * BLOCK_ROWS;
        const w1 = (q * d + f1) * BLOCK_ROWS;
        for (let g = f; g < d; g += 2) {
          const g1 = g + 1 < d ? g + 1 : g;
          const x0 = g * BLOCK_ROWS;
          const x1 = g1 * BLOCK_ROWS;
          let a00 = 0; let a01 = 0; let a10 = 0; let a11 = 0;
          for (let r = 0; r < BLOCK_ROWS; r++) {
            const u0 = wx[w0 + r]!; const u1 = wx[w1 + r]!;
            const v0 = xt[x0 + r]!; const v1 = xt[x1 + r]!;
            a00 += u0 * v0; a01 += u0 * v1; a10 += u1 * v0; a11 += u1 * v1;
          }
          // Entries below the diagonal (f1 > g) are overwritten by the symmetrisation below.
          out[go + f * d + g] += a00;
          if (g1 !== g) out[go + f * d + g1] += a01;
          if (f1 !== f) {
            out[go + f1 * d + g] += a10;
            if (g1 !== g) out[go + f1 * d + g1] += a11;
          }
        }
      }
    }
  }
  for (let q = 0; q < Q; q++) {
    const go = q * d * d;
    for (let f = 0; f < d; f++) for (let g = f + 1; g < d; g++) out[go + g * d + f] = out[go + f * d + g]!;
  }
  return out;
}
