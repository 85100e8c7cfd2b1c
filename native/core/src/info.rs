//! Fisher information and the Missing Information Matrix (ALGORITHMS §6–7; src/diagnostics/information.ts):
//! I_c, I_m and I_o = I_c − I_m assembled from `RowOp::Information` passes, the MIM spectrum from the
//! generalized problem I_m v = λ I_c v (dense: Cholesky + Jacobi; large p: Lanczos in the I_c inner
//! product, I_c⁻¹ applied block by block).

use crate::api::{err, ErrorCode, ExpertKind, InfoMethod, Information, ModelSpec, Result};
use crate::backend::{Backend, InfoModel, InfoPart, InfoTask, RowOp, Rows};
use crate::linalg;
use crate::model::{check_backend, check_params, sym_kind, sym_sigma, Layout};
use crate::rng::Rng;

/// Above this free-parameter count, 'auto' goes matrix-free.
pub const DENSE_LIMIT: usize = 2000;

/// One free-layout block of slots: its free offset and whether it multiplies x.
struct SlotInfo {
    offset: usize,
    times_x: bool,
}

struct Operators<'o, B: Backend + ?Sized> {
    b: &'o B,
    model: &'o ModelSpec,
    params: &'o [f64],
    info_model: InfoModel,
    slots: Vec<SlotInfo>,
    p: usize,
    /// Penalty Hessian entries (row, col, value), both triangles.
    penalty: Vec<(usize, usize, f64)>,
}

fn info_model(model: &ModelSpec, params: &[f64]) -> InfoModel {
    let lay = Layout::new(model);
    if model.symmetric {
        InfoModel::Symmetric { kind: sym_kind(model) }
    } else {
        InfoModel::General { k: model.k, family: lay.family(params), fitted_sigma: lay.fitted_sigma }
    }
}

/// Free parameter names in order (src/models/layout.ts `freeParameterNames`).
pub fn free_parameter_names(model: &ModelSpec) -> Vec<String> {
    let (k, d) = (model.k, model.d);
    let mut names = Vec::new();
    if model.symmetric {
        names.extend((0..d).map(|f| format!("w[{f}]")));
        names.extend((0..d).map(|f| format!("beta[{f}]")));
        return names;
    }
    for j in 0..k - 1 {
        names.extend((0..d).map(|f| format!("gate[{j}][{f}]")));
    }
    let fitted = Layout::new(model).fitted_sigma;
    for j in 0..k {
        if model.experts == ExpertKind::Multinomial {
            for c in 0..model.n_classes - 1 {
                names.extend((0..d).map(|f| format!("coef[{j}][{c}][{f}]")));
            }
        } else {
            names.extend((0..d).map(|f| format!("beta[{j}][{f}]")));
            if fitted {
                names.push(format!("sigma2[{j}]"));
            }
        }
    }
    names
}

/// Hessian of the ridge penalty in the free layout (it adds to I_c).
fn penalty_hessian(model: &ModelSpec, params: &[f64]) -> Vec<(usize, usize, f64)> {
    let lambda = model.ridge;
    let mut out = Vec::new();
    if lambda == 0.0 {
        return out;
    }
    let (k, d) = (model.k, model.d);
    let f0 = usize::from(model.intercept);
    let diagonal = |out: &mut Vec<(usize, usize, f64)>, start: usize, value: f64| {
        for f in f0..d {
            out.push((start + f, start + f, value));
        }
    };
    if model.symmetric {
        diagonal(&mut out, 0, lambda);
        let s = sym_sigma(model);
        diagonal(&mut out, d, if model.experts == ExpertKind::Linear { lambda / (s * s) } else { lambda });
        return out;
    }
    let lay = Layout::new(model);
    for l in 0..k - 1 {
        diagonal(&mut out, l * d, lambda);
    }
    for j in 0..k {
        let start = lay.gate_free + j * lay.expert_free;
        if model.experts == ExpertKind::Linear {
            let s2 = params[lay.sigma2.unwrap_or(0) + j];
            diagonal(&mut out, start, lambda / s2);
            if lay.fitted_sigma {
                let mut sq = 0.0;
                for f in f0..d {
                    let bb = params[lay.coef + j * d + f];
                    sq += bb * bb;
                    let cross = -lambda * bb / (s2 * s2);
                    out.push((start + f, start + d, cross));
                    out.push((start + d, start + f, cross));
                }
                out.push((start + d, start + d, lambda * sq / (s2 * s2 * s2)));
            }
        } else {
            for r in 0..lay.expert_free / d {
                diagonal(&mut out, start + r * d, lambda);
            }
        }
    }
    out
}

impl<B: Backend + ?Sized> Operators<'_, B> {
    fn theta(&self) -> &[f64] {
        Layout::new(self.model).proj(self.params)
    }

    /// Σ_i s_i E_i M_i E_iᵀ over the whole free vector (p×p), plus the penalty for the complete part.
    fn assemble(&self, part: InfoPart) -> Result<Vec<f64>> {
        self.assemble_slots(part, 0, self.slots.len())
    }

    /// As `assemble`, restricted to the slots first..first+count (a free range [lo, hi)), (hi−lo)².
    fn assemble_slots(&self, part: InfoPart, first: usize, count: usize) -> Result<Vec<f64>> {
        let d = self.model.d;
        let sl = &self.slots[first..first + count];
        let base = sl[0].offset;
        let p = sl.last().map_or(0, |s| s.offset + if s.times_x { d } else { 1 }) - base;
        let task = InfoTask::Assemble { first, count };
        let out =
            self.b.pass(Rows::All, self.theta(), &RowOp::Information { model: self.info_model.clone(), part, task })?;
        let mut m = vec![0.0; p * p];
        let shifted: Vec<SlotInfo> =
            sl.iter().map(|s| SlotInfo { offset: s.offset - base, times_x: s.times_x }).collect();
        let xs: Vec<&SlotInfo> = shifted.iter().filter(|s| s.times_x).collect();
        let ones: Vec<&SlotInfo> = shifted.iter().filter(|s| !s.times_x).collect();
        let mut gi = 0;
        for (ia, sa) in xs.iter().enumerate() {
            for sb in &xs[ia..] {
                let g = &out.grams[gi * d * d..(gi + 1) * d * d];
                for f in 0..d {
                    for gg in 0..d {
                        m[(sa.offset + f) * p + sb.offset + gg] = g[f * d + gg];
                        m[(sb.offset + gg) * p + sa.offset + f] = g[f * d + gg];
                    }
                }
                gi += 1;
            }
        }
        let mut ri = 0;
        for sa in &xs {
            for sb in &ones {
                for f in 0..d {
                    let v = out.xtr[ri * d + f];
                    m[(sa.offset + f) * p + sb.offset] = v;
                    m[sb.offset * p + sa.offset + f] = v;
                }
                ri += 1;
            }
        }
        let mut si = 0;
        for (ia, sa) in ones.iter().enumerate() {
            for sb in &ones[ia..] {
                m[sa.offset * p + sb.offset] = out.sums[si];
                m[sb.offset * p + sa.offset] = out.sums[si];
                si += 1;
            }
        }
        if part == InfoPart::Complete {
            for &(r, c, v) in &self.penalty {
                if r >= base && r < base + p && c >= base && c < base + p {
                    m[(r - base) * p + c - base] += v;
                }
            }
        }
        Ok(m)
    }

    /// (Σ_i s_i E_i M_i E_iᵀ [+ penalty]) v.
    fn apply(&self, part: InfoPart, v: &[f64]) -> Result<Vec<f64>> {
        let d = self.model.d;
        let mut proj = self.theta().to_vec();
        let mut scalars = Vec::new();
        for s in &self.slots {
            if s.times_x {
                proj.extend_from_slice(&v[s.offset..s.offset + d]);
            } else {
                scalars.push(v[s.offset]);
            }
        }
        let out = self.b.pass(
            Rows::All,
            &proj,
            &RowOp::Information { model: self.info_model.clone(), part, task: InfoTask::Apply { scalars } },
        )?;
        let mut res = vec![0.0; self.p];
        let (mut xi, mut oi) = (0, 0);
        for s in &self.slots {
            if s.times_x {
                res[s.offset..s.offset + d].copy_from_slice(&out.xtr[xi * d..(xi + 1) * d]);
                xi += 1;
            } else {
                res[s.offset] = out.sums[oi];
                oi += 1;
            }
        }
        if part == InfoPart::Complete {
            for &(r, c, val) in &self.penalty {
                res[r] += val * v[c];
            }
        }
        Ok(res)
    }

    /// diag(I_c).
    fn complete_diagonal(&self) -> Result<Vec<f64>> {
        let d = self.model.d;
        let out = self.b.pass(
            Rows::All,
            self.theta(),
            &RowOp::Information { model: self.info_model.clone(), part: InfoPart::Complete, task: InfoTask::Diag },
        )?;
        let mut res = vec![0.0; self.p];
        let (mut xi, mut oi) = (0, 0);
        for s in &self.slots {
            if s.times_x {
                res[s.offset..s.offset + d].copy_from_slice(&out.grams[xi * d..(xi + 1) * d]);
                xi += 1;
            } else {
                res[s.offset] = out.sums[oi];
                oi += 1;
            }
        }
        for &(r, c, v) in &self.penalty {
            if r == c {
                res[r] += v;
            }
        }
        Ok(res)
    }

    /// I_c's diagonal blocks (the gate or w, then each expert or β): (free lo, free hi, first slot, slots).
    fn complete_blocks(&self) -> Vec<(usize, usize, usize, usize)> {
        let lay = Layout::new(self.model);
        let mut ranges = Vec::new();
        if lay.gate_free > 0 {
            ranges.push((0, lay.gate_free));
        }
        let nexp = if self.model.symmetric { 1 } else { self.model.k };
        for j in 0..nexp {
            let s = lay.gate_free + j * lay.expert_free;
            ranges.push((s, s + lay.expert_free));
        }
        ranges
            .into_iter()
            .map(|(lo, hi)| {
                let first = self.slots.iter().position(|s| s.offset >= lo).unwrap_or(0);
                let count = self.slots.iter().filter(|s| s.offset >= lo && s.offset < hi).count();
                (lo, hi, first, count)
            })
            .collect()
    }
}

/// sqrt(diag(A⁻¹)) for SPD A, or None when A is not positive definite.
fn inverse_diagonal_sqrt(a: &[f64], p: usize) -> Option<Vec<f64>> {
    let mut l = a.to_vec();
    if !linalg::cholesky_in_place(&mut l, p) {
        return None;
    }
    let mut out = Vec::with_capacity(p);
    let mut e = vec![0.0; p];
    for i in 0..p {
        e.iter_mut().for_each(|v| *v = 0.0);
        e[i] = 1.0;
        linalg::forward_solve_in_place(&l, p, &mut e);
        out.push(e[i..].iter().map(|v| v * v).sum::<f64>().sqrt());
    }
    Some(out)
}

/// C = L⁻¹ A L⁻ᵀ (src/linalg/eigen.ts `whiten`).
fn whiten(a: &[f64], l: &[f64], p: usize) -> Vec<f64> {
    let mut y = a.to_vec();
    for col in 0..p {
        for i in 0..p {
            let mut s = y[i * p + col];
            for m in 0..i {
                s -= l[i * p + m] * y[m * p + col];
            }
            y[i * p + col] = s / l[i * p + i];
        }
    }
    let mut c = vec![0.0; p * p];
    for row in 0..p {
        for i in 0..p {
            let mut s = y[row * p + i];
            for m in 0..i {
                s -= l[i * p + m] * c[row * p + m];
            }
            c[row * p + i] = s / l[i * p + i];
        }
    }
    c
}

pub fn information<B: Backend + ?Sized>(
    b: &B,
    model: &ModelSpec,
    params: &[f64],
    method: InfoMethod,
    steps: usize,
) -> Result<Information> {
    check_backend(b, model)?;
    check_params(model, params)?;
    if steps < 1 {
        return err(ErrorCode::Option, format!("information: steps must be a positive integer, got {steps}"));
    }
    let lay = Layout::new(model);
    let info_m = info_model(model, params);
    let kinds = info_m.slots();
    let d = model.d;
    let mut slots = Vec::with_capacity(kinds.len());
    let mut off = 0;
    for &x in &kinds {
        slots.push(SlotInfo { offset: off, times_x: x });
        off += if x { d } else { 1 };
    }
    let ops =
        Operators { b, model, params, info_model: info_m, slots, p: lay.p, penalty: penalty_hessian(model, params) };
    let names = free_parameter_names(model);
    let p = lay.p;
    let dense = match method {
        InfoMethod::Auto => p <= DENSE_LIMIT,
        InfoMethod::Dense => true,
        InfoMethod::Lanczos => false,
    };
    if dense {
        let complete = ops.assemble(InfoPart::Complete)?;
        let missing = ops.assemble(InfoPart::Missing)?;
        let observed: Vec<f64> = complete.iter().zip(&missing).map(|(c, m)| c - m).collect();
        let mut l = complete.clone();
        if !linalg::cholesky_in_place(&mut l, p) {
            return err(
                ErrorCode::Singular,
                "generalized eigenproblem: the right-hand matrix is not positive definite",
            );
        }
        let eigenvalues = linalg::jacobi_eigenvalues(&whiten(&missing, &l, p), p);
        let standard_errors = inverse_diagonal_sqrt(&observed, p);
        return Ok(Information {
            p,
            names,
            complete: Some(complete),
            missing: Some(missing),
            observed: Some(observed),
            lambda_max: eigenvalues[0],
            eigenvalues,
            standard_errors,
            dense: true,
        });
    }
    let eigenvalues = lanczos(&ops, steps)?;
    Ok(Information {
        p,
        names,
        complete: None,
        missing: None,
        observed: None,
        lambda_max: eigenvalues[0],
        eigenvalues,
        standard_errors: None,
        dense: false,
    })
}

/// I_c⁻¹ v block by block: dense Cholesky for blocks ≤ DENSE_LIMIT, Jacobi-preconditioned CG above.
fn complete_solver<'s, B: Backend + ?Sized>(
    ops: &'s Operators<'s, B>,
) -> Result<impl Fn(&[f64]) -> Result<Vec<f64>> + 's> {
    let p = ops.p;
    let blocks = ops.complete_blocks();
    let need_cg = blocks.iter().any(|(lo, hi, _, _)| hi - lo > DENSE_LIMIT);
    let diag = if need_cg { Some(ops.complete_diagonal()?) } else { None };
    let mut factors: Vec<Option<Vec<f64>>> = Vec::new();
    for &(lo, hi, first, count) in &blocks {
        let m = hi - lo;
        if m > DENSE_LIMIT {
            factors.push(None);
            continue;
        }
        let mut l = ops.assemble_slots(InfoPart::Complete, first, count)?;
        if !linalg::cholesky_in_place(&mut l, m) {
            return err(
                ErrorCode::Singular,
                format!("information: the complete-data information block [{lo}, {hi}) is not positive definite"),
            );
        }
        factors.push(Some(l));
    }
    Ok(move |v: &[f64]| -> Result<Vec<f64>> {
        let mut out = vec![0.0; p];
        for (bi, &(lo, hi, _, _)) in blocks.iter().enumerate() {
            let m = hi - lo;
            match &factors[bi] {
                Some(l) => {
                    let mut x = v[lo..hi].to_vec();
                    linalg::cholesky_solve_in_place(l, m, &mut x);
                    out[lo..hi].copy_from_slice(&x);
                }
                None => {
                    let g = v[lo..hi].to_vec();
                    let dg = &diag.as_deref().unwrap_or(&[])[lo..hi];
                    let mut x = vec![0.0; m];
                    linalg::preconditioned_cg(
                        |a, r| {
                            // I_c is block diagonal: apply to the zero-padded block vector.
                            let mut full_v = vec![0.0; p];
                            full_v[lo..hi].copy_from_slice(a);
                            let res = ops.apply(InfoPart::Complete, &full_v)?;
                            r.copy_from_slice(&res[lo..hi]);
                            Ok(())
                        },
                        &g,
                        linalg::jacobi(dg),
                        (2 * m).min(2000),
                        1e-10,
                        &mut x,
                    )?;
                    out[lo..hi].copy_from_slice(&x);
                }
            }
        }
        Ok(out)
    })
}

/// Lanczos with full re-orthogonalisation in the I_c inner product (src/linalg/lanczos.ts, seed 0).
fn lanczos<B: Backend + ?Sized>(ops: &Operators<B>, steps: usize) -> Result<Vec<f64>> {
    let n = ops.p;
    let steps = steps.min(n);
    let solve_b = complete_solver(ops)?;
    let mut rng = Rng::new(0);
    let z0: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
    let q0 = solve_b(&z0)?;
    let norm0 = linalg::dot(&q0, &z0).sqrt();
    if !(norm0 > 0.0) {
        return err(ErrorCode::Singular, "lanczos: B is not positive definite");
    }
    let mut qs: Vec<Vec<f64>> = vec![q0.iter().map(|a| a / norm0).collect()];
    let mut zs: Vec<Vec<f64>> = vec![z0.iter().map(|a| a / norm0).collect()];
    let mut alpha: Vec<f64> = Vec::new();
    let mut beta: Vec<f64> = Vec::new();
    for j in 0..steps {
        let aq = ops.apply(InfoPart::Missing, &qs[j])?;
        alpha.push(linalg::dot(&qs[j], &aq));
        if j == steps - 1 {
            break;
        }
        let mut w = solve_b(&aq)?;
        let mut bw = aq.clone();
        for _pass in 0..2 {
            for l in 0..=j {
                let c = linalg::dot(&w, &zs[l]);
                for i in 0..n {
                    w[i] -= c * qs[l][i];
                    bw[i] -= c * zs[l][i];
                }
            }
        }
        let bnorm = linalg::dot(&w, &bw).max(0.0).sqrt();
        if !(bnorm > 1e-12 * alpha[j].abs().max(1.0)) {
            break;
        }
        beta.push(bnorm);
        qs.push(w.iter().map(|a| a / bnorm).collect());
        zs.push(bw.iter().map(|a| a / bnorm).collect());
    }
    let m = alpha.len();
    let mut t = vec![0.0; m * m];
    for i in 0..m {
        t[i * m + i] = alpha[i];
        if i + 1 < m {
            t[i * m + i + 1] = beta[i];
            t[(i + 1) * m + i] = beta[i];
        }
    }
    Ok(linalg::jacobi_eigenvalues(&t, m))
}
