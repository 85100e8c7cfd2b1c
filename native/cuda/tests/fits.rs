//! Whole fits on the CUDA backend against the same fits on moe-core's CpuBackend: every family (general and
//! symmetric), EM / Gradient EM / GD, full batch and mini-batch; with the default kernels (the fused narrow
//! pass where it saves a read of X, in launch configuration 0), each alternative alone (the unfused narrow
//! pass, cuBLAS Grams, cuBLAS XᵀR, Newton-CG's stored probabilities, the untiled row op, the fused kernel on
//! every pass in its other launch configurations) and the defaults with the stored probabilities and the
//! fused kernel on every pass: 9 × 25 fits. Parameters and the nll/objective histories must
//! agree to relative 1e-9 (the contract of docs/ALGORITHMS.md). Skipped without a GPU.

// `!(e <= TOL)` is deliberate: a NaN error fails the check.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

mod common;

use common::*;
use moe_core::rng::Rng;
use moe_core::{Algorithm, Control, CpuBackend, ExpertKind, FitOutput, FitSpec, ModelSpec, Noise, Solver};
use moe_cuda::{CudaBackend, FusedPolicy, GramKernel};

const TOL: f64 = 1e-9;

/// Data drawn from a planted mixture (so that EM has something to find): rows uniform in [−1,1]^d, a random
/// gate and random experts.
fn planted(seed: u32, n: usize, d: usize, model: &ModelSpec) -> Problem {
    let mut rng = Rng::new(seed);
    let mut normal = || {
        let (u1, u2) = (rng.uniform().max(1e-300), rng.uniform());
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    };
    let k = model.k.max(2);
    let c = model.n_classes.max(2);
    let gate: Vec<f64> = (0..k * d).map(|_| 1.5 * normal()).collect();
    let experts: Vec<f64> = (0..k * c * d).map(|_| 1.5 * normal()).collect();
    let mut rng = Rng::new(seed + 1);
    let x: Vec<f64> = (0..n * d).map(|_| 2.0 * rng.uniform() - 1.0).collect();
    let mut y = Vec::with_capacity(n);
    for i in 0..n {
        let xi = &x[i * d..(i + 1) * d];
        let dot = |v: &[f64]| v.iter().zip(xi).map(|(a, b)| a * b).sum::<f64>();
        let scores: Vec<f64> = (0..k).map(|j| dot(&gate[j * d..(j + 1) * d])).collect();
        let z = sample(&scores, rng.uniform());
        let beta = &experts[z * c * d..(z * c + 1) * d];
        let yi = match (model.symmetric, model.experts) {
            (false, ExpertKind::Linear) => dot(beta) + 0.3 * (2.0 * rng.uniform() - 1.0),
            (false, ExpertKind::Logistic) => (rng.uniform() < 1.0 / (1.0 + (-dot(beta)).exp())) as u8 as f64,
            (false, ExpertKind::Multinomial) => {
                let cls: Vec<f64> = (0..c).map(|l| dot(&experts[(z * c + l) * d..(z * c + l + 1) * d])).collect();
                sample(&cls, rng.uniform()) as f64
            }
            (true, ExpertKind::Linear) => {
                let sign = if z == 0 { 1.0 } else { -1.0 };
                sign * dot(beta) + 0.5 * (2.0 * rng.uniform() - 1.0)
            }
            (true, _) => {
                let sign = if z == 0 { 1.0 } else { -1.0 };
                if rng.uniform() < 1.0 / (1.0 + (-sign * dot(beta)).exp()) {
                    1.0
                } else {
                    -1.0
                }
            }
        };
        y.push(yi);
    }
    let s = Some((0..n).map(|_| 0.5 + rng.uniform()).collect());
    Problem { n, d, x, y, s }
}

/// Index drawn from softmax(scores) with the uniform u.
fn sample(scores: &[f64], u: f64) -> usize {
    let mx = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let w: Vec<f64> = scores.iter().map(|s| (s - mx).exp()).collect();
    let total: f64 = w.iter().sum();
    let mut acc = 0.0;
    for (j, wj) in w.iter().enumerate() {
        acc += wj / total;
        if u < acc {
            return j;
        }
    }
    w.len() - 1
}

fn model(experts: ExpertKind, symmetric: bool, k: usize, d: usize) -> ModelSpec {
    ModelSpec {
        experts,
        symmetric,
        k: if symmetric { 2 } else { k },
        d,
        n_classes: match experts {
            ExpertKind::Linear => 0,
            ExpertKind::Logistic => 2,
            ExpertKind::Multinomial => 3,
        },
        noise: if symmetric { Noise::Known(1.0) } else { Noise::Fitted },
        ridge: 1e-3,
        intercept: false,
    }
}

fn run(b: &dyn moe_core::Backend, model: &ModelSpec, spec: &FitSpec) -> FitOutput {
    moe_core::fit(b, model, spec, 7, None, None, &mut |_| Control::Continue).unwrap()
}

fn compare(label: &str, gpu: &FitOutput, cpu: &FitOutput, failures: &mut Vec<String>) {
    if gpu.iterations.len() != cpu.iterations.len() || gpu.reason != cpu.reason {
        failures.push(format!(
            "{label}: {} iterations ({:?}) vs {} ({:?})",
            gpu.iterations.len(),
            gpu.reason,
            cpu.iterations.len(),
            cpu.reason
        ));
        return;
    }
    let e = relative_error(&gpu.params, &cpu.params);
    let hist = |o: &FitOutput| o.iterations.iter().flat_map(|r| [r.nll, r.objective]).collect::<Vec<f64>>();
    let he = hist(gpu).iter().zip(hist(cpu)).map(|(g, c)| ((g - c) / c.abs().max(1e-300)).abs()).fold(0.0, f64::max);
    println!("{label:40} iters {:3}  params rel {e:.1e}  history rel {he:.1e}", gpu.iterations.len() - 1);
    if !(e <= TOL) || !(he <= TOL) {
        failures.push(format!("{label}: params rel {e:e}, history rel {he:e}"));
    }
}

#[test]
fn fits_match_the_cpu_backend() {
    let Some(_) = gpu_or_skip("fits_match_the_cpu_backend") else { return };
    let (n, d) = (3000, 4);
    let em = FitSpec { max_iter: 12, tol: 0.0, ..FitSpec::default() };
    let mut failures = Vec::new();
    let families = [
        ("linear", ExpertKind::Linear, false, 3),
        ("logistic", ExpertKind::Logistic, false, 2),
        ("multinomial", ExpertKind::Multinomial, false, 2),
        ("sym-linear", ExpertKind::Linear, true, 2),
        ("sym-logistic", ExpertKind::Logistic, true, 2),
    ];
    let specs = [
        (
            "em-newton",
            FitSpec { mstep: moe_core::MStepSpec { solver: Solver::Newton, ..Default::default() }, ..em.clone() },
        ),
        (
            "em-newton-cg",
            FitSpec { mstep: moe_core::MStepSpec { solver: Solver::NewtonCg, ..Default::default() }, ..em.clone() },
        ),
        ("gradient-em", FitSpec { algorithm: Algorithm::GradientEm, step_gate: 0.5, step_experts: 0.5, ..em.clone() }),
        ("gd", FitSpec { algorithm: Algorithm::Gd, step_gate: 0.5, step_experts: 0.5, ..em.clone() }),
        (
            "em-minibatch",
            FitSpec {
                batch_size: 700,
                mstep: moe_core::MStepSpec { solver: Solver::Gradient, ..Default::default() },
                ..em.clone()
            },
        ),
    ];
    for (fi, (fname, experts, symmetric, k)) in families.iter().enumerate() {
        let m = model(*experts, *symmetric, *k, d);
        let problem = planted(500 + fi as u32, n, d, &m);
        let cpu = CpuBackend::new(problem.data(), 2).unwrap();
        let gpu = CudaBackend::new(problem.data()).unwrap();
        for (sname, spec) in &specs {
            let c = run(&cpu, &m, spec);
            let fused = (1..moe_cuda::FUSED_VARIANTS.len()).map(|v| Kernels {
                fused: FusedPolicy::Everywhere,
                fused_variant: v,
                ..Kernels::DEFAULT
            });
            let configs = [
                Kernels::DEFAULT,
                Kernels { fused: FusedPolicy::Off, ..Kernels::DEFAULT },
                Kernels { gram: GramKernel::Gemm, ..Kernels::DEFAULT },
                Kernels { skinny: false, ..Kernels::DEFAULT },
                Kernels { stored_p: true, ..Kernels::DEFAULT },
                Kernels { tiled: false, ..Kernels::DEFAULT },
                Kernels::ALL,
            ];
            for kernels in configs.into_iter().chain(fused) {
                gpu.set_kernels(kernels);
                let g = run(&gpu, &m, spec);
                compare(&format!("{fname} {sname} ({})", kernels.label()), &g, &c, &mut failures);
            }
        }
    }
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
}
