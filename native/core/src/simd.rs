//! Small vector kernels of the row loop (projections A = P·x, XᵀR updates) with an AVX2+FMA path chosen
//! once per pass; the scalar fallbacks compute the same sums in a fixed order.

/// Whether the AVX2+FMA paths may run on this CPU.
pub fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether AVX2 alone may run on this CPU: the host solvers' kernels (linalg, kronecker), which keep a separate
/// multiply and add for the same bits as their scalar loops, need no FMA.
pub fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// out[t] = P_t · x for the q rows of P (q×d row-major).
pub fn project(p: &[f64], d: usize, x: &[f64], out: &mut [f64], simd: bool) {
    if out.is_empty() {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    {
        if simd {
            // SAFETY: `simd` is only true when AVX2 and FMA were detected.
            unsafe { project_avx2(p, d, x, out) };
            return;
        }
    }
    let _ = simd;
    for (t, o) in out.iter_mut().enumerate() {
        let row = &p[t * d..(t + 1) * d];
        let mut acc = 0.0;
        for f in 0..d {
            acc += row[f] * x[f];
        }
        *o = acc;
    }
}

/// y += alpha·x.
pub fn axpy(alpha: f64, x: &[f64], y: &mut [f64], simd: bool) {
    #[cfg(target_arch = "x86_64")]
    {
        if simd {
            // SAFETY: as in `project`.
            unsafe { axpy_avx2(alpha, x, y) };
            return;
        }
    }
    let _ = simd;
    for (o, &v) in y.iter_mut().zip(x) {
        *o += alpha * v;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn project_avx2(p: &[f64], d: usize, x: &[f64], out: &mut [f64]) {
    use std::arch::x86_64::*;
    let q = out.len();
    assert!(p.len() >= q * d && x.len() >= d);
    let (pp, xp) = (p.as_ptr(), x.as_ptr());
    let d4 = d / 4 * 4;
    let hsum = |v: __m256d| {
        let lo = _mm256_castpd256_pd128(v);
        let hi = _mm256_extractf128_pd(v, 1);
        let s = _mm_add_pd(lo, hi);
        _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)))
    };
    let mut t = 0;
    // Four projections at a time: x is loaded once per four rows of P.
    while t + 4 <= q {
        let (mut a0, mut a1, mut a2, mut a3) =
            (_mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd());
        let mut f = 0;
        while f < d4 {
            let xv = _mm256_loadu_pd(xp.add(f));
            a0 = _mm256_fmadd_pd(_mm256_loadu_pd(pp.add(t * d + f)), xv, a0);
            a1 = _mm256_fmadd_pd(_mm256_loadu_pd(pp.add((t + 1) * d + f)), xv, a1);
            a2 = _mm256_fmadd_pd(_mm256_loadu_pd(pp.add((t + 2) * d + f)), xv, a2);
            a3 = _mm256_fmadd_pd(_mm256_loadu_pd(pp.add((t + 3) * d + f)), xv, a3);
            f += 4;
        }
        let mut s = [hsum(a0), hsum(a1), hsum(a2), hsum(a3)];
        for f in d4..d {
            let xv = *xp.add(f);
            for (u, su) in s.iter_mut().enumerate() {
                *su += *pp.add((t + u) * d + f) * xv;
            }
        }
        out[t..t + 4].copy_from_slice(&s);
        t += 4;
    }
    while t < q {
        let mut a0 = _mm256_setzero_pd();
        let mut f = 0;
        while f < d4 {
            a0 = _mm256_fmadd_pd(_mm256_loadu_pd(pp.add(t * d + f)), _mm256_loadu_pd(xp.add(f)), a0);
            f += 4;
        }
        let mut s = hsum(a0);
        for f in d4..d {
            s += *pp.add(t * d + f) * *xp.add(f);
        }
        out[t] = s;
        t += 1;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn axpy_avx2(alpha: f64, x: &[f64], y: &mut [f64]) {
    use std::arch::x86_64::*;
    let n = x.len().min(y.len());
    let (xp, yp) = (x.as_ptr(), y.as_mut_ptr());
    let av = _mm256_set1_pd(alpha);
    let mut f = 0;
    while f + 4 <= n {
        _mm256_storeu_pd(yp.add(f), _mm256_fmadd_pd(av, _mm256_loadu_pd(xp.add(f)), _mm256_loadu_pd(yp.add(f))));
        f += 4;
    }
    while f < n {
        *yp.add(f) += alpha * *xp.add(f);
        f += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simd_and_scalar_paths_agree() {
        let mut rng = crate::rng::Rng::new(3);
        for &(q, d) in &[(1usize, 1usize), (3, 7), (8, 50), (9, 13)] {
            let p: Vec<f64> = (0..q * d).map(|_| rng.uniform() - 0.5).collect();
            let x: Vec<f64> = (0..d).map(|_| rng.uniform() - 0.5).collect();
            let (mut a, mut b) = (vec![0.0; q], vec![0.0; q]);
            project(&p, d, &x, &mut a, has_avx2_fma());
            project(&p, d, &x, &mut b, false);
            for (u, v) in a.iter().zip(&b) {
                assert!((u - v).abs() < 1e-13);
            }
            let (mut y1, mut y2) = (p[..d].to_vec(), p[..d].to_vec());
            axpy(0.7, &x, &mut y1, has_avx2_fma());
            axpy(0.7, &x, &mut y2, false);
            for (u, v) in y1.iter().zip(&y2) {
                assert!((u - v).abs() < 1e-14);
            }
        }
    }
}
