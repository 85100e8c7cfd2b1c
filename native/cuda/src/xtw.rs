//! Host side of kernels/skinny_xtw.cu: Xᵀ·W (XᵀR of a pass) and (X⊙X)ᵀ·W (diagonal weighted Grams) for a
//! narrow W in one read of X, instead of cuBLAS GEMMs with a huge inner dimension (and, for the squares, a
//! materialised X⊙X). The launch arithmetic here is mirrored by tests/emu/skinny_xtw.cpp.

use crate::driver::Context;
use moe_core::Result;
use std::ffi::c_void;

/// Columns of W per launch (kernels/skinny_xtw.cu `XTW_MAX_G`: accumulators in registers).
pub(crate) const XTW_MAX_G: usize = 16;
/// Threads per block at most (`XTW_MAX_THREADS`, the kernel's launch bound).
const XTW_MAX_THREADS: usize = 512;
/// Rows per lane per tile (`XTW_R`) and W values each thread stages per tile (`XTW_WREG`): a block needs
/// lanes·XTW_R·XTW_MAX_G ≤ XTW_WREG·threads.
const XTW_R: usize = 8;
const XTW_WREG: usize = 2;
/// Row lanes per block at most (`XTW_MAX_LANES`: the staged W tile is at most lanes·XTW_R rows).
const XTW_MAX_LANES: usize = 8;
/// Blocks per launch at most: fixed (not taken from the device), so the summation order depends only on the
/// number of rows (and d). For d = 100 (one 512-thread block per SM): 8 waves on an H100's 132 SMs.
const XTW_GRID: usize = 1056;
/// Rows per block at least (small passes use fewer blocks).
const XTW_MIN_ROWS_PER_BLOCK: usize = 256;
/// Block partials per chunk of the first level of the two-level sum (`sum_partials`).
const XTW_CHUNK: usize = 32;
/// For choosing the lanes: warps an SM holds at ≤ 128 registers per thread, and blocks per SM at most counted.
const SM_WARPS: usize = 16;
const SM_BLOCKS: usize = 4;

/// The launch shape for `rows` rows of d features (tests/emu/skinny_xtw.cpp mirrors it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct XtwPlan {
    grid: usize,
    /// Feature threads per lane: d, at most XTW_MAX_THREADS (more features go in chunks).
    width: usize,
    /// Row lanes per block.
    lanes: usize,
    /// Threads per block: lanes·width rounded up to a warp, at least what staging W needs.
    threads: usize,
}

impl XtwPlan {
    pub(crate) fn new(rows: usize, d: usize) -> XtwPlan {
        let width = d.clamp(1, XTW_MAX_THREADS);
        let threads_for = |lanes: usize| ((lanes * width).div_ceil(32) * 32).max(lanes * XTW_R * XTW_MAX_G / XTW_WREG);
        // The lanes that keep the most feature threads busy per SM (fixed constants, not the device's).
        let (mut lanes, mut best) = (1, 0);
        for l in 1..=XTW_MAX_LANES.min(XTW_MAX_THREADS / width) {
            let t = threads_for(l);
            let busy = (SM_WARPS / (t / 32)).clamp(1, SM_BLOCKS) * l * width;
            if t <= XTW_MAX_THREADS && busy > best {
                (lanes, best) = (l, busy);
            }
        }
        XtwPlan {
            grid: rows.div_ceil(XTW_MIN_ROWS_PER_BLOCK).clamp(1, XTW_GRID),
            width,
            lanes,
            threads: threads_for(lanes),
        }
    }

    /// Doubles of scratch one launch uses for `cols` columns (at most XTW_MAX_G per launch): one groups×d
    /// partial per block, then one per chunk of XTW_CHUNK blocks.
    pub(crate) fn partial_len(&self, cols: usize, d: usize) -> usize {
        (self.grid + self.chunks()) * cols.min(XTW_MAX_G) * d
    }

    fn chunks(&self) -> usize {
        self.grid.div_ceil(XTW_CHUNK)
    }
}

/// out (cols×d row-major, device) = Σ_i w_i ⊗ x_i^p over the `rows` rows of x (rows×d) and w (rows×cols),
/// p = 2 when `square`; `partial` holds at least `plan.partial_len(cols, d)` doubles.
#[allow(clippy::too_many_arguments)]
pub(crate) fn skinny_xtw(
    ctx: &Context,
    plan: XtwPlan,
    x: u64,
    rows: usize,
    d: usize,
    w: u64,
    cols: usize,
    square: bool,
    partial: u64,
    out: u64,
) -> Result<()> {
    let mut g0 = 0;
    while g0 < cols {
        let groups = XTW_MAX_G.min(cols - g0);
        let (mut xp, mut wp, mut pp) = (x, w, partial);
        let (mut rows_i, mut d_i, mut stride, mut g0_i, mut groups_i, mut sq) =
            (rows as i32, d as i32, cols as i32, g0 as i32, groups as i32, i32::from(square));
        let (mut width_i, mut lanes_i) = (plan.width as i32, plan.lanes as i32);
        let mut args: [*mut c_void; 11] = [
            &mut xp as *mut _ as _,
            &mut wp as *mut _ as _,
            &mut rows_i as *mut _ as _,
            &mut d_i as *mut _ as _,
            &mut stride as *mut _ as _,
            &mut g0_i as *mut _ as _,
            &mut groups_i as *mut _ as _,
            &mut sq as *mut _ as _,
            &mut width_i as *mut _ as _,
            &mut lanes_i as *mut _ as _,
            &mut pp as *mut _ as _,
        ];
        ctx.launch("skinny_xtw", (plan.grid as u32, 1, 1), plan.threads as u32, 0, &mut args)?;
        // The block partials in a fixed two-level order: chunks of XTW_CHUNK blocks, then the chunks.
        let len = groups * d;
        let chunk_sums = partial + 8 * (plan.grid * len) as u64;
        sum_partials(ctx, partial, plan.grid, len, XTW_CHUNK, chunk_sums)?;
        sum_partials(ctx, chunk_sums, plan.chunks(), len, plan.chunks(), out + 8 * (g0 * d) as u64)?;
        g0 += groups;
    }
    Ok(())
}

/// out[c·len + e] = Σ_p partial[p·len + e] over the partials p of chunk c (`chunk` of them, in order), for every
/// chunk of the `count` partials (kernels/skinny_xtw.cu `sum_partials`); `chunk` ≥ `count` is the whole sum
/// into `out[e]`. Bit-reproducible: the order depends only on count and chunk.
pub(crate) fn sum_partials(
    ctx: &Context,
    partial: u64,
    count: usize,
    len: usize,
    chunk: usize,
    out: u64,
) -> Result<()> {
    let chunk = chunk.clamp(1, count.max(1));
    let (mut part, mut count_i, mut len_i, mut chunk_i, mut dst) =
        (partial, count as i32, len as i32, chunk as i32, out);
    let mut args: [*mut c_void; 5] = [
        &mut part as *mut _ as _,
        &mut count_i as *mut _ as _,
        &mut len_i as *mut _ as _,
        &mut chunk_i as *mut _ as _,
        &mut dst as *mut _ as _,
    ];
    ctx.launch("sum_partials", (len.div_ceil(256) as u32, count.div_ceil(chunk).max(1) as u32, 1), 256, 0, &mut args)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans() {
        // The important shape: 5 lanes of 100 feature threads in 512, 1056 blocks.
        assert_eq!(XtwPlan::new(10_000_000, 100), XtwPlan { grid: 1056, width: 100, lanes: 5, threads: 512 });
        assert_eq!(XtwPlan::new(1, 300), XtwPlan { grid: 1, width: 300, lanes: 1, threads: 320 });
        assert_eq!(XtwPlan::new(1000, 2000).width, 512);
        for d in [1, 2, 7, 33, 100, 300, 512, 513, 2000] {
            let p = XtwPlan::new(5000, d);
            assert!(
                p.threads.is_multiple_of(32) && p.threads <= XTW_MAX_THREADS && p.lanes * p.width <= p.threads,
                "{d}: {p:?}"
            );
            assert!(p.lanes <= XTW_MAX_LANES && p.lanes * XTW_R * XTW_MAX_G <= XTW_WREG * p.threads, "{d}: {p:?}");
        }
    }
}
