//! Weighted softmax regression over backend passes (ALGORITHMS §3): the M-step sub-problem of the gate,
//! logistic/multinomial experts and the symmetric models. Mirrors src/algorithms/softmax-regression.ts:
//! Newton (dense Hessian, Cholesky with recovery), Newton-CG (CG on Hessian-vector products, preconditioned
//! by the Kronecker approximation of crate::kronecker for the general model's gate and experts, by diag(−H)
//! for the symmetric models) and the paper's fixed number of gradient steps; f never decreases.

use crate::api::{Event, ModelSpec, Result, Solver};
use crate::backend::{Backend, RowOp, Rows, SoftmaxProblem, SoftmaxTask};
use crate::kronecker::KroneckerStatistics;
use crate::linalg;

const ARMIJO: f64 = 1e-4;
const MAX_HALVINGS: usize = 30;

/// Solver settings with `Auto` resolved.
#[derive(Clone, Copy, Debug)]
pub struct SolverOpts {
    pub solver: Solver,
    pub max_iter: usize,
    pub tol: f64,
    pub cg_max_iter: usize,
    pub inner_steps: usize,
    /// 'gradient' solver: V ← V + step_scale·g (step_scale = η_b / S).
    pub step_scale: f64,
}

/// 'auto' = Newton when the block's free size p ≤ 256, else Newton-CG.
pub fn resolve_solver(solver: Solver, p: usize) -> Solver {
    match solver {
        Solver::Auto => {
            if p <= 256 {
                Solver::Newton
            } else {
                Solver::NewtonCg
            }
        }
        s => s,
    }
}

/// The pass a solver (`Auto` resolved at p free parameters) needs at each iterate: Newton f, g and the dense
/// −H; Newton-CG f and g, and unless it is `kronecker`-preconditioned also diag(−H) (its Jacobi
/// preconditioner; with the probabilities its Hessian-vector products read, on a backend that stores them);
/// the gradient solver f and g. Its trial pass at the full step is this same pass at the new iterate.
pub fn iterate_task(solver: Solver, p: usize, stores_probabilities: bool, kronecker: bool) -> SoftmaxTask {
    match resolve_solver(solver, p) {
        Solver::Newton | Solver::Auto => SoftmaxTask::Hessian,
        Solver::NewtonCg if kronecker => SoftmaxTask::Gradient,
        Solver::NewtonCg if stores_probabilities => SoftmaxTask::GradientDiagStore,
        Solver::NewtonCg => SoftmaxTask::GradientDiag,
        Solver::Gradient => SoftmaxTask::Gradient,
    }
}

/// The curvature an iterate's pass brings besides f and g (see `iterate_task`).
enum Curvature {
    /// Gradient solver: none.
    None,
    /// Newton: the dense −H (p×p).
    Dense(Vec<f64>),
    /// Newton-CG: diag(−H).
    Diagonal(Vec<f64>),
}

/// One softmax-regression problem on a set of rows.
pub struct Softmax<'s, B: Backend + ?Sized> {
    pub b: &'s B,
    pub rows: Rows,
    pub problem: SoftmaxProblem,
    pub model: &'s ModelSpec,
    /// Σ c over the rows (gate, symmetric: S; expert j: N_j).
    pub sum_c: f64,
    pub block: &'s str,
    /// Newton-CG's Kronecker preconditioner (the softmax problems of the general model); None = Jacobi.
    pub kronecker: Option<KroneckerPreconditioner<'s>>,
}

/// What a problem's Kronecker preconditioner needs: the fit's statistics and the problem's row weights c at
/// their sample rows.
pub struct KroneckerPreconditioner<'s> {
    pub stats: &'s KroneckerStatistics,
    pub sample_c: Vec<f64>,
}

impl<B: Backend + ?Sized> Softmax<'_, B> {
    fn m(&self) -> usize {
        self.problem.free_rows()
    }

    /// Positions in V (m×d) that the ridge penalty ½λ‖·‖² covers: every row, the intercept column excluded.
    fn penalised(&self) -> impl Iterator<Item = usize> {
        let d = self.model.d;
        let f0 = usize::from(self.model.intercept);
        (0..self.m()).flat_map(move |a| (f0..d).map(move |f| a * d + f))
    }

    fn penalty_value(&self, v: &[f64]) -> f64 {
        let lambda = self.model.ridge;
        if lambda == 0.0 {
            return 0.0;
        }
        let mut acc = 0.0;
        for q in self.penalised() {
            acc += v[q] * v[q];
        }
        0.5 * lambda * acc
    }

    fn pass(&self, proj: &[f64], task: SoftmaxTask) -> Result<crate::backend::PassOut> {
        self.b.pass(self.rows, proj, &RowOp::Softmax { problem: self.problem, task })
    }

    /// f(V).
    pub fn value(&self, v: &[f64]) -> Result<f64> {
        Ok(self.pass(v, SoftmaxTask::Objective)?.sums[0] - self.penalty_value(v))
    }

    /// f(V), the gradient g (penalised) and the curvature of `task` (an `iterate_task`).
    fn at_iterate(&self, v: &[f64], g: &mut [f64], task: SoftmaxTask) -> Result<(f64, Curvature)> {
        let out = self.pass(v, task)?;
        Ok(self.read_pass(v, &out, task, g))
    }

    /// f, g and the curvature at V from the output of a `task` pass at V (which may have been fused into
    /// another pass, see `solve_from`).
    fn read_pass(
        &self,
        v: &[f64],
        out: &crate::backend::PassOut,
        task: SoftmaxTask,
        g: &mut [f64],
    ) -> (f64, Curvature) {
        let (d, m) = (self.model.d, self.m());
        let p = m * d;
        g.copy_from_slice(&out.xtr);
        // The penalty ½λ‖V‖² adds −λV to g and λ to the diagonal of −H.
        let lambda = self.model.ridge;
        if lambda != 0.0 {
            for q in self.penalised() {
                g[q] -= lambda * v[q];
            }
        }
        let curvature = match task {
            SoftmaxTask::Hessian => {
                let mut h = vec![0.0; p * p];
                let mut q = 0;
                for a in 0..m {
                    for bb in a..m {
                        let gram = &out.grams[q * d * d..(q + 1) * d * d];
                        for f in 0..d {
                            for gg in 0..d {
                                let val = gram[f * d + gg];
                                h[(a * d + f) * p + bb * d + gg] = val;
                                h[(bb * d + gg) * p + a * d + f] = val;
                            }
                        }
                        q += 1;
                    }
                }
                if lambda != 0.0 {
                    for q in self.penalised() {
                        h[q * p + q] += lambda;
                    }
                }
                Curvature::Dense(h)
            }
            SoftmaxTask::GradientDiag | SoftmaxTask::GradientDiagStore => {
                let mut diag = out.grams.clone();
                if lambda != 0.0 {
                    for q in self.penalised() {
                        diag[q] += lambda;
                    }
                }
                Curvature::Diagonal(diag)
            }
            _ => Curvature::None,
        };
        (out.sums[0] - self.penalty_value(v), curvature)
    }

    /// Whether the Hessian-vector products read the probabilities that the iterate's GradientDiagStore pass
    /// stored (Jacobi-preconditioned Newton-CG on a backend with a store).
    fn reads_stored_probabilities(&self) -> bool {
        self.kronecker.is_none() && self.b.stores_probabilities()
    }

    /// (−H)·dir at V. When `reads_stored_probabilities`, V is the iterate whose GradientDiagStore pass was the
    /// last to store p for these rows, and P is dir alone.
    fn neg_hessian_times(&self, v: &[f64], dir: &[f64], out: &mut [f64]) -> Result<()> {
        let (d, m) = (self.model.d, self.m());
        let res = if self.reads_stored_probabilities() {
            self.pass(dir, SoftmaxTask::HessVecStored)?
        } else {
            let mut proj = Vec::with_capacity(2 * m * d);
            proj.extend_from_slice(v);
            proj.extend_from_slice(dir);
            self.pass(&proj, SoftmaxTask::HessVec)?
        };
        out.copy_from_slice(&res.xtr);
        let lambda = self.model.ridge;
        if lambda != 0.0 {
            for q in self.penalised() {
                out[q] += lambda * dir[q];
            }
        }
        Ok(())
    }

    /// Maximises f from V (updated in place).
    pub fn solve(&self, v: &mut [f64], opts: &SolverOpts, events: &mut Vec<Event>) -> Result<()> {
        self.solve_from(v, opts, events, None)
    }

    /// As `solve`, with the first iterate's pass already computed (the EM fit fuses the gate's into the
    /// E-step pass): `start` = its output and task, used when that task is this solver's `iterate_task`.
    pub fn solve_from(
        &self,
        v: &mut [f64],
        opts: &SolverOpts,
        events: &mut Vec<Event>,
        start: Option<(&crate::backend::PassOut, SoftmaxTask)>,
    ) -> Result<()> {
        let p = self.m() * self.model.d;
        if p == 0 || self.sum_c == 0.0 {
            return Ok(());
        }
        let task = iterate_task(opts.solver, p, self.b.stores_probabilities(), self.kronecker.is_some());
        let mut g = vec![0.0; p];
        let initial = start.filter(|&(_, t)| t == task).map(|(out, _)| self.read_pass(v, out, task, &mut g));
        match opts.solver {
            Solver::Gradient => self.solve_gradient(v, opts, g, initial.map(|(f, _)| f)),
            _ => self.solve_newton(v, opts, events, task, g, initial),
        }
    }

    /// Newton (dense −H, Cholesky) or Newton-CG (preconditioned CG on Hessian-vector products) with an
    /// Armijo backtracking line search. Each iterate costs one `task` pass (f, g, curvature), plus the CG's
    /// Hessian-vector passes; the trial pass at the full step is the next iterate's pass.
    fn solve_newton(
        &self,
        v: &mut [f64],
        opts: &SolverOpts,
        events: &mut Vec<Event>,
        task: SoftmaxTask,
        mut g: Vec<f64>,
        initial: Option<(f64, Curvature)>,
    ) -> Result<()> {
        let p = v.len();
        let mut delta = vec![0.0; p];
        let mut trial = vec![0.0; p];
        let mut g_trial = vec![0.0; p];
        // (f, curvature) at V (g in `g`) from the start or from an accepted full step (see below). With a
        // backend that stores probabilities, the GradientDiagStore pass that produced it also stored the p at
        // V that the CG's products read: no other pass runs in between.
        let mut carried: Option<(f64, Curvature)> = initial;
        for _ in 0..opts.max_iter {
            let (f0, curvature) = match carried.take() {
                Some(c) => c,
                None => self.at_iterate(v, &mut g, task)?,
            };
            match curvature {
                Curvature::Dense(mut h) => {
                    delta.copy_from_slice(&g);
                    linalg::solve_spd_with_recovery(&mut h, p, &mut delta, self.block, events)?;
                }
                Curvature::Diagonal(diag) => self.newton_cg_step(v, &g, linalg::jacobi(&diag), opts, &mut delta)?,
                Curvature::None => match &self.kronecker {
                    Some(k) => {
                        let kron = k.stats.at(v, self.sum_c, self.model.ridge, &k.sample_c);
                        self.newton_cg_step(v, &g, |r, z| kron.apply(r, z), opts, &mut delta)?
                    }
                    None => {
                        unreachable!("Newton solvers' iterate tasks bring curvature unless Kronecker-preconditioned")
                    }
                },
            }
            let decrement = linalg::dot(&g, &delta);
            if !(decrement / 2.0 > opts.tol * self.sum_c) {
                // Inside the tolerance the quadratic model is exact to rounding, and a line search could not
                // see a change of f this small: take the full Newton step unguarded and stop (ALGORITHMS §3).
                if decrement > 0.0 && decrement.is_finite() {
                    for q in 0..p {
                        v[q] += delta[q];
                    }
                }
                return Ok(());
            }
            let mut t = 1.0;
            let mut accepted = false;
            for halving in 0..=MAX_HALVINGS {
                for q in 0..p {
                    trial[q] = v[q] + t * delta[q];
                }
                // The full step is usually accepted: evaluate it with the next iterate's pass, whose f is
                // bit-identical to the objective pass's, and keep its g and curvature if it is.
                let (f_trial, next) = if halving == 0 {
                    let (f, curvature) = self.at_iterate(&trial, &mut g_trial, task)?;
                    (f, Some(curvature))
                } else {
                    (self.value(&trial)?, None)
                };
                if f_trial >= f0 + ARMIJO * t * decrement {
                    accepted = true;
                    if let Some(curvature) = next {
                        g.copy_from_slice(&g_trial);
                        carried = Some((f_trial, curvature));
                    }
                    break;
                }
                t /= 2.0;
            }
            if !accepted {
                return Ok(());
            }
            v.copy_from_slice(&trial);
        }
        Ok(())
    }

    /// Newton-CG's step: CG on (−H)Δ = g at V with the preconditioner's inverse `precondition`, to
    /// ‖r‖ ≤ η‖g‖ with η = min(0.5, sqrt(‖g‖/Σc)).
    fn newton_cg_step(
        &self,
        v: &[f64],
        g: &[f64],
        precondition: impl Fn(&[f64], &mut [f64]),
        opts: &SolverOpts,
        delta: &mut [f64],
    ) -> Result<()> {
        let eta = (0.5f64).min((linalg::norm(g) / self.sum_c).sqrt());
        linalg::preconditioned_cg(
            |q, out| self.neg_hessian_times(v, q, out),
            g,
            precondition,
            opts.cg_max_iter,
            eta,
            delta,
        )?;
        Ok(())
    }

    fn solve_gradient(&self, v: &mut [f64], opts: &SolverOpts, mut g: Vec<f64>, initial: Option<f64>) -> Result<()> {
        let p = v.len();
        let mut trial = vec![0.0; p];
        let mut g_trial = vec![0.0; p];
        let mut carried: Option<f64> = initial;
        for step in 0..opts.inner_steps {
            let f0 = match carried.take() {
                Some(f) => f,
                None => self.at_iterate(v, &mut g, SoftmaxTask::Gradient)?.0,
            };
            let mut t = opts.step_scale;
            let mut accepted = false;
            let last_step = step + 1 == opts.inner_steps;
            for halving in 0..=MAX_HALVINGS {
                for q in 0..p {
                    trial[q] = v[q] + t * g[q];
                }
                // As in Newton: the first trial is evaluated with the next step's gradient pass.
                let speculative = halving == 0 && !last_step;
                let f_trial = if speculative {
                    self.at_iterate(&trial, &mut g_trial, SoftmaxTask::Gradient)?.0
                } else {
                    self.value(&trial)?
                };
                if f_trial >= f0 {
                    accepted = true;
                    if speculative {
                        g.copy_from_slice(&g_trial);
                        carried = Some(f_trial);
                    }
                    break;
                }
                t /= 2.0;
            }
            if !accepted {
                return Ok(());
            }
            v.copy_from_slice(&trial);
        }
        Ok(())
    }
}
