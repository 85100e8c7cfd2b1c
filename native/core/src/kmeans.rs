//! The clusters of init 'kmeans' (ALGORITHMS §5.2; src/algorithms/init-kmeans.ts): points z_i = [x̃_i, √p·ỹ_i]
//! (each non-intercept feature and y standardised by its weighted mean and standard deviation, y scaled to
//! weigh as much as the p features together), k-means++ seeding with weights s from RNG(seed), then Lloyd's
//! iterations (nearest centre, ties to the lower index; weighted means; an emptied cluster keeps its centre)
//! until no assignment changes, at most `MAX_ITER`.
//!
//! The reference's arithmetic in the reference's order, so the clusters are the reference's bit for bit:
//! every sum over the rows runs over them in order, on one thread; the threads split only the rows'
//! distances to the centres, which are independent. A squared distance is four interleaved
//! partial sums (entry c into sum c mod 4, added as (s₀ + s₁) + (s₂ + s₃)), which the reference writes as four
//! scalars and AVX2 computes four entries at a time, with a separate multiply and add (never fused).

use crate::api::{err, Data, ErrorCode, Result};
use crate::rng::Rng;

/// Lloyd iterations at most (src/algorithms/init-kmeans.ts `KMEANS_INIT.maxIter`).
pub const MAX_ITER: usize = 50;

/// Rows per thread below which the distance loops stay on one thread.
const ROWS_PER_THREAD: usize = 4096;

/// The cluster (0..k) of every row. `intercept`: column 0 of x is the intercept's ones, not a feature.
/// `threads` = 0: all cores.
pub fn kmeans_clusters(data: &Data, intercept: bool, k: usize, seed: u32, threads: usize) -> Result<Vec<u32>> {
    if k < 1 || data.n < 1 {
        return err(ErrorCode::Option, "k-means needs k ≥ 1 and at least one row");
    }
    let points = Points::standardised(data, intercept, crate::simd::has_avx2());
    let threads = threads_for(data.n, threads);
    let weight = |i: usize| data.s.map_or(1.0, |s| s[i]);
    let mut centres = seed_centres(&points, k, &weight, &mut Rng::new(seed), threads);
    Ok(lloyd(&points, k, &weight, &mut centres, threads))
}

fn threads_for(n: usize, threads: usize) -> usize {
    crate::cpu::resolve_threads(threads).min(n.div_ceil(ROWS_PER_THREAD)).max(1)
}

/// The n×m standardised points, row-major.
struct Points {
    z: Vec<f64>,
    n: usize,
    m: usize,
    /// Whether the distances may run on AVX2.
    simd: bool,
}

impl Points {
    fn standardised(data: &Data, intercept: bool, simd: bool) -> Points {
        let (n, d) = (data.n, data.d);
        let f0 = usize::from(intercept);
        let p = d - f0;
        let m = p + 1;
        let weight = |i: usize| data.s.map_or(1.0, |s| s[i]);
        // Row by row, every column's sums at once: each column's sum still runs over the rows in order (the
        // reference's column-by-column loops, bit for bit), but X is read once per sum, not once per column.
        let mut z = vec![0.0; n * m];
        let (mut sw, mut mean) = (0.0, vec![0.0; m]);
        for (i, row) in z.chunks_exact_mut(m).enumerate() {
            row[..p].copy_from_slice(&data.x[i * d + f0..(i + 1) * d]);
            row[p] = data.y[i];
            let w = weight(i);
            sw += w;
            for (mc, &zc) in mean.iter_mut().zip(row.iter()) {
                *mc += w * zc;
            }
        }
        mean.iter_mut().for_each(|mc| *mc /= sw);
        let mut var = vec![0.0; m];
        for (i, row) in z.chunks_exact(m).enumerate() {
            let w = weight(i);
            for ((vc, &zc), &mc) in var.iter_mut().zip(row).zip(&mean) {
                let dev = zc - mc;
                *vc += w * (dev * dev);
            }
        }
        // A constant column carries no information: it becomes 0 rather than a division by zero.
        let scale: Vec<f64> = (0..m)
            .map(|c| {
                let sd = (var[c] / sw).sqrt();
                (if sd > 0.0 { 1.0 / sd } else { 0.0 }) * (if c == p { (p as f64).sqrt() } else { 1.0 })
            })
            .collect();
        for row in z.chunks_exact_mut(m) {
            for ((zc, &mc), &sc) in row.iter_mut().zip(&mean).zip(&scale) {
                *zc = (*zc - mc) * sc;
            }
        }
        Points { z, n, m, simd }
    }

    fn row(&self, i: usize) -> &[f64] {
        &self.z[i * self.m..(i + 1) * self.m]
    }

    /// ‖z_i − centre‖².
    fn distance(&self, i: usize, centre: &[f64]) -> f64 {
        #[cfg(target_arch = "x86_64")]
        if self.simd {
            // SAFETY: `simd` is only true when AVX2 was detected.
            return unsafe { squared_distance_avx2(self.row(i), centre) };
        }
        squared_distance(self.row(i), centre)
    }

    /// The centre (of k, k×m row-major) nearest to z_i; ties to the lower index.
    fn nearest(&self, i: usize, centres: &[f64]) -> u32 {
        #[cfg(target_arch = "x86_64")]
        if self.simd {
            // SAFETY: as in `distance`.
            return unsafe { nearest_avx2(self.row(i), centres) };
        }
        nearest_by(self.row(i), centres, squared_distance)
    }
}

#[inline(always)]
fn nearest_by(row: &[f64], centres: &[f64], distance: impl Fn(&[f64], &[f64]) -> f64) -> u32 {
    let (mut best, mut best_distance) = (0, f64::INFINITY);
    for (j, centre) in centres.chunks_exact(row.len()).enumerate() {
        let dj = distance(row, centre);
        if dj < best_distance {
            (best, best_distance) = (j as u32, dj);
        }
    }
    best
}

/// ‖a − b‖² as four interleaved partial sums (entry c into sum c mod 4) added as (s₀ + s₁) + (s₂ + s₃): the
/// reference's `squaredDistance`. Four independent sums also run faster than one chain of dependent adds.
fn squared_distance(a: &[f64], b: &[f64]) -> f64 {
    let mut lanes = [0.0; 4];
    for (c, (x, y)) in a.iter().zip(b).enumerate() {
        let dev = x - y;
        lanes[c % 4] += dev * dev;
    }
    (lanes[0] + lanes[1]) + (lanes[2] + lanes[3])
}

/// `squared_distance` four entries at a time: the same sums in the same order (multiply, then add).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn squared_distance_avx2(a: &[f64], b: &[f64]) -> f64 {
    use std::arch::x86_64::*;
    let m = a.len().min(b.len());
    let whole = m / 4 * 4;
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = _mm256_setzero_pd();
    for c in (0..whole).step_by(4) {
        let dev = _mm256_sub_pd(_mm256_loadu_pd(pa.add(c)), _mm256_loadu_pd(pb.add(c)));
        acc = _mm256_add_pd(acc, _mm256_mul_pd(dev, dev));
    }
    let mut lanes = [0.0; 4];
    _mm256_storeu_pd(lanes.as_mut_ptr(), acc);
    for c in whole..m {
        let dev = a[c] - b[c];
        lanes[c - whole] += dev * dev;
    }
    (lanes[0] + lanes[1]) + (lanes[2] + lanes[3])
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn nearest_avx2(row: &[f64], centres: &[f64]) -> u32 {
    nearest_by(row, centres, |a, b| unsafe { squared_distance_avx2(a, b) })
}

/// `per_row(i, &mut out[i])` for every row, the rows split over `threads` contiguous parts.
fn for_each_row<T: Send>(out: &mut [T], threads: usize, per_row: impl Fn(usize, &mut T) + Sync) {
    if threads <= 1 {
        out.iter_mut().enumerate().for_each(|(i, o)| per_row(i, o));
        return;
    }
    let part = out.len().div_ceil(threads);
    let per_row = &per_row;
    std::thread::scope(|scope| {
        for (t, chunk) in out.chunks_mut(part).enumerate() {
            scope.spawn(move || chunk.iter_mut().enumerate().for_each(|(i, o)| per_row(t * part + i, o)));
        }
    });
}

/// k-means++: the first centre with probability ∝ s_i, each next one ∝ s_i·D_i² (one uniform per centre,
/// walking the rows in order).
fn seed_centres(
    points: &Points,
    k: usize,
    weight: &(dyn Fn(usize) -> f64 + Sync),
    rng: &mut Rng,
    threads: usize,
) -> Vec<f64> {
    let (n, m) = (points.n, points.m);
    let mut centres = vec![0.0; k * m];
    let mut dist = vec![f64::INFINITY; n];
    for j in 0..k {
        let chosen = if j == 0 { pick(n, rng, weight) } else { pick(n, rng, |i| weight(i) * dist[i]) };
        centres[j * m..(j + 1) * m].copy_from_slice(points.row(chosen));
        let centre = &centres[j * m..(j + 1) * m];
        for_each_row(&mut dist, threads, |i, di| *di = di.min(points.distance(i, centre)));
    }
    centres
}

/// Row i with probability ∝ `weight_of(i)`: one uniform, then the rows in order.
fn pick(n: usize, rng: &mut Rng, weight_of: impl Fn(usize) -> f64) -> usize {
    let mut total = 0.0;
    for i in 0..n {
        total += weight_of(i);
    }
    let mut u = rng.uniform() * total;
    for i in 0..n {
        u -= weight_of(i);
        if u < 0.0 {
            return i;
        }
    }
    // Rounding (or every point on a centre already): the last row with positive weight.
    (0..n).rev().find(|&i| weight_of(i) > 0.0).unwrap_or(n - 1)
}

/// Lloyd's iterations from the seeded centres; returns the final assignment.
fn lloyd(
    points: &Points,
    k: usize,
    weight: &(dyn Fn(usize) -> f64 + Sync),
    centres: &mut [f64],
    threads: usize,
) -> Vec<u32> {
    let (n, m) = (points.n, points.m);
    let mut assignment = vec![u32::MAX; n];
    let mut nearest = vec![0u32; n];
    for _ in 0..MAX_ITER {
        let current: &[f64] = centres;
        for_each_row(&mut nearest, threads, |i, best| *best = points.nearest(i, current));
        if nearest == assignment {
            break;
        }
        assignment.copy_from_slice(&nearest);
        let mut sums = vec![0.0; k * m];
        let mut mass = vec![0.0; k];
        for i in 0..n {
            let (w, j) = (weight(i), assignment[i] as usize);
            mass[j] += w;
            for (s, z) in sums[j * m..(j + 1) * m].iter_mut().zip(points.row(i)) {
                *s += w * z;
            }
        }
        for j in 0..k {
            if mass[j] > 0.0 {
                for c in 0..m {
                    centres[j * m + c] = sums[j * m + c] / mass[j];
                }
            }
        }
    }
    assignment
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avx2_distances_keep_the_scalar_sums_bits() {
        let mut rng = Rng::new(5);
        for m in [1, 2, 3, 4, 5, 7, 8, 51, 785] {
            let a: Vec<f64> = (0..m).map(|_| 1e3 * (rng.uniform() - 0.5)).collect();
            let b: Vec<f64> = (0..m).map(|_| rng.uniform() - 0.5).collect();
            let scalar = squared_distance(&a, &b);
            let direct: f64 = a.iter().zip(&b).map(|(x, y)| (x - y) * (x - y)).sum();
            assert!((scalar - direct).abs() <= 1e-12 * direct, "m = {m}: {scalar} vs {direct}");
            if crate::simd::has_avx2() {
                // SAFETY: AVX2 was detected.
                let vector = unsafe { squared_distance_avx2(&a, &b) };
                assert_eq!(vector.to_bits(), scalar.to_bits(), "m = {m}");
                let centres: Vec<f64> = [b.clone(), a.clone(), b.clone()].concat();
                assert_eq!(unsafe { nearest_avx2(&a, &centres) }, 1);
                assert_eq!(nearest_by(&b, &centres, squared_distance), 0, "ties go to the lower index");
            }
        }
    }
}
