//! The EM M-step (ALGORITHMS §3; src/algorithms/mstep.ts): experts (closed-form weighted least squares for
//! linear experts, softmax regression otherwise), then the gate, from the statistics of H; and the re-seeding
//! of degenerate components (src/algorithms/reseed.ts).

use crate::api::{err, ErrorCode, Event, ExpertKind, FitSpec, ModelSpec, Noise, Result, Solver};
use crate::backend::{Backend, PassOut, RowOp, Rows, SoftmaxProblem, SoftmaxTask};
use crate::kronecker::{sample_rows, KroneckerStatistics};
use crate::linalg;
use crate::model::{penalised_sq_norm, totals, Layout, Totals};
use crate::softmax::{iterate_task, resolve_solver, KroneckerPreconditioner, Softmax, SolverOpts};

/// σ² floor relative to the weighted variance of y.
pub(crate) const VARIANCE_FLOOR_RELATIVE: f64 = 1e-10;
const EMPTY_RELATIVE: f64 = 1e-8;
const SPLIT_EPSILON: f64 = 1e-3;

/// What an M-step needs besides the backend's stored H.
pub struct MStepCtx<'c, B: Backend + ?Sized> {
    pub b: &'c B,
    pub model: &'c ModelSpec,
    pub spec: &'c FitSpec,
    pub rows: Rows,
    /// Σ s over the rows (step sizes are normalised by it).
    pub weight: f64,
    /// Weighted variance of y over all rows (the σ² floor's scale).
    pub var_y: f64,
    /// Σ s x xᵀ (d×d) for SymMoLinE, computed once per fit.
    pub sym_gram: Option<&'c [f64]>,
    /// The Kronecker preconditioners' statistics, computed at the fit's first Newton-CG solve of a softmax
    /// problem of the general model (gate or expert).
    pub kronecker_statistics: std::cell::OnceCell<KroneckerStatistics>,
}

impl<B: Backend + ?Sized> MStepCtx<'_, B> {
    fn kronecker_statistics(&self) -> Result<&KroneckerStatistics> {
        if let Some(stats) = self.kronecker_statistics.get() {
            return Ok(stats);
        }
        let stats = KroneckerStatistics::new(self.b, self.weight, self.model.intercept)?;
        Ok(self.kronecker_statistics.get_or_init(|| stats))
    }
}

/// What every full-batch M-step of a fit reads besides H: Σ s and y's weighted variance over all rows, and
/// SymMoLinE's Gram Σ s x xᵀ.
pub(crate) struct MStepData {
    pub(crate) tot: Totals,
    sym_gram: Option<Vec<f64>>,
}

impl MStepData {
    pub(crate) fn new<B: Backend + ?Sized>(b: &B, model: &ModelSpec) -> Result<MStepData> {
        let tot = totals(b, Rows::All)?;
        if !(tot.weight > 0.0) {
            return err(ErrorCode::TooFewRows, "the sample weights sum to 0");
        }
        let sym_gram = if model.symmetric && model.experts == ExpertKind::Linear {
            Some(b.pass(Rows::All, &[], &RowOp::Gram)?.grams)
        } else {
            None
        };
        Ok(MStepData { tot, sym_gram })
    }

    pub(crate) fn ctx<'c, B: Backend + ?Sized>(
        &'c self,
        b: &'c B,
        model: &'c ModelSpec,
        spec: &'c FitSpec,
    ) -> MStepCtx<'c, B> {
        MStepCtx {
            b,
            model,
            spec,
            rows: Rows::All,
            weight: self.tot.weight,
            var_y: self.tot.var_y,
            sym_gram: self.sym_gram.as_deref(),
            kronecker_statistics: Default::default(),
        }
    }
}

fn solver_opts(spec: &FitSpec, p: usize, step: f64, weight: f64) -> SolverOpts {
    let m = &spec.mstep;
    SolverOpts {
        solver: resolve_solver(m.solver, p),
        max_iter: m.max_iter,
        tol: m.tol,
        cg_max_iter: m.cg_max_iter,
        inner_steps: m.inner_steps,
        step_scale: step / weight,
    }
}

/// (A + λI') β = b for one linear block; returns β.
fn ridge_solve(model: &ModelSpec, gram: &[f64], rhs: &[f64], block: &str, events: &mut Vec<Event>) -> Result<Vec<f64>> {
    let d = model.d;
    let mut a = gram.to_vec();
    for f in usize::from(model.intercept)..d {
        a[f * d + f] += model.ridge;
    }
    let mut beta = rhs.to_vec();
    linalg::solve_spd_with_recovery(&mut a, d, &mut beta, block, events)?;
    Ok(beta)
}

/// Below this many multiply-adds per solve (d³/3) the k ridge solves run on the calling thread: a thread
/// costs tens of microseconds to start.
const PARALLEL_SOLVE_WORK: usize = 100_000;

/// One expert's solve and the events it raised.
type SolveResult = (Result<Vec<f64>>, Vec<Event>);

/// The k linear experts' ridge solves. They are independent, so where each is large (d ≳ 67) they run on up to
/// `threads` threads (`Backend::host_threads`; a fit on a GPU waits for them between passes: ~0.05–0.2 ms
/// each at d = 100); the results and the events (in expert order) are the same bits either way.
fn linear_expert_solves(
    model: &ModelSpec,
    grams: &[f64],
    xtr: &[f64],
    threads: usize,
    events: &mut Vec<Event>,
) -> Result<Vec<Vec<f64>>> {
    let (k, d) = (model.k, model.d);
    let solve = |j: usize, ev: &mut Vec<Event>| {
        ridge_solve(model, &grams[j * d * d..(j + 1) * d * d], &xtr[j * d..(j + 1) * d], &format!("expert {j}"), ev)
    };
    let threads = threads.min(k);
    if threads < 2 || d * d * d / 3 < PARALLEL_SOLVE_WORK {
        return (0..k).map(|j| solve(j, events)).collect();
    }
    let per = k.div_ceil(threads);
    let results: Vec<Vec<SolveResult>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..k)
            .step_by(per)
            .map(|first| {
                let solve = &solve;
                scope.spawn(move || {
                    (first..(first + per).min(k))
                        .map(|j| {
                            let mut ev = Vec::new();
                            (solve(j, &mut ev), ev)
                        })
                        .collect()
                })
            })
            .collect();
        // A panic in a solve is re-raised here, as it would be on the calling thread.
        handles.into_iter().map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
    });
    let mut betas = Vec::with_capacity(k);
    for (beta, ev) in results.into_iter().flatten() {
        events.extend(ev);
        betas.push(beta?);
    }
    Ok(betas)
}

/// One M-step from the stored H, with `stats` the E-step (or `HStats`) output of the same rows:
/// sums = [_, N_0..], and for linear experts the Grams Σ s h_j x xᵀ (or `grams_pending`: the backend's
/// `finish_grams`) and XᵀR with r = s h_j y. `gate_start`: the gate's `gate_start_task` pass at the current
/// gate and its task, when it was fused into the E-step.
pub fn m_step<B: Backend + ?Sized>(
    ctx: &MStepCtx<B>,
    params: &mut [f64],
    stats: &PassOut,
    gate_start: Option<(&PassOut, SoftmaxTask)>,
    events: &mut Vec<Event>,
) -> Result<()> {
    if ctx.model.symmetric {
        return symmetric_m_step(ctx, params, stats, events);
    }
    if stats.grams_pending {
        // The backend is still summing the experts' Grams (Backend::pass_many_deferring_grams): the gate goes
        // first, its passes overlapping the Grams. The two solves are independent (the gate's reads H and the
        // gate's rows of the parameters, the experts' H, their Grams and their rows), so the parameters are the
        // same bits as in the reference's order (experts, then gate), and the events keep that order. Only a
        // failure differs: the gate's is reported without the experts' M-step having run.
        let mut gate_events = Vec::new();
        gate_m_step(ctx, params, gate_start, &mut gate_events)?;
        let grams = ctx.b.finish_grams()?;
        experts_m_step(ctx, params, stats, &grams, events)?;
        events.extend(gate_events);
        return Ok(());
    }
    experts_m_step(ctx, params, stats, &stats.grams, events)?;
    gate_m_step(ctx, params, gate_start, events)
}

/// The softmax pass that starts the gate solver (its `iterate_task` at the current gate); EM fuses it into the
/// E-step pass, where H and the current gate are already at hand. The gate's Newton-CG is Kronecker-
/// preconditioned, so its iterates need f and g only and its products read no stored probabilities: the task
/// does not depend on the backend.
pub fn gate_start_task(model: &ModelSpec, spec: &FitSpec) -> SoftmaxTask {
    iterate_task(spec.mstep.solver, (model.k.max(1) - 1) * model.d, false, true)
}

/// `grams`: the linear experts' Grams (`stats.grams`, or the pending ones once finished).
fn experts_m_step<B: Backend + ?Sized>(
    ctx: &MStepCtx<B>,
    params: &mut [f64],
    stats: &PassOut,
    grams: &[f64],
    events: &mut Vec<Event>,
) -> Result<()> {
    let model = ctx.model;
    let (k, d) = (model.k, model.d);
    let lay = Layout::new(model);
    if model.experts == ExpertKind::Linear {
        let betas = linear_expert_solves(model, grams, &stats.xtr, ctx.b.host_threads(), events)?;
        for (j, beta) in betas.iter().enumerate() {
            params[lay.coef + j * d..lay.coef + (j + 1) * d].copy_from_slice(beta);
        }
        if model.noise != Noise::Fitted {
            return Ok(());
        }
        let rss = ctx.b.pass(ctx.rows, &params[lay.coef..lay.coef + k * d], &RowOp::LinearResidual { k })?.sums;
        let s2_off = lay.sigma2.unwrap_or(0);
        for j in 0..k {
            params[s2_off + j] =
                fitted_variance(ctx, &params[lay.coef + j * d..], rss[j], stats.sums[1 + j], j, events);
        }
        return Ok(());
    }
    let classes = lay.classes;
    let logistic = model.experts == ExpertKind::Logistic;
    let free = (classes - 1) * d;
    let opts = solver_opts(ctx.spec, free, ctx.spec.step_experts, ctx.weight);
    // Newton-CG's Kronecker preconditioners: expert j's rows weigh c = s·h_j, so its sample weights are the
    // sample's s times its H rows, read once for all experts.
    let kronecker = if opts.solver == Solver::NewtonCg {
        Some((ctx.kronecker_statistics()?, ctx.b.gather_h(&sample_rows(ctx.b.n()), k)?))
    } else {
        None
    };
    for j in 0..k {
        let block = format!("expert {j}");
        let sm = Softmax {
            b: ctx.b,
            rows: ctx.rows,
            problem: SoftmaxProblem::Expert { j, k, classes, logistic },
            model,
            sum_c: stats.sums[1 + j],
            block: &block,
            kronecker: kronecker.as_ref().map(|&(kstats, ref h)| KroneckerPreconditioner {
                stats: kstats,
                sample_c: kstats.sample_s().iter().zip(h.chunks_exact(k)).map(|(&s, hr)| s * hr[j]).collect(),
            }),
        };
        let off = lay.coef + j * lay.coef_per_expert;
        let mut v = params[off..off + free].to_vec();
        sm.solve(&mut v, &opts, events)?;
        params[off..off + free].copy_from_slice(&v);
    }
    Ok(())
}

/// Linear expert j's fitted σ² (§3): its penalised residual variance (RSS_j + λ‖β_j‖²)/N_j, raised to the floor
/// (1e-10 of y's weighted variance), with an event, where it is below it or NaN. `beta`: the expert's row.
pub(crate) fn fitted_variance<B: Backend + ?Sized>(
    ctx: &MStepCtx<B>,
    beta: &[f64],
    rss: f64,
    mass: f64,
    j: usize,
    events: &mut Vec<Event>,
) -> f64 {
    let floor = VARIANCE_FLOOR_RELATIVE * ctx.var_y;
    let s2 = (rss + ctx.model.ridge * penalised_sq_norm(ctx.model, beta)) / mass;
    if s2 >= floor {
        return s2;
    }
    events.push(Event::VarianceFloor { expert: j, floor });
    floor
}

/// The gate's softmax-regression M-step from the stored H (`gate_start`: its first pass, fused into the E-step).
pub(crate) fn gate_m_step<B: Backend + ?Sized>(
    ctx: &MStepCtx<B>,
    params: &mut [f64],
    gate_start: Option<(&PassOut, SoftmaxTask)>,
    events: &mut Vec<Event>,
) -> Result<()> {
    let (k, d) = (ctx.model.k, ctx.model.d);
    if k < 2 {
        return Ok(());
    }
    let free = (k - 1) * d;
    let opts = solver_opts(ctx.spec, free, ctx.spec.step_gate, ctx.weight);
    let kronecker = if opts.solver == Solver::NewtonCg {
        let stats = ctx.kronecker_statistics()?;
        Some(KroneckerPreconditioner { stats, sample_c: stats.sample_s().to_vec() })
    } else {
        None
    };
    let sm = Softmax {
        b: ctx.b,
        rows: ctx.rows,
        problem: SoftmaxProblem::Gate { k },
        model: ctx.model,
        sum_c: ctx.weight,
        block: "gate",
        kronecker,
    };
    let mut v = params[..free].to_vec();
    sm.solve_from(&mut v, &opts, events, gate_start)?;
    params[..free].copy_from_slice(&v);
    Ok(())
}

fn symmetric_m_step<B: Backend + ?Sized>(
    ctx: &MStepCtx<B>,
    params: &mut [f64],
    stats: &PassOut,
    events: &mut Vec<Event>,
) -> Result<()> {
    let model = ctx.model;
    let d = model.d;
    if model.experts == ExpertKind::Linear {
        let gram = match ctx.sym_gram {
            Some(g) => g,
            None => return err(ErrorCode::Internal, "symmetric M-step without Σ s x xᵀ"),
        };
        let beta = ridge_solve(model, gram, &stats.xtr[..d], "expert", events)?;
        params[d..2 * d].copy_from_slice(&beta);
    } else {
        let sm = Softmax {
            b: ctx.b,
            rows: ctx.rows,
            problem: SoftmaxProblem::SymLogExpert,
            model,
            sum_c: ctx.weight,
            block: "expert",
            kronecker: None,
        };
        let mut v = params[d..2 * d].to_vec();
        sm.solve(&mut v, &solver_opts(ctx.spec, d, ctx.spec.step_experts, ctx.weight), events)?;
        params[d..2 * d].copy_from_slice(&v);
    }
    let sm = Softmax {
        b: ctx.b,
        rows: ctx.rows,
        problem: SoftmaxProblem::SymGate,
        model,
        sum_c: ctx.weight,
        block: "gate",
        kronecker: None,
    };
    let mut v = params[..d].to_vec();
    sm.solve(&mut v, &solver_opts(ctx.spec, d, ctx.spec.step_gate, ctx.weight), events)?;
    params[..d].copy_from_slice(&v);
    Ok(())
}

/// Gate rows minus row k−1, multinomial class rows minus class C−1 (src/models/layout.ts `referenceParams`).
pub fn reference_params(model: &ModelSpec, params: &mut [f64]) {
    if model.symmetric {
        return;
    }
    let lay = Layout::new(model);
    let d = model.d;
    subtract_last_row(params, 0, model.k, d);
    if model.experts == ExpertKind::Multinomial {
        for j in 0..model.k {
            subtract_last_row(params, lay.coef + j * lay.coef_per_expert, model.n_classes, d);
        }
    }
}

fn subtract_last_row(a: &mut [f64], off: usize, rows: usize, cols: usize) {
    let last = off + (rows - 1) * cols;
    for r in 0..rows - 1 {
        for c in 0..cols {
            a[off + r * cols + c] -= a[last + c];
        }
    }
    for c in 0..cols {
        a[last + c] = 0.0;
    }
}

/// Re-seeds every degenerate expert (N_j ≤ 1e-8·weight) by splitting the heaviest; true when something
/// changed (the caller redoes the E-step). E_EMPTY_COMPONENT with `on_empty_error`.
pub fn reseed_degenerate(
    model: &ModelSpec,
    params: &mut [f64],
    mass: &[f64],
    weight: f64,
    on_empty_error: bool,
    events: &mut Vec<Event>,
) -> Result<bool> {
    if model.symmetric || model.k < 2 {
        return Ok(false);
    }
    let (k, d) = (model.k, model.d);
    let threshold = EMPTY_RELATIVE * weight;
    let mut heaviest = 0;
    for j in 1..k {
        if mass[j] > mass[heaviest] {
            heaviest = j;
        }
    }
    let lay = Layout::new(model);
    let mut changed = false;
    for j in 0..k {
        if mass[j] > threshold {
            continue;
        }
        if on_empty_error {
            return err(ErrorCode::EmptyComponent, format!("expert {j} has vanishing responsibility mass {}", mass[j]));
        }
        let m = heaviest;
        let len = lay.coef_per_expert;
        let (bj, bm) = (lay.coef + j * len, lay.coef + m * len);
        for q in 0..len {
            params[bj + q] = params[bm + q] * (1.0 + SPLIT_EPSILON);
            params[bm + q] *= 1.0 - SPLIT_EPSILON;
        }
        if let Some(s) = lay.sigma2 {
            params[s + j] = params[s + m];
        }
        for f in 0..d {
            params[j * d + f] = params[m * d + f];
        }
        events.push(Event::Reseed { expert: j, from: m });
        changed = true;
    }
    if changed {
        reference_params(model, params);
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ExpertKind;

    /// The threaded solves (d = 80 is above `PARALLEL_SOLVE_WORK`) give the sequential solves' bits and events,
    /// in expert order, including an expert whose Gram is singular (the recovery's event).
    #[test]
    fn parallel_expert_solves_equal_sequential() {
        let (k, d) = (5, 80);
        let model = ModelSpec {
            experts: ExpertKind::Linear,
            symmetric: false,
            k,
            d,
            n_classes: 0,
            noise: Noise::Fitted,
            ridge: 0.0,
            intercept: false,
        };
        let mut rng = crate::rng::Rng::new(3);
        let mut grams = vec![0.0; k * d * d];
        for j in 0..k {
            // Σ_i x xᵀ over 2d random rows; expert 2 over d/2 rows only: singular.
            let rows = if j == 2 { d / 2 } else { 2 * d };
            for _ in 0..rows {
                let x: Vec<f64> = (0..d).map(|_| rng.uniform() - 0.5).collect();
                for a in 0..d {
                    for b in 0..d {
                        grams[(j * d + a) * d + b] += x[a] * x[b];
                    }
                }
            }
        }
        let stats = PassOut {
            xtr: (0..k * d).map(|_| rng.uniform()).collect(),
            grams,
            sums: vec![1.0; 1 + k],
            grams_pending: false,
        };
        let mut events = Vec::new();
        let got = linear_expert_solves(&model, &stats.grams, &stats.xtr, 4, &mut events).unwrap();
        let mut want_events = Vec::new();
        for j in 0..k {
            let want = ridge_solve(
                &model,
                &stats.grams[j * d * d..(j + 1) * d * d],
                &stats.xtr[j * d..(j + 1) * d],
                &format!("expert {j}"),
                &mut want_events,
            )
            .unwrap();
            assert_eq!(got[j], want, "expert {j}");
        }
        assert!(!want_events.is_empty(), "the singular expert should have needed the recovery");
        assert_eq!(format!("{events:?}"), format!("{want_events:?}"));
    }
}
