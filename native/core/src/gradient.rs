//! Gradients in the free layout (src/models/gradient.ts) from one `RowOp::Gradient` pass, the blockwise
//! gradient step with σ² on the log scale (src/algorithms/gradient-step.ts), and the gradient steps on Q of
//! Gradient EM / GD / mini-batch EM (src/algorithms/steps.ts).

use crate::api::{ExpertKind, FitSpec, ModelSpec, Result};
use crate::backend::{Backend, RowOp, Rows};
use crate::model::{penalty, sym_kind, Layout};

const MAX_HALVINGS: usize = 30;

/// Q(θ|H) − penalty (`stored_h`) or ℓ(θ) − penalty, and the penalised gradient in the free layout.
pub fn gradient<B: Backend + ?Sized>(
    b: &B,
    model: &ModelSpec,
    params: &[f64],
    rows: Rows,
    stored_h: bool,
) -> Result<(f64, Vec<f64>)> {
    let lay = Layout::new(model);
    let d = model.d;
    let mut g = vec![0.0; lay.p];
    if model.symmetric {
        let out = b.pass(rows, lay.proj(params), &RowOp::SymGradient { kind: sym_kind(model), stored_h })?;
        g.copy_from_slice(&out.xtr[..2 * d]);
        subtract_penalty_gradient(model, params, &mut g);
        return Ok((out.sums[0] - penalty(model, params), g));
    }
    let k = model.k;
    let out = b.pass(rows, lay.proj(params), &RowOp::Gradient { k, family: lay.family(params), stored_h })?;
    g[..lay.gate_free].copy_from_slice(&out.xtr[..lay.gate_free]);
    let coef_cols = if model.experts == ExpertKind::Multinomial { lay.classes - 1 } else { 1 };
    for j in 0..k {
        let start = lay.gate_free + j * lay.expert_free;
        let src = lay.gate_free + j * coef_cols * d;
        g[start..start + coef_cols * d].copy_from_slice(&out.xtr[src..src + coef_cols * d]);
        if lay.fitted_sigma {
            g[start + d] = out.sums[1 + j];
        }
    }
    subtract_penalty_gradient(model, params, &mut g);
    Ok((out.sums[0] - penalty(model, params), g))
}

/// g −= ∇ penalty(θ) in the free layout.
pub fn subtract_penalty_gradient(model: &ModelSpec, params: &[f64], g: &mut [f64]) {
    let lambda = model.ridge;
    if lambda == 0.0 {
        return;
    }
    let (k, d) = (model.k, model.d);
    let lay = Layout::new(model);
    let f0 = usize::from(model.intercept);
    if model.symmetric {
        let scale = if model.experts == ExpertKind::Linear {
            let s = crate::model::sym_sigma(model);
            1.0 / (s * s)
        } else {
            1.0
        };
        for f in f0..d {
            g[f] -= lambda * params[f];
            g[d + f] -= lambda * scale * params[d + f];
        }
        return;
    }
    for j in 0..k - 1 {
        for f in f0..d {
            g[j * d + f] -= lambda * params[j * d + f];
        }
    }
    for j in 0..k {
        let start = lay.gate_free + j * lay.expert_free;
        match model.experts {
            ExpertKind::Linear => {
                let s2 = params[lay.sigma2.unwrap_or(0) + j];
                let mut sq = 0.0;
                for f in f0..d {
                    let bb = params[lay.coef + j * d + f];
                    g[start + f] -= lambda * bb / s2;
                    sq += bb * bb;
                }
                if lay.fitted_sigma {
                    g[start + d] += lambda * sq / (2.0 * s2 * s2);
                }
            }
            ExpertKind::Logistic => {
                for f in f0..d {
                    g[start + f] -= lambda * params[lay.coef + j * d + f];
                }
            }
            ExpertKind::Multinomial => {
                let c_n = model.n_classes;
                for c in 0..c_n - 1 {
                    for f in f0..d {
                        g[start + c * d + f] -= lambda * params[lay.coef + (j * c_n + c) * d + f];
                    }
                }
            }
        }
    }
}

/// out = params + scale·η_b·grad blockwise (gate η_gate, experts η_experts; σ² on the log scale).
pub fn apply_gradient_step(
    model: &ModelSpec,
    params: &[f64],
    grad: &[f64],
    eta_gate: f64,
    eta_experts: f64,
    scale: f64,
    out: &mut [f64],
) {
    out.copy_from_slice(params);
    let lay = Layout::new(model);
    let (tg, te) = (eta_gate * scale, eta_experts * scale);
    let d = model.d;
    if model.symmetric {
        for f in 0..d {
            out[f] += tg * grad[f];
            out[d + f] += te * grad[d + f];
        }
        return;
    }
    for q in 0..lay.gate_free {
        out[q] += tg * grad[q];
    }
    let coef_len = if model.experts == ExpertKind::Multinomial { (model.n_classes - 1) * d } else { d };
    for j in 0..model.k {
        let start = lay.gate_free + j * lay.expert_free;
        let coef_off = lay.coef + j * lay.coef_per_expert;
        for q in 0..coef_len {
            out[coef_off + q] += te * grad[start + q];
        }
        if lay.fitted_sigma {
            let s = lay.sigma2.unwrap_or(0) + j;
            let s2 = out[s];
            out[s] = s2 * (te * s2 * grad[start + d]).exp();
        }
    }
}

/// `steps` gradient steps on Q(·|H)/weight, no safeguard (Gradient EM; one step with H at θ is GD).
pub fn gradient_steps_on_q<B: Backend + ?Sized>(
    b: &B,
    model: &ModelSpec,
    spec: &FitSpec,
    params: &mut [f64],
    rows: Rows,
    weight: f64,
    steps: usize,
) -> Result<()> {
    let mut next = params.to_vec();
    for _ in 0..steps {
        let (_, g) = gradient(b, model, params, rows, true)?;
        apply_gradient_step(model, params, &g, spec.step_gate, spec.step_experts, 1.0 / weight, &mut next);
        params.copy_from_slice(&next);
    }
    Ok(())
}

/// As `gradient_steps_on_q`, but a step that would decrease Q is halved (≤ 30 times) and the remaining
/// steps are skipped if it still does (mini-batch EM's monotone safeguard).
pub fn safeguarded_gradient_steps_on_q<B: Backend + ?Sized>(
    b: &B,
    model: &ModelSpec,
    spec: &FitSpec,
    params: &mut [f64],
    rows: Rows,
    weight: f64,
    steps: usize,
) -> Result<()> {
    let mut trial = params.to_vec();
    for _ in 0..steps {
        let (q0, g) = gradient(b, model, params, rows, true)?;
        let mut scale = 1.0 / weight;
        let mut accepted = false;
        for _ in 0..=MAX_HALVINGS {
            apply_gradient_step(model, params, &g, spec.step_gate, spec.step_experts, scale, &mut trial);
            let (q1, _) = gradient(b, model, &trial, rows, true)?;
            if q1 >= q0 {
                accepted = true;
                break;
            }
            scale /= 2.0;
        }
        if !accepted {
            return Ok(());
        }
        params.copy_from_slice(&trial);
    }
    Ok(())
}
