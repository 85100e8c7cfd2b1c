//! The fit loop (ALGORITHMS §5; src/algorithms/fit.ts, init.ts, minibatch.ts): initialise, record iteration
//! 0, then iterate EM / Gradient EM / GD (full batch or mini-batch epochs) until the relative objective
//! change is ≤ tol or max_iter.

use std::time::Instant;

use crate::api::{
    err, Algorithm, Control, ErrorCode, Event, ExpertKind, FitOutput, FitSpec, IterationRecord, ModelSpec, Noise,
    Result, StopReason,
};
use crate::backend::{Backend, PassOut, RowOp, Rows, SoftmaxProblem};
use crate::gradient::{gradient_steps_on_q, safeguarded_gradient_steps_on_q};
use crate::model::{check_backend, check_params, e_step, objective_from_loglik, totals, Layout};
use crate::mstep::{gate_start_task, m_step, reference_params, reseed_degenerate, MStepCtx, MStepData};
use crate::param_error::parameter_error;
use crate::rng::Rng;

/// Fit one restart (ALGORITHMS §3–§5). `init`: starting parameters in the flat layout, or `None` for the
/// random initialisation from `seed`. `truth`: true parameters for `param_error`.
pub fn fit<B: Backend + ?Sized>(
    b: &B,
    model: &ModelSpec,
    spec: &FitSpec,
    seed: u32,
    init: Option<&[f64]>,
    truth: Option<&[f64]>,
    on_iter: &mut dyn FnMut(&IterationRecord) -> Control,
) -> Result<FitOutput> {
    fit_with_partial(b, model, spec, seed, init, truth, on_iter).map_err(|(e, _)| e)
}

/// As `fit`, but an E_ABORTED or E_NON_FINITE failure also returns the partial state (src/algorithms/fit.ts
/// `error.details.partial`): the parameters at the failure and the records completed so far.
#[allow(clippy::type_complexity)]
pub fn fit_with_partial<B: Backend + ?Sized>(
    b: &B,
    model: &ModelSpec,
    spec: &FitSpec,
    seed: u32,
    init: Option<&[f64]>,
    truth: Option<&[f64]>,
    on_iter: &mut dyn FnMut(&IterationRecord) -> Control,
) -> std::result::Result<FitOutput, (crate::api::Error, Option<FitOutput>)> {
    let mut params = Vec::new();
    let mut iterations = Vec::new();
    match run(b, model, spec, seed, init, truth, on_iter, &mut params, &mut iterations) {
        Ok(reason) => Ok(FitOutput { params, iterations, converged: reason == StopReason::Tol, reason }),
        Err(e) => {
            let keep = matches!(e.code, ErrorCode::Aborted | ErrorCode::NonFinite) && !params.is_empty();
            let partial =
                keep.then_some(FitOutput { params, iterations, converged: false, reason: StopReason::MaxIter });
            Err((e, partial))
        }
    }
}

/// The fit proper, with its state in `params` / `iterations` so that the caller keeps it on failure.
#[allow(clippy::too_many_arguments)]
fn run<B: Backend + ?Sized>(
    b: &B,
    model: &ModelSpec,
    spec: &FitSpec,
    seed: u32,
    init: Option<&[f64]>,
    truth: Option<&[f64]>,
    on_iter: &mut dyn FnMut(&IterationRecord) -> Control,
    params: &mut Vec<f64>,
    iterations: &mut Vec<IterationRecord>,
) -> Result<StopReason> {
    check_backend(b, model)?;
    if let Some(t) = truth {
        if t.len() != Layout::new(model).size {
            return err(ErrorCode::Shape, "true parameters: wrong length");
        }
    }
    let start = Instant::now();
    let n = b.n();
    let shared = MStepData::new(b, model)?;
    let weight = shared.tot.weight;
    let full_batch = spec.batch_size == 0 || spec.batch_size >= n;
    let mut rng = Rng::new(seed);
    let ctx = shared.ctx(b, model, spec);

    let mut events: Vec<Event> = Vec::new();
    *params = match init {
        Some(p) => {
            check_params(model, p)?;
            let mut p = p.to_vec();
            reference_params(model, &mut p);
            p
        }
        None => random_init(&ctx, &mut rng, &mut events)?,
    };
    // EM with linear experts takes its sufficient statistics from the E-step pass itself, and full-batch
    // EM of the general model computes the gate solver's first pass in the same read of X. The experts'
    // Grams may be left pending there (Backend::pass_many_deferring_grams): m_step then solves the gate
    // first, overlapping them, and the last E-step of a fit, which only measures the objective, does not wait
    // for its Grams at all.
    let fused_suff = spec.algorithm == Algorithm::Em && full_batch && model.experts == ExpertKind::Linear;
    let gate_task = (spec.algorithm == Algorithm::Em && full_batch && !model.symmetric && model.k >= 2)
        .then(|| gate_start_task(model, spec));
    let gate_op = gate_task.map(|task| RowOp::Softmax { problem: SoftmaxProblem::Gate { k: model.k }, task });
    let gate_rows = (model.k.max(1) - 1) * model.d;
    let record_e_step = |params: &[f64]| -> Result<(PassOut, Option<PassOut>)> {
        let Some(gate_op) = &gate_op else {
            return Ok((e_step(b, model, params, Rows::All, true, fused_suff)?, None));
        };
        let lay = Layout::new(model);
        let op = RowOp::EStep { k: model.k, family: lay.family(params), store: true, suff: fused_suff };
        let mut outs =
            b.pass_many_deferring_grams(Rows::All, &[(lay.proj(params), &op), (&params[..gate_rows], gate_op)])?;
        let gate = outs.pop();
        Ok((outs.remove(0), gate))
    };

    let mut record = |iter: usize,
                      loglik: f64,
                      params: &[f64],
                      events: Vec<Event>,
                      iterations: &mut Vec<IterationRecord>|
     -> Result<f64> {
        let (nll, objective) = objective_from_loglik(model, params, loglik, weight);
        let rec = IterationRecord {
            iter,
            nll,
            objective,
            elapsed_ms: start.elapsed().as_secs_f64() * 1e3,
            param_error: truth.map(|t| parameter_error(model, params, t)),
            events,
        };
        if !objective.is_finite() {
            return err(ErrorCode::NonFinite, format!("the objective became non-finite at iteration {iter}"));
        }
        let control = on_iter(&rec);
        iterations.push(rec);
        if control == Control::Abort {
            return err(ErrorCode::Aborted, "the fit was aborted");
        }
        Ok(objective)
    };

    let (mut stats, mut gate_start) = record_e_step(params)?;
    let mut previous = record(0, stats.sums[0], params, std::mem::take(&mut events), iterations)?;
    let mut reason = StopReason::MaxIter;
    for t in 1..=spec.max_iter {
        let mut events = Vec::new();
        if full_batch {
            if spec.algorithm != Algorithm::Gd
                && reseed_degenerate(model, params, &stats.sums[1..], weight, spec.on_empty_error, &mut events)?
            {
                (stats, gate_start) = record_e_step(params)?;
            }
            match spec.algorithm {
                Algorithm::Em => m_step(&ctx, params, &stats, gate_start.as_ref().zip(gate_task), &mut events)?,
                Algorithm::GradientEm => {
                    gradient_steps_on_q(b, model, spec, params, Rows::All, weight, spec.inner_steps)?
                }
                Algorithm::Gd => gradient_steps_on_q(b, model, spec, params, Rows::All, weight, 1)?,
            }
        } else {
            mini_batch_epoch(b, model, spec, params, &mut rng)?;
        }
        (stats, gate_start) = record_e_step(params)?;
        let objective = record(t, stats.sums[0], params, events, iterations)?;
        let converged = (objective - previous).abs() <= spec.tol * previous.abs().max(1.0);
        previous = objective;
        if converged {
            reason = StopReason::Tol;
            break;
        }
    }
    Ok(reason)
}

/// θ_0 from hard assignments, one component index per row (symmetric models: 0 is z = +1, 1 is z = −1): one
/// M-step from those responsibilities (ALGORITHMS §5; src/algorithms/init.ts `initFromAssignment`), the last
/// step of the 'random' start and of init 'kmeans'. Its recovery events are not reported.
pub fn start_from_assignment<B: Backend + ?Sized>(
    b: &B,
    model: &ModelSpec,
    spec: &FitSpec,
    assignment: &[u32],
) -> Result<Vec<f64>> {
    check_backend(b, model)?;
    if assignment.len() != b.n() {
        return err(ErrorCode::Shape, format!("the assignment has {} entries for {} rows", assignment.len(), b.n()));
    }
    let width = if model.symmetric { 2 } else { model.k };
    if let Some(i) = assignment.iter().position(|&j| j as usize >= width) {
        return err(
            ErrorCode::Option,
            format!("the assignment of row {i} is {}; components are 0..{}", assignment[i], width - 1),
        );
    }
    let shared = MStepData::new(b, model)?;
    from_assignment(&shared.ctx(b, model, spec), assignment, &mut Vec::new())
}

/// The 'random' init: hard assignments floor(u·k) (symmetric: z = +1 when u < 0.5), row by row in order.
fn random_init<B: Backend + ?Sized>(ctx: &MStepCtx<B>, rng: &mut Rng, events: &mut Vec<Event>) -> Result<Vec<f64>> {
    let model = ctx.model;
    let assignment: Vec<u32> = (0..ctx.b.n())
        .map(|_| if model.symmetric { u32::from(rng.uniform() >= 0.5) } else { rng.int(model.k) as u32 })
        .collect();
    from_assignment(ctx, &assignment, events)
}

/// One M-step from hard responsibilities, with the gate and softmax experts starting at 0 (fitted σ² at 1,
/// known σ² = σ²).
fn from_assignment<B: Backend + ?Sized>(
    ctx: &MStepCtx<B>,
    assignment: &[u32],
    events: &mut Vec<Event>,
) -> Result<Vec<f64>> {
    let model = ctx.model;
    let width = if model.symmetric { 2 } else { model.k };
    let mut h = vec![0.0; assignment.len() * width];
    for (row, &j) in h.chunks_exact_mut(width).zip(assignment) {
        row[j as usize] = 1.0;
    }
    ctx.b.write_h(width, &h)?;
    let lay = Layout::new(model);
    let mut params = vec![0.0; lay.size];
    if let Some(s) = lay.sigma2 {
        let s2 = match model.noise {
            Noise::Known(sigma) => sigma * sigma,
            Noise::Fitted => 1.0,
        };
        params[s..s + model.k].iter_mut().for_each(|v| *v = s2);
    }
    let linear = model.experts == ExpertKind::Linear;
    let stats: PassOut =
        ctx.b.pass(Rows::All, &[], &RowOp::HStats { width, suff: linear, symmetric: model.symmetric })?;
    m_step(ctx, &mut params, &stats, None, events)?;
    Ok(params)
}

/// One epoch of mini-batch em / gradient-em / gd: a fresh Fisher–Yates shuffle, consecutive batches.
fn mini_batch_epoch<B: Backend + ?Sized>(
    b: &B,
    model: &ModelSpec,
    spec: &FitSpec,
    params: &mut [f64],
    rng: &mut Rng,
) -> Result<()> {
    let n = b.n();
    let mut order: Vec<u32> = (0..n as u32).collect();
    rng.shuffle(&mut order);
    b.set_order(&order)?;
    let mut start = 0;
    while start < n {
        let len = spec.batch_size.min(n - start);
        let rows = Rows::Order { start, len };
        start += len;
        let weight = totals(b, rows)?.weight;
        if !(weight > 0.0) {
            continue;
        }
        e_step(b, model, params, rows, true, false)?;
        match spec.algorithm {
            Algorithm::Gd => gradient_steps_on_q(b, model, spec, params, rows, weight, 1)?,
            Algorithm::GradientEm => gradient_steps_on_q(b, model, spec, params, rows, weight, spec.inner_steps)?,
            Algorithm::Em => {
                safeguarded_gradient_steps_on_q(b, model, spec, params, rows, weight, spec.mstep.inner_steps)?
            }
        }
    }
    Ok(())
}
