//! Input checks with the rules and codes of src/input.ts (shape, finiteness, weights, labels, rows).

use crate::api::{err, Data, ErrorCode, ExpertKind, ModelSpec, Noise, Result};

/// The index of the first NaN or ±Inf in `v`. Every fit and query reads its whole input once here, which at
/// 10⁹ values is longer than a GPU's EM iteration, so large inputs are split over all cores, and each block is
/// tested without a branch per value (a block-wide OR, which vectorises); only a failing block is searched.
pub fn first_non_finite(v: &[f64]) -> Option<usize> {
    let threads = crate::cpu::streaming_threads(v.len());
    if threads == 1 {
        return first_non_finite_blocks(v);
    }
    let part = v.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let parts: Vec<_> = v
            .chunks(part)
            .enumerate()
            .map(|(t, chunk)| scope.spawn(move || first_non_finite_blocks(chunk).map(|i| t * part + i)))
            .collect();
        // The parts in order: the first one with a bad value has the first bad index.
        parts.into_iter().find_map(|h| h.join().expect("the scan does not panic"))
    })
}

fn first_non_finite_blocks(v: &[f64]) -> Option<usize> {
    const BLOCK: usize = 4096;
    v.chunks(BLOCK).enumerate().find_map(|(b, block)| {
        let any_bad = block.iter().fold(false, |bad, x| bad | !x.is_finite());
        if any_bad {
            block.iter().position(|x| !x.is_finite()).map(|i| b * BLOCK + i)
        } else {
            None
        }
    })
}

/// Free parameter count of the largest block (gate, one expert).
fn largest_block_size(model: &ModelSpec) -> usize {
    let (k, d) = (model.k, model.d);
    if model.symmetric {
        return d;
    }
    let expert = match model.experts {
        ExpertKind::Multinomial => (model.n_classes.max(1) - 1) * d,
        ExpertKind::Linear => d + usize::from(model.noise == Noise::Fitted),
        ExpertKind::Logistic => d,
    };
    ((k.max(1) - 1) * d).max(expert)
}

/// The checks of X and of the model that every use of fitted parameters needs, predictions included:
/// X's shape and finite values, the model's d and options.
pub fn validate_design(x: &[f64], n: usize, d: usize, model: &ModelSpec) -> Result<()> {
    if n < 1 || d < 1 || x.len() != n * d {
        return err(ErrorCode::Shape, format!("X: data.length {} does not equal rows·cols = {n}·{d}", x.len()));
    }
    if model.d != d {
        return err(ErrorCode::Shape, format!("the model has d = {}, the data {d} columns", model.d));
    }
    if let Some(q) = first_non_finite(x) {
        return err(ErrorCode::NonFinite, format!("X[{}][{}] is {}", q / d, q % d, x[q]));
    }
    if model.k < 1 || (model.symmetric && model.k != 2) {
        return err(ErrorCode::Option, "k must be an integer ≥ 1 (symmetric models: k = 2)");
    }
    if model.symmetric && model.experts == ExpertKind::Multinomial {
        return err(ErrorCode::Option, "symmetric models have linear or logistic experts");
    }
    if model.experts == ExpertKind::Multinomial && model.n_classes < 2 {
        return err(ErrorCode::Option, "nClasses must be ≥ 2");
    }
    if !(model.ridge >= 0.0) || !model.ridge.is_finite() {
        return err(ErrorCode::Option, "ridge must be a finite number ≥ 0");
    }
    if let Noise::Known(s) = model.noise {
        if !(s > 0.0) || !s.is_finite() {
            return err(ErrorCode::Option, "noise must be a finite number > 0");
        }
    }
    Ok(())
}

/// The checks every query of fitted parameters needs (evaluate, posterior, information): `validate_design`,
/// then y and the weights: finite values, labels, Σ s > 0. Returns the number of rows with positive weight.
/// Scoring a handful of rows is legitimate, so the row count is checked only by `validate` (fits).
pub fn validate_query(data: &Data, model: &ModelSpec) -> Result<usize> {
    let n = data.n;
    validate_design(data.x, n, data.d, model)?;
    if data.y.len() != n {
        return err(ErrorCode::Shape, format!("y has length {}, expected {n}", data.y.len()));
    }
    if let Some(i) = first_non_finite(data.y) {
        return err(ErrorCode::NonFinite, format!("y[{i}] is {}", data.y[i]));
    }
    if let Some(s) = data.s {
        if s.len() != n {
            return err(ErrorCode::Shape, format!("sampleWeight has length {}, expected {n}", s.len()));
        }
        if let Some(i) = first_non_finite(s) {
            return err(ErrorCode::NonFinite, format!("sampleWeight[{i}] is {}", s[i]));
        }
        if let Some(i) = s.iter().position(|&v| v < 0.0) {
            return err(ErrorCode::Option, format!("sampleWeight[{i}] is negative ({})", s[i]));
        }
    }
    for (i, &v) in data.y.iter().enumerate() {
        let (ok, expected) = match (model.experts, model.symmetric) {
            (ExpertKind::Logistic, true) => (v == -1.0 || v == 1.0, "−1 or +1".to_string()),
            (ExpertKind::Logistic, false) => (v == 0.0 || v == 1.0, "0 or 1".to_string()),
            (ExpertKind::Multinomial, _) => (
                v.fract() == 0.0 && v >= 0.0 && v < model.n_classes as f64,
                format!("an integer in 0..{}", model.n_classes - 1),
            ),
            (ExpertKind::Linear, _) => (true, String::new()),
        };
        if !ok {
            return err(ErrorCode::Label, format!("y[{i}] = {v}; expected {expected}"));
        }
    }
    let (mut rows, mut sum) = (0usize, 0.0);
    for i in 0..n {
        let s = data.s.map_or(1.0, |s| s[i]);
        if s > 0.0 {
            rows += 1;
        }
        sum += s;
    }
    if !(sum > 0.0) {
        return err(ErrorCode::TooFewRows, "the sample weights sum to 0");
    }
    Ok(rows)
}

/// The checks a fit needs: `validate_query`, plus (without a ridge) enough rows with positive weight for the
/// largest block's free parameters (E_TOO_FEW_ROWS), as src/input.ts.
pub fn validate(data: &Data, model: &ModelSpec) -> Result<()> {
    let rows = validate_query(data, model)?;
    // A ridge makes every M-step problem strictly concave, so fewer rows than parameters is then well posed.
    let need = if model.ridge > 0.0 { 0 } else { largest_block_size(model) };
    if rows < need {
        return err(
            ErrorCode::TooFewRows,
            format!("{rows} rows with positive weight, but a block has {need} free parameters"),
        );
    }
    check_two_classes(data, model)
}

/// Classifiers: at least two classes among the rows with positive weight (E_LABEL), as src/input.ts
/// `checkTwoClasses`: with one class the experts' coefficients grow without bound.
fn check_two_classes(data: &Data, model: &ModelSpec) -> Result<()> {
    if model.experts == ExpertKind::Linear {
        return Ok(());
    }
    let mut labels = (0..data.n).filter(|&i| data.s.is_none_or(|s| s[i] > 0.0)).map(|i| data.y[i]);
    match labels.next() {
        Some(first) if labels.all(|v| v == first) => err(
            ErrorCode::Label,
            format!(
                "every row{} has y = {first}: a classifier needs at least two classes in y",
                if data.s.is_some() { " with positive weight" } else { "" }
            ),
        ),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::first_non_finite;

    #[test]
    fn the_first_non_finite_value_is_found_whatever_the_split() {
        for n in [0usize, 1, 4095, 4097, (1 << 20) - 1, (1 << 20) + 4099] {
            let mut v: Vec<f64> = (0..n).map(|i| (i % 977) as f64 - 400.0).collect();
            assert_eq!(first_non_finite(&v), None, "n = {n}");
            // Later bad values first, so that each assertion needs the earliest of several.
            for (at, bad) in
                [(n.wrapping_sub(1), f64::NAN), (n / 2 + 1, f64::INFINITY), (n / 3, f64::NEG_INFINITY), (0, f64::NAN)]
            {
                if at < n {
                    v[at] = bad;
                    assert_eq!(first_non_finite(&v), Some(at), "n = {n}, {bad} at {at}");
                }
            }
        }
    }
}
