//! moe-core: the numerics of moe-em (docs/ALGORITHMS.md is the contract; the TypeScript reference in src/
//! is the oracle). The algorithms are written once over `Backend`, a small set of fused passes over the
//! rows; `CpuBackend` implements it with threads, moe-cuda with CUDA kernels.

mod api;
pub mod backend;
pub mod cpu;
pub mod rng;
pub mod rowops;
pub mod gram;
pub mod linalg;
pub mod model;
pub mod softmax;
pub mod mstep;
pub mod gradient;
pub mod fit;
pub mod param_error;
pub mod validate;
pub mod info_rows;
pub mod info;
pub mod simd;

pub use api::*;
pub use backend::Backend;
pub use cpu::CpuBackend;

/// The same input checks and error codes as src/input.ts.
pub fn validate(data: &Data, model: &ModelSpec) -> Result<()> {
    validate::validate(data, model)
}

/// Fit one restart (ALGORITHMS §3–§5). `init`: starting parameters in the flat layout, or `None` for the
/// random initialisation from `seed`. `truth`: true parameters for `param_error`.
pub fn fit<B: Backend + ?Sized>(
    b: &B,
    model: &ModelSpec,
    spec: &FitSpec,
    seed: u32,
    init: Option<&[f64]>,
    truth: Option<&[f64]>,
    on_iter: &mut dyn FnMut(&IterationRecord) -> Control,
) -> Result<FitOutput> {
    fit::fit(b, model, spec, seed, init, truth, on_iter)
}

/// Mean nll and mean penalised objective at `params`.
pub fn evaluate<B: Backend + ?Sized>(b: &B, model: &ModelSpec, params: &[f64]) -> Result<(f64, f64)> {
    model::evaluate(b, model, params)
}

/// Responsibilities h (n×k row-major; symmetric: columns z=+1, z=−1).
pub fn posterior<B: Backend + ?Sized>(b: &B, model: &ModelSpec, params: &[f64]) -> Result<Vec<f64>> {
    model::posterior(b, model, params)
}

/// Complete, missing and observed information and the MIM spectrum at `params` (ALGORITHMS §7).
pub fn information<B: Backend + ?Sized>(
    b: &B,
    model: &ModelSpec,
    params: &[f64],
    method: InfoMethod,
    steps: usize,
) -> Result<Information> {
    info::information(b, model, params, method, steps)
}

/// Benchmark hook: just the weighted-Gram accumulation `G_j = Σ_i w_ij x_i x_iᵀ` (j < m; x n×d row-major,
/// w n×m row-major), over all rows with `threads` threads (0 = all cores). Returns m×d×d (full symmetric).
/// FLOPs: m·n·d·(d+1) (symmetric half, one multiply-add per entry).
pub fn weighted_gram(x: &[f64], n: usize, d: usize, w: &[f64], m: usize, threads: usize) -> Result<Vec<f64>> {
    cpu::weighted_gram(x, n, d, w, m, threads)
}
