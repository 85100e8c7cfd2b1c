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
                Labels::PlusMinus => {
                    if rng.uniform() < 0.5 {
                        1.0
                    } else {
                        -1.0
                    }
                }
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
    if diff == 0.0 {
        0.0
    } else {
        diff / scale.max(f64::MIN_POSITIVE)
    }
}

/// Asserts every element is finite and the relative error is within `tol`.
pub fn assert_close(what: &str, gpu: &[f64], cpu: &[f64], tol: f64) {
    assert!(gpu.iter().all(|v| v.is_finite()), "{what}: GPU produced a non-finite value");
    let e = relative_error(gpu, cpu);
    assert!(e <= tol, "{what}: relative error {e:e} > {tol:e}");
}

/// One choice of the CUDA backend's kernels (`set_kernels`), each compared with the CPU backend by the tests:
/// the defaults, each alternative alone, every opt-in at once (`Kernels::ALL`).
#[allow(unused_imports)] // not every test file compares kernel choices
pub use moe_cuda::KernelChoice as Kernels;
