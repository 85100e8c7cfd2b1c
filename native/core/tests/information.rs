//! Information tests: Louis' identity against finite differences of the gradient, Lanczos against the dense
//! spectrum, and the MIM bound 0 ≤ λ ≤ 1 at a fitted optimum.

mod common;

use common::*;
use moe_core::backend::Rows;
use moe_core::gradient::gradient;
use moe_core::*;

#[test]
fn observed_information_is_the_negative_hessian() {
    for (experts, symmetric) in all_families() {
        let mut pr = problem(experts, symmetric, 3, 250, 2, 901, true);
        pr.model.ridge = 0.2;
        let b = CpuBackend::new(pr.data(), 2).unwrap();
        let params = random_params(&pr.model, 4);
        let info = information(&b, &pr.model, &params, InfoMethod::Dense, 60).unwrap();
        let p = info.p;
        assert_eq!(info.names.len(), p);
        let observed = info.observed.as_ref().unwrap();
        for q in 0..p {
            let h = 1e-5;
            let (_, gp) = gradient(&b, &pr.model, &with_free(&pr.model, &params, q, h), Rows::All, false).unwrap();
            let (_, gm) = gradient(&b, &pr.model, &with_free(&pr.model, &params, q, -h), Rows::All, false).unwrap();
            for r in 0..p {
                let fd = -(gp[r] - gm[r]) / (2.0 * h);
                let o = observed[r * p + q];
                assert!(
                    (fd - o).abs() <= 1e-4 * (1.0 + o.abs()),
                    "{experts:?} sym={symmetric} ({r},{q}): fd {fd} vs {o}"
                );
            }
        }
    }
}

#[test]
fn lanczos_matches_the_dense_spectrum_and_the_mim_is_a_contraction_at_the_optimum() {
    for (experts, symmetric) in all_families() {
        // A small ridge keeps every optimum finite (no separable experts or saturated gates).
        let mut pr = problem(experts, symmetric, 2, 600, 2, 902, false);
        pr.model.ridge = 0.05;
        let b = CpuBackend::new(pr.data(), 2).unwrap();
        let sp = FitSpec { max_iter: 300, tol: 1e-12, ..FitSpec::default() };
        let fitted = fit(&b, &pr.model, &sp, 1, None, None, &mut |_| Control::Continue).unwrap();
        let dense = information(&b, &pr.model, &fitted.params, InfoMethod::Dense, 60)
            .unwrap_or_else(|e| panic!("{experts:?} sym={symmetric}: {e}"));
        let lz = information(&b, &pr.model, &fitted.params, InfoMethod::Lanczos, dense.p).unwrap();
        assert!(!lz.dense && lz.complete.is_none());
        assert!(
            (dense.lambda_max - lz.lambda_max).abs() <= 1e-8,
            "{experts:?} sym={symmetric}: {} vs {}",
            dense.lambda_max,
            lz.lambda_max
        );
        for &ev in &dense.eigenvalues {
            assert!((-1e-8..=1.0 + 1e-8).contains(&ev), "{experts:?} sym={symmetric}: eigenvalue {ev}");
        }
        assert!(dense.standard_errors.is_some());
    }
}
