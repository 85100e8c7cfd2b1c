//! moe-core: the numerics of moe-em (docs/ALGORITHMS.md is the contract; the TypeScript reference in src/
//! is the oracle, matched to rounding).
//!
//! Layers, each talking only to the one below:
//! - public entry points (`fit`, `evaluate`, `posterior`, `information`, `validate`, `weighted_gram`);
//! - algorithms, written once: `fit` (loop, random init, mini-batch epochs), `mstep` (closed-form linear
//!   experts, re-seeding), `gate_only`, `kmeans` and `moments` (the stages of the named starts that read every row), `softmax` (Newton / Newton-CG / gradient solvers), `gradient` (GD, Gradient EM),
//!   `info` (I_c, I_m, MIM; dense or Lanczos), with host linear algebra in `linalg`;
//! - `Backend`: fused passes over the rows. A pass projects each row on a small host matrix, applies one
//!   `RowOp` (per-row mathematics in `rowops` / `info_rows`, shared by every backend) and reduces XᵀR,
//!   weighted Grams and sums; H (responsibilities) stays in the backend;
//! - `CpuBackend`: fixed 2048-row chunks reduced in chunk order (bit-identical for any thread count),
//!   AVX2+FMA Gram kernel (`gram`) and row kernels (`simd`). moe-cuda implements the same trait.

// `!(x > t)` is deliberate throughout: it is true for NaN, exactly like the reference's `!(x > t)` tests.
#![allow(clippy::neg_cmp_op_on_partial_ord)]
// Index loops over parallel arrays mirror the formulas (and the TypeScript reference) line for line.
#![allow(clippy::needless_range_loop)]

mod api;
pub mod backend;
pub mod cpu;
pub mod fit;
pub mod gate_only;
pub mod gradient;
pub mod gram;
pub mod info;
pub mod info_rows;
pub mod kmeans;
pub mod kronecker;
pub mod linalg;
pub mod model;
pub mod moments;
pub mod mstep;
pub mod param_error;
pub mod rng;
pub mod rowops;
pub mod simd;
pub mod softmax;
pub mod validate;

pub use api::*;
pub use backend::Backend;
pub use cpu::CpuBackend;

/// The same input checks and error codes as src/input.ts.
pub fn validate(data: &Data, model: &ModelSpec) -> Result<()> {
    validate::validate(data, model)
}

/// The checks of a query of fitted parameters (evaluate, posterior, information): as `validate`, without
/// the row count a fit needs.
pub fn validate_query(data: &Data, model: &ModelSpec) -> Result<()> {
    validate::validate_query(data, model).map(|_| ())
}

/// The checks of a prediction's input: X's shape and finiteness, and the model's options (no labels).
pub fn validate_design(x: &[f64], n: usize, d: usize, model: &ModelSpec) -> Result<()> {
    validate::validate_design(x, n, d, model)
}

/// The index of the first NaN or ±Inf of `v` (read on all cores when `v` is large).
pub use validate::first_non_finite;

pub use fit::{fit, fit_with_partial, start_from_assignment};
pub use gate_only::gate_only_em;
pub use kmeans::kmeans_clusters;
pub use moments::{moment_sums, MomentSums};

/// Mean nll and mean penalised objective at `params`.
pub fn evaluate<B: Backend + ?Sized>(b: &B, model: &ModelSpec, params: &[f64]) -> Result<(f64, f64)> {
    model::evaluate(b, model, params)
}

/// Responsibilities h (n×k row-major; symmetric: columns z=+1, z=−1).
pub fn posterior<B: Backend + ?Sized>(b: &B, model: &ModelSpec, params: &[f64]) -> Result<Vec<f64>> {
    model::posterior(b, model, params)
}

/// Predictions (n × width): the mixture mean of linear experts, class probabilities otherwise.
pub fn predict<B: Backend + ?Sized>(b: &B, model: &ModelSpec, params: &[f64]) -> Result<Vec<f64>> {
    model::predict(b, model, params)
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
