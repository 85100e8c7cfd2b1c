//! Predictions (`moe_core::predict`) against the model's own density, computed through another path: the
//! E-step pass behind `evaluate`. For a single row x, `evaluate` at label y gives −log p(y | x), so
//! - a class probability must equal p(c | x) = exp(−nll) of the row labelled c;
//! - the linear experts' mixture mean must equal ∫ y p(y | x) dy (a trapezoid sum over a fine grid, exact
//!   to far below the tolerance for these smooth, fast-decaying densities).

mod common;

use common::*;
use moe_core::*;

const TOL: f64 = 1e-10;

/// −log p(y_i | x_i) for every label in `ys` at row x: one single-row `evaluate` each.
fn nll_of_labels(model: &ModelSpec, params: &[f64], x: &[f64], ys: &[f64]) -> Vec<f64> {
    let d = x.len();
    let n = ys.len();
    let xs: Vec<f64> = x.iter().cycle().take(n * d).cloned().collect();
    ys.iter()
        .enumerate()
        .map(|(i, &y)| {
            let row = Data { x: &xs[i * d..(i + 1) * d], n: 1, d, y: std::slice::from_ref(&y), s: None };
            evaluate(&CpuBackend::new(row, 1).unwrap(), model, params).unwrap().0
        })
        .collect()
}

#[test]
fn predictions_are_the_model_density() {
    for (experts, symmetric) in all_families() {
        let pr = problem(experts, symmetric, 3, 7, 2, 41, false);
        let params = random_params(&pr.model, 42);
        let b = CpuBackend::new(pr.data(), 2).unwrap();
        let out = predict(&b, &pr.model, &params).unwrap();
        let width = out.len() / pr.n;
        assert_eq!(out.len(), pr.n * width);
        for i in 0..pr.n {
            let x = &pr.x[i * pr.d..(i + 1) * pr.d];
            let got = &out[i * width..(i + 1) * width];
            let what = format!("{experts:?} symmetric {symmetric}, row {i}");
            if experts == ExpertKind::Linear {
                assert_eq!(width, 1);
                // ∫ y p(y|x) dy over ±30 around 0: every expert mean here is within ±5, every σ ≤ 1.3.
                let (lo, hi, steps) = (-30.0, 30.0, 24_000);
                let h = (hi - lo) / steps as f64;
                let ys: Vec<f64> = (0..=steps).map(|t| lo + h * t as f64).collect();
                let dens: Vec<f64> = nll_of_labels(&pr.model, &params, x, &ys).iter().map(|v| (-v).exp()).collect();
                let mass: f64 = h * dens.iter().sum::<f64>();
                let mean: f64 = h * ys.iter().zip(&dens).map(|(y, p)| y * p).sum::<f64>();
                assert!((mass - 1.0).abs() < TOL, "{what}: the density integrates to {mass}");
                assert!(
                    (got[0] - mean).abs() < TOL * (1.0 + mean.abs()),
                    "{what}: predicted {} vs ∫ y p = {mean}",
                    got[0]
                );
            } else {
                let labels: Vec<f64> = match (experts, symmetric) {
                    (ExpertKind::Logistic, true) => vec![-1.0, 1.0],
                    (ExpertKind::Logistic, false) => vec![0.0, 1.0],
                    _ => (0..pr.model.n_classes).map(|c| c as f64).collect(),
                };
                assert_eq!(width, labels.len());
                let p: Vec<f64> = nll_of_labels(&pr.model, &params, x, &labels).iter().map(|v| (-v).exp()).collect();
                for c in 0..width {
                    assert!(
                        (got[c] - p[c]).abs() < TOL,
                        "{what}: P(class {c}) predicted {} vs exp(−nll) {}",
                        got[c],
                        p[c]
                    );
                }
                assert!(
                    (got.iter().sum::<f64>() - 1.0).abs() < 1e-14,
                    "{what}: probabilities sum to {}",
                    got.iter().sum::<f64>()
                );
            }
        }
    }
}

#[test]
fn predictions_read_no_labels_and_check_their_inputs() {
    let pr = problem(ExpertKind::Multinomial, false, 2, 50, 2, 43, true);
    let params = random_params(&pr.model, 44);
    let b = CpuBackend::new(pr.data(), 2).unwrap();
    let with_labels = predict(&b, &pr.model, &params).unwrap();
    let zeros = vec![0.0; pr.n];
    let unlabelled = CpuBackend::new(Data { x: &pr.x, n: pr.n, d: pr.d, y: &zeros, s: None }, 1).unwrap();
    assert_eq!(
        predict(&unlabelled, &pr.model, &params).unwrap(),
        with_labels,
        "labels, weights or threads changed a prediction"
    );
    assert_eq!(predict(&b, &pr.model, &params[1..]).unwrap_err().code, ErrorCode::Shape);
    let mut x = pr.x.clone();
    assert!(validate_design(&x, pr.n, pr.d, &pr.model).is_ok());
    x[5] = f64::NAN;
    assert_eq!(validate_design(&x, pr.n, pr.d, &pr.model).unwrap_err().code, ErrorCode::NonFinite);
    assert_eq!(validate_design(&x[1..], pr.n, pr.d, &pr.model).unwrap_err().code, ErrorCode::Shape);
}
