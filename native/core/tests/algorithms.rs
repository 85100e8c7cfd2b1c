//! Algorithm-level tests of moe-core on the CPU backend: gradients vs finite differences, EM monotonicity,
//! Fisher's identity (GEM with one step = GD), determinism across thread counts, mini-batches, errors.

mod common;

use common::*;
use moe_core::backend::{RowOp, Rows, SoftmaxTask, Watched};
use moe_core::gradient::gradient;
use moe_core::model::{e_step, penalty};
use moe_core::*;

fn f_value(b: &CpuBackend, model: &ModelSpec, params: &[f64]) -> f64 {
    e_step(b, model, params, Rows::All, false, false).unwrap().sums[0] - penalty(model, params)
}

#[test]
fn gradients_match_finite_differences() {
    for (experts, symmetric) in all_families() {
        let mut pr = problem(experts, symmetric, 3, 300, 3, 101, true);
        pr.model.ridge = 0.7;
        let b = CpuBackend::new(pr.data(), 2).unwrap();
        let params = random_params(&pr.model, 7);
        let (f, g) = gradient(&b, &pr.model, &params, Rows::All, false).unwrap();
        assert!((f - f_value(&b, &pr.model, &params)).abs() < 1e-9 * f.abs());
        for (q, &gq) in g.iter().enumerate() {
            let h = 1e-5;
            let fd = (f_value(&b, &pr.model, &with_free(&pr.model, &params, q, h))
                - f_value(&b, &pr.model, &with_free(&pr.model, &params, q, -h)))
                / (2.0 * h);
            assert!((fd - gq).abs() <= 1e-5 * (1.0 + gq.abs()), "{experts:?} sym={symmetric} q={q}: fd {fd} vs {gq}");
        }
    }
}

fn spec(algorithm: Algorithm) -> FitSpec {
    FitSpec { algorithm, max_iter: 30, tol: 0.0, ..FitSpec::default() }
}

#[test]
fn em_never_increases_the_objective() {
    for (experts, symmetric) in all_families() {
        for solver in [Solver::Newton, Solver::NewtonCg, Solver::Gradient] {
            let mut pr = problem(experts, symmetric, 3, 400, 3, 202, true);
            pr.model.ridge = 0.1;
            let b = CpuBackend::new(pr.data(), 2).unwrap();
            let mut sp = spec(Algorithm::Em);
            sp.mstep.solver = solver;
            let out = fit(&b, &pr.model, &sp, 3, None, None, &mut |_| Control::Continue).unwrap();
            assert!(out.iterations.len() >= 3);
            for w in out.iterations.windows(2) {
                assert!(
                    w[1].objective <= w[0].objective + 1e-10 * w[0].objective.abs().max(1.0),
                    "{experts:?} sym={symmetric} {solver:?}: objective rose at iteration {}: {} -> {}",
                    w[1].iter,
                    w[0].objective,
                    w[1].objective
                );
            }
            let first = out.iterations[0].objective;
            let last = out.iterations.last().unwrap().objective;
            assert!(last < first, "{experts:?} sym={symmetric} {solver:?}: no progress");
        }
    }
}

#[test]
fn one_step_gradient_em_is_gradient_descent() {
    for (experts, symmetric) in all_families() {
        let pr = problem(experts, symmetric, 2, 300, 2, 303, false);
        let b = CpuBackend::new(pr.data(), 1).unwrap();
        let init = random_params(&pr.model, 9);
        let mut sp = spec(Algorithm::Gd);
        sp.max_iter = 5;
        sp.step_gate = 0.3;
        sp.step_experts = 0.3;
        let gd = fit(&b, &pr.model, &sp, 0, Some(&init), None, &mut |_| Control::Continue).unwrap();
        sp.algorithm = Algorithm::GradientEm;
        let gem = fit(&b, &pr.model, &sp, 0, Some(&init), None, &mut |_| Control::Continue).unwrap();
        for (a, c) in gd.params.iter().zip(&gem.params) {
            assert!((a - c).abs() <= 1e-12 * (1.0 + a.abs()), "{experts:?} sym={symmetric}");
        }
        assert!(gd.iterations.last().unwrap().objective < gd.iterations[0].objective);
    }
}

#[test]
fn fits_are_bit_identical_for_any_thread_count() {
    let pr = problem(ExpertKind::Linear, false, 3, 5000, 4, 404, true);
    let mut outs = Vec::new();
    for threads in [1, 2, 3] {
        let b = CpuBackend::new(pr.data(), threads).unwrap();
        let mut sp = spec(Algorithm::Em);
        sp.max_iter = 8;
        let out = fit(&b, &pr.model, &sp, 5, None, None, &mut |_| Control::Continue).unwrap();
        outs.push(out);
    }
    for o in &outs[1..] {
        assert_eq!(o.params, outs[0].params);
        let nll: Vec<f64> = o.iterations.iter().map(|r| r.nll).collect();
        let nll0: Vec<f64> = outs[0].iterations.iter().map(|r| r.nll).collect();
        assert_eq!(nll, nll0);
    }
}

/// Counts the Hessian-vector passes that recompute the probabilities; a store task is a failure (the backend
/// said it has no store).
fn count_recomputing_hess_vec(count: &std::cell::Cell<usize>, ops: &[(&[f64], &RowOp)]) {
    for (_, op) in ops {
        match op {
            RowOp::Softmax { task: SoftmaxTask::HessVec, .. } => count.set(count.get() + 1),
            RowOp::Softmax { task: SoftmaxTask::GradientDiagStore | SoftmaxTask::HessVecStored, .. } => {
                panic!("{op:?} on a backend without a store")
            }
            _ => {}
        }
    }
}

#[test]
fn newton_cg_fits_are_bit_identical_with_and_without_stored_probabilities() {
    for (experts, symmetric) in all_families() {
        for batch_size in [0, 150] {
            let mut pr = problem(experts, symmetric, 3, 700, 3, 707, true);
            pr.model.ridge = 0.05;
            let mut sp = spec(Algorithm::Em);
            sp.max_iter = 6;
            sp.batch_size = batch_size;
            sp.mstep.solver = Solver::NewtonCg;
            let stored =
                fit(&CpuBackend::new(pr.data(), 2).unwrap(), &pr.model, &sp, 3, None, None, &mut |_| Control::Continue)
                    .unwrap();
            // The CPU backend with its probability store hidden: Newton-CG recomputes p in every product.
            let cpu = CpuBackend::new(pr.data(), 2).unwrap();
            let hess_vec_passes = std::cell::Cell::new(0);
            let mut b = Watched::new(&cpu, |_: Rows, ops: &[(&[f64], &RowOp)], _| {
                count_recomputing_hess_vec(&hess_vec_passes, ops)
            });
            b.hide_probability_store = true;
            let recomputed = fit(&b, &pr.model, &sp, 3, None, None, &mut |_| Control::Continue).unwrap();
            let what = format!("{experts:?} sym={symmetric} batch={batch_size}");
            assert!(hess_vec_passes.get() > 0, "{what}: no Hessian-vector pass ran");
            assert_eq!(stored.params, recomputed.params, "{what}");
            let history =
                |o: &FitOutput| o.iterations.iter().map(|r| (r.nll, r.objective, r.events.clone())).collect::<Vec<_>>();
            assert_eq!(history(&stored), history(&recomputed), "{what}");
        }
    }
}

#[test]
fn fits_with_pending_grams_equal_fits_without() {
    for (ridge, noise) in [(0.0, Noise::Fitted), (0.3, Noise::Known(0.8))] {
        let mut pr = problem(ExpertKind::Linear, false, 3, 900, 3, 808, true);
        pr.model.ridge = ridge;
        pr.model.noise = noise;
        let mut sp = spec(Algorithm::Em);
        sp.max_iter = 7;
        for solver in [Solver::Newton, Solver::NewtonCg] {
            sp.mstep.solver = solver;
            let cpu = CpuBackend::new(pr.data(), 2).unwrap();
            let want = fit(&cpu, &pr.model, &sp, 9, None, None, &mut |_| Control::Continue).unwrap();
            // The CPU backend as a backend that overlaps the E-step's Grams: they come back from finish_grams.
            let deferrals = std::cell::Cell::new(0);
            let mut b = Watched::new(&cpu, |_: Rows, ops: &[(&[f64], &RowOp)], _| {
                if matches!(ops[0].1, RowOp::EStep { suff: true, .. }) {
                    deferrals.set(deferrals.get() + 1);
                }
            });
            b.defer_grams = true;
            let got = fit(&b, &pr.model, &sp, 9, None, None, &mut |_| Control::Continue).unwrap();
            let what = format!("ridge {ridge} {noise:?} {solver:?}");
            // Every E-step of the fit (the initial one and one per iteration) went through
            // pass_many_deferring_grams; the last one's Grams were never asked for.
            assert_eq!(deferrals.get(), want.iterations.len(), "{what}");
            assert!(b.finish_grams().is_ok(), "{what}: the last E-step's Grams should still be held");
            assert_eq!(got.params, want.params, "{what}");
            let history =
                |o: &FitOutput| o.iterations.iter().map(|r| (r.nll, r.objective, r.events.clone())).collect::<Vec<_>>();
            assert_eq!(history(&got), history(&want), "{what}");
        }
    }
}

#[test]
fn mini_batch_epochs_run_and_are_reproducible() {
    for algorithm in [Algorithm::Em, Algorithm::GradientEm, Algorithm::Gd] {
        let pr = problem(ExpertKind::Logistic, false, 2, 700, 2, 505, false);
        let b = CpuBackend::new(pr.data(), 2).unwrap();
        let mut sp = spec(algorithm);
        sp.batch_size = 128;
        sp.max_iter = 4;
        sp.mstep.inner_steps = 3;
        let a = fit(&b, &pr.model, &sp, 11, None, None, &mut |_| Control::Continue).unwrap();
        let c = fit(&b, &pr.model, &sp, 11, None, None, &mut |_| Control::Continue).unwrap();
        assert_eq!(a.params, c.params);
        assert!(a.iterations.last().unwrap().objective < a.iterations[0].objective, "{algorithm:?}");
    }
}

#[test]
fn convergence_abort_and_param_error() {
    let pr = problem(ExpertKind::Linear, false, 2, 500, 2, 606, false);
    let b = CpuBackend::new(pr.data(), 2).unwrap();
    let sp = FitSpec { max_iter: 500, ..FitSpec::default() };
    let out = fit(&b, &pr.model, &sp, 1, None, None, &mut |_| Control::Continue).unwrap();
    assert!(out.converged);
    assert_eq!(out.reason, StopReason::Tol);
    // The fitted parameters are at distance 0 from themselves, whatever the permutation.
    let mut calls = 0;
    let e = fit(&b, &pr.model, &sp, 1, None, Some(&out.params), &mut |r| {
        calls += 1;
        assert!(r.param_error.is_some());
        if r.iter == 2 {
            Control::Abort
        } else {
            Control::Continue
        }
    })
    .err()
    .unwrap();
    assert_eq!(e.code.as_str(), "E_ABORTED");
    assert_eq!(calls, 3);
    // The partial state: three records, and the parameters the last one was computed at.
    let (e, partial) = fit_with_partial(&b, &pr.model, &sp, 1, None, None, &mut |r| {
        if r.iter == 2 {
            Control::Abort
        } else {
            Control::Continue
        }
    })
    .err()
    .unwrap();
    assert_eq!(e.code, ErrorCode::Aborted);
    let partial = partial.unwrap();
    assert_eq!(partial.iterations.len(), 3);
    let (nll, _) = evaluate(&b, &pr.model, &partial.params).unwrap();
    assert_eq!(nll, partial.iterations[2].nll);
}

#[test]
fn evaluate_and_posterior_agree_with_the_fit() {
    let pr = problem(ExpertKind::Multinomial, false, 2, 300, 2, 707, true);
    let b = CpuBackend::new(pr.data(), 2).unwrap();
    let out = fit(&b, &pr.model, &spec(Algorithm::Em), 2, None, None, &mut |_| Control::Continue).unwrap();
    let (nll, obj) = evaluate(&b, &pr.model, &out.params).unwrap();
    let last = out.iterations.last().unwrap();
    assert_eq!(nll, last.nll);
    assert_eq!(obj, last.objective);
    let h = posterior(&b, &pr.model, &out.params).unwrap();
    assert_eq!(h.len(), pr.n * 2);
    for i in 0..pr.n {
        assert!((h[2 * i] + h[2 * i + 1] - 1.0).abs() < 1e-12);
    }
}

#[test]
fn bad_input_gives_the_documented_codes() {
    let pr = problem(ExpertKind::Logistic, false, 2, 50, 2, 808, false);
    assert!(validate(&pr.data(), &pr.model).is_ok());
    let mut y = pr.y.clone();
    y[3] = 2.0;
    let data = Data { y: &y, ..pr.data() };
    assert_eq!(validate(&data, &pr.model).err().unwrap().code.as_str(), "E_LABEL");
    let mut x = pr.x.clone();
    x[5] = f64::NAN;
    let data = Data { x: &x, ..pr.data() };
    assert_eq!(validate(&data, &pr.model).err().unwrap().code.as_str(), "E_NON_FINITE");
    let s = vec![0.0; pr.n];
    let data = Data { s: Some(&s), ..pr.data() };
    assert_eq!(validate(&data, &pr.model).err().unwrap().code.as_str(), "E_TOO_FEW_ROWS");
    let bad = ModelSpec { ridge: -1.0, ..pr.model.clone() };
    assert_eq!(validate(&pr.data(), &bad).err().unwrap().code.as_str(), "E_OPTION");
    let b = CpuBackend::new(pr.data(), 1).unwrap();
    let e = evaluate(&b, &pr.model, &[0.0; 3]).err().unwrap();
    assert_eq!(e.code.as_str(), "E_SHAPE");
    let mut sp = spec(Algorithm::Em);
    sp.on_empty_error = true;
    // Expert 1 has no mass: a gate that gives it nothing.
    let mut init = random_params(&pr.model, 3);
    init[..pr.d].fill(0.0);
    init[0] = -800.0;
    let e = fit(&b, &ModelSpec { ..pr.model.clone() }, &sp, 0, Some(&init), None, &mut |_| Control::Continue)
        .err()
        .unwrap();
    assert_eq!(e.code.as_str(), "E_EMPTY_COMPONENT");
}

#[test]
fn unvalidated_bad_input_is_an_error_not_a_panic() {
    // Labels outside 0..C−1 reach the numerics only when validation was skipped: the fit must fail cleanly.
    let pr = problem(ExpertKind::Multinomial, false, 2, 100, 2, 909, false);
    let mut y = pr.y.clone();
    y[7] = 9.0;
    let data = Data { y: &y, ..pr.data() };
    let b = CpuBackend::new(data, 1).unwrap();
    let r = fit(&b, &pr.model, &spec(Algorithm::Em), 0, None, None, &mut |_| Control::Continue);
    assert_eq!(r.err().unwrap().code.as_str(), "E_NON_FINITE");
    // Zero weights everywhere: too few rows.
    let s = vec![0.0; pr.n];
    let b = CpuBackend::new(Data { s: Some(&s), ..pr.data() }, 1).unwrap();
    let r = fit(&b, &pr.model, &spec(Algorithm::Em), 0, None, None, &mut |_| Control::Continue);
    assert_eq!(r.err().unwrap().code.as_str(), "E_TOO_FEW_ROWS");
    // A model that does not match the data, and k = 0.
    let b = CpuBackend::new(pr.data(), 1).unwrap();
    let wrong_d = ModelSpec { d: pr.d + 1, ..pr.model.clone() };
    assert_eq!(
        fit(&b, &wrong_d, &spec(Algorithm::Em), 0, None, None, &mut |_| Control::Continue).err().unwrap().code.as_str(),
        "E_SHAPE"
    );
    let no_k = ModelSpec { k: 0, ..pr.model.clone() };
    assert_eq!(information(&b, &no_k, &[], InfoMethod::Auto, 10).err().unwrap().code.as_str(), "E_OPTION");
}
