//! The numeric primitives every algorithm is written over. A backend owns the data (X, y, s) and the
//! per-row responsibilities H (and, where it opts in, a per-row store of softmax probabilities: see
//! `Backend::stores_probabilities`); the algorithms (EM, solvers, GD, information) only call `pass`, which makes
//! ONE read of the selected rows of X: it projects each row on a small host matrix P (A = X·Pᵀ), applies a
//! per-row operation (`RowOp`, whose exact per-row mathematics is `crate::rowops::eval_row`), and reduces
//! the per-row outputs into Xᵀ R, weighted Gram matrices and scalar sums. A GPU backend implements the
//! same `RowOp`s as kernels; its results must equal `rowops::eval_row` + the reductions to rounding.

use crate::api::Result;

/// The model as the information passes see it (ALGORITHMS §7).
#[derive(Clone, Debug, PartialEq)]
pub enum InfoModel {
    General { k: usize, family: Family, fitted_sigma: bool },
    Symmetric { kind: SymKind },
}

impl InfoModel {
    /// Slot kinds in free-layout order: true = the slot multiplies x (d entries), false = a scalar (σ²).
    pub fn slots(&self) -> Vec<bool> {
        match self {
            InfoModel::Symmetric { .. } => vec![true, true],
            InfoModel::General { k, family, fitted_sigma } => {
                let mut v = vec![true; k - 1];
                for _ in 0..*k {
                    match family {
                        Family::Multinomial { classes } => v.extend(std::iter::repeat_n(true, classes - 1)),
                        _ => {
                            v.push(true);
                            if *fitted_sigma {
                                v.push(false);
                            }
                        }
                    }
                }
                v
            }
        }
    }
    /// Projection rows of θ (the E-step layout).
    pub fn theta_rows(&self) -> usize {
        match self {
            InfoModel::Symmetric { .. } => 2,
            InfoModel::General { k, family, .. } => k + k * family.rows_per_expert(),
        }
    }
}

/// Which per-row matrix: Σ_j h_ij (−∇² log p(y, z=j|x)) (complete) or the score covariance (missing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InfoPart {
    Complete,
    Missing,
}

/// What an information pass computes, with qx x-slots and q1 scalar slots (per-row slot matrix M_i):
#[derive(Clone, Debug, PartialEq)]
pub enum InfoTask {
    /// P = θ rows. Restricted to the slots first..first+count (qx, q1 counted within them): Grams for
    /// x-slot pairs (a ≤ b, slot order) with weights s·M_ab; R (qx·q1 cols, x-slot major) r = s·M_ab for
    /// (x-slot a, scalar slot b); sums for scalar pairs (a ≤ b) s·M_ab.
    Assemble { first: usize, count: usize },
    /// P = [θ rows; v's x-slot rows (qx×d)], `scalars` = v at the scalar slots. With u = E_iᵀv (per slot
    /// xᵀv_a or v_b) and c = s·M_i u: R (qx cols) c_a for x-slots, sums (q1) c_b for scalar slots.
    Apply { scalars: Vec<f64> },
    /// P = θ rows. Diagonal-only grams (qx) with weights s·M_aa; sums (q1) s·M_bb.
    Diag,
}

/// Which rows a pass reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rows {
    /// Every row, in order.
    All,
    /// Positions `start .. start+len` of the row order set by `Backend::set_order` (a mini-batch).
    Order { start: usize, len: usize },
}

/// The expert family of the general (non-symmetric) model, with what the per-row operation needs.
#[derive(Clone, Debug, PartialEq)]
pub enum Family {
    /// Linear experts with the current σ_j² (k values).
    Linear { sigma2: Vec<f64> },
    /// Logistic experts, y ∈ {0,1}.
    Logistic,
    /// Multinomial experts with C classes, y ∈ {0..C−1}.
    Multinomial { classes: usize },
}

impl Family {
    /// Projection rows per expert: 1 (linear, logistic) or C (multinomial; the last class row is all zero).
    pub fn rows_per_expert(&self) -> usize {
        match self {
            Family::Multinomial { classes } => *classes,
            _ => 1,
        }
    }

    /// Values per row of a prediction: the mean (linear) or one probability per class.
    pub fn prediction_width(&self) -> usize {
        match self {
            Family::Linear { .. } => 1,
            Family::Logistic => 2,
            Family::Multinomial { classes } => *classes,
        }
    }
}

/// The symmetric two-expert models (z = ±1, parameters w, β).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SymKind {
    /// SymMoLinE with known σ.
    Linear { sigma: f64 },
    /// SymMoLogE, y ∈ {−1,+1}.
    Logistic,
}

impl SymKind {
    /// Values per row of a prediction: the mean (SymMoLinE) or [P(y=−1), P(y=+1)] (SymMoLogE).
    pub fn prediction_width(&self) -> usize {
        match self {
            SymKind::Linear { .. } => 1,
            SymKind::Logistic => 2,
        }
    }
}

/// A weighted softmax-regression problem `max Σ_i c_i Σ_c t_ic log softmax([V x_i; 0])_c` (ALGORITHMS §3),
/// with C classes and V of (C−1)×d. The weights c and targets t come from the stored H and y.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SoftmaxProblem {
    /// The gate: C = k, c = s, t = H row.
    Gate { k: usize },
    /// Expert j: c = s·H_j, t = onehot(y). `logistic`: classes = 2 ordered (y=1, y=0) (V = β_j);
    /// otherwise multinomial with `classes` = C, class c is label c (V = rows 0..C−2 of B_j).
    Expert { j: usize, k: usize, classes: usize, logistic: bool },
    /// Symmetric gate: C = 2, c = s, t = (h+, h−) (the stored H row).
    SymGate,
    /// SymMoLogE expert: features y_i·x_i, C = 2, c = s, t = (h+, h−).
    SymLogExpert,
}

impl SoftmaxProblem {
    pub fn classes(&self) -> usize {
        match self {
            SoftmaxProblem::Gate { k } => *k,
            SoftmaxProblem::Expert { classes, .. } => *classes,
            SoftmaxProblem::SymGate | SoftmaxProblem::SymLogExpert => 2,
        }
    }
    /// m = C − 1: rows of V.
    pub fn free_rows(&self) -> usize {
        self.classes() - 1
    }
}

/// What a softmax pass computes (m = C − 1; p = softmax probabilities at V).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SoftmaxTask {
    /// P = V (m rows). sums = [f(V) without penalty].
    Objective,
    /// P = V. sums = [f]; R (m cols) r_ic = c_i (t_ic − p_ic): the gradient is XᵀR.
    Gradient,
    /// P = V. As Gradient, plus grams for pairs (a ≤ b, row-major upper triangle order) with weights
    /// c_i p_ia (δ_ab − p_ib): the Hessian block (a,b) is −Σ that Gram.
    Hessian,
    /// P = [V; D] (2m rows). R (m cols) r_ic = c_i p_ic (u_ic − Σ_l p_il u_il), u = D x: XᵀR = (−H)·D.
    HessVec,
    /// P = V. As `Gradient`, plus diagonal-only grams (m) with weights c_i p_ic (1 − p_ic): diag(−H).
    /// Everything a Newton-CG step needs at an iterate (f, g and its Jacobi preconditioner) in one pass,
    /// so that the trial pass of one step is also the first pass of the next (ALGORITHMS §3).
    GradientDiag,
    /// As `GradientDiag`, and also writes each row's p_i (the m free-class probabilities at V, bit for bit
    /// the values `HessVec` computes) to the backend's probability store (n×m, indexed by row like H).
    /// Only for a backend whose `stores_probabilities()` is true.
    GradientDiagStore,
    /// P = D (m rows). As `HessVec` at the V of the last `GradientDiagStore` pass over the same rows, with p
    /// read from the probability store instead of recomputed: the same outputs bit for bit, from half the
    /// projections and no exp/log per row. Only for a backend whose `stores_probabilities()` is true.
    HessVecStored,
}

/// The per-row operation of a pass. Every variant documents its projection rows P (q×d), its outputs
/// (R columns, Gram weights, sums) and whether it reads or writes the stored H. `shape()` gives the counts.
#[derive(Clone, Debug, PartialEq)]
pub enum RowOp {
    /// P: none (q = 0). sums = [Σ s, Σ s y, Σ s y²].
    Moments,
    /// P: none. One Gram with weights s (Σ s x xᵀ); R (1 col) r = s·y.
    Gram,
    /// General-model E-step. P = [W (k rows); expert rows (k·rows_per_expert)].
    /// sums = [Σ s ℓ_i, N_0..N_{k−1}] with N_j = Σ s h_ij. `store`: write H (n×k).
    /// `suff` (linear only): also k Grams with weights s h_ij and R (k cols) r_ij = s h_ij y_i.
    EStep { k: usize, family: Family, store: bool, suff: bool },
    /// Symmetric E-step. P = [w; β]. H columns (h+, h−). sums = [Σ s ℓ_i, N+, N−].
    /// `suff` (SymMoLinE only): R (1 col) r = s m_i y_i with m = h+ − h−.
    SymEStep { kind: SymKind, store: bool, suff: bool },
    /// P = B (k rows), stored H. sums_j = Σ s h_ij (y_i − β_jᵀx_i)².
    LinearResidual { k: usize },
    /// A softmax-regression pass (stored H supplies c and t).
    Softmax { problem: SoftmaxProblem, task: SoftmaxTask },
    /// Gradient of the general model (unpenalised) at P = [W; experts], R columns:
    /// gate rows 0..k−2: s(h_ij − π_ij); then per expert j its rows: linear s h_ij (y−a_j)/σ_j²,
    /// logistic s h_ij (y − σ(a_j)), multinomial classes 0..C−2: s h_ij (1[y=c] − p_jc).
    /// sums = [Σ s ℓ (or Q when `stored_h`), then linear only k values Σ s h_ij ((y−a_j)²/(2σ_j⁴) − 1/(2σ_j²))].
    /// `stored_h` false: h is the posterior at P (gradient of ℓ; GD). true: h is the stored H (gradient of Q;
    /// Gradient EM), and sums[0] = Q = Σ s Σ_j h_ij (log π_ij + log p_ij).
    Gradient { k: usize, family: Family, stored_h: bool },
    /// Statistics of the stored H (no projections): sums = [0, N_0..N_{width−1}] with N_j = Σ s h_ij (the
    /// E-step's layout). `suff`: general linear (`symmetric` false) k Grams with weights s h_ij and R (k cols)
    /// r_ij = s h_ij y_i; SymMoLinE (`symmetric` true) R (1 col) r = s (h+ − h−) y_i. Used by the random init.
    HStats { width: usize, suff: bool, symmetric: bool },
    /// Information matrices (ALGORITHMS §7; src/diagnostics/information.ts).
    Information { model: InfoModel, part: InfoPart, task: InfoTask },
    /// Symmetric gradient at P = [w; β]: R (2 cols) = ∂/∂(wᵀx), ∂/∂(βᵀx) of the per-row log-likelihood
    /// (or of Q with the stored H), times s. sums = [Σ s ℓ or Q].
    SymGradient { kind: SymKind, stored_h: bool },
    /// Predictions of the general model (y and s are not read). P as the E-step's. Writes H (n×width,
    /// `Family::prediction_width`): linear experts the mixture mean Σ_j π_j β_jᵀx; logistic experts
    /// [P(y=0), P(y=1)]; multinomial the C class probabilities Σ_j π_j softmax(B_j x).
    Predict { k: usize, family: Family },
    /// Predictions of a symmetric model at P = [w; β]: SymMoLinE the mean tanh(wᵀx/2)·βᵀx (width 1), SymMoLogE
    /// [P(y=−1), P(y=+1)] (width 2).
    SymPredict { kind: SymKind },
}

/// How many outputs a `RowOp` produces per row (and hence per pass).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpShape {
    /// Projection rows expected in P.
    pub q: usize,
    /// Columns of R (XᵀR is r_cols×d).
    pub r_cols: usize,
    /// Number of weighted Grams.
    pub grams: usize,
    /// Grams are diagonal-only (d values each) instead of full d×d.
    pub diag_only: bool,
    pub sums: usize,
    /// Width of H this op reads or writes (0 = none).
    pub h_width: usize,
    pub writes_h: bool,
    /// Width of the probability store this op reads or writes (0 = none; see `SoftmaxTask::GradientDiagStore`).
    pub p_width: usize,
    pub writes_p: bool,
}

/// The reduced results of a pass.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PassOut {
    /// XᵀR, r_cols×d row-major (row c = Σ_i r_ic x_i).
    pub xtr: Vec<f64>,
    /// grams×d×d (full symmetric, row-major), or grams×d when diagonal-only. Empty while `grams_pending`.
    pub grams: Vec<f64>,
    pub sums: Vec<f64>,
    /// The full Grams are still being computed (`Backend::pass_many_deferring_grams`): `Backend::finish_grams`
    /// returns them.
    pub grams_pending: bool,
}

/// The compute primitives. Methods take `&self`: backend-resident state (H, the row order) lives behind
/// interior mutability, so that the algorithms can borrow the backend freely.
pub trait Backend {
    fn name(&self) -> &'static str;
    fn n(&self) -> usize;
    fn d(&self) -> usize;
    /// Set the row order used by `Rows::Order` (a permutation of 0..n, or any list of row indices).
    fn set_order(&self, order: &[u32]) -> Result<()>;
    /// Overwrite the stored H (n×width row-major), e.g. with the hard assignments of the random init.
    fn write_h(&self, width: usize, h: &[f64]) -> Result<()>;
    /// Read the stored H (n×width) back to the host.
    fn read_h(&self, width: usize) -> Result<Vec<f64>>;
    /// One fused pass: A = X_rows·Pᵀ, the per-row `op`, reductions (see `RowOp`, `OpShape`).
    fn pass(&self, rows: Rows, proj: &[f64], op: &RowOp) -> Result<PassOut>;
    /// Rows `idx` of X (idx.len()×d, row-major) and their weights s (1 without weights): the sample the
    /// Kronecker preconditioners average over (crate::kronecker), read once per fit.
    fn gather_rows(&self, idx: &[usize]) -> Result<(Vec<f64>, Vec<f64>)>;
    /// Rows `idx` of the stored H (idx.len()×width, row-major; width must be the stored H's): the experts'
    /// weights at that sample, read once per M-step.
    fn gather_h(&self, idx: &[usize], width: usize) -> Result<Vec<f64>>;

    /// Whether this backend implements `SoftmaxTask::GradientDiagStore` and `SoftmaxTask::HessVecStored`: it
    /// keeps a per-row probability store beside H (written by GradientDiagStore, read by HessVecStored on the
    /// same rows, an error when read without a store of the right width). Newton-CG then computes the
    /// softmax probabilities once per Newton step instead of once per CG iteration; the results are the same
    /// bit for bit. A backend that keeps the default `false` is never given those two tasks.
    fn stores_probabilities(&self) -> bool {
        false
    }

    /// Threads the algorithms may use for their host work between passes (the linear experts' solves, the
    /// preconditioner's right-hand sides): the CPU backend's own count, so that a fit asked to use one
    /// thread stays on one; all cores for a backend that computes elsewhere.
    fn host_threads(&self) -> usize {
        std::thread::available_parallelism().map_or(1, |t| t.get())
    }

    /// Several ops on the same rows, with the results of running them one after the other (a later op
    /// sees the H an earlier one stored). A backend may fuse them into one read of X (the CPU backend
    /// does); the default runs one pass per op.
    fn pass_many(&self, rows: Rows, ops: &[(&[f64], &RowOp)]) -> Result<Vec<PassOut>> {
        ops.iter().map(|&(proj, op)| self.pass(rows, proj, op)).collect()
    }

    /// As `pass_many`, except that a backend may return before the FIRST op's full Grams are computed, so that
    /// they overlap the passes the caller makes next (EM: the gate's M-step, which needs only H, while the
    /// linear experts' Grams are summed). Its output then has `grams_pending` set and no `grams`;
    /// `finish_grams` waits for them. The other ops' outputs are complete. At most one op's Grams are pending
    /// at a time: a later call of this method, or dropping the backend, discards Grams that were never
    /// finished. The default computes everything now (nothing pending).
    fn pass_many_deferring_grams(&self, rows: Rows, ops: &[(&[f64], &RowOp)]) -> Result<Vec<PassOut>> {
        self.pass_many(rows, ops)
    }

    /// The pending Grams of the last `pass_many_deferring_grams` (grams×d×d), once they are computed.
    /// `ErrorCode::Internal` when none are pending.
    fn finish_grams(&self) -> Result<Vec<f64>> {
        Err(crate::api::Error::new(crate::api::ErrorCode::Internal, "finish_grams: no Grams are pending"))
    }
}

/// `ErrorCode::Internal` when a row index of a gather (`gather_rows`, `gather_h`) is not below n: the algorithms
/// only ask for rows they sampled, so one out of range is a bug, not bad input.
pub fn check_row_indices(what: &str, idx: &[usize], n: usize) -> Result<()> {
    match idx.iter().find(|&&i| i >= n) {
        Some(&i) => {
            crate::api::err(crate::api::ErrorCode::Internal, format!("{what}: row index {i} out of range (n = {n})"))
        }
        None => Ok(()),
    }
}

/// A backend that forwards everything to `inner` and shows each pass to `watch` (its rows, its ops in order,
/// and how long `inner` took): what benchmarks and tests wrap a backend for (counting passes, timing them,
/// the floor of an iteration), written once so that every forwarded method stays complete when the trait
/// grows. Two switches make it look like another kind of backend to the algorithms, for comparing the two
/// paths on one backend: `hide_probability_store` reports `stores_probabilities` as false (the recomputing
/// path), and `defer_grams` makes `pass_many_deferring_grams` leave the first op's full Grams pending (computed
/// by `inner`, handed back only by `finish_grams`), as a backend that overlaps them with the next passes does.
pub struct Watched<'a, B: Backend + ?Sized, F: Fn(Rows, &[(&[f64], &RowOp)], std::time::Duration)> {
    pub inner: &'a B,
    pub watch: F,
    pub hide_probability_store: bool,
    pub defer_grams: bool,
    /// The Grams `defer_grams` holds back.
    held_grams: std::cell::RefCell<Option<Vec<f64>>>,
}

impl<'a, B: Backend + ?Sized, F: Fn(Rows, &[(&[f64], &RowOp)], std::time::Duration)> Watched<'a, B, F> {
    pub fn new(inner: &'a B, watch: F) -> Self {
        Watched { inner, watch, hide_probability_store: false, defer_grams: false, held_grams: Default::default() }
    }
}

impl<B: Backend + ?Sized, F: Fn(Rows, &[(&[f64], &RowOp)], std::time::Duration)> Backend for Watched<'_, B, F> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn n(&self) -> usize {
        self.inner.n()
    }
    fn d(&self) -> usize {
        self.inner.d()
    }
    fn set_order(&self, order: &[u32]) -> Result<()> {
        self.inner.set_order(order)
    }
    fn write_h(&self, width: usize, h: &[f64]) -> Result<()> {
        self.inner.write_h(width, h)
    }
    fn read_h(&self, width: usize) -> Result<Vec<f64>> {
        self.inner.read_h(width)
    }
    fn gather_rows(&self, idx: &[usize]) -> Result<(Vec<f64>, Vec<f64>)> {
        self.inner.gather_rows(idx)
    }
    fn gather_h(&self, idx: &[usize], width: usize) -> Result<Vec<f64>> {
        self.inner.gather_h(idx, width)
    }
    fn stores_probabilities(&self) -> bool {
        !self.hide_probability_store && self.inner.stores_probabilities()
    }
    fn host_threads(&self) -> usize {
        self.inner.host_threads()
    }
    fn pass(&self, rows: Rows, proj: &[f64], op: &RowOp) -> Result<PassOut> {
        let start = std::time::Instant::now();
        let out = self.inner.pass(rows, proj, op);
        (self.watch)(rows, &[(proj, op)], start.elapsed());
        out
    }
    fn pass_many(&self, rows: Rows, ops: &[(&[f64], &RowOp)]) -> Result<Vec<PassOut>> {
        let start = std::time::Instant::now();
        let out = self.inner.pass_many(rows, ops);
        (self.watch)(rows, ops, start.elapsed());
        out
    }
    /// Shown to `watch` as one pass of its ops, for the time it took to return (the deferred Grams' own time is
    /// not in it: `finish_grams` waits for them outside any pass).
    fn pass_many_deferring_grams(&self, rows: Rows, ops: &[(&[f64], &RowOp)]) -> Result<Vec<PassOut>> {
        let start = std::time::Instant::now();
        let out = self.inner.pass_many_deferring_grams(rows, ops);
        (self.watch)(rows, ops, start.elapsed());
        let mut out = out?;
        let first = ops.first().map(|(_, op)| op.shape());
        if self.defer_grams && first.is_some_and(|sh| sh.grams > 0 && !sh.diag_only) && !out[0].grams_pending {
            *self.held_grams.borrow_mut() = Some(std::mem::take(&mut out[0].grams)); // unfinished ones are discarded
            out[0].grams_pending = true;
        }
        Ok(out)
    }
    fn finish_grams(&self) -> Result<Vec<f64>> {
        match self.held_grams.borrow_mut().take() {
            Some(grams) => Ok(grams),
            None => self.inner.finish_grams(),
        }
    }
}

impl RowOp {
    /// A short name for benchmarks' tables: the variant's name, a softmax op's with its task.
    pub fn label(&self) -> String {
        match self {
            RowOp::Softmax { task, .. } => format!("Softmax {task:?}"),
            other => format!("{other:?}").split([' ', '{', '(']).next().unwrap_or("?").to_string(),
        }
    }

    /// Output counts of this op (the contract between `rowops::eval_row` and the reductions).
    pub fn shape(&self) -> OpShape {
        let none = OpShape {
            q: 0,
            r_cols: 0,
            grams: 0,
            diag_only: false,
            sums: 0,
            h_width: 0,
            writes_h: false,
            p_width: 0,
            writes_p: false,
        };
        match self {
            RowOp::Moments => OpShape { sums: 3, ..none },
            RowOp::Gram => OpShape { r_cols: 1, grams: 1, ..none },
            RowOp::EStep { k, family, store, suff } => {
                let linear_suff = *suff && matches!(family, Family::Linear { .. });
                OpShape {
                    q: k + k * family.rows_per_expert(),
                    r_cols: if linear_suff { *k } else { 0 },
                    grams: if linear_suff { *k } else { 0 },
                    sums: 1 + k,
                    h_width: if *store { *k } else { 0 },
                    writes_h: *store,
                    ..none
                }
            }
            RowOp::SymEStep { kind, store, suff } => OpShape {
                q: 2,
                r_cols: if *suff && matches!(kind, SymKind::Linear { .. }) { 1 } else { 0 },
                sums: 3,
                h_width: if *store { 2 } else { 0 },
                writes_h: *store,
                ..none
            },
            RowOp::LinearResidual { k } => OpShape { q: *k, sums: *k, h_width: *k, ..none },
            RowOp::Softmax { problem, task } => {
                let m = problem.free_rows();
                let h_width = match problem {
                    SoftmaxProblem::Gate { k } | SoftmaxProblem::Expert { k, .. } => *k,
                    _ => 2,
                };
                let base = OpShape { q: m, h_width, ..none };
                match task {
                    SoftmaxTask::Objective => OpShape { sums: 1, ..base },
                    SoftmaxTask::Gradient => OpShape { r_cols: m, sums: 1, ..base },
                    SoftmaxTask::Hessian => OpShape { r_cols: m, grams: m * (m + 1) / 2, sums: 1, ..base },
                    SoftmaxTask::HessVec => OpShape { q: 2 * m, r_cols: m, ..base },
                    SoftmaxTask::GradientDiag => OpShape { r_cols: m, grams: m, diag_only: true, sums: 1, ..base },
                    SoftmaxTask::GradientDiagStore => {
                        OpShape { r_cols: m, grams: m, diag_only: true, sums: 1, p_width: m, writes_p: true, ..base }
                    }
                    SoftmaxTask::HessVecStored => OpShape { r_cols: m, p_width: m, ..base },
                }
            }
            RowOp::Gradient { k, family, stored_h } => {
                let rpe = family.rows_per_expert();
                let expert_cols = if rpe > 1 { rpe - 1 } else { 1 };
                OpShape {
                    q: k + k * rpe,
                    r_cols: (k - 1) + k * expert_cols,
                    sums: 1 + if matches!(family, Family::Linear { .. }) { *k } else { 0 },
                    h_width: if *stored_h { *k } else { 0 },
                    ..none
                }
            }
            RowOp::HStats { width, suff, symmetric } => {
                let (r_cols, grams) = match (*suff, *symmetric) {
                    (false, _) => (0, 0),
                    (true, false) => (*width, *width),
                    (true, true) => (1, 0),
                };
                OpShape { r_cols, grams, sums: 1 + width, h_width: *width, ..none }
            }
            RowOp::Information { model, task, .. } => {
                let all = model.slots();
                let slots = match task {
                    InfoTask::Assemble { first, count } => &all[*first..first + count],
                    _ => &all[..],
                };
                let qx = slots.iter().filter(|&&x| x).count();
                let q1 = slots.len() - qx;
                let tq = model.theta_rows();
                match task {
                    InfoTask::Assemble { .. } => {
                        OpShape { q: tq, r_cols: qx * q1, grams: qx * (qx + 1) / 2, sums: q1 * (q1 + 1) / 2, ..none }
                    }
                    InfoTask::Apply { .. } => OpShape { q: tq + qx, r_cols: qx, sums: q1, ..none },
                    InfoTask::Diag => OpShape { q: tq, grams: qx, diag_only: true, sums: q1, ..none },
                }
            }
            RowOp::SymGradient { stored_h, .. } => {
                OpShape { q: 2, r_cols: 2, sums: 1, h_width: if *stored_h { 2 } else { 0 }, ..none }
            }
            RowOp::Predict { k, family } => OpShape {
                q: k + k * family.rows_per_expert(),
                h_width: family.prediction_width(),
                writes_h: true,
                ..none
            },
            RowOp::SymPredict { kind } => OpShape { q: 2, h_width: kind.prediction_width(), writes_h: true, ..none },
        }
    }
}
