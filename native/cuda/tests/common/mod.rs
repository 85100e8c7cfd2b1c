//! Helpers shared by the GPU test files: skipping without a GPU, random problems, comparisons.
#![allow(dead_code)]

use moe_core::rng::Rng;

/// The device when a GPU is usable; otherwise prints why the test is skipped and returns None.
pub fn gpu_or_skip(test: &str) -> Option<moe_cuda::DeviceInfo> {
    match moe_cuda::cuda_available() {
        Ok(info) => Some(info),
        Err(e) => {
            println!("skipped {test}: no usable GPU here ({e})");
            None
        }
    }
}

/// The kind of labels a model family needs.
#[derive(Clone, Copy, Debug)]
pub enum Labels {
    Real,
    Binary,
    Classes(usize),
    PlusMinus,
}

pub struct Problem {
    pub n: usize,
    pub d: usize,
    pub x: Vec<f64>,
    pub y: Vec<f64>,
    pub s: Option<Vec<f64>>,
}

impl Problem {
    pub fn random(seed: u32, n: usize, d: usize, labels: Labels, weighted: bool) -> Problem {
        let mut rng = Rng::new(seed);
        let x = (0..n * d).map(|_| 2.0 * rng.uniform() - 1.0).collect();
        let y = (0..n)
            .map(|_| match labels {
                Labels::Real => 4.0 * rng.uniform() - 2.0,
                Labels::Binary => rng.int(2) as f64,
                Labels::Classes(c) => rng.int(c) as f64,
                Labels::PlusMinus => if rng.uniform() < 0.5 { 1.0 } else { -1.0 },
            })
            .collect();
        let s = weighted.then(|| (0..n).map(|_| 0.25 + 1.5 * rng.uniform()).collect());
        Problem { n, d, x, y, s }
    }

    pub fn data(&self) -> moe_core::Data<'_> {
        moe_core::Data { x: &self.x, n: self.n, d: self.d, y: &self.y, s: self.s.as_deref() }
    }
}

/// Uniform values in [−scale, scale).
pub fn random_vec(seed: u32, len: usize, scale: f64) -> Vec<f64> {
    let mut rng = Rng::new(seed);
    (0..len).map(|_| scale * (2.0 * rng.uniform() - 1.0)).collect()
}

/// A random row-stochastic n×width matrix (responsibilities).
pub fn random_h(seed: u32, n: usize, width: usize) -> Vec<f64> {
    let mut rng = Rng::new(seed);
    let mut h: Vec<f64> = (0..n * width).map(|_| 0.05 + rng.uniform()).collect();
    for row in h.chunks_mut(width) {
        let total: f64 = row.iter().sum();
        row.iter_mut().for_each(|v| *v /= total);
    }
    h
}

/// max |a − b| / max |b| (0 when both are empty or all zero).
pub fn relative_error(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let diff = a.iter().zip(b).fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
    if diff == 0.0 { 0.0 } else { diff / scale.max(f64::MIN_POSITIVE) }
}

/// Asserts every element is finite and the relative error is within `tol`.
pub fn assert_close(what: &str, gpu: &[f64], cpu: &[f64], tol: f64) {
    assert!(gpu.iter().all(|v| v.is_finite()), "{what}: GPU produced a non-finite value");
    let e = relative_error(gpu, cpu);
    assert!(e <= tol, "{what}: relative error {e:e} > {tol:e}");
}

/// One choice of the CUDA backend's kernels: the fused narrow pass (`FusedPolicy`: by default where it saves a
/// read of X; `Everywhere` tests the kernel on every op it fits),
/// the Gram kernel (tensor cores by default, the GEMM path as the alternative), the skinny Xᵀ·W reductions and
/// the opt-in probability store of Newton-CG (each compared with the CPU backend by the tests).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Kernels {
    pub fused: moe_cuda::FusedPolicy,
    /// The fused kernel's launch configuration (`moe_cuda::FUSED_VARIANTS` index, `set_fused_variant`).
    pub fused_variant: usize,
    pub gram: moe_cuda::GramKernel,
    pub skinny: bool,
    /// `stores_probabilities()` (`CudaBackend::set_stored_probabilities`).
    pub stored_p: bool,
    /// The unfused row op staged through shared memory (`set_tiled_row_op`).
    pub tiled: bool,
    /// The E-step's Grams left running on the side stream during the gate's M-step (`set_overlapped_grams`).
    pub overlap: bool,
}

impl Kernels {
    /// The defaults: the fused narrow pass where it saves a read of X (variant 0), tensor-core Grams, the skinny
    /// Xᵀ·W kernel, no probability store.
    pub const DEFAULT: Kernels = Kernels { fused: moe_cuda::FusedPolicy::SavesARead, fused_variant: 0, gram: moe_cuda::GramKernel::TensorCore, skinny: true, stored_p: false, tiled: true, overlap: false };
    /// The defaults with the opt-in probability store, the fused kernel on every pass it fits and the
    /// overlapped Grams.
    pub const ALL: Kernels = Kernels { fused: moe_cuda::FusedPolicy::Everywhere, fused_variant: 0, gram: moe_cuda::GramKernel::TensorCore, skinny: true, stored_p: true, tiled: true, overlap: true };

    pub fn apply(&self, gpu: &moe_cuda::CudaBackend) {
        gpu.set_fused_policy(self.fused);
        gpu.set_fused_variant(self.fused_variant);
        gpu.set_gram_kernel(self.gram);
        gpu.set_skinny_xtw(self.skinny);
        gpu.set_stored_probabilities(self.stored_p);
        gpu.set_tiled_row_op(self.tiled);
        gpu.set_overlapped_grams(self.overlap);
    }

    pub fn label(&self) -> String {
        format!("fused {:?} (variant {}), grams {:?}, skinny {}, stored p {}, tiled row op {}, overlapped grams {}", self.fused,
                self.fused_variant, self.gram, self.skinny, self.stored_p, self.tiled, self.overlap)
    }
}
