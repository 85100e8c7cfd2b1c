//! The data passes of init 'moments' (ALGORITHMS §5.1; src/algorithms/init-moments.ts `momentSums`): the
//! weighted mean and covariance of the non-intercept features, and the second cross-moment's sums
//! Σ s ỹ² c cᵀ, the two O(n·p²) passes of the start. The decomposition that follows works on p×p matrices and
//! stays in TypeScript.
//!
//! The same bits as the reference, for any thread count. The start is not a continuous function of these sums
//! everywhere: the tensor power method keeps the best of several restarts, so a last-bit difference can pick
//! another start on a near-tie (it did, on one of the 100 instances of `reproduce init`, when these sums were
//! reduced in another order). So every entry is summed over the rows in order, as `(w·c_a)·c_b` with separate
//! roundings; the threads split the entries, never the rows, and the inner loop runs over independent entries,
//! so it vectorises without reordering any sum.

use crate::api::{err, Data, ErrorCode, Result};

/// What the two passes return; every average is over the total weight W = Σ s.
#[derive(Clone, Debug, PartialEq)]
pub struct MomentSums {
    /// Rows with positive weight.
    pub rows: usize,
    /// W = Σ s.
    pub weight: f64,
    /// μ, the weighted mean of the p non-intercept features.
    pub mean: Vec<f64>,
    /// The offset subtracted from y: its weighted mean when the model has an intercept, else 0.
    pub y_shift: f64,
    /// Σ s c cᵀ / W with c = x − μ (p×p, row-major, symmetric).
    pub cov: Vec<f64>,
    /// Σ s ỹ² c cᵀ / W with ỹ = y − y_shift (p×p, row-major, symmetric).
    pub second: Vec<f64>,
    /// Σ s ỹ² / W.
    pub yy: f64,
}

/// Rows of X a thread's block holds at a time (its centred rows, reused).
const BLOCK: usize = 256;

/// The sums over all rows of `data`; `intercept`: column 0 of x is the intercept's ones, not a feature.
/// `threads` = 0: all cores.
pub fn moment_sums(data: &Data, intercept: bool, threads: usize) -> Result<MomentSums> {
    let (n, d) = (data.n, data.d);
    let f0 = usize::from(intercept);
    if d <= f0 {
        return err(ErrorCode::Option, "init 'moments' needs at least one feature besides the intercept");
    }
    let p = d - f0;
    let s = |i: usize| data.s.map_or(1.0, |s| s[i]);

    // Pass 1 (O(n·p), one thread, the reference's order): W, the rows with weight, Σ s y, Σ s x.
    let weight = match data.s {
        None => n as f64,
        Some(s) => s.iter().fold(0.0, |acc, &v| acc + v),
    };
    if !(weight > 0.0) {
        return err(ErrorCode::TooFewRows, "the sample weights sum to 0");
    }
    let (mut rows, mut y_sum) = (0usize, 0.0);
    let mut mean = vec![0.0; p];
    for i in 0..n {
        let w = s(i);
        rows += usize::from(w > 0.0);
        y_sum += w * data.y[i];
        for (acc, x) in mean.iter_mut().zip(&data.x[i * d + f0..(i + 1) * d]) {
            *acc += w * x;
        }
    }
    mean.iter_mut().for_each(|m| *m /= weight);
    let y_shift = if intercept { y_sum / weight } else { 0.0 };
    let y_weight = |i: usize| {
        let t = data.y[i] - y_shift;
        s(i) * t * t
    };
    let yy = (0..n).fold(0.0, |acc, i| acc + y_weight(i)) / weight;

    // Pass 2 (O(n·p²)): the lower triangles of Σ s c cᵀ and Σ s ỹ² c cᵀ, rows of the triangle split over
    // threads with equal work (row a has a + 1 entries).
    let threads = crate::cpu::resolve_threads(threads).min(p).max(1);
    let owner: Vec<usize> = (0..p).map(|a| (a * (a + 1) / 2 * threads) / (p * (p + 1) / 2)).collect();
    let mut cov = vec![0.0; p * p];
    let mut second = vec![0.0; p * p];
    // One thread's share: (a, row a of the covariance's triangle, row a of the second moment's).
    type TriangleRows<'g> = Vec<(usize, &'g mut [f64], &'g mut [f64])>;
    let sum_rows_of_triangle = |share: &mut TriangleRows| {
        let mut c = Vec::with_capacity(BLOCK * p);
        for lo in (0..n).step_by(BLOCK) {
            let hi = (lo + BLOCK).min(n);
            c.clear();
            for i in lo..hi {
                c.extend(data.x[i * d + f0..(i + 1) * d].iter().zip(&mean).map(|(x, m)| x - m));
            }
            for (i, ci) in (lo..hi).zip(c.chunks_exact(p)) {
                let (w, w2) = (s(i), y_weight(i));
                for (a, g, g2) in share.iter_mut() {
                    let a = *a;
                    if w != 0.0 {
                        let wa = w * ci[a];
                        g.iter_mut().zip(&ci[..=a]).for_each(|(acc, cb)| *acc += wa * cb);
                    }
                    if w2 != 0.0 {
                        let wa = w2 * ci[a];
                        g2.iter_mut().zip(&ci[..=a]).for_each(|(acc, cb)| *acc += wa * cb);
                    }
                }
            }
        }
    };
    let mut shares: Vec<TriangleRows> = (0..threads).map(|_| Vec::new()).collect();
    for (a, (g, g2)) in cov.chunks_exact_mut(p).zip(second.chunks_exact_mut(p)).enumerate() {
        shares[owner[a]].push((a, &mut g[..=a], &mut g2[..=a]));
    }
    std::thread::scope(|scope| {
        for share in shares.iter_mut().filter(|share| !share.is_empty()) {
            scope.spawn(|| sum_rows_of_triangle(share));
        }
    });
    for g in [&mut cov, &mut second] {
        for a in 0..p {
            for b in 0..=a {
                g[a * p + b] /= weight;
                g[b * p + a] = g[a * p + b];
            }
        }
    }
    Ok(MomentSums { rows, weight, mean, y_shift, cov, second, yy })
}
