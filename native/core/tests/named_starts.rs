//! The stages of the named starts that run natively (their agreement with the TypeScript reference is
//! test/parity.test.ts's):
//! - init 'moments'' EM stage with the expert slopes fixed (`gate_only_em`): it never increases the objective,
//!   it leaves the slopes alone, the thread count never changes a bit, models it is not for are coded errors;
//! - init 'kmeans'' clusters (`kmeans_clusters`): planted blobs found, threads and the intercept column change
//!   nothing; and the M-step from them (`start_from_assignment`), which is exactly the 'random' start's;
//! - init 'moments'' data passes (`moment_sums`): the weighted moments of a direct loop, whatever the threads.

mod common;

use common::*;
use moe_core::model::Layout;
use moe_core::rng::Rng;
use moe_core::*;

/// Slopes from a short EM fit, with the gate reset to zero and the intercepts to zero: a start like the
/// moments' (right directions, uniform mixing).
fn start(pr: &Problem) -> Vec<f64> {
    let b = CpuBackend::new(pr.data(), 1).unwrap();
    let spec = FitSpec { max_iter: 3, tol: 0.0, ..FitSpec::default() };
    let mut params = fit(&b, &pr.model, &spec, 4, None, None, &mut |_| Control::Continue).unwrap().params;
    let lay = Layout::new(&pr.model);
    params[..lay.coef].iter_mut().for_each(|v| *v = 0.0);
    for j in 0..pr.model.k {
        params[lay.coef + j * pr.d] = 0.0;
    }
    params
}

#[test]
fn the_objective_never_increases_and_the_slopes_stay() {
    for (solver, weighted, noise) in [
        (Solver::Newton, false, Noise::Fitted),
        (Solver::NewtonCg, true, Noise::Fitted),
        (Solver::Newton, true, Noise::Known(0.5)),
    ] {
        let mut pr = problem(ExpertKind::Linear, false, 3, 500, 3, 71, weighted);
        pr.model.noise = noise;
        pr.model.ridge = 0.05;
        let mut spec = FitSpec::default();
        spec.mstep.solver = solver;
        let before = start(&pr);
        let b = CpuBackend::new(pr.data(), 2).unwrap();
        let mut after = before.clone();
        gate_only_em(&b, &pr.model, &spec, &mut after).unwrap();
        let objective = |p: &[f64]| evaluate(&b, &pr.model, p).unwrap().1;
        assert!(objective(&after) <= objective(&before), "{solver:?}: {} > {}", objective(&after), objective(&before));
        let lay = Layout::new(&pr.model);
        for j in 0..pr.model.k {
            let slopes = lay.coef + j * pr.d + 1..lay.coef + (j + 1) * pr.d;
            assert_eq!(after[slopes.clone()], before[slopes], "{solver:?}: expert {j}'s slopes moved");
        }
        assert_ne!(after[..lay.coef], before[..lay.coef], "{solver:?}: the gate did not move");
        if noise == Noise::Known(0.5) {
            assert_eq!(after[lay.sigma2.unwrap()..], before[lay.sigma2.unwrap()..], "known noise changed");
        }

        let mut one_thread = before.clone();
        gate_only_em(&CpuBackend::new(pr.data(), 1).unwrap(), &pr.model, &spec, &mut one_thread).unwrap();
        assert_eq!(one_thread, after, "{solver:?}: threads changed the result");
    }
}

#[test]
fn models_it_is_not_for_are_coded_errors() {
    let spec = FitSpec::default();
    for (experts, symmetric) in [(ExpertKind::Logistic, false), (ExpertKind::Linear, true)] {
        let pr = problem(experts, symmetric, 2, 50, 2, 72, false);
        let b = CpuBackend::new(pr.data(), 1).unwrap();
        let mut params = random_params(&pr.model, 3);
        let e = gate_only_em(&b, &pr.model, &spec, &mut params).unwrap_err();
        assert_eq!(e.code, ErrorCode::Option, "{experts:?} symmetric {symmetric}");
    }
    let pr = problem(ExpertKind::Linear, false, 2, 50, 2, 73, false);
    let b = CpuBackend::new(pr.data(), 1).unwrap();
    let mut short = vec![0.0; 3];
    assert_eq!(gate_only_em(&b, &pr.model, &spec, &mut short).unwrap_err().code, ErrorCode::Shape);
}

/// Three well-separated blobs in (x, y), 3000 rows each (enough for several threads), interleaved; column 0
/// the intercept's ones.
fn blobs() -> (Vec<f64>, Vec<f64>, usize, usize) {
    let (n, d) = (9000, 3);
    let mut rng = Rng::new(5);
    let mut x = vec![0.0; n * d];
    let mut y = vec![0.0; n];
    for i in 0..n {
        let blob = (i % 3) as f64;
        x[i * d] = 1.0;
        x[i * d + 1] = 10.0 * blob + 0.3 * rng.normal();
        x[i * d + 2] = -5.0 * blob + 0.3 * rng.normal();
        y[i] = 4.0 * blob + 0.3 * rng.normal();
    }
    (x, y, n, d)
}

#[test]
fn kmeans_finds_planted_blobs_whatever_the_threads() {
    let (x, y, n, d) = blobs();
    let data = Data { x: &x, n, d, y: &y, s: None };
    let clusters = kmeans_clusters(&data, true, 3, 9, 1).unwrap();
    for i in 3..n {
        assert_eq!(clusters[i], clusters[i % 3], "row {i} left its blob");
    }
    let labels: std::collections::HashSet<u32> = clusters[..3].iter().cloned().collect();
    assert_eq!(labels.len(), 3, "three blobs, three clusters");
    assert_eq!(kmeans_clusters(&data, true, 3, 9, 4).unwrap(), clusters, "threads changed the clusters");
    // The intercept's ones are not a feature: without the column the clusters are the same.
    let without: Vec<f64> = x.chunks_exact(d).flat_map(|r| r[1..].to_vec()).collect();
    let plain = Data { x: &without, n, d: d - 1, y: &y, s: None };
    assert_eq!(kmeans_clusters(&plain, false, 3, 9, 2).unwrap(), clusters);
    assert_eq!(kmeans_clusters(&data, true, 1, 9, 2).unwrap(), vec![0; n], "one cluster");
    assert_eq!(kmeans_clusters(&data, true, 0, 9, 2).unwrap_err().code, ErrorCode::Option);
}

#[test]
fn the_m_step_from_an_assignment_is_the_random_start() {
    for (experts, symmetric) in all_families() {
        let pr = problem(experts, symmetric, 3, 300, 3, 74, true);
        let b = CpuBackend::new(pr.data(), 2).unwrap();
        let spec = FitSpec { max_iter: 0, ..FitSpec::default() };
        let random = fit(&b, &pr.model, &spec, 17, None, None, &mut |_| Control::Continue).unwrap().params;
        // The 'random' start's draw (ALGORITHMS §5): one uniform per row, in order.
        let mut rng = Rng::new(17);
        let width = if symmetric { 2 } else { pr.model.k };
        let assignment: Vec<u32> = (0..pr.n)
            .map(|_| if symmetric { u32::from(rng.uniform() >= 0.5) } else { rng.int(width) as u32 })
            .collect();
        let start = start_from_assignment(&b, &pr.model, &spec, &assignment).unwrap();
        assert_eq!(start, random, "{experts:?} symmetric {symmetric}");
        let mut bad = assignment.clone();
        bad[7] = width as u32;
        assert_eq!(start_from_assignment(&b, &pr.model, &spec, &bad).unwrap_err().code, ErrorCode::Option);
        assert_eq!(start_from_assignment(&b, &pr.model, &spec, &assignment[1..]).unwrap_err().code, ErrorCode::Shape);
    }
}

#[test]
fn moment_sums_are_the_weighted_moments_whatever_the_threads() {
    for (intercept, weighted) in [(true, true), (false, false)] {
        let mut pr = problem(ExpertKind::Linear, false, 2, 7000, 4, 75, weighted);
        if let Some(s) = pr.s.as_mut() {
            s[3] = 0.0; // a row without weight
        }
        let data = pr.data();
        let sums = moment_sums(&data, intercept, 1).unwrap();
        assert_eq!(moment_sums(&data, intercept, 3).unwrap(), sums, "threads changed the sums");
        // A direct loop over the rows, in f64.
        let (n, d) = (pr.n, pr.d);
        let f0 = usize::from(intercept);
        let p = d - f0;
        let s = |i: usize| pr.s.as_ref().map_or(1.0, |s| s[i]);
        let weight: f64 = (0..n).map(s).sum();
        let mean: Vec<f64> =
            (0..p).map(|f| (0..n).map(|i| s(i) * pr.x[i * d + f0 + f]).sum::<f64>() / weight).collect();
        let y_shift = if intercept { (0..n).map(|i| s(i) * pr.y[i]).sum::<f64>() / weight } else { 0.0 };
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-11 * (1.0 + b.abs());
        assert_eq!(sums.rows, if weighted { n - 1 } else { n });
        assert!(close(sums.weight, weight) && close(sums.y_shift, y_shift));
        for (f, (&got, &want)) in sums.mean.iter().zip(&mean).enumerate() {
            assert!(close(got, want), "mean {f}");
        }
        for (a, b) in [(0, 0), (1, 3), (p - 1, 0)] {
            let c = |i: usize, f: usize| pr.x[i * d + f0 + f] - mean[f];
            let t2 = |i: usize| (pr.y[i] - y_shift).powi(2);
            let cov: f64 = (0..n).map(|i| s(i) * c(i, a) * c(i, b)).sum::<f64>() / weight;
            let second: f64 = (0..n).map(|i| s(i) * t2(i) * c(i, a) * c(i, b)).sum::<f64>() / weight;
            assert!(close(sums.cov[a * p + b], cov) && close(sums.cov[b * p + a], cov), "cov ({a}, {b})");
            assert!(close(sums.second[a * p + b], second), "second ({a}, {b})");
        }
        let yy: f64 = (0..n).map(|i| s(i) * (pr.y[i] - y_shift).powi(2)).sum::<f64>() / weight;
        assert!(close(sums.yy, yy));
    }
}
