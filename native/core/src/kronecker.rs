//! The Kronecker preconditioner for Newton-CG on the softmax problems of the general model: the gate and the
//! logistic / multinomial experts (ALGORITHMS §3; src/algorithms/kronecker.ts).
//!
//! A problem with row weights c (the gate: s; expert j: s·h_j) has the curvature
//! `−H = Σ_i c_i M_i ⊗ x_i x_iᵀ + λI'`, with `M_i = diag(π_i) − π_i π_iᵀ` over its m free classes. Replacing
//! every `M_i` by their c-weighted mean C and x xᵀ by the data's mean `Ĝ = Σ s x xᵀ / S` gives
//! `−H ≈ (Σc)·C ⊗ Ĝ + λI'`, whose inverse is two small Cholesky solves: Ĝ's (d×d, shared by every problem:
//! factored once per fit, or again where a ridge term μ has moved too far, see `serves`) and C's (m×m, from a
//! fixed sample of rows at each Newton iterate). Unlike the Jacobi preconditioner it sees the features'
//! correlations and scales and the classes' coupling: on correlated features CG needs a few iterations where
//! Jacobi needs a hundred, and on the multinomial experts of a Fashion-MNIST-shaped problem Jacobi does not
//! reach even η = 0.1 in 20 (bench/RESULTS.md). An expert's own Ĝ_j weighted by h_j does no better there than
//! the shared Ĝ (measured on the reference).

use std::cell::RefCell;
use std::rc::Rc;

use crate::api::Result;
use crate::backend::{Backend, RowOp, Rows};
use crate::linalg::{self, CholeskyFactor};

/// Rows in the sample that C is averaged over: rows ⌊j·n/count⌋, j < count = min(n, SAMPLE_ROWS).
pub const SAMPLE_ROWS: usize = 512;
/// Ĝ's and C's diagonals are scaled by 1 + JITTER (see `spd_factor`): a preconditioner needs to be SPD, not
/// exact.
const JITTER: f64 = 1e-6;
/// With a ridge, each problem's μ moves at every Newton iterate (with C's trace), and the problems' μ differ. A
/// factor of Ĝ + μ_b I' serves a μ whose difference from μ_b is at most MU_REUSE_RATIO − 1 times the smallest
/// diagonal entry of Ĝ + min(μ, μ_b) I' (`serves`): it then changes no direction of the preconditioner by more
/// than that fraction. Where Ĝ's diagonal dwarfs μ (well-scaled features, a small ridge) one factor serves the
/// whole fit; where a feature has no variance it is a ratio μ/μ_b ≤ MU_REUSE_RATIO. A factor is O(d³) on the
/// host (35 ms at d = 784): several per EM iteration would cost more than a GPU's passes.
const MU_REUSE_RATIO: f64 = 1.25;
/// Factors of Ĝ + μI' kept for reuse, the most recently built first.
const KEPT_FACTORS: usize = 4;

/// The sample's row indices.
pub fn sample_rows(n: usize) -> Vec<usize> {
    let count = n.min(SAMPLE_ROWS);
    (0..count).map(|j| ((j as u128 * n as u128) / count as u128) as usize).collect()
}

/// What the preconditioners need from the data, computed once per fit.
pub struct KroneckerStatistics {
    d: usize,
    intercept: bool,
    /// Ĝ = Σ s x xᵀ / S (d×d).
    gram_mean: Vec<f64>,
    /// The sample's rows, transposed by blocks for `class_covariance`, and their weights.
    sample_x: SampleBlocks,
    sample_s: Vec<f64>,
    /// The smallest diagonal entry of Ĝ over the penalised features (∞ without one): what μ is compared with.
    gram_diag_min: f64,
    /// Cholesky factors of Ĝ + μI' + jitter with the μ each was built with, the most recent first (at most
    /// KEPT_FACTORS; without a ridge, the one factor of Ĝ).
    factors: RefCell<Vec<(f64, Rc<CholeskyFactor>)>>,
    /// Threads for the applies' right-hand sides (`Backend::host_threads`).
    threads: usize,
}

impl KroneckerStatistics {
    /// One Gram pass over all rows and the sample's rows; `weight` = S = Σ s.
    pub fn new<B: Backend + ?Sized>(b: &B, weight: f64, intercept: bool) -> Result<Self> {
        let d = b.d();
        let mut gram_mean = b.pass(Rows::All, &[], &RowOp::Gram)?.grams;
        gram_mean.iter_mut().for_each(|v| *v /= weight);
        let (sample_x, sample_s) = b.gather_rows(&sample_rows(b.n()))?;
        Ok(Self::from_parts(d, intercept, gram_mean, sample_x, sample_s, b.host_threads()))
    }

    fn from_parts(
        d: usize,
        intercept: bool,
        gram_mean: Vec<f64>,
        sample_x: Vec<f64>,
        sample_s: Vec<f64>,
        threads: usize,
    ) -> Self {
        let gram_diag_min = (usize::from(intercept)..d).map(|f| gram_mean[f * d + f]).fold(f64::INFINITY, f64::min);
        let sample_x = SampleBlocks::new(&sample_x, d);
        KroneckerStatistics {
            d,
            intercept,
            gram_mean,
            sample_x,
            sample_s,
            gram_diag_min,
            factors: RefCell::default(),
            threads,
        }
    }

    /// The sample's row weights s (1 without weights): the gate's c at the sample rows.
    pub fn sample_s(&self) -> &[f64] {
        &self.sample_s
    }

    /// The preconditioner at V (m×d) of a problem with Σ c = `sum_c`, ridge λ and row weights `sample_c` at the
    /// sample rows (`sample_rows` order).
    pub fn at(&self, v: &[f64], sum_c: f64, ridge: f64, sample_c: &[f64]) -> Kronecker {
        let d = self.d;
        let m = v.len() / d;
        let class = class_covariance(v, m, d, &self.sample_x, sample_c);
        // (Σc)·C ⊗ Ĝ + λI' ≈ (Σc)·C ⊗ (Ĝ + μI') with μ = λ/((Σc)·c̄), c̄ = tr(C)/m: exact when C = c̄I.
        let c_bar = (0..m).map(|a| class[a * m + a]).sum::<f64>() / m as f64;
        let mu = if ridge > 0.0 { ridge / (sum_c * c_bar) } else { 0.0 };
        let gram_factor = self.gram_factor(mu);
        Kronecker {
            d,
            m,
            scale: 1.0 / sum_c,
            class_factor: CholeskyFactor::new(spd_factor(class, m), m),
            gram_factor,
            threads: self.threads,
        }
    }

    /// A factor of Ĝ + μI': the most recent kept one that `serves` μ, else a new one.
    fn gram_factor(&self, mu: f64) -> Rc<CholeskyFactor> {
        let mut factors = self.factors.borrow_mut();
        if let Some((_, factor)) = factors.iter().find(|&&(built, _)| serves(built, mu, self.gram_diag_min)) {
            return Rc::clone(factor);
        }
        let d = self.d;
        let mut g = self.gram_mean.clone();
        for f in usize::from(self.intercept)..d {
            g[f * d + f] += mu;
        }
        let factor = Rc::new(CholeskyFactor::new(spd_factor(g, d), d));
        factors.insert(0, (mu, Rc::clone(&factor)));
        factors.truncate(KEPT_FACTORS);
        factor
    }
}

/// Whether the factor of Ĝ + μ_b I' (`built`) serves μ: the same value, or |μ − μ_b| ≤ (MU_REUSE_RATIO − 1) ·
/// (min diag Ĝ + min(μ, μ_b)). With `gram_diag_min` = 0 that is μ/μ_b within MU_REUSE_RATIO both ways.
fn serves(built: f64, mu: f64, gram_diag_min: f64) -> bool {
    built.to_bits() == mu.to_bits() || (mu - built).abs() <= (MU_REUSE_RATIO - 1.0) * (gram_diag_min + mu.min(built))
}

/// Rows whose logits `class_covariance` computes together.
const LOGIT_ROWS: usize = 8;

/// The sample's rows by blocks of LOGIT_ROWS, each block transposed (d × LOGIT_ROWS, a short last block's
/// missing rows zeros): built once per fit, read at every Newton iterate.
struct SampleBlocks {
    d: usize,
    blocks: Vec<f64>,
}

impl SampleBlocks {
    fn new(x: &[f64], d: usize) -> Self {
        let size = (d * LOGIT_ROWS).max(1);
        let rows = x.len() / d.max(1);
        let mut blocks = vec![0.0; rows.div_ceil(LOGIT_ROWS) * size];
        for (i, row) in x.chunks_exact(d.max(1)).enumerate() {
            let xt = &mut blocks[i / LOGIT_ROWS * size..];
            for (f, &xf) in row.iter().enumerate() {
                xt[f * LOGIT_ROWS + i % LOGIT_ROWS] = xf;
            }
        }
        SampleBlocks { d, blocks }
    }

    fn iter(&self) -> impl Iterator<Item = &[f64]> {
        self.blocks.chunks_exact((self.d * LOGIT_ROWS).max(1))
    }
}

/// C = Σ_j c_j M_j / Σ_j c_j over the sample at V, with the sample's row weights c (M_j = diag(π_j) − π_j π_jᵀ, m
/// free classes of m+1).
///
/// Each logit v_a · x is summed in feature order (as linalg::dot), so the result is the same bits as one dot
/// product per row and class; but the sample's rows go LOGIT_ROWS at a time, transposed, so that the sums of
/// those rows advance together: independent multiply-adds over contiguous memory rather than one serial chain
/// per logit, whatever m is (the gate of a two-expert model has m = 1). It runs at every Newton iterate of the
/// gate and of each softmax expert, on the host, between a GPU backend's passes.
fn class_covariance(v: &[f64], m: usize, d: usize, x: &SampleBlocks, c_rows: &[f64]) -> Vec<f64> {
    let mut c = vec![0.0; m * m];
    let mut total = 0.0;
    let mut logits = vec![[0.0; LOGIT_ROWS]; m];
    let mut pi = vec![0.0; m + 1];
    for (xt, weights) in x.iter().zip(c_rows.chunks(LOGIT_ROWS)) {
        block_logits(v, d, xt, &mut logits);
        for (r, &w) in weights.iter().enumerate() {
            for (p, sums) in pi.iter_mut().zip(&logits) {
                *p = sums[r];
            }
            pi[m] = 0.0;
            let top = pi.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let mut z = 0.0;
            for p in pi.iter_mut() {
                *p = (*p - top).exp();
                z += *p;
            }
            pi.iter_mut().for_each(|p| *p /= z);
            for a in 0..m {
                let w_pa = w * pi[a];
                let ca = &mut c[a * m..(a + 1) * m];
                ca[a] += w_pa;
                for (cab, &pb) in ca.iter_mut().zip(&pi[..m]) {
                    *cab -= w_pa * pb;
                }
            }
            total += w;
        }
    }
    if total > 0.0 {
        c.iter_mut().for_each(|v| *v /= total);
    }
    c
}

/// logits[a][r] = Σ_f v_a[f]·xt[f][r], summed in feature order from 0 (the block's rows r < LOGIT_ROWS). By AVX2
/// where the CPU has it, four classes at a time (8 independent sums per class, a separate multiply and add:
/// the same bits); the scalar loop otherwise.
fn block_logits(v: &[f64], d: usize, xt: &[f64], logits: &mut [[f64; LOGIT_ROWS]]) {
    #[cfg(target_arch = "x86_64")]
    {
        if crate::simd::has_avx2() {
            // SAFETY: AVX2 was detected; v holds logits.len() rows of d, xt d rows of LOGIT_ROWS.
            unsafe { block_logits_avx2(v, d, xt, logits) };
            return;
        }
    }
    block_logits_scalar(v, d, xt, logits);
}

fn block_logits_scalar(v: &[f64], d: usize, xt: &[f64], logits: &mut [[f64; LOGIT_ROWS]]) {
    for (va, sums) in v.chunks_exact(d).zip(logits.iter_mut()) {
        *sums = [0.0; LOGIT_ROWS];
        for (&vaf, xf) in va.iter().zip(xt.chunks_exact(LOGIT_ROWS)) {
            for (sum, &x) in sums.iter_mut().zip(xf) {
                *sum += vaf * x;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn block_logits_avx2(v: &[f64], d: usize, xt: &[f64], logits: &mut [[f64; LOGIT_ROWS]]) {
    assert!(v.len() >= logits.len() * d && xt.len() >= d * LOGIT_ROWS);
    let (v, xt) = (v.as_ptr(), xt.as_ptr());
    for (g, sums) in logits.chunks_mut(4).enumerate() {
        let first = v.add(g * 4 * d);
        match sums.len() {
            4 => logits_avx2::<4>(first, d, xt, sums),
            3 => logits_avx2::<3>(first, d, xt, sums),
            2 => logits_avx2::<2>(first, d, xt, sums),
            _ => logits_avx2::<1>(first, d, xt, sums),
        }
    }
}

/// `block_logits` for the G classes whose rows of V begin at `v`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn logits_avx2<const G: usize>(v: *const f64, d: usize, xt: *const f64, logits: &mut [[f64; LOGIT_ROWS]]) {
    use std::arch::x86_64::*;
    let mut sums = [[_mm256_setzero_pd(); 2]; G];
    for f in 0..d {
        let lo = _mm256_loadu_pd(xt.add(f * LOGIT_ROWS));
        let hi = _mm256_loadu_pd(xt.add(f * LOGIT_ROWS + 4));
        for (t, sum) in sums.iter_mut().enumerate() {
            let vaf = _mm256_set1_pd(*v.add(t * d + f));
            sum[0] = _mm256_add_pd(sum[0], _mm256_mul_pd(vaf, lo));
            sum[1] = _mm256_add_pd(sum[1], _mm256_mul_pd(vaf, hi));
        }
    }
    for (out, sum) in logits.iter_mut().zip(&sums) {
        _mm256_storeu_pd(out.as_mut_ptr(), sum[0]);
        _mm256_storeu_pd(out.as_mut_ptr().add(4), sum[1]);
    }
}

/// The Cholesky factor of A with its diagonal scaled by 1 + JITTER (scale-free, and SPD when A is only
/// semi-definite: repeated features, one-hot probabilities); a zero diagonal entry (a feature that is zero in
/// every row) gets the mean of the others. The identity's factor when that still fails.
fn spd_factor(mut a: Vec<f64>, p: usize) -> Vec<f64> {
    let positive: Vec<f64> = (0..p).map(|i| a[i * p + i]).filter(|&v| v > 0.0).collect();
    let empty = if positive.is_empty() { 1.0 } else { positive.iter().sum::<f64>() / positive.len() as f64 };
    for i in 0..p {
        let v = a[i * p + i];
        a[i * p + i] = if v > 0.0 { v * (1.0 + JITTER) } else { empty };
    }
    if empty.is_finite() && linalg::cholesky_in_place(&mut a, p) {
        return a;
    }
    let mut id = vec![0.0; p * p];
    (0..p).for_each(|i| id[i * p + i] = 1.0);
    id
}

/// (S·C ⊗ Ĝ_μ)⁻¹ from the two factors.
pub struct Kronecker {
    d: usize,
    m: usize,
    scale: f64,
    class_factor: CholeskyFactor,
    gram_factor: Rc<CholeskyFactor>,
    threads: usize,
}

impl Kronecker {
    /// z = (S·C ⊗ Ĝ_μ)⁻¹ r, with r and z laid out as V (m rows of d): Ĝ's solves on the rows, then C's on
    /// the columns, each in `linalg::factor_solve_in_place`'s order (src/algorithms/kronecker.ts the same).
    pub fn apply(&self, r: &[f64], z: &mut [f64]) {
        z.copy_from_slice(r);
        self.gram_factor.solve_vectors(z, self.m, self.threads);
        self.class_factor.solve_columns(z, self.d);
        z.iter_mut().for_each(|v| *v *= self.scale);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `apply` inverts S·C ⊗ Ĝ (checked by multiplying back), and C is the sample's mean softmax covariance.
    #[test]
    fn kronecker_apply_inverts_the_product() {
        let (d, m, count) = (4, 2, 9);
        let mut rng = crate::rng::Rng::new(5);
        let x: Vec<f64> = (0..count * d).map(|_| rng.uniform() - 0.5).collect();
        let s: Vec<f64> = (0..count).map(|_| 0.5 + rng.uniform()).collect();
        let v: Vec<f64> = (0..m * d).map(|_| 2.0 * rng.uniform() - 1.0).collect();
        let mut gram = vec![0.0; d * d];
        for (row, &w) in x.chunks_exact(d).zip(&s) {
            for f in 0..d {
                for g in 0..d {
                    gram[f * d + g] += w * row[f] * row[g];
                }
            }
        }
        let total: f64 = s.iter().sum();
        gram.iter_mut().for_each(|g| *g /= total);
        let stats = KroneckerStatistics::from_parts(d, false, gram.clone(), x, s, 1);
        let sum_c = 7.0;
        let kron = stats.at(&v, sum_c, 0.0, stats.sample_s());
        let class = class_covariance(&v, m, d, &stats.sample_x, &stats.sample_s);
        // Row sums of a softmax covariance over all m+1 classes are 0, so over the m free ones they are π_ref·π_a > 0.
        assert!((0..m).all(|a| class[a * m + a] > 0.0));
        let r: Vec<f64> = (0..m * d).map(|i| (i as f64 * 0.37).sin()).collect();
        let mut z = vec![0.0; m * d];
        kron.apply(&r, &mut z);
        // (S·C ⊗ Ĝ) z with the diagonals the factors carry.
        for a in 0..m {
            for f in 0..d {
                let mut back = 0.0;
                for b in 0..m {
                    for g in 0..d {
                        let cab = class[a * m + b] * if a == b { 1.0 + JITTER } else { 1.0 };
                        let gfg = gram[f * d + g] * if f == g { 1.0 + JITTER } else { 1.0 };
                        back += sum_c * cab * gfg * z[b * d + g];
                    }
                }
                assert!((back - r[a * d + f]).abs() < 1e-12, "({a},{f}): {back} vs {}", r[a * d + f]);
            }
        }
    }

    /// A factor of Ĝ + μ_b I' serves while |μ − μ_b| ≤ 0.25·(min diag Ĝ + min(μ, μ_b)), for any problem; the
    /// most recent KEPT_FACTORS are kept.
    #[test]
    fn gram_factors_serve_every_problem_while_mu_is_close() {
        let d = 3;
        let v = [0.4, -0.1, 0.2];
        // A feature without variance: the rule is the ratio μ/μ_b ≤ 1.25 both ways.
        let stats = KroneckerStatistics::from_parts(
            d,
            false,
            vec![2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 3.0],
            vec![0.3, -0.2, 0.5],
            vec![1.0],
            1,
        );
        let factor = |ridge: f64| stats.at(&v, 1.0, ridge, &[1.0]).gram_factor;
        let l0 = factor(1e-2);
        assert!(Rc::ptr_eq(&l0, &factor(1.2e-2))); // μ ∝ λ here: 1.2× is within the ratio
        let l1 = factor(1.3e-2);
        assert!(!Rc::ptr_eq(&l0, &l1));
        assert!(Rc::ptr_eq(&l0, &factor(0.9e-2))); // the older factor still serves μ near its own
        for (i, ridge) in [1e-1, 1.0, 10.0, 100.0].into_iter().enumerate() {
            assert!(!Rc::ptr_eq(&l1, &factor(ridge)), "{i}");
        }
        assert!(!Rc::ptr_eq(&l0, &factor(1e-2))); // evicted by the last four
        let l3 = factor(0.0); // no ridge: μ = 0 is never "close" to a positive μ
        assert!(Rc::ptr_eq(&l3, &factor(0.0)));
        // Every feature with variance ≥ 1: a μ of 1e-2 is within 0.25 of any μ_b below 0.25.
        let stats = KroneckerStatistics::from_parts(
            d,
            false,
            vec![2.0, 0.5, 0.1, 0.5, 1.0, 0.2, 0.1, 0.2, 3.0],
            vec![0.3, -0.2, 0.5],
            vec![1.0],
            1,
        );
        let factor = |ridge: f64| stats.at(&v, 1.0, ridge, &[1.0]).gram_factor;
        let l0 = factor(1e-3);
        assert!(Rc::ptr_eq(&l0, &factor(1e-2)) && Rc::ptr_eq(&l0, &factor(0.0)));
        assert!(!Rc::ptr_eq(&l0, &factor(1.0)));
    }

    /// The blocked form of `class_covariance` is the row-by-row one (one dot product per logit), to the bit,
    /// full and short blocks alike.
    #[test]
    fn class_covariance_is_the_row_by_row_form_bit_for_bit() {
        let row_by_row = |v: &[f64], m: usize, d: usize, x: &[f64], s: &[f64]| {
            let mut c = vec![0.0; m * m];
            let mut total = 0.0;
            for (row, &w) in x.chunks_exact(d).zip(s) {
                let mut pi: Vec<f64> = (0..m).map(|a| linalg::dot(&v[a * d..(a + 1) * d], row)).collect();
                pi.push(0.0);
                let top = pi.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let z: f64 = pi
                    .iter_mut()
                    .map(|p| {
                        *p = (*p - top).exp();
                        *p
                    })
                    .fold(0.0, |z, p| z + p);
                pi.iter_mut().for_each(|p| *p /= z);
                for a in 0..m {
                    c[a * m + a] += w * pi[a];
                    for b in 0..m {
                        c[a * m + b] -= w * pi[a] * pi[b];
                    }
                }
                total += w;
            }
            c.iter_mut().for_each(|v| *v /= total);
            c
        };
        let mut rng = crate::rng::Rng::new(17);
        for (m, d, count) in [(1, 3, 5), (1, 784, 21), (7, 13, 40), (15, 100, 67)] {
            let x: Vec<f64> = (0..count * d).map(|_| 2.0 * rng.uniform() - 1.0).collect();
            let s: Vec<f64> = (0..count).map(|_| rng.uniform()).collect();
            let v: Vec<f64> = (0..m * d).map(|_| rng.uniform() - 0.5).collect();
            let (fast, slow) =
                (class_covariance(&v, m, d, &SampleBlocks::new(&x, d), &s), row_by_row(&v, m, d, &x, &s));
            assert!(fast.iter().zip(&slow).all(|(a, b)| a.to_bits() == b.to_bits()), "m = {m}, d = {d}");
        }
    }

    /// The AVX2 logits (where this CPU has it) are the scalar loop's to the bit, for every class-group size.
    #[test]
    fn block_logits_are_the_scalar_loop_bit_for_bit() {
        let mut rng = crate::rng::Rng::new(23);
        for (m, d) in [(1, 5), (2, 17), (3, 1), (4, 30), (5, 9), (9, 785)] {
            let xt: Vec<f64> = (0..d * LOGIT_ROWS).map(|_| 2.0 * rng.uniform() - 1.0).collect();
            let v: Vec<f64> = (0..m * d).map(|_| rng.uniform() - 0.5).collect();
            let (mut fast, mut scalar) = (vec![[1.0; LOGIT_ROWS]; m], vec![[2.0; LOGIT_ROWS]; m]);
            block_logits(&v, d, &xt, &mut fast);
            block_logits_scalar(&v, d, &xt, &mut scalar);
            let bits = |l: &[[f64; LOGIT_ROWS]]| l.iter().flatten().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&fast), bits(&scalar), "m = {m}, d = {d}");
        }
    }

    #[test]
    fn sample_rows_spread_over_the_data() {
        assert_eq!(sample_rows(3), vec![0, 1, 2]);
        let rows = sample_rows(10_000);
        assert_eq!(rows.len(), SAMPLE_ROWS);
        assert_eq!((rows[0], rows[1], *rows.last().unwrap()), (0, 19, 9980));
    }
}
