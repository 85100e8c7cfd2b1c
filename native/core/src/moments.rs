//! The data passes of init 'moments' (ALGORITHMS §5.1; src/algorithms/init-moments.ts `momentSums`): the
//! weighted mean and covariance of the non-intercept features, and the second cross-moment's sums
//! Σ s ỹ² c cᵀ, the two O(n·p²) passes of the start. The decomposition that follows works on p×p matrices and
//! stays in TypeScript. Both passes run on the CPU's threads in fixed chunks (cpu::row_sums_and_grams), so
//! the sums are the same bits for any thread count; they differ from the reference's row-by-row sums by
//! rounding only.

use crate::api::{err, Data, ErrorCode, Result};
use crate::cpu::row_sums_and_grams;

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
    let features = |i: usize| &data.x[i * d + f0..(i + 1) * d];

    // Pass 1: Σ s, Σ s y, the rows with s > 0, Σ s x.
    let (first, _) = row_sums_and_grams(n, threads, 3 + p, p, 0, |i, sums| {
        let w = s(i);
        sums[0] += w;
        sums[1] += w * data.y[i];
        if w > 0.0 {
            sums[2] += 1.0;
        }
        for (acc, x) in sums[3..].iter_mut().zip(features(i)) {
            *acc += w * x;
        }
    }, |_, _, _| {});
    let weight = first[0];
    if !(weight > 0.0) {
        return err(ErrorCode::TooFewRows, "the sample weights sum to 0");
    }
    let mean: Vec<f64> = first[3..].iter().map(|v| v / weight).collect();
    let y_shift = if intercept { first[1] / weight } else { 0.0 };

    // Pass 2: the centred rows' Grams with weights s and s·ỹ², and Σ s ỹ².
    let (second_sums, grams) = row_sums_and_grams(n, threads, 1, p, 2, |i, sums| {
        let t = data.y[i] - y_shift;
        sums[0] += s(i) * t * t;
    }, |rows, xbuf, wbuf| {
        xbuf.clear();
        wbuf.clear();
        for i in rows {
            xbuf.extend(features(i).iter().zip(&mean).map(|(x, m)| x - m));
            let t = data.y[i] - y_shift;
            wbuf.extend([s(i), s(i) * t * t]);
        }
    });
    let average = |g: &[f64]| g.iter().map(|v| v / weight).collect::<Vec<f64>>();
    Ok(MomentSums {
        rows: first[2] as usize,
        weight,
        mean,
        y_shift,
        cov: average(&grams[..p * p]),
        second: average(&grams[p * p..]),
        yy: second_sums[0] / weight,
    })
}
