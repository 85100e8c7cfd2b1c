//! Small dense linear algebra on the host, with the fixed rules of ALGORITHMS §6 (the same operations, in
//! the same order, as src/linalg/cholesky.ts and src/linalg/cg.ts).

use crate::api::{err, ErrorCode, Event, Result};

const PIVOT_RELATIVE: f64 = 1e-12;
const FALLBACK_RELATIVE: f64 = 1e-8;

/// In-place lower Cholesky factor of the p×p row-major SPD matrix; the strict upper triangle is zeroed.
/// False when a pivot is ≤ 1e-12·max(diag A) (A's contents are then unspecified). Entry (i, j), i ≥ j, is
/// `(a_ij − Σ_{m<j} l_im·l_jm) / l_jj`, the sum in the order of m (the rule of ALGORITHMS §6, as
/// src/linalg/cholesky.ts computes it row by row). Here the entries of a column, which are independent, are
/// computed together, from the factor's columns kept as contiguous rows (Lᵀ), SOLVE_BLOCK columns of the
/// factor at a time (`subtract_in_order`, AVX2 where the CPU has it): the same operations in the same order
/// per entry, hence the same bits, but streaming multiply-adds instead of one serial dot product per entry
/// (order 785: 42 → 16 ms; order 101: 0.13 → 0.05 ms on this project's 2-core machine,
/// `examples/solve_bench.rs`). That matters on the host between a GPU's passes: the linear experts' k solves
/// every EM iteration, and the preconditioners' d×d factor whenever its ridge term changes.
pub fn cholesky_in_place(a: &mut [f64], p: usize) -> bool {
    let mut max_diag = 0.0f64;
    for i in 0..p {
        max_diag = max_diag.max(a[i * p + i]);
    }
    let threshold = PIVOT_RELATIVE * max_diag;
    let mut lt = vec![0.0; p * p]; // lt[m·p + i] = l_im
    let mut column = vec![0.0; p];
    for j in 0..p {
        for i in j..p {
            column[i] = a[i * p + j];
        }
        // The factor's columns m < j leave the column in ascending m, SOLVE_BLOCK at a time.
        for m0 in (0..j).step_by(SOLVE_BLOCK) {
            let m1 = (m0 + SOLVE_BLOCK).min(j);
            let mut rows: [&[f64]; SOLVE_BLOCK] = [&[]; SOLVE_BLOCK];
            let mut ljm = [0.0; SOLVE_BLOCK];
            for (t, m) in (m0..m1).enumerate() {
                rows[t] = &lt[m * p + j..(m + 1) * p];
                ljm[t] = rows[t][0];
            }
            subtract_in_order(&mut column[j..], &rows[..m1 - m0], &ljm[..m1 - m0]);
        }
        let pivot = column[j];
        if !(pivot > threshold) || !(pivot > 0.0) {
            return false;
        }
        let root = pivot.sqrt();
        lt[j * p + j] = root;
        for i in j + 1..p {
            lt[j * p + i] = column[i] / root;
        }
    }
    for i in 0..p {
        for j in 0..p {
            a[i * p + j] = if j <= i { lt[j * p + i] } else { 0.0 };
        }
    }
    true
}

/// Solves L Lᵀ x = b in place.
pub fn cholesky_solve_in_place(l: &[f64], p: usize, b: &mut [f64]) {
    forward_solve_in_place(l, p, b);
    back_solve_transpose_in_place(l, p, b);
}

pub fn forward_solve_in_place(l: &[f64], p: usize, b: &mut [f64]) {
    for i in 0..p {
        let mut s = b[i];
        let ri = i * p;
        for m in 0..i {
            s -= l[ri + m] * b[m];
        }
        b[i] = s / l[ri + i];
    }
}

pub fn back_solve_transpose_in_place(l: &[f64], p: usize, b: &mut [f64]) {
    for i in (0..p).rev() {
        let mut s = b[i];
        for m in i + 1..p {
            s -= l[m * p + i] * b[m];
        }
        b[i] = s / l[i * p + i];
    }
}

/// A Cholesky factor kept for repeated solves (the Kronecker preconditioner applies two per CG iteration):
/// L and Lᵀ (whose rows are L's columns), and right-hand sides solved together.
pub struct CholeskyFactor {
    p: usize,
    l: Vec<f64>,
    lt: Vec<f64>,
}

/// Entries of a right-hand side that `CholeskyFactor::solve_vectors` substitutes together, for factors of order
/// ≥ BLOCKED_FROM; below, one entry at a time is as fast. Order 785 with 9 right-hand sides (the multinomial
/// experts' preconditioner at the Fashion-MNIST shape) on this project's 2-core machine: one entry at a time
/// 1.7 ms; blocks of 4, 1.15 ms; blocks of 8 by AVX2 through tiles of SOLVE_TILE entries, the right-hand
/// sides' divisions interleaved, 0.63 ms (blocks of 4, 12 or 16 were slower: 8 broadcast values fill half of
/// AVX2's registers; `examples/solve_bench.rs`).
const SOLVE_BLOCK: usize = 8;
/// Multiply-adds (p² per right-hand side) below which `solve_vectors` keeps right-hand sides on one thread:
/// one right-hand side of order ~775. Order 785 with 9 right-hand sides on this project's 2 cores: 0.60 →
/// 0.53 ms (best of 5); a host with more cores solves up to one right-hand side per core.
const PARALLEL_SOLVE_WORK: usize = 600_000;
const BLOCKED_FROM: usize = 256;

impl CholeskyFactor {
    /// From the p×p row-major lower factor `l` (as `cholesky_in_place` leaves it).
    pub fn new(l: Vec<f64>, p: usize) -> Self {
        let mut lt = vec![0.0; p * p];
        for i in 0..p {
            for j in 0..p {
                lt[j * p + i] = l[i * p + j];
            }
        }
        CholeskyFactor { p, l, lt }
    }

    /// Solves L Lᵀ x = b in place for `count` right-hand sides stored one after another in `b` (count×p). Each
    /// is `factor_solve_in_place`, to the bit, on any number of threads, by columns of L: once an entry is
    /// solved it leaves every later (forward) or earlier (back) entry at once, which keeps each entry's order
    /// of summation (ascending, then descending) while the multiply-adds run over contiguous memory,
    /// independent of one another; each column of L serves every right-hand side while it is in cache.
    pub fn solve_vectors(&self, b: &mut [f64], count: usize, threads: usize) {
        debug_assert_eq!(b.len(), self.p * count);
        let p = self.p;
        if p < BLOCKED_FROM {
            return self.solve_vectors_by_entries(b);
        }
        // The right-hand sides are independent: split over up to `threads` threads (the same bits), each with
        // at least PARALLEL_SOLVE_WORK multiply-adds, as a thread costs tens of microseconds to start.
        let work = p * p * count;
        let threads = threads.min(count).min(work / PARALLEL_SOLVE_WORK);
        if threads < 2 {
            return self.solve_blocked(b, count);
        }
        let per = count.div_ceil(threads);
        std::thread::scope(|scope| {
            for part in b.chunks_mut(per * p) {
                scope.spawn(move || self.solve_blocked(part, part.len() / p));
            }
        });
    }

    /// `solve_vectors` on the calling thread, for factors of order ≥ BLOCKED_FROM.
    fn solve_blocked(&self, b: &mut [f64], count: usize) {
        let (p, l, lt) = (self.p, &self.l, &self.lt);
        // SOLVE_BLOCK entries at a time: solved within the block first, then they leave the rest of the vector
        // together (each later entry takes their subtractions in ascending order), so each entry of the rest is
        // read and written once per block rather than once per entry; the rest goes by tiles of SOLVE_TILE
        // entries, each tile of L's block serving every right-hand side while it is in the L1 cache.
        let mut solved = vec![[0.0; SOLVE_BLOCK]; count];
        let mut coefficients: [&[f64]; SOLVE_BLOCK] = [&[]; SOLVE_BLOCK];
        let mut i0 = 0;
        while i0 < p {
            let end = (i0 + SOLVE_BLOCK).min(p);
            // Entry by entry across the right-hand sides, so that their divisions overlap.
            for i in i0..end {
                let pivot = l[i * p + i];
                for v in b.chunks_exact_mut(p) {
                    let xi = v[i] / pivot;
                    v[i] = xi;
                    for u in i + 1..end {
                        v[u] -= lt[i * p + u] * xi;
                    }
                }
            }
            for (v, x) in b.chunks_exact(p).zip(solved.iter_mut()) {
                x[..end - i0].copy_from_slice(&v[i0..end]);
            }
            for (slot, i) in coefficients.iter_mut().zip(i0..end) {
                *slot = &lt[i * p + end..(i + 1) * p];
            }
            subtract_by_tiles(b, p, end, &coefficients[..end - i0], &solved);
            i0 = end;
        }
        // Back: the same by blocks from the bottom, each earlier entry taking the block's subtractions in
        // descending order.
        let mut i1 = p;
        while i1 > 0 {
            let lo = i1.saturating_sub(SOLVE_BLOCK);
            for i in (lo..i1).rev() {
                let pivot = l[i * p + i];
                for v in b.chunks_exact_mut(p) {
                    let zi = v[i] / pivot;
                    v[i] = zi;
                    for u in lo..i {
                        v[u] -= l[i * p + u] * zi;
                    }
                }
            }
            for (v, z) in b.chunks_exact(p).zip(solved.iter_mut()) {
                v[lo..i1].iter().rev().zip(z.iter_mut()).for_each(|(&zi, slot)| *slot = zi);
            }
            for (slot, i) in coefficients.iter_mut().zip((lo..i1).rev()) {
                *slot = &l[i * p..i * p + lo];
            }
            subtract_by_tiles(b, p, 0, &coefficients[..i1 - lo], &solved);
            i1 = lo;
        }
    }

    /// `solve_vectors` one entry at a time (the same orders of summation).
    fn solve_vectors_by_entries(&self, b: &mut [f64]) {
        let (p, l, lt) = (self.p, &self.l, &self.lt);
        for i in 0..p {
            let (pivot, column) = (l[i * p + i], &lt[i * p + i + 1..(i + 1) * p]);
            for v in b.chunks_exact_mut(p) {
                let (done, rest) = v.split_at_mut(i + 1);
                let xi = done[i] / pivot;
                done[i] = xi;
                for (bm, &lmi) in rest.iter_mut().zip(column) {
                    *bm -= lmi * xi;
                }
            }
        }
        for i in (0..p).rev() {
            let (pivot, row) = (l[i * p + i], &l[i * p..i * p + i]);
            for v in b.chunks_exact_mut(p) {
                let (before, rest) = v.split_at_mut(i);
                let zi = rest[0] / pivot;
                rest[0] = zi;
                for (bm, &lim) in before.iter_mut().zip(row) {
                    *bm -= lim * zi;
                }
            }
        }
    }

    /// As `solve_vectors` for the `count` right-hand sides that are the columns of `b` (p×count, row-major):
    /// the rows of X advance together, each in `factor_solve_in_place`'s order, so the same bits.
    pub fn solve_columns(&self, b: &mut [f64], count: usize) {
        let (p, l) = (self.p, &self.l);
        debug_assert_eq!(b.len(), p * count);
        for i in 0..p {
            let (solved, rest) = b.split_at_mut(i * count);
            let row = &mut rest[..count];
            for (m, xm) in solved.chunks_exact(count).enumerate() {
                let lim = l[i * p + m];
                for (v, &x) in row.iter_mut().zip(xm) {
                    *v -= lim * x;
                }
            }
            let pivot = l[i * p + i];
            row.iter_mut().for_each(|v| *v /= pivot);
        }
        for i in (0..p).rev() {
            let (head, solved) = b.split_at_mut((i + 1) * count);
            let row = &mut head[i * count..];
            for (m, zm) in solved.chunks_exact(count).enumerate().rev() {
                let lmi = l[(i + 1 + m) * p + i];
                for (v, &z) in row.iter_mut().zip(zm) {
                    *v -= lmi * z;
                }
            }
            let pivot = l[i * p + i];
            row.iter_mut().for_each(|v| *v /= pivot);
        }
    }
}

/// Entries of the rest of a right-hand side that `subtract_by_tiles` takes through every right-hand side at once.
const SOLVE_TILE: usize = 128;

/// `subtract_in_order(v_r[start..start + len], a, x_r)` for every right-hand side v_r (the rows of b, count×p;
/// len = the coefficient rows' length: the entries after a block in the forward substitution, those before it
/// in the back substitution), by tiles of SOLVE_TILE entries.
fn subtract_by_tiles(b: &mut [f64], p: usize, start: usize, a: &[&[f64]], x: &[[f64; SOLVE_BLOCK]]) {
    let len = a[0].len();
    let mut tile: [&[f64]; SOLVE_BLOCK] = [&[]; SOLVE_BLOCK];
    for t0 in (0..len).step_by(SOLVE_TILE) {
        let t1 = (t0 + SOLVE_TILE).min(len);
        for (slot, row) in tile.iter_mut().zip(a) {
            *slot = &row[t0..t1];
        }
        for (v, xr) in b.chunks_exact_mut(p).zip(x) {
            subtract_in_order(&mut v[start + t0..start + t1], &tile[..a.len()], &xr[..a.len()]);
        }
    }
}

/// v_k −= a_0[k]·x_0, then −= a_1[k]·x_1, … (that order, for every k), for up to SOLVE_BLOCK coefficient rows.
/// A full block goes through AVX2 where the CPU has it: 4 entries per instruction, a separate multiply and
/// subtract (never fused), so the same bits as the scalar loop.
fn subtract_in_order(v: &mut [f64], a: &[&[f64]], x: &[f64]) {
    #[cfg(target_arch = "x86_64")]
    {
        if let (Ok(a), Ok(x)) = (<&[&[f64]; SOLVE_BLOCK]>::try_from(a), <&[f64; SOLVE_BLOCK]>::try_from(x)) {
            if crate::simd::has_avx2() && a.iter().all(|row| row.len() >= v.len()) {
                // SAFETY: AVX2 was detected, and every coefficient row covers v.
                unsafe { subtract_block_avx2(v, a, x) };
                return;
            }
        }
    }
    subtract_in_order_scalar(v, a, x);
}

fn subtract_in_order_scalar(v: &mut [f64], a: &[&[f64]], x: &[f64]) {
    for (row, &xi) in a.iter().zip(x) {
        for (bm, &c) in v.iter_mut().zip(*row) {
            *bm -= c * xi;
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn subtract_block_avx2(v: &mut [f64], a: &[&[f64]; SOLVE_BLOCK], x: &[f64; SOLVE_BLOCK]) {
    use std::arch::x86_64::*;
    let n = v.len();
    let xs: [__m256d; SOLVE_BLOCK] = std::array::from_fn(|t| _mm256_set1_pd(x[t]));
    let (vp, ap) = (v.as_mut_ptr(), a.map(|row| row.as_ptr()));
    let mut k = 0;
    while k + 4 <= n {
        let mut acc = _mm256_loadu_pd(vp.add(k));
        for t in 0..SOLVE_BLOCK {
            acc = _mm256_sub_pd(acc, _mm256_mul_pd(_mm256_loadu_pd(ap[t].add(k)), xs[t]));
        }
        _mm256_storeu_pd(vp.add(k), acc);
        k += 4;
    }
    for k in k..n {
        let mut bm = *vp.add(k);
        for t in 0..SOLVE_BLOCK {
            bm -= *ap[t].add(k) * x[t];
        }
        *vp.add(k) = bm;
    }
}

/// Solves L Lᵀ x = b in place in the order of summation that `CholeskyFactor`'s solves keep (and the Kronecker
/// preconditioner of src/algorithms/kronecker.ts): the forward substitution's sums ascending (as
/// `cholesky_solve_in_place`), the back substitution's descending (from row p − 1), which lets a solve of
/// several right-hand sides go by columns of L.
pub fn factor_solve_in_place(l: &[f64], p: usize, b: &mut [f64]) {
    forward_solve_in_place(l, p, b);
    for i in (0..p).rev() {
        let mut s = b[i];
        for m in (i + 1..p).rev() {
            s -= l[m * p + i] * b[m];
        }
        b[i] = s / l[i * p + i];
    }
}

/// Solves A x = b (A consumed, b overwritten) with the §6 recovery: one retry with τ = 1e-8·mean(diag A)
/// added (event `ridge-fallback`), then E_SINGULAR.
pub fn solve_spd_with_recovery(
    a: &mut [f64],
    p: usize,
    b: &mut [f64],
    block: &str,
    events: &mut Vec<Event>,
) -> Result<()> {
    let backup = a.to_vec();
    if cholesky_in_place(a, p) {
        cholesky_solve_in_place(a, p, b);
        return Ok(());
    }
    let mut mean_diag = 0.0;
    for i in 0..p {
        mean_diag += backup[i * p + i];
    }
    mean_diag /= p as f64;
    let tau = FALLBACK_RELATIVE * mean_diag;
    a.copy_from_slice(&backup);
    for i in 0..p {
        a[i * p + i] += tau;
    }
    if !(tau > 0.0) || !cholesky_in_place(a, p) {
        // A diagonal that overflowed (values near 1e154 or more, squared) is not singular data but unscaled data.
        let why = if tau.is_finite() {
            format!("singular even after adding a ridge of {tau}")
        } else {
            "not finite: the data overflow float64 when squared (rescale X and y)".to_string()
        };
        return err(ErrorCode::Singular, format!("{block}: the linear system is {why}"));
    }
    events.push(Event::RidgeFallback { block: block.to_string(), ridge: tau });
    cholesky_solve_in_place(a, p, b);
    Ok(())
}

pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut s = 0.0;
    for (x, y) in a.iter().zip(b) {
        s += x * y;
    }
    s
}

pub fn norm(a: &[f64]) -> f64 {
    dot(a, a).sqrt()
}

/// The Jacobi preconditioner z = r / diag(A) (non-positive entries count as 1), for `preconditioned_cg`.
pub fn jacobi(diag: &[f64]) -> impl Fn(&[f64], &mut [f64]) + '_ {
    move |src, dst| {
        for i in 0..diag.len() {
            dst[i] = if diag[i] > 0.0 { src[i] / diag[i] } else { src[i] };
        }
    }
}

/// Preconditioned CG for A Δ = g (A through `apply_a`, the preconditioner's inverse through `precondition`:
/// z = M⁻¹r), start Δ = 0, stop when ‖r‖ ≤ η‖g‖, after `max_iter`, or at the first non-positive curvature
/// (returning the preconditioned gradient when that happens on the first iteration). The stopping tests run
/// before each preconditioner apply, so that a finished CG never pays for one it would not use (an apply of
/// the Kronecker preconditioner at d = 784 costs about a Hessian-vector pass on a GPU).
pub fn preconditioned_cg(
    mut apply_a: impl FnMut(&[f64], &mut [f64]) -> Result<()>,
    g: &[f64],
    precondition: impl Fn(&[f64], &mut [f64]),
    max_iter: usize,
    eta: f64,
    delta: &mut [f64],
) -> Result<usize> {
    let p = g.len();
    delta.iter_mut().for_each(|v| *v = 0.0);
    let target = eta * norm(g);
    let mut r = g.to_vec();
    if max_iter == 0 || norm(&r) <= target {
        return Ok(0);
    }
    let mut z = vec![0.0; p];
    let mut aq = vec![0.0; p];
    precondition(&r, &mut z);
    let mut q = z.clone();
    let mut rz = dot(&r, &z);
    let mut it = 0;
    loop {
        apply_a(&q, &mut aq)?;
        let curvature = dot(&q, &aq);
        if !(curvature > 0.0) {
            if it == 0 {
                delta.copy_from_slice(&z); // M⁻¹g: r is still g
            }
            break;
        }
        let alpha = rz / curvature;
        for i in 0..p {
            delta[i] += alpha * q[i];
            r[i] -= alpha * aq[i];
        }
        it += 1;
        if it == max_iter || norm(&r) <= target {
            break;
        }
        precondition(&r, &mut z);
        let rz_new = dot(&r, &z);
        let beta = rz_new / rz;
        rz = rz_new;
        for i in 0..p {
            q[i] = z[i] + beta * q[i];
        }
    }
    Ok(it)
}

/// Symmetric eigenvalues by cyclic Jacobi (pairs i<j in order) until the off-diagonal Frobenius norm is
/// ≤ 1e-14·‖A‖_F or 100 sweeps; returned in descending order.
pub fn jacobi_eigenvalues(a_in: &[f64], p: usize) -> Vec<f64> {
    // Only the symmetric part matters (as in src/linalg/eigen.ts).
    let mut a = vec![0.0; p * p];
    for i in 0..p {
        for j in 0..p {
            a[i * p + j] = 0.5 * (a_in[i * p + j] + a_in[j * p + i]);
        }
    }
    let fro = norm(&a);
    for _sweep in 0..100 {
        let mut off = 0.0;
        for i in 0..p {
            for j in 0..p {
                if i != j {
                    off += a[i * p + j] * a[i * p + j];
                }
            }
        }
        if off.sqrt() <= 1e-14 * fro {
            break;
        }
        for i in 0..p {
            for j in i + 1..p {
                let apq = a[i * p + j];
                if apq == 0.0 {
                    continue;
                }
                let (app, aqq) = (a[i * p + i], a[j * p + j]);
                let theta = (aqq - app) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..p {
                    let (akp, akq) = (a[k * p + i], a[k * p + j]);
                    a[k * p + i] = c * akp - s * akq;
                    a[k * p + j] = s * akp + c * akq;
                }
                for k in 0..p {
                    let (apk, aqk) = (a[i * p + k], a[j * p + k]);
                    a[i * p + k] = c * apk - s * aqk;
                    a[j * p + k] = s * apk + c * aqk;
                }
            }
        }
    }
    let mut ev: Vec<f64> = (0..p).map(|i| a[i * p + i]).collect();
    ev.sort_by(|x, y| y.partial_cmp(x).unwrap_or(std::cmp::Ordering::Equal));
    ev
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Column by column is row by row (the TS reference's order, src/linalg/cholesky.ts) to the bit, and both
    /// fail on a singular matrix.
    #[test]
    fn column_cholesky_is_the_row_cholesky_bit_for_bit() {
        fn row_by_row(a: &mut [f64], p: usize) -> bool {
            let threshold = PIVOT_RELATIVE * (0..p).map(|i| a[i * p + i]).fold(0.0, f64::max);
            for i in 0..p {
                for j in 0..=i {
                    let mut s = a[i * p + j];
                    for m in 0..j {
                        s -= a[i * p + m] * a[j * p + m];
                    }
                    if i == j {
                        if !(s > threshold) || !(s > 0.0) {
                            return false;
                        }
                        a[i * p + i] = s.sqrt();
                    } else {
                        a[i * p + j] = s / a[j * p + j];
                    }
                }
                a[i * p + i + 1..(i + 1) * p].iter_mut().for_each(|v| *v = 0.0);
            }
            true
        }
        let p = 37;
        let mut rng = crate::rng::Rng::new(12);
        let m: Vec<f64> = (0..p * p).map(|_| rng.uniform() - 0.5).collect();
        let mut a: Vec<f64> =
            (0..p * p).map(|e| (0..p).map(|t| m[e / p * p + t] * m[e % p * p + t]).sum::<f64>()).collect();
        (0..p).for_each(|i| a[i * p + i] += 0.01);
        let (mut by_column, mut by_row) = (a.clone(), a.clone());
        assert!(cholesky_in_place(&mut by_column, p) && row_by_row(&mut by_row, p));
        assert!(by_column.iter().zip(&by_row).all(|(c, r)| c.to_bits() == r.to_bits()));
        // Rank-deficient (row 20 repeats row 19): both fail.
        let mut singular = a.clone();
        for f in 0..p {
            singular[20 * p + f] = singular[19 * p + f];
            singular[f * p + 20] = singular[f * p + 19];
        }
        singular[20 * p + 20] = singular[19 * p + 19];
        let (mut by_column, mut by_row) = (singular.clone(), singular);
        assert!(!cholesky_in_place(&mut by_column, p) && !row_by_row(&mut by_row, p));
    }

    /// The factor's solves, one right-hand side or several together (full and partial row blocks), are
    /// `factor_solve_in_place` column by column, to the bit.
    #[test]
    fn factor_solves_are_the_single_solves_bit_for_bit() {
        // One entry at a time, and in blocks (a short last block; rests of one tile and of several).
        for (p, counts) in
            [(23, &[1, 2, 7][..]), (BLOCKED_FROM + 5, &[1, 2, 7]), (BLOCKED_FROM + 2 * SOLVE_TILE + 3, &[9])]
        {
            factor_solves_match(p, counts);
        }
    }

    /// The AVX2 block (where this CPU has it) is the scalar loop to the bit, tails included.
    #[test]
    fn subtract_in_order_is_the_scalar_loop_bit_for_bit() {
        let mut rng = crate::rng::Rng::new(5);
        for len in [0, 1, 3, 4, 7, 8, 33] {
            let rows: Vec<Vec<f64>> =
                (0..SOLVE_BLOCK).map(|_| (0..len).map(|_| rng.uniform() - 0.5).collect()).collect();
            let a: Vec<&[f64]> = rows.iter().map(|r| &r[..]).collect();
            let x: Vec<f64> = (0..SOLVE_BLOCK).map(|_| 3.0 * rng.uniform() - 1.5).collect();
            let v: Vec<f64> = (0..len).map(|_| rng.uniform()).collect();
            let (mut fast, mut scalar) = (v.clone(), v);
            subtract_in_order(&mut fast, &a, &x);
            subtract_in_order_scalar(&mut scalar, &a, &x);
            assert_eq!(
                fast.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                scalar.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "length {len}"
            );
        }
    }

    fn factor_solves_match(p: usize, counts: &[usize]) {
        let mut rng = crate::rng::Rng::new(11);
        // Symmetric and diagonally dominant, hence SPD.
        let mut l: Vec<f64> = (0..p * p).map(|e| 0.5 / (1.0 + (e / p).abs_diff(e % p) as f64)).collect();
        (0..p).for_each(|i| l[i * p + i] = 2.0 + rng.uniform());
        assert!(cholesky_in_place(&mut l, p));
        let factor = CholeskyFactor::new(l.clone(), p);
        for &count in counts {
            let b: Vec<f64> = (0..p * count).map(|_| 2.0 * rng.uniform() - 1.0).collect();
            let mut by_columns = b.clone();
            factor.solve_columns(&mut by_columns, count);
            let vectors: Vec<f64> =
                (0..count).flat_map(|c| (0..p).map(move |i| (c, i))).map(|(c, i)| b[i * count + c]).collect();
            let (mut by_vectors, mut threaded) = (vectors.clone(), vectors);
            factor.solve_vectors(&mut by_vectors, count, 1);
            factor.solve_vectors(&mut threaded, count, 4);
            assert!(
                by_vectors.iter().zip(&threaded).all(|(a, b)| a.to_bits() == b.to_bits()),
                "{count} vectors on 4 threads"
            );
            for c in 0..count {
                let mut column: Vec<f64> = (0..p).map(|i| b[i * count + c]).collect();
                factor_solve_in_place(&l, p, &mut column);
                for i in 0..p {
                    assert_eq!(
                        by_columns[i * count + c].to_bits(),
                        column[i].to_bits(),
                        "{count} columns: column {c}, row {i}"
                    );
                    assert_eq!(
                        by_vectors[c * p + i].to_bits(),
                        column[i].to_bits(),
                        "{count} vectors: vector {c}, row {i}"
                    );
                }
            }
            // And it is a solve: L Lᵀ x = b.
            let x: Vec<f64> = (0..p).map(|i| by_columns[i * count]).collect();
            let lt_x: Vec<f64> = (0..p).map(|t| (t..p).map(|j| l[j * p + t] * x[j]).sum()).collect();
            for i in 0..p {
                let back: f64 = (0..=i).map(|t| l[i * p + t] * lt_x[t]).sum();
                assert!((back - b[i * count]).abs() < 1e-9, "row {i}: {back} vs {}", b[i * count]);
            }
        }
    }

    #[test]
    fn cholesky_solves_and_recovers() {
        let a = [4.0, 2.0, 0.6, 2.0, 5.0, 1.0, 0.6, 1.0, 3.0];
        let mut f = a.to_vec();
        let mut b = vec![1.0, 2.0, 3.0];
        let mut ev = Vec::new();
        solve_spd_with_recovery(&mut f, 3, &mut b, "t", &mut ev).unwrap();
        for i in 0..3 {
            let r: f64 = (0..3).map(|j| a[i * 3 + j] * b[j]).sum();
            assert!((r - [1.0, 2.0, 3.0][i]).abs() < 1e-12);
        }
        assert!(ev.is_empty());
        // Rank-one PSD matrix: recovered with an event.
        let mut s = vec![1.0, 1.0, 1.0, 1.0];
        let mut b = vec![1.0, 1.0];
        solve_spd_with_recovery(&mut s, 2, &mut b, "blk", &mut ev).unwrap();
        assert!(matches!(&ev[0], Event::RidgeFallback { block, .. } if block == "blk"));
        // Zero matrix: singular.
        let mut z = vec![0.0; 4];
        let e = solve_spd_with_recovery(&mut z, 2, &mut [1.0, 1.0], "z", &mut ev).err().unwrap();
        assert_eq!(e.code, ErrorCode::Singular);
    }

    #[test]
    fn jacobi_finds_known_eigenvalues() {
        let a = [2.0, 1.0, 0.0, 1.0, 2.0, 0.0, 0.0, 0.0, 5.0];
        let ev = jacobi_eigenvalues(&a, 3);
        for (x, y) in ev.iter().zip([5.0, 3.0, 1.0]) {
            assert!((x - y).abs() < 1e-12, "{ev:?}");
        }
    }

    #[test]
    fn cg_solves_spd() {
        let a = [4.0, 1.0, 1.0, 3.0];
        let g = [1.0, 2.0];
        let mut delta = [0.0; 2];
        preconditioned_cg(
            |v, out| {
                out[0] = 4.0 * v[0] + v[1];
                out[1] = v[0] + 3.0 * v[1];
                Ok(())
            },
            &g,
            jacobi(&[4.0, 3.0]),
            50,
            1e-12,
            &mut delta,
        )
        .unwrap();
        assert!((a[0] * delta[0] + a[1] * delta[1] - 1.0).abs() < 1e-10);
        assert!((a[2] * delta[0] + a[3] * delta[1] - 2.0).abs() < 1e-10);
    }

    /// CG applies the preconditioner once per product it computes (never after its last product), and its
    /// iterates are those of the textbook loop that preconditions every new residual, to the bit: stopping at
    /// the tolerance, at the iteration cap, and at a non-positive curvature.
    #[test]
    fn cg_preconditions_only_what_it_uses() {
        fn textbook(a: &[f64], g: &[f64], diag: &[f64], max_iter: usize, eta: f64) -> (Vec<f64>, usize, usize) {
            let p = g.len();
            let product = |q: &[f64]| (0..p).map(|i| dot(&a[i * p..(i + 1) * p], q)).collect::<Vec<f64>>();
            let mut applies = 0;
            let mut precondition = |r: &[f64]| {
                applies += 1;
                let mut z = vec![0.0; p];
                jacobi(diag)(r, &mut z);
                z
            };
            let (mut delta, mut r, target) = (vec![0.0; p], g.to_vec(), eta * norm(g));
            let mut z = precondition(&r);
            let (mut q, mut rz, mut it) = (z.clone(), dot(&r, &z), 0);
            while it < max_iter {
                if norm(&r) <= target {
                    break;
                }
                let aq = product(&q);
                let curvature = dot(&q, &aq);
                if !(curvature > 0.0) {
                    if it == 0 {
                        delta = precondition(g);
                    }
                    break;
                }
                let alpha = rz / curvature;
                for i in 0..p {
                    delta[i] += alpha * q[i];
                    r[i] -= alpha * aq[i];
                }
                z = precondition(&r);
                let rz_new = dot(&r, &z);
                let beta = rz_new / rz;
                rz = rz_new;
                for i in 0..p {
                    q[i] = z[i] + beta * q[i];
                }
                it += 1;
            }
            (delta, it, applies)
        }
        let p = 12;
        let mut rng = crate::rng::Rng::new(41);
        let m: Vec<f64> = (0..p * p).map(|_| rng.uniform() - 0.5).collect();
        let mut spd: Vec<f64> =
            (0..p * p).map(|e| (0..p).map(|t| m[e / p * p + t] * m[e % p * p + t]).sum::<f64>()).collect();
        (0..p).for_each(|i| spd[i * p + i] += 0.05);
        let mut indefinite = spd.clone();
        (0..p).for_each(|i| indefinite[i * p + i] -= 0.6);
        let g: Vec<f64> = (0..p).map(|_| rng.uniform() - 0.5).collect();
        let negated: Vec<f64> = spd.iter().map(|v| -v).collect();
        for (a, max_iter, eta) in
            [(&spd, 50, 1e-10), (&spd, 3, 1e-10), (&spd, 50, 0.3), (&indefinite, 50, 1e-10), (&negated, 50, 1e-10)]
        {
            let diag: Vec<f64> = (0..p).map(|i| a[i * p + i]).collect();
            let applies = std::cell::Cell::new(0);
            let counted = |r: &[f64], z: &mut [f64]| {
                applies.set(applies.get() + 1);
                jacobi(&diag)(r, z);
            };
            let mut delta = vec![0.0; p];
            let products = std::cell::Cell::new(0);
            let product = |q: &[f64], out: &mut [f64]| {
                products.set(products.get() + 1);
                (0..p).for_each(|i| out[i] = dot(&a[i * p..(i + 1) * p], q));
                Ok(())
            };
            let it = preconditioned_cg(product, &g, counted, max_iter, eta, &mut delta).unwrap();
            let (want, want_it, want_applies) = textbook(a, &g, &diag, max_iter, eta);
            assert_eq!(
                (it, delta.iter().map(|v| v.to_bits()).collect::<Vec<_>>()),
                (want_it, want.iter().map(|v| v.to_bits()).collect())
            );
            // One apply per product: the textbook loop's extra one after its last product (when it stops at the
            // tolerance or the cap, or at a first non-positive curvature) is gone.
            assert_eq!(applies.get(), products.get(), "max_iter {max_iter}, eta {eta}");
            let stopped_at_a_later_curvature = products.get() > it.max(1);
            assert_eq!(
                want_applies,
                applies.get() + usize::from(!stopped_at_a_later_curvature),
                "max_iter {max_iter}, eta {eta}"
            );
        }
    }
}
