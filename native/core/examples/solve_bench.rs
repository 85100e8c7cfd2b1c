//! Throughput of the Kronecker preconditioner's Ĝ solves (`CholeskyFactor::solve_vectors`), which run on the
//! host at every CG iteration of a softmax M-step, between a GPU backend's passes, and of the Cholesky
//! factorisation (the linear experts' M-step, the preconditioner's factors):
//! `cargo run --release -p moe-core --example solve_bench -- p count [threads]` (the Fashion-MNIST shape's
//! experts: p = 785, count = 9; the gate of (n, 100, 16): p = 101, count = 15; threads: all cores).
use std::time::Instant;

use moe_core::linalg::{cholesky_in_place, CholeskyFactor};

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let all = std::thread::available_parallelism().map_or(1, |t| t.get());
    let (p, count, threads) = (*args.first().unwrap_or(&785), *args.get(1).unwrap_or(&9), *args.get(2).unwrap_or(&all));
    let mut rng = moe_core::rng::Rng::new(1);
    // A well-conditioned SPD matrix: a Gram of 2p random rows.
    let rows: Vec<f64> = (0..2 * p * p).map(|_| rng.uniform() - 0.5).collect();
    let mut a = vec![0.0; p * p];
    for row in rows.chunks_exact(p) {
        for i in 0..p {
            for j in 0..p {
                a[i * p + j] += row[i] * row[j];
            }
        }
    }
    let mut factor_time = f64::INFINITY;
    let mut l = a.clone();
    for _ in 0..5 {
        l.copy_from_slice(&a);
        let t = Instant::now();
        assert!(cholesky_in_place(&mut l, p));
        factor_time = factor_time.min(t.elapsed().as_secs_f64());
    }
    let factor = CholeskyFactor::new(l, p);
    let b: Vec<f64> = (0..p * count).map(|_| rng.uniform() - 0.5).collect();
    let mut x = b.clone();
    let reps = (2e8 / (2.0 * (p * p * count) as f64)).ceil() as usize;
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let t = Instant::now();
        for _ in 0..reps {
            x.copy_from_slice(&b);
            factor.solve_vectors(&mut x, count, threads);
            std::hint::black_box(&x);
        }
        best = best.min(t.elapsed().as_secs_f64() / reps as f64);
    }
    let flops = 2.0 * (p * p * count) as f64;
    let checksum: f64 = x.iter().sum();
    println!("p={p} count={count} threads={threads}: {:.3} ms per solve, {:.2} GFLOP/s (checksum {checksum:.12e}); the factorisation {:.3} ms",
             best * 1e3, flops / best / 1e9, factor_time * 1e3);
}
