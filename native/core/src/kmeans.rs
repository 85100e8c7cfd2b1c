//! The clusters of init 'kmeans' (ALGORITHMS §5.2; src/algorithms/init-kmeans.ts): points z_i = [x̃_i, √p·ỹ_i]
//! (each non-intercept feature and y standardised by its weighted mean and standard deviation, y scaled to
//! weigh as much as the p features together), k-means++ seeding with weights s from RNG(seed), then Lloyd's
//! iterations (nearest centre, ties to the lower index; weighted means; an emptied cluster keeps its centre)
//! until no assignment changes, at most `MAX_ITER`.
//!
//! The reference's arithmetic in the reference's order: every sum runs over the rows in order, on one thread.
//! Only the per-row work, the distances to the centres, is split over threads, which changes no bit. So the
//! clusters are the reference's, up to a distance tie broken differently by a last-bit difference (the
//! reference squares with `**`).

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
    let points = Points::standardised(data, intercept);
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
}

impl Points {
    fn standardised(data: &Data, intercept: bool) -> Points {
        let (n, d) = (data.n, data.d);
        let f0 = usize::from(intercept);
        let p = d - f0;
        let m = p + 1;
        let mut z = vec![0.0; n * m];
        for (i, row) in z.chunks_exact_mut(m).enumerate() {
            row[..p].copy_from_slice(&data.x[i * d + f0..(i + 1) * d]);
            row[p] = data.y[i];
        }
        let weight = |i: usize| data.s.map_or(1.0, |s| s[i]);
        for c in 0..m {
            let (mut sw, mut mean) = (0.0, 0.0);
            for i in 0..n {
                sw += weight(i);
                mean += weight(i) * z[i * m + c];
            }
            mean /= sw;
            let mut v = 0.0;
            for i in 0..n {
                let dev = z[i * m + c] - mean;
                v += weight(i) * (dev * dev);
            }
            let sd = (v / sw).sqrt();
            // A constant column carries no information: it becomes 0 rather than a division by zero.
            let scale = (if sd > 0.0 { 1.0 / sd } else { 0.0 }) * (if c == p { (p as f64).sqrt() } else { 1.0 });
            for i in 0..n {
                z[i * m + c] = (z[i * m + c] - mean) * scale;
            }
        }
        Points { z, n, m }
    }

    fn row(&self, i: usize) -> &[f64] {
        &self.z[i * self.m..(i + 1) * self.m]
    }
}

fn squared_distance(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = 0.0;
    for (x, y) in a.iter().zip(b) {
        let dev = x - y;
        acc += dev * dev;
    }
    acc
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
        for_each_row(&mut dist, threads, |i, di| *di = di.min(squared_distance(points.row(i), centre)));
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
        for_each_row(&mut nearest, threads, |i, best| {
            let mut best_dist = f64::INFINITY;
            *best = 0;
            for (j, centre) in current.chunks_exact(m).enumerate() {
                let dj = squared_distance(points.row(i), centre);
                if dj < best_dist {
                    best_dist = dj;
                    *best = j as u32;
                }
            }
        });
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
