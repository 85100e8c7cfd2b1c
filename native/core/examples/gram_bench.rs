//! Quick throughput check of the weighted-Gram accumulation: `cargo run --release -p moe-core --example gram_bench -- n d m threads`.
use std::time::Instant;

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let (n, d, m, threads) = (
        *args.first().unwrap_or(&100_000),
        *args.get(1).unwrap_or(&50),
        *args.get(2).unwrap_or(&4),
        *args.get(3).unwrap_or(&0),
    );
    let mut rng = moe_core::rng::Rng::new(1);
    let x: Vec<f64> = (0..n * d).map(|_| rng.uniform() - 0.5).collect();
    let w: Vec<f64> = (0..n * m).map(|_| rng.uniform()).collect();
    let flops = (m * n * d * (d + 1)) as f64;
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let t = Instant::now();
        let g = moe_core::weighted_gram(&x, n, d, &w, m, threads).unwrap();
        std::hint::black_box(&g);
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!("n={n} d={d} m={m} threads={threads}: {:.3} ms, {:.2} GFLOP/s", best * 1e3, flops / best / 1e9);
}
