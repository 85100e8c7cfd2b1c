//! The per-row mathematics of every `RowOp` (ALGORITHMS §2–§4), shared by all backends: the CPU backend
//! calls `eval_row` directly; a GPU kernel must compute the same quantities.

use crate::backend::{Family, RowOp, SoftmaxProblem, SoftmaxTask, SymKind};

const LN_2PI: f64 = 1.837_877_066_409_345_5; // ln(2π)

/// log Σ exp(v), stable.
pub fn lse(v: &[f64]) -> f64 {
    let mut mx = f64::NEG_INFINITY;
    for &t in v {
        if t > mx {
            mx = t;
        }
    }
    if mx == f64::NEG_INFINITY {
        return mx;
    }
    let mut acc = 0.0;
    for &t in v {
        acc += (t - mx).exp();
    }
    mx + acc.ln()
}

/// softplus(η) = max(η,0) + log1p(exp(−|η|)).
pub fn softplus(eta: f64) -> f64 {
    eta.max(0.0) + (-eta.abs()).exp().ln_1p()
}

pub fn sigmoid(t: f64) -> f64 {
    if t >= 0.0 {
        1.0 / (1.0 + (-t).exp())
    } else {
        let e = t.exp();
        e / (1.0 + e)
    }
}

/// log sigmoid(t) = −softplus(−t).
pub fn log_sigmoid(t: f64) -> f64 {
    -softplus(-t)
}

/// Gaussian log density of y with mean mu and variance s2.
pub fn gauss_logpdf(y: f64, mu: f64, s2: f64) -> f64 {
    let r = y - mu;
    -0.5 * (LN_2PI + s2.ln()) - r * r / (2.0 * s2)
}

/// Class index of label y for an expert softmax problem (logistic classes are ordered (y=1, y=0)).
fn expert_class(y: f64, logistic: bool) -> usize {
    if logistic {
        if y == 1.0 {
            0
        } else {
            1
        }
    } else {
        y as usize
    }
}

/// Expert log density log p_j(y|x) of the general model from the projections `eta` of expert j
/// (linear experts use the per-pass constants of `Scratch::prepare`).
fn expert_logp(family: &Family, j: usize, eta: &[f64], y: f64, consts: &LinearConsts) -> f64 {
    match family {
        Family::Linear { .. } => {
            let r = y - eta[0];
            consts.log_norm[j] - 0.5 * r * r * consts.inv_var[j]
        }
        Family::Logistic => y * eta[0] - softplus(eta[0]),
        // A label outside 0..C−1 (validation rejects it) has probability 0 instead of a panic.
        Family::Multinomial { .. } => eta.get(y as usize).copied().unwrap_or(f64::NEG_INFINITY) - lse(eta),
    }
}

/// −½log(2πσ_j²) and 1/σ_j² of linear experts with variances σ²: the constants of their log densities, computed
/// once per pass instead of once per row. GPU backends upload these values, so that every backend's E-step
/// uses the same bits.
pub fn linear_expert_constants(sigma2: &[f64]) -> (Vec<f64>, Vec<f64>) {
    (sigma2.iter().map(|&s2| -0.5 * LN_2PI - 0.5 * s2.ln()).collect(), sigma2.iter().map(|&s2| 1.0 / s2).collect())
}

/// `linear_expert_constants` of the pass's family.
#[derive(Default)]
struct LinearConsts {
    log_norm: Vec<f64>,
    inv_var: Vec<f64>,
}

/// Scratch buffers reused across rows (k and C are small; no allocation per row). A `Scratch` caches
/// per-op constants: use one `Scratch` per pass (per op), never across passes.
#[derive(Default)]
pub struct Scratch {
    a: Vec<f64>,
    b: Vec<f64>,
    c: Vec<f64>,
    consts: LinearConsts,
    prepared: bool,
    info: crate::info_rows::InfoScratch,
}

impl Scratch {
    fn prepare(&mut self, family: &Family) {
        if self.prepared {
            return;
        }
        if let Family::Linear { sigma2 } = family {
            (self.consts.log_norm, self.consts.inv_var) = linear_expert_constants(sigma2);
        }
        self.prepared = true;
    }
}

fn fill(v: &mut Vec<f64>, n: usize) -> &mut [f64] {
    v.clear();
    v.resize(n, 0.0);
    &mut v[..]
}

/// Evaluate one row. `a`: the q projections P·x_i; `h`: the row of stored H (h_width, may be empty);
/// `probs`: the row of the probability store (p_width, may be empty; see `SoftmaxTask::GradientDiagStore`);
/// writes `r` (r_cols) and `w` (Gram weights), ADDS into `sums`.
#[allow(clippy::too_many_arguments)]
pub fn eval_row(
    op: &RowOp,
    a: &[f64],
    y: f64,
    s: f64,
    h: &mut [f64],
    probs: &mut [f64],
    r: &mut [f64],
    w: &mut [f64],
    sums: &mut [f64],
    sc: &mut Scratch,
) {
    match op {
        RowOp::Moments => {
            sums[0] += s;
            sums[1] += s * y;
            sums[2] += s * y * y;
        }
        RowOp::Gram => {
            w[0] = s;
            r[0] = s * y;
        }
        RowOp::EStep { k, family, store, suff } => {
            let k = *k;
            let rpe = family.rows_per_expert();
            sc.prepare(family);
            let t = fill(&mut sc.a, k);
            let lg_norm = lse(&a[..k]);
            for j in 0..k {
                let eta = &a[k + j * rpe..k + (j + 1) * rpe];
                t[j] = (a[j] - lg_norm) + expert_logp(family, j, eta, y, &sc.consts);
            }
            // ℓ = lse(t) and h_j = exp(t_j − max)/Σ from the same exponentials (one exp per component).
            let mx = t.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e = fill(&mut sc.b, k);
            let mut acc = 0.0;
            for j in 0..k {
                e[j] = (t[j] - mx).exp();
                acc += e[j];
            }
            let l = if mx == f64::NEG_INFINITY { mx } else { mx + acc.ln() };
            if s != 0.0 {
                sums[0] += s * l;
            }
            let linear_suff = *suff && matches!(family, Family::Linear { .. });
            for j in 0..k {
                let hj = e[j] / acc;
                sums[1 + j] += s * hj;
                if *store {
                    h[j] = hj;
                }
                if linear_suff {
                    w[j] = s * hj;
                    r[j] = s * hj * y;
                }
            }
        }
        RowOp::SymEStep { kind, store, suff } => {
            let (tp, tm) = sym_log_joint(*kind, a[0], a[1], y);
            let l = lse(&[tp, tm]);
            let hp = (tp - l).exp();
            let hm = (tm - l).exp();
            if s != 0.0 {
                sums[0] += s * l;
            }
            sums[1] += s * hp;
            sums[2] += s * hm;
            if *store {
                h[0] = hp;
                h[1] = hm;
            }
            if *suff && matches!(kind, SymKind::Linear { .. }) {
                r[0] = s * (hp - hm) * y;
            }
        }
        RowOp::LinearResidual { k } => {
            for j in 0..*k {
                let e = y - a[j];
                sums[j] += s * h[j] * e * e;
            }
        }
        RowOp::Softmax { problem, task } => softmax_row(*problem, *task, a, y, s, h, probs, r, w, sums, sc),
        RowOp::Gradient { k, family, stored_h } => {
            let k = *k;
            let rpe = family.rows_per_expert();
            sc.prepare(family);
            let lg = fill(&mut sc.a, k);
            let lg_norm = lse(&a[..k]);
            for j in 0..k {
                lg[j] = a[j] - lg_norm;
            }
            let lp = fill(&mut sc.b, k);
            for j in 0..k {
                lp[j] = expert_logp(family, j, &a[k + j * rpe..k + (j + 1) * rpe], y, &sc.consts);
            }
            let hh = fill(&mut sc.c, k);
            if *stored_h {
                hh.copy_from_slice(&h[..k]);
                let mut q = 0.0;
                for j in 0..k {
                    if hh[j] != 0.0 {
                        q += hh[j] * (lg[j] + lp[j]);
                    }
                }
                if s != 0.0 {
                    sums[0] += s * q;
                }
            } else {
                for j in 0..k {
                    hh[j] = lg[j] + lp[j];
                }
                let l = lse(hh);
                for v in hh.iter_mut() {
                    *v = (*v - l).exp();
                }
                if s != 0.0 {
                    sums[0] += s * l;
                }
            }
            // Σ_j h_ij is 1 up to rounding; kept explicit as in src/models/gradient.ts.
            let hsum: f64 = hh.iter().sum();
            for j in 0..k - 1 {
                r[j] = s * (hh[j] - hsum * lg[j].exp());
            }
            let mut col = k - 1;
            for j in 0..k {
                let eta = &a[k + j * rpe..k + (j + 1) * rpe];
                let sh = s * hh[j];
                match family {
                    Family::Linear { sigma2 } => {
                        let e = y - eta[0];
                        let s2 = sigma2[j];
                        r[col] = sh * e / s2;
                        sums[1 + j] += sh * (e * e / (2.0 * s2 * s2) - 1.0 / (2.0 * s2));
                        col += 1;
                    }
                    Family::Logistic => {
                        r[col] = sh * (y - sigmoid(eta[0]));
                        col += 1;
                    }
                    Family::Multinomial { classes } => {
                        let norm = lse(eta);
                        for c in 0..classes - 1 {
                            let ind = if y as usize == c { 1.0 } else { 0.0 };
                            r[col] = sh * (ind - (eta[c] - norm).exp());
                            col += 1;
                        }
                    }
                }
            }
        }
        RowOp::Information { model, part, task } => {
            crate::info_rows::eval_info_row(model, *part, task, a, y, s, r, w, sums, &mut sc.info)
        }
        RowOp::HStats { width, suff, symmetric } => {
            for j in 0..*width {
                sums[1 + j] += s * h[j];
            }
            if *suff {
                if *symmetric {
                    r[0] = s * (h[0] - h[1]) * y;
                } else {
                    for j in 0..*width {
                        w[j] = s * h[j];
                        r[j] = s * h[j] * y;
                    }
                }
            }
        }
        RowOp::SymGradient { kind, stored_h } => {
            let (u, v) = (a[0], a[1]);
            let (tp, tm) = sym_log_joint(*kind, u, v, y);
            let (hp, hm) = if *stored_h {
                let mut q = 0.0;
                if h[0] != 0.0 {
                    q += h[0] * tp;
                }
                if h[1] != 0.0 {
                    q += h[1] * tm;
                }
                if s != 0.0 {
                    sums[0] += s * q;
                }
                (h[0], h[1])
            } else {
                let l = lse(&[tp, tm]);
                if s != 0.0 {
                    sums[0] += s * l;
                }
                ((tp - l).exp(), (tm - l).exp())
            };
            r[0] = s * (hp - (hp + hm) * sigmoid(u));
            r[1] = match kind {
                SymKind::Linear { sigma } => s * ((hp - hm) * y - (hp + hm) * v) / (sigma * sigma),
                SymKind::Logistic => s * y * (hp - (hp + hm) * sigmoid(y * v)),
            };
        }
        RowOp::Predict { k, family } => predict_row(*k, family, a, h, sc),
        RowOp::SymPredict { kind } => {
            // π± = σ(±wᵀx) as exp(log σ(±u)), the TS reference's form (src/models/row-model.ts).
            let (u, v) = (a[0], a[1]);
            let (pp, pm) = (log_sigmoid(u).exp(), log_sigmoid(-u).exp());
            match kind {
                SymKind::Linear { .. } => h[0] = pp * v + pm * -v,
                SymKind::Logistic => {
                    let p1 = pp * sigmoid(v) + pm * sigmoid(-v);
                    h[0] = 1.0 - p1;
                    h[1] = p1;
                }
            }
        }
    }
}

/// `RowOp::Predict` of one row into `out` (`Family::prediction_width` values): Σ_j π_j times the expert's
/// mean or class probabilities. π_j = e_j / Σ_l e_l with e_j = exp(a_j − max_l a_l): one exp per component
/// and no log (the reference's exp(a_j − lse) agrees to rounding), since at small d the exps, not the
/// projections, are most of a prediction's time.
fn predict_row(k: usize, family: &Family, a: &[f64], out: &mut [f64], sc: &mut Scratch) {
    let mx = a[..k].iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e = fill(&mut sc.b, k);
    let mut gate_total = 0.0;
    for j in 0..k {
        e[j] = (a[j] - mx).exp();
        gate_total += e[j];
    }
    let rpe = family.rows_per_expert();
    out.fill(0.0);
    for j in 0..k {
        let pi = e[j] / gate_total;
        let eta = &a[k + j * rpe..k + (j + 1) * rpe];
        match family {
            Family::Linear { .. } => out[0] += pi * eta[0],
            Family::Logistic => out[1] += pi * sigmoid(eta[0]),
            Family::Multinomial { classes } => {
                let eta_max = eta.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let class_e = fill(&mut sc.a, *classes);
                let mut total = 0.0;
                for c in 0..*classes {
                    class_e[c] = (eta[c] - eta_max).exp();
                    total += class_e[c];
                }
                for c in 0..*classes {
                    out[c] += pi * (class_e[c] / total);
                }
            }
        }
    }
    if let Family::Logistic = family {
        out[0] = 1.0 - out[1];
    }
}

/// log p(y, z=±1 | x) of the symmetric models from u = wᵀx, v = βᵀx.
pub fn sym_log_joint(kind: SymKind, u: f64, v: f64, y: f64) -> (f64, f64) {
    match kind {
        SymKind::Linear { sigma } => {
            let s2 = sigma * sigma;
            (log_sigmoid(u) + gauss_logpdf(y, v, s2), log_sigmoid(-u) + gauss_logpdf(y, -v, s2))
        }
        SymKind::Logistic => (log_sigmoid(u) + log_sigmoid(y * v), log_sigmoid(-u) + log_sigmoid(-y * v)),
    }
}

/// The weight c, the targets t (written to `t`, C values) and the feature sign (SymMoLogE uses features
/// y·x) of one row of a softmax problem.
fn softmax_targets(problem: SoftmaxProblem, y: f64, s: f64, h: &[f64], t: &mut [f64]) -> (f64, f64) {
    match problem {
        SoftmaxProblem::Gate { k } => {
            t.copy_from_slice(&h[..k]);
            (s, 1.0)
        }
        SoftmaxProblem::Expert { j, logistic, .. } => {
            if let Some(tc) = t.get_mut(expert_class(y, logistic)) {
                *tc = 1.0;
            }
            (s * h[j], 1.0)
        }
        SoftmaxProblem::SymGate => {
            t[0] = h[0];
            t[1] = h[1];
            (s, 1.0)
        }
        SoftmaxProblem::SymLogExpert => {
            t[0] = h[0];
            t[1] = h[1];
            (s, y)
        }
    }
}

/// The Hessian-vector row r_c = ct·p_c (u_c − Σ_l p_l u_l)·sign with u_c = sign·(Dx)_c, from the m free-class
/// probabilities `p` and projections `dx`. The one expression of both `HessVec` and `HessVecStored`: they
/// agree bit for bit when given the same p.
fn hess_vec_row(p: &[f64], dx: &[f64], ct: f64, sign: f64, r: &mut [f64]) {
    let m = p.len();
    let mut mean = 0.0;
    for cc in 0..m {
        mean += p[cc] * (sign * dx[cc]);
    }
    for cc in 0..m {
        r[cc] = ct * p[cc] * (sign * dx[cc] - mean) * sign;
    }
}

#[allow(clippy::too_many_arguments)]
fn softmax_row(
    problem: SoftmaxProblem,
    task: SoftmaxTask,
    a: &[f64],
    y: f64,
    s: f64,
    h: &[f64],
    probs: &mut [f64],
    r: &mut [f64],
    w: &mut [f64],
    sums: &mut [f64],
    sc: &mut Scratch,
) {
    let classes = problem.classes();
    let m = classes - 1;
    let t = fill(&mut sc.b, classes);
    let (c, sign) = softmax_targets(problem, y, s, h, t);
    // T = Σ_c t_c is 1 up to rounding for soft targets; kept explicit as in src/algorithms/softmax-regression.ts.
    let tsum: f64 = t.iter().sum();
    let ct = c * tsum;
    if task == SoftmaxTask::HessVecStored {
        // p at V was stored by the GradientDiagStore pass of this Newton step; P holds only D.
        hess_vec_row(&probs[..m], &a[..m], ct, sign, r);
        return;
    }
    let logp = fill(&mut sc.a, classes);
    for cc in 0..m {
        logp[cc] = sign * a[cc];
    }
    logp[m] = 0.0;
    // Probabilities e_c/Σe and log-probabilities from the same exponentials (as the reference does).
    let mx = logp.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let p = fill(&mut sc.c, classes);
    let mut total = 0.0;
    for cc in 0..classes {
        p[cc] = (logp[cc] - mx).exp();
        total += p[cc];
    }
    let norm = mx + total.ln();
    for cc in 0..classes {
        p[cc] /= total;
        logp[cc] -= norm;
    }
    let objective = |logp: &[f64], t: &[f64]| {
        let mut f = 0.0;
        for cc in 0..classes {
            if t[cc] != 0.0 {
                f += t[cc] * logp[cc];
            }
        }
        f
    };
    match task {
        SoftmaxTask::Objective => {
            if c != 0.0 {
                sums[0] += c * objective(logp, t);
            }
        }
        SoftmaxTask::Gradient | SoftmaxTask::Hessian | SoftmaxTask::GradientDiag | SoftmaxTask::GradientDiagStore => {
            if c != 0.0 {
                sums[0] += c * objective(logp, t);
            }
            for cc in 0..m {
                r[cc] = c * (t[cc] - tsum * p[cc]) * sign;
            }
            if task == SoftmaxTask::GradientDiag || task == SoftmaxTask::GradientDiagStore {
                for cc in 0..m {
                    w[cc] = ct * p[cc] * (1.0 - p[cc]);
                }
                if task == SoftmaxTask::GradientDiagStore {
                    probs[..m].copy_from_slice(&p[..m]);
                }
            }
            if task == SoftmaxTask::Hessian {
                let mut idx = 0;
                for ia in 0..m {
                    for ib in ia..m {
                        let delta = if ia == ib { 1.0 } else { 0.0 };
                        w[idx] = ct * p[ia] * (delta - p[ib]);
                        idx += 1;
                    }
                }
            }
        }
        SoftmaxTask::HessVec => hess_vec_row(&p[..m], &a[m..2 * m], ct, sign, r),
        SoftmaxTask::HessVecStored => unreachable!("handled above, before p is computed"),
    }
}
