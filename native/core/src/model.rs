//! Parameter layouts (ALGORITHMS §1), the ridge penalty (§2), and the data-level quantities built on
//! backend passes: totals, E-step, evaluate, posterior.

use crate::api::{err, ErrorCode, ExpertKind, ModelSpec, Noise, Result};
use crate::backend::{Backend, Family, PassOut, RowOp, Rows, SymKind};

/// Offsets into the flat full parameter vector (src/models/layout.ts `fullLayout` / `freeLayout`).
#[derive(Clone, Debug)]
pub struct Layout {
    pub k: usize,
    pub d: usize,
    pub classes: usize,
    pub experts: ExpertKind,
    pub symmetric: bool,
    /// Start of the expert coefficients (general model).
    pub coef: usize,
    /// d, or C·d for multinomial experts.
    pub coef_per_expert: usize,
    /// Start of σ² (linear experts).
    pub sigma2: Option<usize>,
    pub size: usize,
    pub fitted_sigma: bool,
    /// Free layout: gate size, per-expert block size, total p.
    pub gate_free: usize,
    pub expert_free: usize,
    pub p: usize,
}

impl Layout {
    pub fn new(model: &ModelSpec) -> Self {
        let (k, d) = (model.k, model.d);
        let fitted_sigma = model.experts == ExpertKind::Linear && model.noise == Noise::Fitted && !model.symmetric;
        if model.symmetric {
            return Layout {
                k: 2,
                d,
                classes: 2,
                experts: model.experts,
                symmetric: true,
                coef: d,
                coef_per_expert: d,
                sigma2: None,
                size: 2 * d,
                fitted_sigma: false,
                gate_free: d,
                expert_free: d,
                p: 2 * d,
            };
        }
        let multinomial = model.experts == ExpertKind::Multinomial;
        // Logistic experts are 2-class softmax problems whatever n_classes says.
        let classes = match model.experts {
            ExpertKind::Logistic => 2,
            ExpertKind::Linear => 0,
            ExpertKind::Multinomial => model.n_classes,
        };
        let coef_per_expert = if multinomial { classes * d } else { d };
        let coef = k * d;
        let linear = model.experts == ExpertKind::Linear;
        let sigma2 = if linear { Some(coef + k * coef_per_expert) } else { None };
        let size = coef + k * coef_per_expert + if linear { k } else { 0 };
        let expert_free = if multinomial { (classes.max(1) - 1) * d } else { d + usize::from(fitted_sigma) };
        let gate_free = (k - 1) * d;
        Layout {
            k,
            d,
            classes,
            experts: model.experts,
            symmetric: false,
            coef,
            coef_per_expert,
            sigma2,
            size,
            fitted_sigma,
            gate_free,
            expert_free,
            p: gate_free + k * expert_free,
        }
    }

    /// The projection rows of an E-step / gradient pass: [W; expert rows] (general) or [w; β] (symmetric).
    pub fn proj<'p>(&self, params: &'p [f64]) -> &'p [f64] {
        if self.symmetric {
            &params[..2 * self.d]
        } else {
            &params[..self.coef + self.k * self.coef_per_expert]
        }
    }

    pub fn family(&self, params: &[f64]) -> Family {
        match self.experts {
            ExpertKind::Linear => {
                let s = self.sigma2.unwrap_or(0);
                Family::Linear { sigma2: params[s..s + self.k].to_vec() }
            }
            ExpertKind::Logistic => Family::Logistic,
            ExpertKind::Multinomial => Family::Multinomial { classes: self.classes },
        }
    }
}

pub fn sym_kind(model: &ModelSpec) -> SymKind {
    match (model.experts, model.noise) {
        (ExpertKind::Linear, Noise::Known(sigma)) => SymKind::Linear { sigma },
        (ExpertKind::Linear, Noise::Fitted) => SymKind::Linear { sigma: 1.0 },
        _ => SymKind::Logistic,
    }
}

/// σ of a symmetric linear model (default 1).
pub fn sym_sigma(model: &ModelSpec) -> f64 {
    match model.noise {
        Noise::Known(s) => s,
        Noise::Fitted => 1.0,
    }
}

/// ‖v[..d]‖² over the penalised features (column 0 is free with the intercept).
pub fn penalised_sq_norm(model: &ModelSpec, v: &[f64]) -> f64 {
    let f0 = usize::from(model.intercept);
    let mut acc = 0.0;
    for &x in &v[f0..model.d] {
        acc += x * x;
    }
    acc
}

/// The ridge penalty (the amount subtracted from ℓ), ALGORITHMS §2, in the order of src/models/objective.ts.
pub fn penalty(model: &ModelSpec, params: &[f64]) -> f64 {
    let lambda = model.ridge;
    if lambda == 0.0 {
        return 0.0;
    }
    let (k, d) = (model.k, model.d);
    let lay = Layout::new(model);
    if model.symmetric {
        let scale = if model.experts == ExpertKind::Linear { 1.0 / (sym_sigma(model) * sym_sigma(model)) } else { 1.0 };
        return 0.5
            * lambda
            * (penalised_sq_norm(model, &params[..d]) + scale * penalised_sq_norm(model, &params[d..]));
    }
    let mut acc = 0.0;
    for j in 0..k - 1 {
        acc += 0.5 * lambda * penalised_sq_norm(model, &params[j * d..]);
    }
    for j in 0..k {
        match model.experts {
            ExpertKind::Linear => {
                let s2 = params[lay.sigma2.unwrap_or(0) + j];
                acc += lambda * penalised_sq_norm(model, &params[lay.coef + j * d..]) / (2.0 * s2);
            }
            ExpertKind::Logistic => acc += 0.5 * lambda * penalised_sq_norm(model, &params[lay.coef + j * d..]),
            ExpertKind::Multinomial => {
                for c in 0..model.n_classes {
                    acc += 0.5 * lambda * penalised_sq_norm(model, &params[lay.coef + (j * model.n_classes + c) * d..]);
                }
            }
        }
    }
    acc
}

/// Σ s, weighted mean and weighted variance of y over `rows`.
#[derive(Clone, Copy, Debug)]
pub struct Totals {
    pub weight: f64,
    pub mean_y: f64,
    pub var_y: f64,
}

pub fn totals<B: Backend + ?Sized>(b: &B, rows: Rows) -> Result<Totals> {
    let m = b.pass(rows, &[], &RowOp::Moments)?.sums;
    let weight = m[0];
    let mean_y = m[1] / weight;
    let var_y = (m[2] / weight - mean_y * mean_y).max(0.0);
    Ok(Totals { weight, mean_y, var_y })
}

/// The E-step pass at `params`: sums = [Σ s ℓ, N_0..] (plus the linear sufficient statistics when `suff`).
pub fn e_step<B: Backend + ?Sized>(
    b: &B,
    model: &ModelSpec,
    params: &[f64],
    rows: Rows,
    store: bool,
    suff: bool,
) -> Result<PassOut> {
    let lay = Layout::new(model);
    let op = if model.symmetric {
        RowOp::SymEStep { kind: sym_kind(model), store, suff }
    } else {
        RowOp::EStep { k: model.k, family: lay.family(params), store, suff }
    };
    b.pass(rows, lay.proj(params), &op)
}

/// Checks a flat parameter vector against the model (length, finiteness, σ² > 0).
pub fn check_params(model: &ModelSpec, params: &[f64]) -> Result<()> {
    let lay = Layout::new(model);
    if params.len() != lay.size {
        return err(ErrorCode::Shape, format!("parameters: expected {} values, got {}", lay.size, params.len()));
    }
    if params.iter().any(|v| !v.is_finite()) {
        return err(ErrorCode::NonFinite, "parameters: not all finite");
    }
    if let Some(s) = lay.sigma2 {
        if params[s..s + lay.k].iter().any(|&v| !(v > 0.0)) {
            return err(ErrorCode::Option, "parameters: sigma2 must be > 0");
        }
    }
    Ok(())
}

/// (nll, objective) = (−ℓ/S, −F/S) from ℓ and S.
pub fn objective_from_loglik(model: &ModelSpec, params: &[f64], loglik: f64, weight: f64) -> (f64, f64) {
    (-loglik / weight, -(loglik - penalty(model, params)) / weight)
}

pub fn evaluate<B: Backend + ?Sized>(b: &B, model: &ModelSpec, params: &[f64]) -> Result<(f64, f64)> {
    check_params(model, params)?;
    check_backend(b, model)?;
    let t = totals(b, Rows::All)?;
    let ll = e_step(b, model, params, Rows::All, false, false)?.sums[0];
    Ok(objective_from_loglik(model, params, ll, t.weight))
}

pub fn posterior<B: Backend + ?Sized>(b: &B, model: &ModelSpec, params: &[f64]) -> Result<Vec<f64>> {
    check_params(model, params)?;
    check_backend(b, model)?;
    e_step(b, model, params, Rows::All, true, false)?;
    b.read_h(if model.symmetric { 2 } else { model.k })
}

/// Predictions at `params`: n × width row-major (`RowOp::Predict` / `RowOp::SymPredict`; width 1 for linear
/// experts, the class count otherwise). Reads X only: the backend's y and s are ignored.
pub fn predict<B: Backend + ?Sized>(b: &B, model: &ModelSpec, params: &[f64]) -> Result<Vec<f64>> {
    check_params(model, params)?;
    check_backend(b, model)?;
    let lay = Layout::new(model);
    let op = if model.symmetric {
        RowOp::SymPredict { kind: sym_kind(model) }
    } else {
        RowOp::Predict { k: model.k, family: lay.family(params) }
    };
    b.pass(Rows::All, lay.proj(params), &op)?;
    b.read_h(op.shape().h_width)
}

pub fn check_backend<B: Backend + ?Sized>(b: &B, model: &ModelSpec) -> Result<()> {
    if b.d() != model.d {
        return err(ErrorCode::Shape, format!("the data has d = {} columns, the model d = {}", b.d(), model.d));
    }
    if model.k < 1 || (model.symmetric && model.k != 2) {
        return err(ErrorCode::Option, "k must be ≥ 1 (symmetric models: k = 2)");
    }
    if model.experts == ExpertKind::Multinomial && model.n_classes < 2 {
        return err(ErrorCode::Option, "multinomial experts need nClasses ≥ 2");
    }
    if model.symmetric && model.experts == ExpertKind::Multinomial {
        return err(ErrorCode::Option, "symmetric models have linear or logistic experts");
    }
    if !(model.ridge >= 0.0) || !model.ridge.is_finite() {
        return err(ErrorCode::Option, "ridge must be a finite number ≥ 0");
    }
    if let Noise::Known(s) = model.noise {
        if !(s > 0.0) || !s.is_finite() {
            return err(ErrorCode::Option, "noise σ must be > 0");
        }
    }
    Ok(())
}
