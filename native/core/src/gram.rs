//! The hot loop: weighted Gram accumulation `G_j += Σ_i w_ij x_i x_iᵀ` over a block of rows, upper triangle
//! only (the caller mirrors at the end). Each block of rows is packed once into row panels (6 features) and
//! column panels (8 features); an AVX2+FMA 6×8 micro-kernel then streams them from L1, applying the row
//! weight to the column panel on the fly, so no per-Gram packing is needed. A scalar kernel with the same
//! structure runs where AVX2/FMA is absent.

/// Rows per packed block (a 6-row and an 8-column panel of ROW_BLOCK rows stay in L1).
const ROW_BLOCK: usize = 256;
const MR: usize = 6;
const NR: usize = 8;

/// Accumulator geometry: rows padded to a multiple of MR, columns (the leading dimension) to NR.
fn rows_padded(d: usize) -> usize {
    d.div_ceil(MR) * MR
}
fn cols_padded(d: usize) -> usize {
    d.div_ceil(NR) * NR
}

/// Length of one Gram's accumulator.
pub fn acc_len(d: usize) -> usize {
    rows_padded(d) * cols_padded(d)
}

/// Packing buffers reused across calls.
#[derive(Default)]
pub struct GramScratch {
    a_pack: Vec<f64>,
    b_pack: Vec<f64>,
}

/// Accumulate `g` weighted Grams of the `l` rows of `x` (l×d contiguous) with weights `w` (l×g) into
/// `out` (g accumulators of `acc_len(d)`); only entries (a, b) with b ≥ a are meaningful.
pub fn accumulate(x: &[f64], l: usize, d: usize, w: &[f64], g: usize, out: &mut [f64], sc: &mut GramScratch) {
    debug_assert_eq!(out.len(), g * acc_len(d));
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the features the kernel is compiled for were detected at run time.
            unsafe { accumulate_avx2(x, l, d, w, g, out, sc) };
            return;
        }
    }
    accumulate_blocks(x, l, d, w, g, out, sc, kernel_scalar);
}

/// Scalar reference (tests, and the definition of the result).
pub fn accumulate_naive(x: &[f64], l: usize, d: usize, w: &[f64], g: usize, out: &mut [f64]) {
    let ldc = cols_padded(d);
    let len = acc_len(d);
    for i in 0..l {
        let xi = &x[i * d..(i + 1) * d];
        for j in 0..g {
            let wij = w[i * g + j];
            let o = &mut out[j * len..(j + 1) * len];
            for a in 0..d {
                let wa = wij * xi[a];
                for b in a..d {
                    o[a * ldc + b] += wa * xi[b];
                }
            }
        }
    }
}

/// Copy the upper triangle of an accumulator into a full symmetric d×d matrix.
pub fn mirror_into(acc: &[f64], d: usize, out: &mut [f64]) {
    let ldc = cols_padded(d);
    for a in 0..d {
        for b in a..d {
            let v = acc[a * ldc + b];
            out[a * d + b] = v;
            out[b * d + a] = v;
        }
    }
}

/// A micro-kernel: C[6×8] += Σ_i A[i][0..6] ⊗ (w_i · B[i][0..8]) over `rb` packed rows.
type Kernel = unsafe fn(a: &[f64], b: &[f64], w: &[f64], wstride: usize, rb: usize, c: &mut [f64], ldc: usize);

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn accumulate_avx2(x: &[f64], l: usize, d: usize, w: &[f64], g: usize, out: &mut [f64], sc: &mut GramScratch) {
    accumulate_blocks(x, l, d, w, g, out, sc, kernel_avx2)
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn accumulate_blocks(
    x: &[f64],
    l: usize,
    d: usize,
    w: &[f64],
    g: usize,
    out: &mut [f64],
    sc: &mut GramScratch,
    kernel: Kernel,
) {
    let (dpa, ldc) = (rows_padded(d), cols_padded(d));
    let (n_ap, n_bp) = (dpa / MR, ldc / NR);
    let len = acc_len(d);
    let mut start = 0;
    while start < l {
        let rb = (l - start).min(ROW_BLOCK);
        pack::<MR>(x, start, rb, d, n_ap, &mut sc.a_pack);
        pack::<NR>(x, start, rb, d, n_bp, &mut sc.b_pack);
        for j in 0..g {
            let wj = &w[start * g + j..];
            // Skip a Gram whose weights all vanish on this block (an expert without responsibility here).
            if (0..rb).all(|i| wj[i * g] == 0.0) {
                continue;
            }
            let o = &mut out[j * len..(j + 1) * len];
            for pa in 0..n_ap {
                let a_panel = &sc.a_pack[pa * rb * MR..(pa + 1) * rb * MR];
                let row0 = pa * MR;
                // Column panels that reach the upper triangle of these rows.
                for pb in (row0 / NR)..n_bp {
                    let b_panel = &sc.b_pack[pb * rb * NR..(pb + 1) * rb * NR];
                    // SAFETY: panels hold rb rows; c has MR rows of ldc from (row0, pb·NR) inside `o`.
                    unsafe { kernel(a_panel, b_panel, wj, g, rb, &mut o[row0 * ldc + pb * NR..], ldc) };
                }
            }
        }
        start += rb;
    }
}

/// Panel-major packing: panel p holds rows start..start+rb, features p·width.. (zero padded).
/// Every cell is written (padding with zeros), so the buffer is never cleared; fixed-width copies of W
/// values compile to plain moves instead of memmove calls.
fn pack<const W: usize>(x: &[f64], start: usize, rb: usize, d: usize, panels: usize, dst: &mut Vec<f64>) {
    dst.resize(panels * rb * W, 0.0);
    let full = d / W;
    for i in 0..rb {
        let xi = &x[(start + i) * d..(start + i + 1) * d];
        for p in 0..full {
            let o = p * rb * W + i * W;
            dst[o..o + W].copy_from_slice(&xi[p * W..p * W + W]);
        }
        for p in full..panels {
            let o = p * rb * W + i * W;
            for q in 0..W {
                let f = p * W + q;
                dst[o + q] = if f < d { xi[f] } else { 0.0 };
            }
        }
    }
}

unsafe fn kernel_scalar(a: &[f64], b: &[f64], w: &[f64], wstride: usize, rb: usize, c: &mut [f64], ldc: usize) {
    let mut acc = [[0.0f64; NR]; MR];
    for i in 0..rb {
        let wi = w[i * wstride];
        let ai = &a[i * MR..i * MR + MR];
        let bi = &b[i * NR..i * NR + NR];
        for q in 0..NR {
            let bw = wi * bi[q];
            for r in 0..MR {
                acc[r][q] += ai[r] * bw;
            }
        }
    }
    for r in 0..MR {
        for q in 0..NR {
            c[r * ldc + q] += acc[r][q];
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel_avx2(a: &[f64], b: &[f64], w: &[f64], wstride: usize, rb: usize, c: &mut [f64], ldc: usize) {
    use std::arch::x86_64::*;
    debug_assert!(a.len() >= rb * MR && b.len() >= rb * NR && c.len() >= (MR - 1) * ldc + NR);
    debug_assert!(rb == 0 || w.len() > (rb - 1) * wstride);
    let mut acc = [_mm256_setzero_pd(); 2 * MR];
    let (ap, bp, wp) = (a.as_ptr(), b.as_ptr(), w.as_ptr());
    for i in 0..rb {
        let wi = _mm256_broadcast_sd(&*wp.add(i * wstride));
        let b0 = _mm256_mul_pd(wi, _mm256_loadu_pd(bp.add(i * NR)));
        let b1 = _mm256_mul_pd(wi, _mm256_loadu_pd(bp.add(i * NR + 4)));
        let ai = ap.add(i * MR);
        for r in 0..MR {
            let ar = _mm256_broadcast_sd(&*ai.add(r));
            acc[2 * r] = _mm256_fmadd_pd(ar, b0, acc[2 * r]);
            acc[2 * r + 1] = _mm256_fmadd_pd(ar, b1, acc[2 * r + 1]);
        }
    }
    let cp = c.as_mut_ptr();
    for r in 0..MR {
        let p0 = cp.add(r * ldc);
        _mm256_storeu_pd(p0, _mm256_add_pd(_mm256_loadu_pd(p0), acc[2 * r]));
        let p1 = cp.add(r * ldc + 4);
        _mm256_storeu_pd(p1, _mm256_add_pd(_mm256_loadu_pd(p1), acc[2 * r + 1]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn check(fast: &[f64], slow: &[f64], d: usize, g: usize, what: &str) {
        let (len, ldc) = (acc_len(d), cols_padded(d));
        for j in 0..g {
            for a in 0..d {
                for b in a..d {
                    let (f, s) = (fast[j * len + a * ldc + b], slow[j * len + a * ldc + b]);
                    assert!((f - s).abs() <= 1e-12 * (1.0 + s.abs()), "{what} j={j} ({a},{b}): {f} vs {s}");
                }
            }
        }
    }

    #[test]
    fn packed_kernels_match_naive() {
        let mut rng = Rng::new(7);
        for &(l, d, g) in &[(1usize, 1usize, 1usize), (300, 13, 3), (517, 50, 2), (40, 9, 1), (600, 17, 4)] {
            let x: Vec<f64> = (0..l * d).map(|_| rng.uniform() - 0.5).collect();
            let w: Vec<f64> = (0..l * g).map(|_| if rng.uniform() < 0.1 { 0.0 } else { rng.uniform() }).collect();
            let mut slow = vec![0.0; g * acc_len(d)];
            accumulate_naive(&x, l, d, &w, g, &mut slow);
            let mut fast = vec![0.0; g * acc_len(d)];
            accumulate(&x, l, d, &w, g, &mut fast, &mut GramScratch::default());
            check(&fast, &slow, d, g, "dispatch");
            let mut scalar = vec![0.0; g * acc_len(d)];
            accumulate_blocks(&x, l, d, &w, g, &mut scalar, &mut GramScratch::default(), kernel_scalar);
            check(&scalar, &slow, d, g, "scalar");
        }
    }
}
