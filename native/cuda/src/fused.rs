//! The host side of the fused narrow pass, kernels/fused_tc.cu: one read of X for the projections A = X·Pᵀ,
//! the row op and XᵀR, both products on the fp64 tensor cores. Which passes fit it, whether the device can
//! run it, and its launch. Opt-in (`CudaBackend::set_fused`, `MOE_CUDA_FUSED=1`) until it is measured faster
//! than the unfused path on hardware (bench/GPU.md).

use crate::driver::Context;
use crate::kernels::RowOpParams;
use crate::xtw::sum_partials;
use moe_core::backend::OpShape;
use moe_core::Result;
use std::ffi::c_void;

/// Limits of the kernel (kernels/fused_tc.cu `FTC_*`): its static shared memory holds a tile of 32 rows of
/// up to 128 features, their ≤ 32 projections and ≤ 16 columns of R.
const ROWS: usize = 32;
const MAX_D: usize = 128;
const MAX_Q: usize = 32;
const MAX_R: usize = 16;

/// Launch configurations of the kernel (kernels/fused_tc.cu): entry point and threads per block. The first is
/// the default (256 threads, 2 blocks per SM, no spills); the 128-thread ones (3 or 4 blocks per SM) run more
/// rows of row op at once per SM. Kept until the GPU has measured which is fastest (bench/GPU.md).
pub const VARIANTS: [(&str, u32); 3] = [("fused_tc", 256), ("fused_tc_128x3", 128), ("fused_tc_128x4", 128)];

/// Blocks of a launch: FIXED (not derived from the device), so that the block partials of XᵀR and their sum
/// are the same on any device and load. 3168 = 24 × 132: whole waves on an H100 at 2, 3 and 4 blocks per SM
/// (each block walks the same number of tiles ±1: ≈ 99 at n = 1e7), ≈ 98% of whole waves on a 108-SM A100.
const GRID: usize = 3168;

/// Whether a pass over d features with this shape fits the kernel.
pub(crate) fn fits(d: usize, shape: &OpShape) -> bool {
    d <= MAX_D && shape.q <= MAX_Q && shape.r_cols <= MAX_R
}

/// Whether this context can run the kernel: fp64 tensor cores (sm_80 or newer) and the kernel in the module
/// (an NVRTC build for an older device compiles it out).
pub(crate) fn available(ctx: &Context) -> bool {
    ctx.info.compute_capability.0 >= 8 && VARIANTS.iter().all(|(name, _)| ctx.has_kernel(name))
}

fn grid(rows: usize) -> usize {
    rows.div_ceil(ROWS).clamp(1, GRID)
}

/// Values of the block-partial buffer that `launch` needs.
pub(crate) fn partial_len(rows: usize, r_cols: usize, d: usize) -> usize {
    grid(rows) * r_cols * d
}

/// Runs the fused pass (launch configuration `VARIANTS[variant]`) over `params.rows` rows of X (contiguous at
/// `x`, d features) with P (q×d) at `proj`. `params` carries the op and its per-row outputs (Gram weights,
/// sum terms, H: written as `row_op` writes them; `params.a` and `params.r` unused, A and R stay on chip).
/// XᵀR (r_cols×d, row-major) goes to `out`: the block partials, in `partial` (`partial_len` values), summed
/// in block order (`xtw::sum_partials`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn launch(ctx: &Context, variant: usize, params: &mut RowOpParams, x: u64, proj: u64, d: usize, partial: u64,
                     out: u64) -> Result<()> {
    let (kernel, threads) = VARIANTS[variant];
    let blocks = grid(params.rows as usize);
    let (mut xp, mut pp, mut di, mut part) = (x, proj, d as i32, partial);
    let mut args: [*mut c_void; 5] = [
        params as *mut RowOpParams as *mut c_void, &mut xp as *mut _ as _, &mut pp as *mut _ as _,
        &mut di as *mut _ as _, &mut part as *mut _ as _,
    ];
    ctx.launch(kernel, (blocks as u32, 1, 1), threads, 0, &mut args)?;
    let outs = params.r_cols as usize * d;
    if outs > 0 {
        sum_partials(ctx, partial, blocks, outs, blocks, out)?;
    }
    Ok(())
}
