//! The hot loop: weighted Gram accumulation `G_j += Σ_i w_ij x_i x_iᵀ` over a block of rows, upper triangle
//! only (the caller mirrors at the end). Rows are packed into column panels so that an AVX2+FMA 4×8
//! micro-kernel streams them from L1; a scalar path runs where AVX2/FMA is absent.

/// Rows per packed block (one A panel 4×ROW_BLOCK and one B panel 8×ROW_BLOCK stay in L1).
const ROW_BLOCK: usize = 256;
const MR: usize = 4;
const NR: usize = 8;

/// Padded dimension of the accumulators: d rounded up to a multiple of 8.
pub fn padded(d: usize) -> usize {
    d.div_ceil(NR) * NR
}

/// Packing buffers reused across calls.
#[derive(Default)]
pub struct GramScratch {
    b_pack: Vec<f64>,
    a_pack: Vec<f64>,
}

/// Accumulate `g` weighted Grams of the `l` rows of `x` (l×d contiguous) with weights `w` (l×g) into
/// `out` (g × dp × dp, dp = padded(d)); only entries (a, b) with b ≥ a are meaningful.
pub fn accumulate(x: &[f64], l: usize, d: usize, w: &[f64], g: usize, out: &mut [f64], sc: &mut GramScratch) {
    let dp = padded(d);
    debug_assert_eq!(out.len(), g * dp * dp);
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the features the kernel is compiled for were detected at run time.
            unsafe { accumulate_packed_simd(x, l, d, w, g, out, sc) };
            return;
        }
    }
    // SAFETY: the scalar path uses no CPU features.
    unsafe { accumulate_blocks(x, l, d, w, g, out, sc, false) };
}

/// Scalar reference (tests, and the definition of the result).
pub fn accumulate_naive(x: &[f64], l: usize, d: usize, w: &[f64], g: usize, out: &mut [f64]) {
    let dp = padded(d);
    for i in 0..l {
        let xi = &x[i * d..(i + 1) * d];
        for j in 0..g {
            let wij = w[i * g + j];
            if wij == 0.0 {
                continue;
            }
            let o = &mut out[j * dp * dp..(j + 1) * dp * dp];
            for a in 0..d {
                let wa = wij * xi[a];
                for b in a..d {
                    o[a * dp + b] += wa * xi[b];
                }
            }
        }
    }
}

#[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx2,fma"))]
unsafe fn accumulate_packed_simd(x: &[f64], l: usize, d: usize, w: &[f64], g: usize, out: &mut [f64], sc: &mut GramScratch) {
    accumulate_blocks(x, l, d, w, g, out, sc, true)
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn accumulate_blocks(
    x: &[f64],
    l: usize,
    d: usize,
    w: &[f64],
    g: usize,
    out: &mut [f64],
    sc: &mut GramScratch,
    simd: bool,
) {
    let dp = padded(d);
    let n_bp = dp / NR; // B panels (8 columns)
    let n_ap = dp / MR; // A panels (4 rows)
    let mut start = 0;
    while start < l {
        let rb = (l - start).min(ROW_BLOCK);
        // Pack B: panel p holds rows start..start+rb, columns p*8..p*8+8 (zero padded).
        sc.b_pack.clear();
        sc.b_pack.resize(n_bp * rb * NR, 0.0);
        for i in 0..rb {
            let xi = &x[(start + i) * d..(start + i + 1) * d];
            for (f, &v) in xi.iter().enumerate() {
                sc.b_pack[(f / NR) * rb * NR + i * NR + f % NR] = v;
            }
        }
        for j in 0..g {
            // Pack A for Gram j: w_ij·x_i in panels of 4 columns.
            sc.a_pack.clear();
            sc.a_pack.resize(n_ap * rb * MR, 0.0);
            let mut any = false;
            for i in 0..rb {
                let wij = w[(start + i) * g + j];
                if wij == 0.0 {
                    continue;
                }
                any = true;
                let xi = &x[(start + i) * d..(start + i + 1) * d];
                for (f, &v) in xi.iter().enumerate() {
                    sc.a_pack[(f / MR) * rb * MR + i * MR + f % MR] = wij * v;
                }
            }
            if !any {
                continue;
            }
            let o = &mut out[j * dp * dp..(j + 1) * dp * dp];
            for pa in 0..n_ap {
                let a_panel = &sc.a_pack[pa * rb * MR..(pa + 1) * rb * MR];
                let row0 = pa * MR;
                // B panels whose columns reach the upper triangle of these rows.
                for pb in (row0 / NR)..n_bp {
                    let b_panel = &sc.b_pack[pb * rb * NR..(pb + 1) * rb * NR];
                    let c = &mut o[row0 * dp + pb * NR..];
                    if simd {
                        #[cfg(target_arch = "x86_64")]
                        kernel_4x8_avx2(a_panel, b_panel, rb, c, dp);
                        #[cfg(not(target_arch = "x86_64"))]
                        kernel_4x8_scalar(a_panel, b_panel, rb, c, dp);
                    } else {
                        kernel_4x8_scalar(a_panel, b_panel, rb, c, dp);
                    }
                }
            }
        }
        start += rb;
    }
}

#[inline(always)]
fn kernel_4x8_scalar(a: &[f64], b: &[f64], rb: usize, c: &mut [f64], ldc: usize) {
    let mut acc = [[0.0f64; NR]; MR];
    for i in 0..rb {
        let ai = &a[i * MR..i * MR + MR];
        let bi = &b[i * NR..i * NR + NR];
        for r in 0..MR {
            for q in 0..NR {
                acc[r][q] += ai[r] * bi[q];
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
#[inline(always)]
unsafe fn kernel_4x8_avx2(a: &[f64], b: &[f64], rb: usize, c: &mut [f64], ldc: usize) {
    use std::arch::x86_64::*;
    debug_assert!(a.len() >= rb * MR && b.len() >= rb * NR && c.len() >= 3 * ldc + NR);
    let mut c00 = _mm256_setzero_pd();
    let mut c01 = _mm256_setzero_pd();
    let mut c10 = _mm256_setzero_pd();
    let mut c11 = _mm256_setzero_pd();
    let mut c20 = _mm256_setzero_pd();
    let mut c21 = _mm256_setzero_pd();
    let mut c30 = _mm256_setzero_pd();
    let mut c31 = _mm256_setzero_pd();
    let ap = a.as_ptr();
    let bp = b.as_ptr();
    for i in 0..rb {
        let b0 = _mm256_loadu_pd(bp.add(i * NR));
        let b1 = _mm256_loadu_pd(bp.add(i * NR + 4));
        let a0 = _mm256_broadcast_sd(&*ap.add(i * MR));
        c00 = _mm256_fmadd_pd(a0, b0, c00);
        c01 = _mm256_fmadd_pd(a0, b1, c01);
        let a1 = _mm256_broadcast_sd(&*ap.add(i * MR + 1));
        c10 = _mm256_fmadd_pd(a1, b0, c10);
        c11 = _mm256_fmadd_pd(a1, b1, c11);
        let a2 = _mm256_broadcast_sd(&*ap.add(i * MR + 2));
        c20 = _mm256_fmadd_pd(a2, b0, c20);
        c21 = _mm256_fmadd_pd(a2, b1, c21);
        let a3 = _mm256_broadcast_sd(&*ap.add(i * MR + 3));
        c30 = _mm256_fmadd_pd(a3, b0, c30);
        c31 = _mm256_fmadd_pd(a3, b1, c31);
    }
    let cp = c.as_mut_ptr();
    let add = |p: *mut f64, v: __m256d| _mm256_storeu_pd(p, _mm256_add_pd(_mm256_loadu_pd(p), v));
    add(cp, c00);
    add(cp.add(4), c01);
    add(cp.add(ldc), c10);
    add(cp.add(ldc + 4), c11);
    add(cp.add(2 * ldc), c20);
    add(cp.add(2 * ldc + 4), c21);
    add(cp.add(3 * ldc), c30);
    add(cp.add(3 * ldc + 4), c31);
}

/// Copy the upper triangle of a padded accumulator (dp×dp) into a full symmetric d×d matrix.
pub fn mirror_into(acc: &[f64], dp: usize, d: usize, out: &mut [f64]) {
    for a in 0..d {
        for b in a..d {
            let v = acc[a * dp + b];
            out[a * d + b] = v;
            out[b * d + a] = v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn packed_kernel_matches_naive() {
        let mut rng = Rng::new(7);
        for &(l, d, g) in &[(1usize, 1usize, 1usize), (300, 13, 3), (517, 50, 2), (40, 9, 1)] {
            let x: Vec<f64> = (0..l * d).map(|_| rng.uniform() - 0.5).collect();
            let w: Vec<f64> = (0..l * g).map(|_| if rng.uniform() < 0.1 { 0.0 } else { rng.uniform() }).collect();
            let dp = padded(d);
            let mut fast = vec![0.0; g * dp * dp];
            let mut slow = vec![0.0; g * dp * dp];
            accumulate(&x, l, d, &w, g, &mut fast, &mut GramScratch::default());
            accumulate_naive(&x, l, d, &w, g, &mut slow);
            for j in 0..g {
                for a in 0..d {
                    for b in a..d {
                        let (f, s) = (fast[j * dp * dp + a * dp + b], slow[j * dp * dp + a * dp + b]);
                        assert!((f - s).abs() <= 1e-12 * (1.0 + s.abs()), "l={l} d={d} j={j} ({a},{b}): {f} vs {s}");
                    }
                }
            }
        }
    }
}
