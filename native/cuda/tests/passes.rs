//! Parity of every `RowOp` pass between the CUDA backend and moe-core's CpuBackend (the oracle), on fresh
//! random inputs: all rows and a shuffled mini-batch, with and without sample weights. Skipped (with the
//! reason printed) where no GPU is usable.

// `!(e <= TOL)` is deliberate: a NaN error fails the check.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

mod common;

use common::*;
use moe_core::backend::{
    Backend, Family, InfoModel, InfoPart, InfoTask, RowOp, Rows, SoftmaxProblem, SoftmaxTask, SymKind,
};
use moe_core::rng::Rng;
use moe_core::{CpuBackend, ErrorCode};
use moe_cuda::{CudaBackend, FusedPolicy, GramKernel, TC_VARIANTS};

/// Reductions over a few thousand rows in a different order: far below this in float64.
const TOL: f64 = 1e-11;

struct Case {
    name: &'static str,
    labels: Labels,
    op: RowOp,
}

fn cases() -> Vec<Case> {
    let k = 3;
    let lin = || Family::Linear { sigma2: vec![0.6, 1.1, 2.3] };
    let c = 4;
    let mut out = vec![
        Case { name: "moments", labels: Labels::Real, op: RowOp::Moments },
        Case { name: "gram", labels: Labels::Real, op: RowOp::Gram },
        Case {
            name: "estep-linear-suff",
            labels: Labels::Real,
            op: RowOp::EStep { k, family: lin(), store: true, suff: true },
        },
        Case {
            name: "estep-linear-nostore",
            labels: Labels::Real,
            op: RowOp::EStep { k, family: lin(), store: false, suff: false },
        },
        Case {
            name: "estep-logistic",
            labels: Labels::Binary,
            op: RowOp::EStep { k, family: Family::Logistic, store: true, suff: false },
        },
        Case {
            name: "estep-multinomial",
            labels: Labels::Classes(c),
            op: RowOp::EStep { k, family: Family::Multinomial { classes: c }, store: true, suff: false },
        },
        Case {
            name: "sym-estep-linear",
            labels: Labels::Real,
            op: RowOp::SymEStep { kind: SymKind::Linear { sigma: 0.8 }, store: true, suff: true },
        },
        Case {
            name: "sym-estep-logistic",
            labels: Labels::PlusMinus,
            op: RowOp::SymEStep { kind: SymKind::Logistic, store: true, suff: false },
        },
        Case { name: "linear-residual", labels: Labels::Real, op: RowOp::LinearResidual { k } },
        Case { name: "h-stats", labels: Labels::Real, op: RowOp::HStats { width: k, suff: false, symmetric: false } },
        Case {
            name: "h-stats-linear-suff",
            labels: Labels::Real,
            op: RowOp::HStats { width: k, suff: true, symmetric: false },
        },
        Case {
            name: "h-stats-sym-suff",
            labels: Labels::Real,
            op: RowOp::HStats { width: 2, suff: true, symmetric: true },
        },
    ];
    for stored_h in [false, true] {
        out.push(Case {
            name: "gradient-linear",
            labels: Labels::Real,
            op: RowOp::Gradient { k, family: lin(), stored_h },
        });
        out.push(Case {
            name: "gradient-logistic",
            labels: Labels::Binary,
            op: RowOp::Gradient { k, family: Family::Logistic, stored_h },
        });
        out.push(Case {
            name: "gradient-multinomial",
            labels: Labels::Classes(c),
            op: RowOp::Gradient { k, family: Family::Multinomial { classes: c }, stored_h },
        });
        out.push(Case {
            name: "sym-gradient-linear",
            labels: Labels::Real,
            op: RowOp::SymGradient { kind: SymKind::Linear { sigma: 1.3 }, stored_h },
        });
        out.push(Case {
            name: "sym-gradient-logistic",
            labels: Labels::PlusMinus,
            op: RowOp::SymGradient { kind: SymKind::Logistic, stored_h },
        });
    }
    // Predictions (rows on the host; the binding sends them to the CPU backend, but the backend answers too).
    out.push(Case { name: "predict-linear", labels: Labels::Real, op: RowOp::Predict { k, family: lin() } });
    out.push(Case {
        name: "predict-logistic",
        labels: Labels::Real,
        op: RowOp::Predict { k, family: Family::Logistic },
    });
    out.push(Case {
        name: "predict-multinomial",
        labels: Labels::Real,
        op: RowOp::Predict { k, family: Family::Multinomial { classes: c } },
    });
    out.push(Case {
        name: "sym-predict-linear",
        labels: Labels::Real,
        op: RowOp::SymPredict { kind: SymKind::Linear { sigma: 0.8 } },
    });
    out.push(Case {
        name: "sym-predict-logistic",
        labels: Labels::Real,
        op: RowOp::SymPredict { kind: SymKind::Logistic },
    });
    // Information passes (their rows are evaluated on the host, reductions on the GPU).
    let info_models = [
        (Labels::Real, InfoModel::General { k, family: lin(), fitted_sigma: true }),
        (
            Labels::Classes(c),
            InfoModel::General { k: 2, family: Family::Multinomial { classes: c }, fitted_sigma: false },
        ),
        (Labels::Real, InfoModel::Symmetric { kind: SymKind::Linear { sigma: 0.9 } }),
    ];
    for (labels, model) in info_models {
        let slots = model.slots();
        let q1 = slots.iter().filter(|&&x| !x).count();
        for part in [InfoPart::Complete, InfoPart::Missing] {
            let tasks = [
                InfoTask::Assemble { first: 0, count: slots.len() },
                InfoTask::Diag,
                InfoTask::Apply { scalars: (0..q1).map(|i| 0.3 + i as f64).collect() },
            ];
            for task in tasks {
                out.push(Case {
                    name: "information",
                    labels,
                    op: RowOp::Information { model: model.clone(), part, task },
                });
            }
        }
    }
    let tasks = [
        SoftmaxTask::Objective,
        SoftmaxTask::Gradient,
        SoftmaxTask::Hessian,
        SoftmaxTask::HessVec,
        SoftmaxTask::GradientDiag,
    ];
    for task in tasks {
        for (name, labels, problem) in softmax_problems() {
            out.push(Case { name, labels, op: RowOp::Softmax { problem, task } });
        }
    }
    out
}

/// Every softmax problem (k = 3 experts, C = 4 classes), with the labels it needs.
fn softmax_problems() -> [(&'static str, Labels, SoftmaxProblem); 5] {
    let (k, c) = (3, 4);
    [
        ("softmax-gate", Labels::Real, SoftmaxProblem::Gate { k }),
        ("softmax-expert-logistic", Labels::Binary, SoftmaxProblem::Expert { j: 1, k, classes: 2, logistic: true }),
        (
            "softmax-expert-multinomial",
            Labels::Classes(c),
            SoftmaxProblem::Expert { j: 2, k, classes: c, logistic: false },
        ),
        ("softmax-sym-gate", Labels::Real, SoftmaxProblem::SymGate),
        ("softmax-sym-log-expert", Labels::PlusMinus, SoftmaxProblem::SymLogExpert),
    ]
}

/// The GPU configurations a pass is compared in: the defaults, each alternative alone where the op uses it
/// (the fused pass on every op it fits, in each launch configuration; the GEMM path for full Grams; cuBLAS instead of the skinny Xᵀ·W for XᵀR and diagonal
/// Grams), and all the opt-in kernels at once.
fn configurations(op: &RowOp) -> Vec<Kernels> {
    let sh = op.shape();
    let mut out = vec![Kernels::DEFAULT, Kernels { tiled: false, ..Kernels::DEFAULT }];
    out.extend((0..moe_cuda::FUSED_VARIANTS.len()).map(|v| Kernels {
        fused: FusedPolicy::Everywhere,
        fused_variant: v,
        ..Kernels::DEFAULT
    }));
    if sh.grams > 0 && !sh.diag_only {
        out.push(Kernels { gram: GramKernel::Gemm, ..Kernels::DEFAULT });
    }
    if sh.r_cols > 0 || (sh.grams > 0 && sh.diag_only) {
        out.push(Kernels { skinny: false, ..Kernels::DEFAULT });
    }
    out.push(Kernels::ALL);
    out
}

/// Asserts that the tensor-core Gram kernel really runs where it should (sm_80 and newer, d ≤ TC_MAX_D, its
/// staging within the device's shared memory per block), so
/// that a test of it cannot silently compare the GEMM path twice.
fn expect_tensor_core(gpu: &CudaBackend) {
    let sm = gpu.device().compute_capability.0;
    let fits = gpu.gram_tc_variant().shared_bytes(gpu.d()) <= gpu.device().max_shared_bytes_per_block;
    let want = if sm >= 8 && gpu.d() <= moe_cuda::TC_MAX_D && fits { GramKernel::TensorCore } else { GramKernel::Gemm };
    assert_eq!(gpu.full_gram_kernel(), want, "sm_{sm}x, d = {}", gpu.d());
}

/// Runs `op` on both backends over all rows and over a shuffled batch; returns every mismatch found.
fn compare_case(case: &Case, seed: u32, weighted: bool, kernels: Kernels) -> Vec<String> {
    let mut failures = Vec::new();
    let (n, d) = (2111, 6); // not a multiple of any block size
    let problem = Problem::random(seed, n, d, case.labels, weighted);
    let shape = case.op.shape();
    let proj = random_vec(seed + 1, shape.q * d, 0.9);
    let cpu = CpuBackend::new(problem.data(), 2).unwrap();
    let gpu = CudaBackend::new(problem.data()).unwrap();
    gpu.set_kernels(kernels);
    if kernels.gram == GramKernel::TensorCore {
        expect_tensor_core(&gpu);
    }
    if shape.h_width > 0 {
        let h = random_h(seed + 2, n, shape.h_width);
        cpu.write_h(shape.h_width, &h).unwrap();
        gpu.write_h(shape.h_width, &h).unwrap();
    }
    let mut order: Vec<u32> = (0..n as u32).collect();
    Rng::new(seed + 3).shuffle(&mut order);
    cpu.set_order(&order).unwrap();
    gpu.set_order(&order).unwrap();
    for rows in [Rows::All, Rows::Order { start: 123, len: 777 }] {
        let label = format!("{} ({rows:?}, weighted {weighted}, {})", case.name, kernels.label());
        let c = cpu.pass(rows, &proj, &case.op).unwrap();
        let g = match gpu.pass(rows, &proj, &case.op) {
            Ok(g) => g,
            Err(e) => {
                failures.push(format!("{label}: {e}"));
                continue;
            }
        };
        let mut check = |what: &str, g: &[f64], c: &[f64]| {
            let e = relative_error(g, c);
            if !(e <= TOL) || g.iter().any(|v| !v.is_finite()) {
                failures.push(format!("{label}: {what} relative error {e:e}"));
            }
        };
        check("XᵀR", &g.xtr, &c.xtr);
        check("grams", &g.grams, &c.grams);
        if shape.h_width > 0 {
            check("H", &gpu.read_h(shape.h_width).unwrap(), &cpu.read_h(shape.h_width).unwrap());
        }
        for (i, (gs, cs)) in g.sums.iter().zip(&c.sums).enumerate() {
            // A sum of ~n terms of size O(1) may cancel: bound the error by the terms' scale, n.
            if !((gs - cs).abs() <= TOL * (cs.abs() + n as f64)) {
                failures.push(format!("{label}: sums[{i}] {gs} vs {cs}"));
            }
        }
        if g.sums.len() != c.sums.len() {
            failures.push(format!("{label}: {} sums, expected {}", g.sums.len(), c.sums.len()));
        }
    }
    failures
}

#[test]
fn every_pass_matches_the_cpu_backend() {
    let Some(info) = gpu_or_skip("every_pass_matches_the_cpu_backend") else { return };
    println!("device: {} (sm_{}{})", info.name, info.compute_capability.0, info.compute_capability.1);
    assert_fused_kernel_runs(&info);
    let mut failures = Vec::new();
    let all = cases();
    for (i, case) in all.iter().enumerate() {
        for weighted in [false, true] {
            for config in configurations(&case.op) {
                failures.extend(compare_case(case, 1000 + 17 * i as u32 + weighted as u32, weighted, config));
            }
        }
    }
    println!(
        "{} ops × 2 weightings × (defaults, each opt-in kernel the op uses, all of them) × 2 row selections compared",
        all.len()
    );
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
}

/// On sm_80 and newer the fused tensor-core kernel must be loadable, or the `fused = true` comparisons
/// would silently test the unfused path twice.
fn assert_fused_kernel_runs(info: &moe_cuda::DeviceInfo) {
    let problem = Problem::random(3, 64, 3, Labels::Real, false);
    let gpu = CudaBackend::new(problem.data()).unwrap();
    println!("fused tensor-core kernel available: {}", gpu.fused_available());
    if info.compute_capability.0 >= 8 {
        assert!(
            gpu.fused_available(),
            "sm_{}{} has fp64 DMMA but the fused kernel is not in the module",
            info.compute_capability.0,
            info.compute_capability.1
        );
    }
}

#[test]
fn passes_are_bit_identical_run_to_run() {
    let Some(_) = gpu_or_skip("passes_are_bit_identical_run_to_run") else { return };
    let (n, d, k) = (50_000, 9, 4);
    let problem = Problem::random(77, n, d, Labels::Real, true);
    let gpu = CudaBackend::new(problem.data()).unwrap();
    let estep =
        RowOp::EStep { k, family: Family::Linear { sigma2: vec![0.5, 1.0, 1.5, 2.0] }, store: true, suff: true };
    let proj = random_vec(78, 2 * k * d, 0.5);
    let hess = RowOp::Softmax { problem: SoftmaxProblem::Gate { k }, task: SoftmaxTask::Hessian };
    let hessvec = RowOp::Softmax { problem: SoftmaxProblem::Gate { k }, task: SoftmaxTask::HessVec };
    let passes: [(&[f64], &RowOp); 3] =
        [(&proj, &estep), (&proj[..(k - 1) * d], &hess), (&proj[..2 * (k - 1) * d], &hessvec)];
    // Unfused, then each launch configuration of the fused kernel, on every pass.
    let configs = std::iter::once((FusedPolicy::Off, 0))
        .chain((0..moe_cuda::FUSED_VARIANTS.len()).map(|v| (FusedPolicy::Everywhere, v)));
    for (fused, variant) in configs {
        gpu.set_fused_policy(fused);
        gpu.set_fused_variant(variant);
        let first: Vec<_> = passes.iter().map(|(p, op)| gpu.pass(Rows::All, p, op).unwrap()).collect();
        for _ in 0..3 {
            for ((p, op), want) in passes.iter().zip(&first) {
                assert_eq!(
                    &gpu.pass(Rows::All, p, op).unwrap(),
                    want,
                    "{op:?} (fused {fused:?}, variant {variant}) changed run to run"
                );
            }
        }
    }
    // The tensor-core Grams (unfused E-step).
    gpu.set_fused_policy(FusedPolicy::Off);
    gpu.set_gram_kernel(GramKernel::TensorCore);
    expect_tensor_core(&gpu);
    let tc = gpu.pass(Rows::All, &proj, &estep).unwrap();
    for _ in 0..3 {
        assert_eq!(gpu.pass(Rows::All, &proj, &estep).unwrap(), tc, "tensor-core Grams changed run to run");
    }
}

/// The fused kernel at the widths of the (1e7, 100, 16) benchmark and at its limits (d = 128, q = 32,
/// r_cols = 16), where `every_pass_matches_the_cpu_backend` (d = 6, k = 3) does not reach: every k-step and
/// output tile of the DMMA products in use, against the CPU backend, in each launch configuration.
#[test]
fn fused_wide_passes_match_the_cpu_backend() {
    let Some(_) = gpu_or_skip("fused_wide_passes_match_the_cpu_backend") else { return };
    let (n, k) = (3001, 16);
    let gate = |task| RowOp::Softmax { problem: SoftmaxProblem::Gate { k }, task };
    let ops = [
        RowOp::EStep {
            k,
            family: Family::Linear { sigma2: (0..k).map(|j| 0.5 + 0.1 * j as f64).collect() },
            store: true,
            suff: true,
        },
        RowOp::LinearResidual { k },
        gate(SoftmaxTask::Objective),
        gate(SoftmaxTask::Gradient),
        gate(SoftmaxTask::HessVec),
        gate(SoftmaxTask::GradientDiag),
    ];
    let mut failures = Vec::new();
    for d in [100, 128] {
        let problem = Problem::random(91 + d as u32, n, d, Labels::Real, true);
        let cpu = CpuBackend::new(problem.data(), 2).unwrap();
        let gpu = CudaBackend::new(problem.data()).unwrap();
        if !gpu.fused_available() {
            println!("skipped fused_wide_passes_match_the_cpu_backend: no fused kernel for this device");
            return;
        }
        gpu.set_fused_policy(FusedPolicy::Everywhere);
        let h = random_h(92, n, k);
        for (op, variant) in ops.iter().flat_map(|op| (0..moe_cuda::FUSED_VARIANTS.len()).map(move |v| (op, v))) {
            let sh = op.shape();
            cpu.write_h(k, &h).unwrap();
            gpu.write_h(k, &h).unwrap();
            gpu.set_fused_variant(variant);
            let proj = random_vec(93, sh.q * d, 0.15);
            let (c, g) = (cpu.pass(Rows::All, &proj, op).unwrap(), gpu.pass(Rows::All, &proj, op).unwrap());
            let mut check = |what: &str, g: &[f64], c: &[f64]| {
                let e = relative_error(g, c);
                if e.is_nan() || e > TOL || g.iter().any(|v| !v.is_finite()) {
                    failures.push(format!(
                        "{op:?} d={d} {}: {what} relative error {e:e}",
                        moe_cuda::FUSED_VARIANTS[variant].0
                    ));
                }
            };
            check("XᵀR", &g.xtr, &c.xtr);
            check("grams", &g.grams, &c.grams);
            check("sums", &g.sums, &c.sums);
            if sh.writes_h {
                check("H", &gpu.read_h(k).unwrap(), &cpu.read_h(k).unwrap());
            }
        }
    }
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
}

/// Newton-CG's stored probabilities (`SoftmaxTask::GradientDiagStore` then `HessVecStored` at the same V, over the
/// same rows) against the CPU backend doing the same, all rows and a batch, every softmax problem, in each
/// kernel configuration; and the GPU's HessVecStored against its own HessVec (P = [V; D]). The projections
/// of V and D come from different GEMMs there (q = m vs 2m), so the two agree to rounding, not bit for bit.
#[test]
fn stored_probabilities_match_the_cpu_backend() {
    let Some(_) = gpu_or_skip("stored_probabilities_match_the_cpu_backend") else { return };
    let (n, d) = (2111, 6);
    let mut failures = Vec::new();
    for (i, (name, labels, problem)) in softmax_problems().into_iter().enumerate() {
        let op = |task| RowOp::Softmax { problem, task };
        let (diag, hess_vec, hess_vec_stored) =
            (op(SoftmaxTask::GradientDiagStore), op(SoftmaxTask::HessVec), op(SoftmaxTask::HessVecStored));
        let (m, hw) = (problem.classes() - 1, hess_vec.shape().h_width);
        for weighted in [false, true] {
            let seed = 4000 + 10 * i as u32 + weighted as u32;
            let data = Problem::random(seed, n, d, labels, weighted);
            let vd = random_vec(seed + 1, 2 * m * d, 0.9); // [V; D]
            let (v, dir) = vd.split_at(m * d);
            let h = random_h(seed + 2, n, hw);
            let mut order: Vec<u32> = (0..n as u32).collect();
            Rng::new(seed + 3).shuffle(&mut order);
            for kernels in configurations(&hess_vec_stored) {
                let cpu = CpuBackend::new(data.data(), 2).unwrap();
                let gpu = CudaBackend::new(data.data()).unwrap();
                gpu.set_kernels(kernels);
                gpu.set_stored_probabilities(true);
                assert!(gpu.stores_probabilities() && cpu.stores_probabilities());
                let Err(e) = gpu.pass(Rows::All, dir, &hess_vec_stored) else {
                    panic!("{name}: read probabilities never stored")
                };
                assert_eq!(e.code, ErrorCode::Internal, "{e}");
                for b in [&cpu as &dyn Backend, &gpu] {
                    b.write_h(hw, &h).unwrap();
                    b.set_order(&order).unwrap();
                }
                for rows in [Rows::All, Rows::Order { start: 123, len: 777 }] {
                    let label = format!("{name} ({rows:?}, weighted {weighted}, {})", kernels.label());
                    let mut check = |what: &str, g: &[f64], c: &[f64]| {
                        let e = relative_error(g, c);
                        if !(e <= TOL) || g.iter().any(|v| !v.is_finite()) {
                            failures.push(format!("{label}: {what} relative error {e:e}"));
                        }
                    };
                    let (cd, gd) = (cpu.pass(rows, v, &diag).unwrap(), gpu.pass(rows, v, &diag).unwrap());
                    check("GradientDiagStore grams", &gd.grams, &cd.grams);
                    check("GradientDiagStore XᵀR", &gd.xtr, &cd.xtr);
                    check("GradientDiagStore sums", &gd.sums, &cd.sums);
                    let (ch, gh) = (
                        cpu.pass(rows, dir, &hess_vec_stored).unwrap(),
                        gpu.pass(rows, dir, &hess_vec_stored).unwrap(),
                    );
                    check("HessVecStored XᵀR", &gh.xtr, &ch.xtr);
                    check("HessVecStored vs HessVec on the GPU", &gh.xtr, &gpu.pass(rows, &vd, &hess_vec).unwrap().xtr);
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn bad_input_gives_typed_errors() {
    let problem = Problem::random(5, 100, 3, Labels::Real, false);
    let mut bad = problem.data();
    bad.n = 99; // x no longer n×d
    let e = CudaBackend::new(bad).err().expect("shape error");
    assert_eq!(e.code, ErrorCode::Shape);
    match moe_cuda::cuda_available() {
        Err(e) => {
            // No GPU here: both entry points say so with the documented code, and nothing panics.
            assert_eq!(e.code, ErrorCode::BackendUnavailable, "{e}");
            let e = CudaBackend::new(problem.data()).err().expect("unavailable");
            assert_eq!(e.code, ErrorCode::BackendUnavailable);
            println!("no GPU here: {e}");
        }
        Ok(_) => {
            let gpu = CudaBackend::new(problem.data()).unwrap();
            let e = gpu.pass(Rows::All, &[1.0, 2.0], &RowOp::LinearResidual { k: 1 }).err().unwrap();
            assert_eq!(e.code, ErrorCode::Shape, "projection of the wrong size");
            let e = gpu.pass(Rows::All, &[0.0; 3], &RowOp::LinearResidual { k: 1 }).err().unwrap();
            assert_eq!(e.code, ErrorCode::Internal, "reading an H that was never stored");
            let e = gpu.set_order(&[0, 100]).err().unwrap();
            assert_eq!(e.code, ErrorCode::Shape);
            let wide = RowOp::Softmax { problem: SoftmaxProblem::Gate { k: 65 }, task: SoftmaxTask::Objective };
            gpu.write_h(65, &vec![1.0 / 65.0; 100 * 65]).unwrap();
            let e = gpu.pass(Rows::All, &vec![0.0; 64 * 3], &wide).err().unwrap();
            assert_eq!(e.code, ErrorCode::Option);
        }
    }
}

#[test]
fn nvrtc_kernels_match_the_fatbin() {
    let Some(_) = gpu_or_skip("nvrtc_kernels_match_the_fatbin") else { return };
    let (n, d, k) = (20_000, 5, 3);
    let problem = Problem::random(31, n, d, Labels::Classes(3), true);
    let fatbin = CudaBackend::new(problem.data()).unwrap();
    let nvrtc = CudaBackend::with_kernels(problem.data(), moe_cuda::KernelSource::Nvrtc).unwrap();
    assert_eq!(nvrtc.kernel_source(), "nvrtc");
    println!("default kernels: {}", fatbin.kernel_source());
    let op = RowOp::EStep { k, family: Family::Multinomial { classes: 3 }, store: true, suff: false };
    let proj = random_vec(32, op.shape().q * d, 0.7);
    let a = fatbin.pass(Rows::All, &proj, &op).unwrap();
    let b = nvrtc.pass(Rows::All, &proj, &op).unwrap();
    assert_close("sums", &b.sums, &a.sums, 1e-13);
    assert_close("H", &nvrtc.read_h(k).unwrap(), &fatbin.read_h(k).unwrap(), 1e-13);
}

#[test]
fn grams_accumulate_over_many_chunks() {
    let Some(_) = gpu_or_skip("grams_accumulate_over_many_chunks") else { return };
    let (n, d, k) = (2111, 6, 3);
    let problem = Problem::random(41, n, d, Labels::Real, true);
    let cpu = CpuBackend::new(problem.data(), 2).unwrap();
    let gpu = CudaBackend::new(problem.data()).unwrap();
    let h = random_h(42, n, k);
    cpu.write_h(k, &h).unwrap();
    gpu.write_h(k, &h).unwrap();
    let ops = [
        RowOp::EStep { k, family: Family::Linear { sigma2: vec![0.5, 1.0, 2.0] }, store: false, suff: true },
        RowOp::Softmax { problem: SoftmaxProblem::Gate { k }, task: SoftmaxTask::Hessian },
        RowOp::Softmax { problem: SoftmaxProblem::Gate { k }, task: SoftmaxTask::GradientDiag },
    ];
    // The tensor-core kernel chunks rows its own way (gram.rs TcPlan): once is enough for it.
    for (gram, rows_per_chunk) in
        [(GramKernel::Gemm, 1), (GramKernel::Gemm, 50), (GramKernel::Gemm, 333), (GramKernel::TensorCore, 0)]
    {
        gpu.set_gram_kernel(gram);
        // Chunk sizes are in bytes of scaled rows: full Grams use grams·d values per row, diagonal ones d.
        for op in &ops {
            let sh = op.shape();
            let per_row = 8 * d * if sh.diag_only { 1 } else { sh.grams };
            gpu.set_gram_chunk_bytes(rows_per_chunk * per_row);
            let proj = random_vec(43, sh.q * d, 0.8);
            let c = cpu.pass(Rows::All, &proj, op).unwrap();
            let g = gpu.pass(Rows::All, &proj, op).unwrap();
            assert_close(&format!("{op:?} grams ({gram:?}), {rows_per_chunk} rows per chunk"), &g.grams, &c.grams, TOL);
            assert_close(&format!("{op:?} XᵀR ({gram:?}), {rows_per_chunk} rows per chunk"), &g.xtr, &c.xtr, TOL);
        }
    }
}

/// The tensor-core Grams at the widths that matter (the tiling differs with d: 37 → 3 super tiles per side,
/// 100 → 7, 128 → 8) and with 3 and 16 Grams (Gram groups of 4, one partly empty): equal to the CPU backend,
/// to the GEMM path, and bit-identical run to run, with each kernel variant; d = 129 falls back to the GEMM path.
#[test]
fn tensor_core_grams_at_wide_shapes() {
    let Some(_) = gpu_or_skip("tensor_core_grams_at_wide_shapes") else { return };
    let n = 3001; // several chunks of 256 rows and a short last stage
    for d in [37, 100, 128, 129] {
        let problem = Problem::random(60 + d as u32, n, d, Labels::Real, true);
        let cpu = CpuBackend::new(problem.data(), 2).unwrap();
        let gpu = CudaBackend::new(problem.data()).unwrap();
        for k in [3, 16] {
            let h = random_h(61, n, k);
            cpu.write_h(k, &h).unwrap();
            gpu.write_h(k, &h).unwrap();
            let op = RowOp::EStep {
                k,
                family: Family::Linear { sigma2: (0..k).map(|j| 0.5 + j as f64 / 8.0).collect() },
                store: false,
                suff: true,
            };
            let proj = random_vec(62, op.shape().q * d, 0.3);
            let c = cpu.pass(Rows::All, &proj, &op).unwrap();
            gpu.set_gram_kernel(GramKernel::Gemm);
            let gemm = gpu.pass(Rows::All, &proj, &op).unwrap();
            gpu.set_gram_kernel(GramKernel::TensorCore);
            expect_tensor_core(&gpu);
            // Every variant this device has (Hopper's m16n8k16 on sm_90; staging pipelines, work splits): the
            // same layout, so the same Grams up to rounding; the m16 variants issue the same DMMAs on each
            // accumulator in the same order, so they agree bit for bit.
            let default_variant = gpu.gram_tc_variant();
            let mut m16: Option<(&str, Vec<f64>)> = None;
            for (i, variant) in TC_VARIANTS.iter().enumerate() {
                gpu.set_gram_tc_variant(i);
                if gpu.gram_tc_variant() != *variant {
                    println!("d = {d}, {k} Grams: {} not on this device", variant.name);
                    continue;
                }
                let tc = gpu.pass(Rows::All, &proj, &op).unwrap();
                let label = format!("d = {d}, {k} Grams ({:?}, {})", gpu.full_gram_kernel(), variant.name);
                assert_close(&format!("{label}: vs CPU"), &tc.grams, &c.grams, TOL);
                assert_close(&format!("{label}: vs GEMM"), &tc.grams, &gemm.grams, TOL);
                println!(
                    "{label}: vs CPU {:.1e}, vs GEMM {:.1e}",
                    relative_error(&tc.grams, &c.grams),
                    relative_error(&tc.grams, &gemm.grams)
                );
                for _ in 0..2 {
                    assert_eq!(gpu.pass(Rows::All, &proj, &op).unwrap(), tc, "{label}: run to run");
                }
                if variant.hopper && gpu.full_gram_kernel() == GramKernel::TensorCore {
                    match &m16 {
                        None => m16 = Some((variant.name, tc.grams.clone())),
                        Some((first, grams)) => assert!(tc.grams == *grams, "{label}: not the bits of {first}"),
                    }
                }
            }
            gpu.set_gram_tc_variant(TC_VARIANTS.iter().position(|v| *v == default_variant).unwrap());
        }
    }
}

/// The Kronecker preconditioners' sample rows (moe_core::kronecker) and H's rows there come back as the CPU
/// backend gives them, with and without weights; an index out of range or a wrong H width is a typed error.
#[test]
fn gathered_rows_match_the_cpu_backend() {
    let Some(_) = gpu_or_skip("gathered_rows_match_the_cpu_backend") else { return };
    for weighted in [false, true] {
        let problem = Problem::random(41, 3001, 7, Labels::Real, weighted);
        let (gpu, cpu) = (CudaBackend::new(problem.data()).unwrap(), CpuBackend::new(problem.data(), 1).unwrap());
        let idx = moe_core::kronecker::sample_rows(problem.n);
        assert_eq!(gpu.gather_rows(&idx).unwrap(), cpu.gather_rows(&idx).unwrap(), "weighted {weighted}");
        assert_eq!(gpu.gather_rows(&[3001]).err().unwrap().code, ErrorCode::Internal);
        // H's rows at the sample (the experts' Kronecker weights), after a write of H.
        let width = 3;
        let h = random_vec(42, problem.n * width, 1.0);
        gpu.write_h(width, &h).unwrap();
        cpu.write_h(width, &h).unwrap();
        assert_eq!(gpu.gather_h(&idx, width).unwrap(), cpu.gather_h(&idx, width).unwrap(), "weighted {weighted}");
        assert_eq!(gpu.gather_h(&idx, width + 1).err().unwrap().code, ErrorCode::Internal);
        assert_eq!(gpu.gather_h(&[3001], width).err().unwrap().code, ErrorCode::Internal);
    }
}

/// The E-step's Grams left running on the side stream (`pass_many_deferring_grams` with overlapping on) while
/// gate passes run on the main stream: `finish_grams` returns the bits of the same pass's Grams computed at
/// once, the pass's other outputs and the gate passes in between are the same bits as without overlap, a
/// second deferral discards the first's unfinished Grams, and nothing is pending for gathered rows or with
/// overlapping off.
#[test]
fn deferred_grams_are_the_pass_grams() {
    let Some(_) = gpu_or_skip("deferred_grams_are_the_pass_grams") else { return };
    let (n, d, k) = (200_000, 24, 6);
    let problem = Problem::random(501, n, d, Labels::Real, true);
    let gpu = CudaBackend::new(problem.data()).unwrap();
    if gpu.full_gram_kernel() != GramKernel::TensorCore {
        println!("skipped deferred_grams_are_the_pass_grams: no tensor-core Grams on this device");
        return;
    }
    let estep = RowOp::EStep {
        k,
        family: Family::Linear { sigma2: (0..k).map(|j| 0.5 + 0.2 * j as f64).collect() },
        store: true,
        suff: true,
    };
    let gradient = RowOp::Softmax { problem: SoftmaxProblem::Gate { k }, task: SoftmaxTask::Gradient };
    let hess_vec = RowOp::Softmax { problem: SoftmaxProblem::Gate { k }, task: SoftmaxTask::HessVec };
    let proj = random_vec(502, 2 * k * d, 0.4);
    let (v, vd) = (&proj[..(k - 1) * d], &proj[..2 * (k - 1) * d]);
    let want = gpu.pass(Rows::All, &proj, &estep).unwrap();
    let want_gradient = gpu.pass(Rows::All, v, &gradient).unwrap();
    let want_hess_vec = gpu.pass(Rows::All, vd, &hess_vec).unwrap();
    assert!(!want.grams_pending && want.grams.len() == k * d * d);
    gpu.set_overlapped_grams(true);
    for round in 0..3 {
        let outs = gpu.pass_many_deferring_grams(Rows::All, &[(&proj, &estep), (v, &gradient)]).unwrap();
        assert!(outs[0].grams_pending && outs[0].grams.is_empty(), "round {round}: the Grams should be pending");
        assert_eq!((&outs[0].xtr, &outs[0].sums), (&want.xtr, &want.sums), "round {round}");
        assert_eq!(outs[1], want_gradient, "round {round}");
        for _ in 0..3 {
            assert_eq!(
                gpu.pass(Rows::All, vd, &hess_vec).unwrap(),
                want_hess_vec,
                "round {round}: a pass beside the Grams"
            );
        }
        if round == 1 {
            continue; // unfinished: the next deferral discards them
        }
        assert_eq!(gpu.finish_grams().unwrap(), want.grams, "round {round}: the deferred Grams");
        assert_eq!(gpu.finish_grams().unwrap_err().code, ErrorCode::Internal);
    }
    // Gathered rows (batch buffers the next pass overwrites) are never deferred.
    let order: Vec<u32> = (0..n as u32).rev().collect();
    gpu.set_order(&order).unwrap();
    let outs = gpu.pass_many_deferring_grams(Rows::Order { start: 10, len: 5000 }, &[(&proj, &estep)]).unwrap();
    assert!(!outs[0].grams_pending && outs[0].grams.len() == k * d * d);
    gpu.set_overlapped_grams(false);
    let outs = gpu.pass_many_deferring_grams(Rows::All, &[(&proj, &estep)]).unwrap();
    assert_eq!(outs[0], want, "overlapping off: the Grams at once");
}
