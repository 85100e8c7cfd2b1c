//! The host side of kernels/moe_kernels.cu: the `RowOpParams` struct passed by value to `row_op` (same layout
//! as the C struct) and the encoding of a `moe_core::backend::RowOp` into it.

use moe_core::backend::{Family, OpShape, RowOp, SoftmaxProblem, SoftmaxTask, SymKind};
use moe_core::{Error, ErrorCode, Result};

/// Experts and classes per row are held in fixed local arrays in the kernel (`MOE_MAX_WIDTH`).
pub const MAX_WIDTH: usize = 64;

const OP_MOMENTS: i32 = 0;
const OP_GRAM: i32 = 1;
const OP_ESTEP: i32 = 2;
const OP_SYM_ESTEP: i32 = 3;
const OP_LINEAR_RESIDUAL: i32 = 4;
const OP_SOFTMAX: i32 = 5;
const OP_GRADIENT: i32 = 6;
const OP_SYM_GRADIENT: i32 = 7;
const OP_H_STATS: i32 = 8;

const FLAG_STORE: i32 = 1;
const FLAG_SUFF: i32 = 2;
const FLAG_STORED_H: i32 = 4;

/// Mirrors `struct RowOpParams` in moe_kernels.cu: ints (an even count, so no implicit padding before the
/// doubles), then doubles, then device pointers; a field added on one side must be added on the other.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct RowOpParams {
    pub op: i32,
    pub rows: i32,
    pub q: i32,
    pub k: i32,
    pub classes: i32,
    pub family: i32,
    pub flags: i32,
    pub problem: i32,
    pub task: i32,
    pub expert: i32,
    pub h_width: i32,
    pub r_cols: i32,
    pub grams: i32,
    pub sums: i32,
    pub sym_linear: i32,
    /// Width of the probability store (`SoftmaxTask::GradientDiagStore` / `HessVecStored`), else 0.
    pub p_width: i32,
    pub sigma: f64,
    pub a: u64,
    pub y: u64,
    pub s: u64,
    pub h: u64,
    pub idx: u64,
    /// Linear experts: k σ_j², then k −½log(2πσ_j²), then k 1/σ_j² (`rowops::linear_expert_constants`).
    pub linear: u64,
    pub r: u64,
    pub gw: u64,
    pub sv: u64,
    /// The probability store (n×p_width), indexed through `idx` like H.
    pub probs: u64,
}

fn family_code(family: &Family) -> (i32, i32) {
    match family {
        Family::Linear { .. } => (0, 0),
        Family::Logistic => (1, 2),
        Family::Multinomial { classes } => (2, *classes as i32),
    }
}

fn too_wide(what: &str, value: usize) -> Error {
    Error::new(ErrorCode::Option, format!("the cuda backend supports at most {MAX_WIDTH} {what} (got {value})"))
}

/// The launch of kernels/moe_kernels.cu `row_op_tiled` for these params: rows per block (its threads) and
/// bytes of dynamic shared memory, each row's projections and outputs at odd strides. 128 rows, or 64 where
/// that would pass 96 KB (two blocks still fit an SM) or the device's `max_shared` per block; `None` (use
/// `row_op`) where 64 rows pass it too.
pub(crate) fn row_tile(p: &RowOpParams, max_shared: usize) -> Option<(u32, u32)> {
    let stride = |w: i32| if w == 0 { 0 } else { (w | 1) as usize };
    let per_row = 8 * (stride(p.q) + stride(p.r_cols) + stride(p.grams) + stride(p.sums));
    let limit = max_shared.min(96 << 10);
    [128usize, 64].into_iter().find(|rows| rows * per_row <= limit).map(|rows| (rows as u32, (rows * per_row) as u32))
}

/// The op-dependent fields of `RowOpParams` (everything but sizes and pointers), and the values behind
/// `RowOpParams::linear` for linear experts.
/// `Ok(None)`: no kernel implements this op; the backend evaluates its rows on the host (`rowops::eval_row`).
pub fn encode(op: &RowOp, shape: &OpShape) -> Result<Option<(RowOpParams, Option<Vec<f64>>)>> {
    let mut p = RowOpParams {
        q: shape.q as i32,
        h_width: shape.h_width as i32,
        p_width: shape.p_width as i32,
        r_cols: shape.r_cols as i32,
        grams: shape.grams as i32,
        sums: shape.sums as i32,
        ..Default::default()
    };
    let mut linear = None;
    match op {
        RowOp::Moments => p.op = OP_MOMENTS,
        RowOp::Gram => p.op = OP_GRAM,
        RowOp::EStep { k, family, store, suff } => {
            linear = set_general(&mut p, *k, family)?;
            p.op = OP_ESTEP;
            p.flags = if *store { FLAG_STORE } else { 0 } | if *suff { FLAG_SUFF } else { 0 };
        }
        RowOp::Gradient { k, family, stored_h } => {
            linear = set_general(&mut p, *k, family)?;
            p.op = OP_GRADIENT;
            p.flags = if *stored_h { FLAG_STORED_H } else { 0 };
        }
        RowOp::SymEStep { kind, store, suff } => {
            p.op = OP_SYM_ESTEP;
            set_sym(&mut p, kind);
            p.flags = if *store { FLAG_STORE } else { 0 } | if *suff { FLAG_SUFF } else { 0 };
        }
        RowOp::LinearResidual { k } => {
            check_experts(*k)?;
            p.op = OP_LINEAR_RESIDUAL;
            p.k = *k as i32;
        }
        RowOp::Softmax { problem, task } => {
            p.op = OP_SOFTMAX;
            let classes = problem.classes();
            if !(2..=MAX_WIDTH).contains(&classes) {
                return Err(too_wide("classes", classes));
            }
            p.classes = classes as i32;
            match problem {
                SoftmaxProblem::Gate { k } => {
                    p.problem = 0;
                    p.k = *k as i32;
                }
                SoftmaxProblem::Expert { j, k, logistic, .. } => {
                    p.problem = 1;
                    p.k = *k as i32;
                    p.expert = *j as i32;
                    // Logistic: classes ordered (y=1, y=0); multinomial: class index y.
                    p.family = if *logistic { 1 } else { 2 };
                }
                SoftmaxProblem::SymGate => p.problem = 2,
                SoftmaxProblem::SymLogExpert => p.problem = 3,
            }
            p.task = match task {
                SoftmaxTask::Objective => 0,
                SoftmaxTask::Gradient => 1,
                SoftmaxTask::Hessian => 2,
                SoftmaxTask::HessVec => 3,
                SoftmaxTask::GradientDiag => 4,
                SoftmaxTask::GradientDiagStore => 5,
                SoftmaxTask::HessVecStored => 6,
            };
        }
        RowOp::HStats { width, suff, symmetric } => {
            if *width == 0 || *width > MAX_WIDTH {
                return Err(too_wide("H columns", *width));
            }
            p.op = OP_H_STATS;
            p.sym_linear = *symmetric as i32;
            p.flags = if *suff { FLAG_SUFF } else { 0 };
        }
        RowOp::SymGradient { kind, stored_h } => {
            p.op = OP_SYM_GRADIENT;
            set_sym(&mut p, kind);
            p.flags = if *stored_h { FLAG_STORED_H } else { 0 };
        }
        // Information passes (diagnostics, not per iteration) run their row mathematics on the host, and so do
        // predictions (the binding sends those to the CPU backend: one read of X costs less than its upload).
        RowOp::Information { .. } | RowOp::Predict { .. } | RowOp::SymPredict { .. } => return Ok(None),
    }
    Ok(Some((p, linear)))
}

fn set_sym(p: &mut RowOpParams, kind: &SymKind) {
    match kind {
        SymKind::Linear { sigma } => {
            p.sym_linear = 1;
            p.sigma = *sigma;
        }
        SymKind::Logistic => p.sym_linear = 0,
    }
}

fn check_experts(k: usize) -> Result<()> {
    if k == 0 || k > MAX_WIDTH {
        Err(too_wide("experts", k))
    } else {
        Ok(())
    }
}

/// Fields of the general model (k experts of one family); returns σ² for linear experts.
fn set_general(p: &mut RowOpParams, k: usize, family: &Family) -> Result<Option<Vec<f64>>> {
    check_experts(k)?;
    let (code, classes) = family_code(family);
    if classes as usize > MAX_WIDTH {
        return Err(too_wide("classes", classes as usize));
    }
    p.k = k as i32;
    p.family = code;
    p.classes = classes;
    match family {
        Family::Linear { sigma2 } if sigma2.len() != k => {
            Err(Error::new(ErrorCode::Shape, format!("sigma2 must have k = {k} values, got {}", sigma2.len())))
        }
        Family::Linear { sigma2 } => {
            let (log_norm, inv_var) = moe_core::rowops::linear_expert_constants(sigma2);
            Ok(Some([sigma2.as_slice(), &log_norm, &inv_var].concat()))
        }
        _ => Ok(None),
    }
}
