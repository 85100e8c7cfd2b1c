//! Host side of kernels/skinny_xtw.cu: Xᵀ·W (XᵀR of a pass) and (X⊙X)ᵀ·W (diagonal weighted Grams) for a
//! narrow W in one read of X, instead of cuBLAS GEMMs with a huge inner dimension (and, for the squares, a
//! materialised X⊙X). The launch arithmetic here is mirrored by tests/emu/skinny_xtw.cpp.

use crate::driver::Context;
use moe_core::Result;
use std::ffi::c_void;

/// Columns of W per launch (kernels/skinny_xtw.cu `XTW_MAX_G`: accumulators in registers).
pub(crate) const XTW_MAX_G: usize = 16;
/// Threads per block (`XTW_THREADS`).
const XTW_THREADS: usize = 256;
/// Blocks per launch at most: fixed (not taken from the device), so the summation order depends only on the
/// number of rows. About 2 waves of 4 blocks on each of an H100's 132 SMs.
const XTW_GRID: usize = 1056;
/// Rows per block at least (small passes use fewer blocks).
const XTW_MIN_ROWS_PER_BLOCK: usize = 256;

/// The launch shape for `rows` rows of d features.
#[derive(Clone, Copy, Debug)]
pub(crate) struct XtwPlan {
    grid: usize,
    /// Row lanes per block: the block's threads are `lanes` groups of d rounded up to a warp.
    lanes: usize,
}

impl XtwPlan {
    pub(crate) fn new(rows: usize, d: usize) -> XtwPlan {
        let width = XTW_THREADS.min(d.div_ceil(32) * 32).max(32);
        XtwPlan { grid: rows.div_ceil(XTW_MIN_ROWS_PER_BLOCK).clamp(1, XTW_GRID), lanes: XTW_THREADS / width }
    }

    /// Doubles of partial sums one launch writes for `cols` columns (at most XTW_MAX_G per launch).
    pub(crate) fn partial_len(&self, cols: usize, d: usize) -> usize {
        self.grid * self.lanes * cols.min(XTW_MAX_G) * d
    }
}

/// out (cols×d row-major, device) = Σ_i w_i ⊗ x_i^p over the `rows` rows of x (rows×d) and w (rows×cols),
/// p = 2 when `square`; `partial` holds at least `plan.partial_len(cols, d)` doubles.
#[allow(clippy::too_many_arguments)]
pub(crate) fn skinny_xtw(ctx: &Context, plan: XtwPlan, x: u64, rows: usize, d: usize, w: u64, cols: usize, square: bool, partial: u64,
                         out: u64) -> Result<()> {
    let count = plan.grid * plan.lanes;
    let mut g0 = 0;
    while g0 < cols {
        let groups = XTW_MAX_G.min(cols - g0);
        let (mut xp, mut wp, mut pp) = (x, w, partial);
        let (mut rows_i, mut d_i, mut stride, mut g0_i, mut groups_i, mut sq) =
            (rows as i32, d as i32, cols as i32, g0 as i32, groups as i32, i32::from(square));
        let mut args: [*mut c_void; 9] = [
            &mut xp as *mut _ as _, &mut wp as *mut _ as _, &mut rows_i as *mut _ as _, &mut d_i as *mut _ as _,
            &mut stride as *mut _ as _, &mut g0_i as *mut _ as _, &mut groups_i as *mut _ as _, &mut sq as *mut _ as _,
            &mut pp as *mut _ as _,
        ];
        ctx.launch("skinny_xtw", (plan.grid as u32, 1, 1), XTW_THREADS as u32, 0, &mut args)?;
        sum_partials(ctx, partial, count, groups * d, out + 8 * (g0 * d) as u64)?;
        g0 += groups;
    }
    Ok(())
}

/// out[e] = Σ_p partial[p·len + e] over p = 0 .. count−1, in that order (kernels/skinny_xtw.cu
/// `sum_partials`): the reduction of per-block partials, bit-reproducible.
pub(crate) fn sum_partials(ctx: &Context, partial: u64, count: usize, len: usize, out: u64) -> Result<()> {
    let (mut part, mut count_i, mut len_i, mut dst) = (partial, count as i32, len as i32, out);
    let mut args: [*mut c_void; 4] =
        [&mut part as *mut _ as _, &mut count_i as *mut _ as _, &mut len_i as *mut _ as _, &mut dst as *mut _ as _];
    ctx.launch("sum_partials", (len.div_ceil(256) as u32, 1, 1), 256, 0, &mut args)?;
    Ok(())
}
