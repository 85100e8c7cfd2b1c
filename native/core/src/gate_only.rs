//! The second stage of init 'moments' (ALGORITHMS §5.1; src/algorithms/init-moments.ts `gateOnlyEm`): EM in
//! which the linear experts' slopes stay where the moments put them. Each iteration: an E-step; the experts'
//! intercepts (the weighted mean residual) and fitted σ_j² (§3's penalised residual variance, floored) in
//! closed form; the gate by the fit's own softmax-regression M-step. Each block maximises Q, so the objective
//! never increases. At most `GATE_ITERATIONS`, stopping early by §5's relative rule.
//!
//! The stage runs on the backend's passes, like a fit: in TypeScript its gate M-steps (a Hessian or Hessian
//! products over all rows, 25 times) cost more than the fit that follows, by far on a large problem.

use crate::api::{err, ErrorCode, Event, ExpertKind, FitSpec, ModelSpec, Noise, Result};
use crate::backend::{Backend, RowOp, Rows};
use crate::model::{check_backend, check_params, e_step, objective_from_loglik, Layout};
use crate::mstep::{fitted_variance, gate_m_step, MStepCtx, MStepData};

/// At most this many iterations (src/algorithms/init-moments.ts `MOMENTS_INIT.gateIterations`).
pub const GATE_ITERATIONS: usize = 25;
/// They stop once the objective changes by at most this much, relatively (`MOMENTS_INIT.gateTol`).
pub const GATE_TOL: f64 = 1e-8;

/// Runs the stage from `params` (the full layout, expert slopes set, gate and intercepts anywhere, σ² > 0),
/// updating the gate, the intercepts and the fitted σ² in place. Recovery events are not reported (§5.1).
pub fn gate_only_em<B: Backend + ?Sized>(b: &B, model: &ModelSpec, spec: &FitSpec, params: &mut [f64]) -> Result<()> {
    if model.experts != ExpertKind::Linear || model.symmetric || model.k < 2 {
        return err(
            ErrorCode::Option,
            "the gate-only EM of init 'moments' needs a general model with k ≥ 2 linear experts",
        );
    }
    check_backend(b, model)?;
    check_params(model, params)?;
    let shared = MStepData::new(b, model)?;
    let ctx = shared.ctx(b, model, spec);
    let weight = ctx.weight;
    let mut events = Vec::new();
    let mut previous = 0.0;
    for it in 0..GATE_ITERATIONS {
        let stats = e_step(b, model, params, Rows::All, true, false)?;
        let objective = objective_from_loglik(model, params, stats.sums[0], weight).1;
        if it > 0 && (previous - objective).abs() <= GATE_TOL * f64::max(1.0, previous.abs()) {
            break;
        }
        previous = objective;
        offsets_and_variances(&ctx, params, &stats.sums[1..], &mut events)?;
        gate_m_step(&ctx, params, None, &mut events)?;
    }
    Ok(())
}

/// The experts' half of the M-step with the slopes fixed, from the stored H and its masses N_j = Σ s h_ij
/// (experts with no mass keep their values).
fn offsets_and_variances<B: Backend + ?Sized>(
    ctx: &MStepCtx<B>,
    params: &mut [f64],
    mass: &[f64],
    events: &mut Vec<Event>,
) -> Result<()> {
    let (model, b) = (ctx.model, ctx.b);
    let (k, d) = (model.k, model.d);
    let lay = Layout::new(model);
    let sigma2 = lay.sigma2.expect("linear experts have σ² in the full layout");
    if model.intercept {
        // The gradient of Q in expert j's intercept is Σ s h_ij (y_i − β_jᵀx_i)/σ_j² (column 0 of X is the
        // ones), so the mean residual without the intercept c_j is c_j + σ_j²·∂Q/∂c_j / N_j: the residuals
        // are summed directly, not from expanded moments that cancel.
        let out =
            b.pass(Rows::All, lay.proj(params), &RowOp::Gradient { k, family: lay.family(params), stored_h: true })?;
        for j in 0..k {
            if !(mass[j] > 0.0) {
                continue;
            }
            let gradient = out.xtr[lay.gate_free + j * d];
            params[lay.coef + j * d] += params[sigma2 + j] * gradient / mass[j];
        }
    }
    if model.noise != Noise::Fitted {
        return Ok(());
    }
    let rss = b.pass(Rows::All, &params[lay.coef..lay.coef + k * d], &RowOp::LinearResidual { k })?.sums;
    for j in 0..k {
        if mass[j] > 0.0 {
            params[sigma2 + j] = fitted_variance(ctx, &params[lay.coef + j * d..], rss[j], mass[j], j, events);
        }
    }
    Ok(())
}
