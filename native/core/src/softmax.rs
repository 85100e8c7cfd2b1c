//! Weighted softmax regression over backend passes (ALGORITHMS §3): the M-step sub-problem of the gate,
//! logistic/multinomial experts and the symmetric models. Mirrors src/algorithms/softmax-regression.ts:
//! Newton (dense Hessian, Cholesky with recovery), Newton-CG (Jacobi-preconditioned CG on Hessian-vector
//! products) and the paper's fixed number of gradient steps; f never decreases.

use crate::api::{Event, ModelSpec, Result, Solver};
use crate::backend::{Backend, Rows, RowOp, SoftmaxProblem, SoftmaxTask};
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

/// One softmax-regression problem on a set of rows.
pub struct Softmax<'s, B: Backend + ?Sized> {
    pub b: &'s B,
    pub rows: Rows,
    pub problem: SoftmaxProblem,
    pub model: &'s ModelSpec,
    /// Σ c over the rows (gate, symmetric: S; expert j: N_j).
    pub sum_c: f64,
    pub block: &'s str,
}

impl<B: Backend + ?Sized> Softmax<'_, B> {
    fn m(&self) -> usize {
        self.problem.free_rows()
    }

    fn penalty_value(&self, v: &[f64]) -> f64 {
        let lambda = self.model.ridge;
        if lambda == 0.0 {
            return 0.0;
        }
        let d = self.model.d;
        let f0 = usize::from(self.model.intercept);
        let mut acc = 0.0;
        for a in 0..self.m() {
            for f in f0..d {
                acc += v[a * d + f] * v[a * d + f];
            }
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

    /// f(V), gradient g (penalised) and, when `hessian`, the dense −H (p×p).
    pub fn value_gradient(&self, v: &[f64], g: &mut [f64], hessian: bool) -> Result<(f64, Option<Vec<f64>>)> {
        let out = self.pass(v, if hessian { SoftmaxTask::Hessian } else { SoftmaxTask::Gradient })?;
        Ok(self.from_pass(v, &out, g, hessian))
    }

    /// f, g and (when `hessian`) −H at V from the output of a Gradient or Hessian pass at V (which may
    /// have been fused into another pass, see `solve_from`).
    pub fn from_pass(&self, v: &[f64], out: &crate::backend::PassOut, g: &mut [f64], hessian: bool) -> (f64, Option<Vec<f64>>) {
        let (d, m) = (self.model.d, self.m());
        let p = m * d;
        g.copy_from_slice(&out.xtr);
        let lambda = self.model.ridge;
        let f0 = usize::from(self.model.intercept);
        if lambda != 0.0 {
            for a in 0..m {
                for f in f0..d {
                    g[a * d + f] -= lambda * v[a * d + f];
                }
            }
        }
        let neg_h = if hessian {
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
                for a in 0..m {
                    for f in f0..d {
                        h[(a * d + f) * p + a * d + f] += lambda;
                    }
                }
            }
            Some(h)
        } else {
            None
        };
        (out.sums[0] - self.penalty_value(v), neg_h)
    }

    /// (−H)·dir at V. With a backend that stores probabilities, V is the point of the last
    /// `neg_hessian_diagonal` (its DiagStore pass stored p at V for these rows) and P is dir alone.
    fn neg_hessian_times(&self, v: &[f64], dir: &[f64], out: &mut [f64]) -> Result<()> {
        let (d, m) = (self.model.d, self.m());
        let res = if self.b.stores_probabilities() {
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
            let f0 = usize::from(self.model.intercept);
            for a in 0..m {
                for f in f0..d {
                    out[a * d + f] += lambda * dir[a * d + f];
                }
            }
        }
        Ok(())
    }

    /// diag(−H) at V (the Jacobi preconditioner). Where the backend stores probabilities, the same pass
    /// stores p at V for the Hessian-vector products of this Newton step (ALGORITHMS §3).
    fn neg_hessian_diagonal(&self, v: &[f64]) -> Result<Vec<f64>> {
        let (d, m) = (self.model.d, self.m());
        let task = if self.b.stores_probabilities() { SoftmaxTask::DiagStore } else { SoftmaxTask::Diag };
        let mut diag = self.pass(v, task)?.grams;
        let lambda = self.model.ridge;
        if lambda != 0.0 {
            let f0 = usize::from(self.model.intercept);
            for a in 0..m {
                for f in f0..d {
                    diag[a * d + f] += lambda;
                }
            }
        }
        Ok(diag)
    }

    /// Maximises f from V (updated in place).
    pub fn solve(&self, v: &mut [f64], opts: &SolverOpts, events: &mut Vec<Event>) -> Result<()> {
        self.solve_from(v, opts, events, None)
    }

    /// As `solve`, with the output of a Hessian (Newton) or Gradient (other solvers) pass at the starting
    /// V already computed (the EM fit fuses it into the E-step pass).
    pub fn solve_from(&self, v: &mut [f64], opts: &SolverOpts, events: &mut Vec<Event>, start: Option<&crate::backend::PassOut>) -> Result<()> {
        let p = self.m() * self.model.d;
        if p == 0 || self.sum_c == 0.0 {
            return Ok(());
        }
        let dense = opts.solver == Solver::Newton;
        let mut g = vec![0.0; p];
        let initial = start.map(|out| self.from_pass(v, out, &mut g, dense));
        match opts.solver {
            Solver::Gradient => self.solve_gradient(v, opts, g, initial.map(|(f, _)| f)),
            _ => self.solve_newton(v, opts, events, g, initial),
        }
    }

    fn solve_newton(&self, v: &mut [f64], opts: &SolverOpts, events: &mut Vec<Event>, mut g: Vec<f64>, initial: Option<(f64, Option<Vec<f64>>)>) -> Result<()> {
        let p = v.len();
        let dense = opts.solver != Solver::NewtonCg;
        let mut delta = vec![0.0; p];
        let mut trial = vec![0.0; p];
        let mut g_trial = vec![0.0; p];
        // (f, −H) at V (g in `g`) carried over from the start or from an accepted full step (see below).
        let mut carried: Option<(f64, Option<Vec<f64>>)> = initial;
        for _ in 0..opts.max_iter {
            let (f0, neg_h) = match carried.take() {
                Some(c) => c,
                None => self.value_gradient(v, &mut g, dense)?,
            };
            if let Some(mut h) = neg_h {
                delta.copy_from_slice(&g);
                linalg::solve_spd_with_recovery(&mut h, p, &mut delta, self.block, events)?;
            } else {
                // Must stay immediately before the CG: it stores the probabilities its products read.
                let diag = self.neg_hessian_diagonal(v)?;
                let eta = (0.5f64).min((linalg::norm(&g) / self.sum_c).sqrt());
                let vv = v.to_vec();
                linalg::preconditioned_cg(|q, out| self.neg_hessian_times(&vv, q, out), &g, &diag, opts.cg_max_iter, eta, &mut delta)?;
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
                // The full step is usually accepted: evaluate it with the next iteration's gradient (and
                // Hessian) pass, whose f is bit-identical to the objective pass, and keep them if it is.
                let (f_trial, extra) = if halving == 0 {
                    let (f, h) = self.value_gradient(&trial, &mut g_trial, dense)?;
                    (f, Some(h))
                } else {
                    (self.value(&trial)?, None)
                };
                if f_trial >= f0 + ARMIJO * t * decrement {
                    accepted = true;
                    if let Some(h) = extra {
                        g.copy_from_slice(&g_trial);
                        carried = Some((f_trial, h));
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

    fn solve_gradient(&self, v: &mut [f64], opts: &SolverOpts, mut g: Vec<f64>, initial: Option<f64>) -> Result<()> {
        let p = v.len();
        let mut trial = vec![0.0; p];
        let mut g_trial = vec![0.0; p];
        let mut carried: Option<f64> = initial;
        for step in 0..opts.inner_steps {
            let f0 = match carried.take() {
                Some(f) => f,
                None => self.value_gradient(v, &mut g, false)?.0,
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
                let f_trial = if speculative { self.value_gradient(&trial, &mut g_trial, false)?.0 } else { self.value(&trial)? };
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
