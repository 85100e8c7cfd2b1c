//! Per-row complete-data scores and Hessians in slot coordinates (src/diagnostics/information.ts
//! `RowInformation`): every free block multiplies x_i (an x-slot) or is a scalar (σ²), so per row only q×q
//! matrices are formed: hess_i = Σ_j h_ij (−∇² log p(y, z=j|x)) and missing_i = Cov_{z|x,y}[score].

use crate::backend::{Family, InfoModel, InfoPart, InfoTask, SymKind};
use crate::rowops::{lse, sigmoid, sym_log_joint};

const HALF_LN_2PI: f64 = 0.918_938_533_204_672_8;

/// Buffers of one row's slot matrices.
#[derive(Default)]
pub struct InfoScratch {
    score: Vec<f64>,
    hess: Vec<f64>,
    missing: Vec<f64>,
    mean: Vec<f64>,
    h: Vec<f64>,
    log_pi: Vec<f64>,
    eta_p: Vec<f64>,
    slots: Vec<bool>,
}

fn zeros(v: &mut Vec<f64>, n: usize) {
    v.clear();
    v.resize(n, 0.0);
}

impl InfoScratch {
    /// Fills score (k×q), hess and missing (q×q) for the row with θ projections `a`.
    fn evaluate(&mut self, model: &InfoModel, a: &[f64], y: f64) {
        if self.slots.is_empty() {
            self.slots = model.slots();
        }
        let q = self.slots.len();
        match model {
            InfoModel::Symmetric { kind } => self.symmetric(*kind, a, y),
            InfoModel::General { k, family, fitted_sigma } => self.general(*k, family, *fitted_sigma, a, y, q),
        }
        let k = self.h.len();
        zeros(&mut self.mean, q);
        for j in 0..k {
            for t in 0..q {
                self.mean[t] += self.h[j] * self.score[j * q + t];
            }
        }
        zeros(&mut self.missing, q * q);
        for t in 0..q {
            for b in t..q {
                let mut acc = 0.0;
                for j in 0..k {
                    acc += self.h[j] * self.score[j * q + t] * self.score[j * q + b];
                }
                acc -= self.mean[t] * self.mean[b];
                self.missing[t * q + b] = acc;
                self.missing[b * q + t] = acc;
            }
        }
    }

    fn symmetric(&mut self, kind: SymKind, a: &[f64], y: f64) {
        let (g, u) = (a[0], a[1]);
        let (tp, tm) = sym_log_joint(kind, g, u, y);
        let l = lse(&[tp, tm]);
        self.h.clear();
        self.h.extend_from_slice(&[(tp - l).exp(), (tm - l).exp()]);
        zeros(&mut self.score, 4);
        zeros(&mut self.hess, 4);
        let half_tanh = 0.5 * (0.5 * g).tanh();
        let sg = sigmoid(g);
        self.hess[0] = sg * (1.0 - sg);
        for j in 0..2 {
            let z = if j == 0 { 1.0 } else { -1.0 };
            self.score[j * 2] = 0.5 * z - half_tanh;
            self.score[j * 2 + 1] = match kind {
                SymKind::Linear { sigma } => (z * y - u) / (sigma * sigma),
                SymKind::Logistic => z * y * (1.0 - sigmoid(z * y * u)),
            };
        }
        self.hess[3] = match kind {
            SymKind::Linear { sigma } => 1.0 / (sigma * sigma),
            SymKind::Logistic => {
                let su = sigmoid(u);
                su * (1.0 - su)
            }
        };
    }

    fn general(&mut self, k: usize, family: &Family, fitted_sigma: bool, a: &[f64], y: f64, q: usize) {
        let rpe = family.rows_per_expert();
        let norm = lse(&a[..k]);
        zeros(&mut self.log_pi, k);
        for j in 0..k {
            self.log_pi[j] = a[j] - norm;
        }
        // Expert log densities and probabilities (logistic: p_j; multinomial: class probabilities).
        zeros(&mut self.eta_p, k * rpe);
        let mut t = vec![0.0; k];
        for j in 0..k {
            let eta = &a[k + j * rpe..k + (j + 1) * rpe];
            let logp = match family {
                Family::Linear { sigma2 } => {
                    let r = y - eta[0];
                    -HALF_LN_2PI - 0.5 * sigma2[j].ln() - 0.5 * r * r / sigma2[j]
                }
                Family::Logistic => {
                    self.eta_p[j] = sigmoid(eta[0]);
                    y * eta[0] - crate::rowops::softplus(eta[0])
                }
                Family::Multinomial { .. } => {
                    let ln = lse(eta);
                    for c in 0..rpe {
                        self.eta_p[j * rpe + c] = (eta[c] - ln).exp();
                    }
                    eta.get(y as usize).copied().unwrap_or(f64::NEG_INFINITY) - ln
                }
            };
            t[j] = self.log_pi[j] + logp;
        }
        let l = lse(&t);
        self.h.clear();
        self.h.extend(t.iter().map(|v| (v - l).exp()));
        zeros(&mut self.score, k * q);
        zeros(&mut self.hess, q * q);
        let g = k - 1;
        for l_ in 0..g {
            let pl = self.log_pi[l_].exp();
            for j in 0..k {
                self.score[j * q + l_] = if j == l_ { 1.0 } else { 0.0 } - pl;
            }
            for m in 0..g {
                self.hess[l_ * q + m] = if l_ == m { pl } else { 0.0 } - pl * self.log_pi[m].exp();
            }
        }
        let per_expert = (q - g) / k;
        for j in 0..k {
            let e = g + j * per_expert;
            let hj = self.h[j];
            match family {
                Family::Linear { sigma2 } => {
                    let r = y - a[k + j];
                    let iv = 1.0 / sigma2[j];
                    self.score[j * q + e] = r * iv;
                    self.hess[e * q + e] = hj * iv;
                    if fitted_sigma {
                        self.score[j * q + e + 1] = 0.5 * r * r * iv * iv - 0.5 * iv;
                        let cross = hj * r * iv * iv;
                        self.hess[e * q + e + 1] = cross;
                        self.hess[(e + 1) * q + e] = cross;
                        self.hess[(e + 1) * q + e + 1] = hj * (r * r * iv * iv * iv - 0.5 * iv * iv);
                    }
                }
                Family::Logistic => {
                    let pj = self.eta_p[j];
                    self.score[j * q + e] = y - pj;
                    self.hess[e * q + e] = hj * pj * (1.0 - pj);
                }
                Family::Multinomial { classes } => {
                    for c in 0..classes - 1 {
                        let pc = self.eta_p[j * rpe + c];
                        self.score[j * q + e + c] = if y as usize == c { 1.0 } else { 0.0 } - pc;
                        for c2 in 0..classes - 1 {
                            self.hess[(e + c) * q + e + c2] =
                                hj * (if c == c2 { pc } else { 0.0 } - pc * self.eta_p[j * rpe + c2]);
                        }
                    }
                }
            }
        }
    }
}

/// The `RowOp::Information` row evaluation (see `InfoTask` for the outputs).
#[allow(clippy::too_many_arguments)]
pub fn eval_info_row(
    model: &InfoModel,
    part: InfoPart,
    task: &InfoTask,
    a: &[f64],
    y: f64,
    s: f64,
    r: &mut [f64],
    w: &mut [f64],
    sums: &mut [f64],
    sc: &mut InfoScratch,
) {
    if s == 0.0 {
        // Rows without weight contribute nothing (and may hold infinities); outputs stay zero.
        r.iter_mut().for_each(|v| *v = 0.0);
        w.iter_mut().for_each(|v| *v = 0.0);
        return;
    }
    sc.evaluate(model, a, y);
    let q = sc.slots.len();
    let mat = match part {
        InfoPart::Complete => &sc.hess,
        InfoPart::Missing => &sc.missing,
    };
    let slots = &sc.slots;
    match task {
        InfoTask::Assemble { first, count } => {
            let (lo, hi) = (*first, first + count);
            let (mut gi, mut ri, mut si) = (0, 0, 0);
            for t in lo..hi {
                if !slots[t] {
                    continue;
                }
                for b in t..hi {
                    if slots[b] {
                        w[gi] = s * mat[t * q + b];
                        gi += 1;
                    }
                }
                for b in lo..hi {
                    if !slots[b] {
                        r[ri] = s * mat[t * q + b];
                        ri += 1;
                    }
                }
            }
            for t in lo..hi {
                if slots[t] {
                    continue;
                }
                for b in t..hi {
                    if !slots[b] {
                        sums[si] += s * mat[t * q + b];
                        si += 1;
                    }
                }
            }
        }
        InfoTask::Apply { scalars } => {
            let tq = model.theta_rows();
            let mut proj = vec![0.0; q];
            let (mut xi, mut oi) = (0, 0);
            for t in 0..q {
                if slots[t] {
                    proj[t] = a[tq + xi];
                    xi += 1;
                } else {
                    proj[t] = scalars[oi];
                    oi += 1;
                }
            }
            let (mut xi, mut oi) = (0, 0);
            for t in 0..q {
                let mut acc = 0.0;
                for b in 0..q {
                    acc += mat[t * q + b] * proj[b];
                }
                if slots[t] {
                    r[xi] = s * acc;
                    xi += 1;
                } else {
                    sums[oi] += s * acc;
                    oi += 1;
                }
            }
        }
        InfoTask::Diag => {
            let (mut xi, mut oi) = (0, 0);
            for t in 0..q {
                if slots[t] {
                    w[xi] = s * mat[t * q + t];
                    xi += 1;
                } else {
                    sums[oi] += s * mat[t * q + t];
                    oi += 1;
                }
            }
        }
    }
}
