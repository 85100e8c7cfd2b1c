//! The host side of the fused narrow pass, kernels/fused_tc.cu (v2): one read of X for the projections
//! A = X·Pᵀ, the row op and XᵀR, both products on the fp64 tensor cores (m16n8k16 on sm_90, the same
//! fragments as m8n8k4 on sm_80), tiles of 64 rows staged whole in dynamic shared memory, the row op on 64
//! threads of the 256 (`fused_tc`, `fused_tc_pipe`); or tiles of 128 rows whose X streams through a small
//! ring twice, the second read from L2, with the row op on all 128 threads (`fused_tc_l2`). Which passes it
//! serves (`FusedPolicy`: by default those where it saves a read of X) and fit it, whether the device can run
//! it, and its launch. On by default in launch configuration `fused_tc`, the fastest of the three on an H100
//! (bench/GPU.md); `CudaBackend::set_fused_policy(FusedPolicy::Off)` or `MOE_CUDA_FUSED=0` turns it off.

use crate::driver::Context;
use crate::kernels::RowOpParams;
use crate::xtw::sum_partials;
use moe_core::backend::OpShape;
use moe_core::Result;
use std::ffi::c_void;

/// Limits of the kernel (kernels/fused_tc.cu `FTC_*`): tiles of 64 rows (128 for `fused_tc_l2`, `FTL_*`)
/// of up to 128 features, ≤ 32 projections (4 column tiles of 8) and ≤ 16 columns of R (one m16 tile of Rᵀ).
const ROWS: usize = 64;
const THREADS: u32 = 256;
const L2_ROWS: usize = 128;
const L2_THREADS: u32 = 128;
/// fused_tc_l2's ring of X chunks (kernels/fused_tc.cu `FTL_RING` × `FTL_CHUNK` rows).
const L2_RING_ROWS: usize = 3 * 16;
const MAX_D: usize = 128;
const MAX_Q: usize = 32;
const MAX_R: usize = 16;
/// Row strides of the A and R tiles and of the staged per-row inputs (y, s, H) in shared memory
/// (kernels/fused_tc.cu `FTC_AS`, `FTC_RS`, `FTC_IN_STRIDE`).
const A_STRIDE: usize = 33;
const R_STRIDE: usize = 20;
const IN_STRIDE: usize = 19;

/// Launch configurations of the kernel (kernels/fused_tc.cu): entry point and threads per block. The same
/// templated body; `STAGES[v]` X buffers (each with its rows' inputs). The first is the default: one X buffer
/// (94 KB of shared memory at d = 100), 2 blocks per SM whose load and compute phases interleave; the second a
/// two-stage cp.async pipeline (161.5 KB at d = 100), 1 block per SM, the next tile's copies in flight while this one is
/// multiplied; the third (`fused_tc_l2`) 128-row tiles whose A and R stay in shared memory while X streams
/// through a 3-chunk ring twice (for A, then for XᵀR, the second read meant to hit L2), the row op on all 128
/// threads (96.5 KB at d = 100, 2 blocks per SM). Measured on an H100 (bench/GPU.md): the first is the
/// fastest on every narrow pass at n = 1e6 and 1e7; the others stay as knobs for the benchmark and the tests.
pub const VARIANTS: [(&str, u32); 3] = [("fused_tc", THREADS), ("fused_tc_pipe", THREADS), ("fused_tc_l2", L2_THREADS)];
/// X buffers of the whole-tile variants (the kernel's STAGES template parameter); 0: the streamed variant.
const STAGES: [usize; 3] = [1, 2, 0];

/// Blocks of a launch: FIXED (not derived from the device), so that the block partials of XᵀR and their sum
/// are the same on any device and load. 3168 = 24 × 132: whole waves on an H100 at 1 and 2 blocks per SM
/// (each block walks the same number of 64-row tiles ±1: ≈ 49 at n = 1e7; ≈ 25 of 128 rows in
/// `fused_tc_l2`), ≈ 98% of whole waves on a
/// 108-SM A100.
const GRID: usize = 3168;

/// Bytes of dynamic shared memory of variant `variant` at d features (kernels/fused_tc.cu
/// `ftc_shared_doubles`): its X buffers (64 rows, stride width + 4, width = d rounded up to 16) with their rows'
/// inputs (y, s, H), A and R; for `fused_tc_l2` (`ftl_shared_doubles`) A and R of 128 rows and the ring of 48
/// rows of X.
pub(crate) fn shared_bytes(variant: usize, d: usize) -> usize {
    let width = d.div_ceil(16) * 16;
    match STAGES[variant] {
        0 => 8 * (L2_ROWS * (A_STRIDE + R_STRIDE) + L2_RING_ROWS * (width + 4)),
        stages => 8 * ROWS * (stages * (width + 4 + IN_STRIDE) + A_STRIDE + R_STRIDE),
    }
}

/// Whether a pass over d features with this shape fits the kernel in launch configuration `variant` on a
/// device with `max_shared` bytes of shared memory per block (else the pass takes the unfused path).
pub(crate) fn fits(d: usize, shape: &OpShape, variant: usize, max_shared: usize) -> bool {
    d <= MAX_D && shape.q <= MAX_Q && shape.r_cols <= MAX_R && shared_bytes(variant, d) <= max_shared
}

/// Which passes take the fused kernel (where it fits and the op has a kernel row op); `CudaBackend::
/// set_fused_policy`, `MOE_CUDA_FUSED` (`0`: Off, `all`: Everywhere, otherwise the default).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FusedPolicy {
    /// Never: cuBLAS projections, the row op kernel, then the reductions.
    Off,
    /// The default: the passes where fusing saves a read of X (`saves_a_read`), the gate's gradient and
    /// Hessian-vector passes.
    SavesARead,
    /// Every pass it fits, the E-step with Grams, the objective and the residual too: for measuring it where
    /// the default does not give it the pass, and for testing it on every op.
    Everywhere,
}

impl FusedPolicy {
    pub(crate) fn from_env() -> FusedPolicy {
        match std::env::var("MOE_CUDA_FUSED").as_deref() {
            Ok("0") => FusedPolicy::Off,
            Ok("all") => FusedPolicy::Everywhere,
            _ => FusedPolicy::SavesARead,
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }

    pub(crate) fn from_index(i: usize) -> FusedPolicy {
        [FusedPolicy::Off, FusedPolicy::SavesARead, FusedPolicy::Everywhere][i]
    }

    /// Whether a pass of this shape takes the fused kernel under this policy (before `fits`).
    pub(crate) fn serves(self, shape: &OpShape) -> bool {
        match self {
            FusedPolicy::Off => false,
            FusedPolicy::SavesARead => saves_a_read(shape),
            FusedPolicy::Everywhere => true,
        }
    }
}

/// Whether fusing this pass saves a read of X over the unfused path at no risk: passes with XᵀR and no full
/// Grams, which the unfused path reads twice (the projections, then XᵀR). Elsewhere the fused kernel only
/// replaced cuBLAS's projections and the tiled row op, which measured faster with the local-array row op of
/// the time (H100, (1e7, 100, 16), bench/GPU.md: objective 6.7 ms unfused against 7.5 fused, residual 5.6
/// against 6.0; E-step 75.7 against 77.8, although the fused E-step saves the XᵀR read too; gradient 10.9
/// against 9.0, Hessian-vector 11.3 against 9.4). `FusedPolicy::Everywhere` measures the others again.
pub(crate) fn saves_a_read(shape: &OpShape) -> bool {
    shape.r_cols > 0 && (shape.grams == 0 || shape.diag_only)
}

/// Whether this context can run the kernel: fp64 tensor cores (sm_80 or newer) and the kernels in the module
/// (an NVRTC build for an older device compiles them out). sm_80/86/89 run the m8n8k4 form, sm_90 and newer
/// m16n8k16.
pub(crate) fn available(ctx: &Context) -> bool {
    ctx.info.compute_capability.0 >= 8 && VARIANTS.iter().all(|(name, _)| ctx.has_kernel(name))
}

/// Blocks of a launch of variant `variant` over `rows` rows: one per tile, at most `GRID`.
fn grid(variant: usize, rows: usize) -> usize {
    let tile = if STAGES[variant] == 0 { L2_ROWS } else { ROWS };
    rows.div_ceil(tile).clamp(1, GRID)
}

/// The block partials are summed in two levels, as the skinny Xᵀ·W kernel's are: chunks of SUM_CHUNK blocks,
/// then the chunks. One level would leave each of the r·d output threads a serial chain of up to `GRID`
/// dependent loads and adds (~0.25 ms, whatever the rows: most of a narrow pass at n = 1e6).
const SUM_CHUNK: usize = 32;

/// Values of the block-partial buffer that `launch` of variant `variant` needs: the block partials and the
/// chunk sums after them.
pub(crate) fn partial_len(variant: usize, rows: usize, r_cols: usize, d: usize) -> usize {
    let blocks = grid(variant, rows);
    (blocks + blocks.div_ceil(SUM_CHUNK)) * r_cols * d
}

/// Runs the fused pass (launch configuration `VARIANTS[variant]`, which must `fit`) over `params.rows` rows
/// of X (contiguous at `x`, d features) with P (q×d) at `proj`. `params` carries the op and its per-row
/// outputs (Gram weights, sum terms, H, probability store: written as `row_op` writes them; `params.a` and
/// `params.r` unused, A and R stay on chip). XᵀR (r_cols×d, row-major) goes to `out`: the block partials, in
/// `partial` (`partial_len` values), summed in a fixed order (chunks of SUM_CHUNK blocks in block order, then
/// the chunks in order: `xtw::sum_partials`), so the same bits run to run.
#[allow(clippy::too_many_arguments)]
pub(crate) fn launch(
    ctx: &Context,
    variant: usize,
    params: &mut RowOpParams,
    x: u64,
    proj: u64,
    d: usize,
    partial: u64,
    out: u64,
) -> Result<()> {
    let (kernel, threads) = VARIANTS[variant];
    let blocks = grid(variant, params.rows as usize);
    let (mut xp, mut pp, mut di, mut part) = (x, proj, d as i32, partial);
    let mut args: [*mut c_void; 5] = [
        params as *mut RowOpParams as *mut c_void,
        &mut xp as *mut _ as _,
        &mut pp as *mut _ as _,
        &mut di as *mut _ as _,
        &mut part as *mut _ as _,
    ];
    ctx.launch(kernel, (blocks as u32, 1, 1), threads, shared_bytes(variant, d) as u32, &mut args)?;
    let outs = params.r_cols as usize * d;
    if outs > 0 {
        let chunks = blocks.div_ceil(SUM_CHUNK);
        let chunk_sums = partial + 8 * (blocks * outs) as u64;
        sum_partials(ctx, partial, blocks, outs, SUM_CHUNK, chunk_sums)?;
        sum_partials(ctx, chunk_sums, chunks, outs, chunks, out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The host's shared-memory arithmetic against kernels/fused_tc.cu `ftc_shared_doubles` (64 rows ×
    /// (stages·(width + 4 + 19) + 33 + 20) doubles), and the fallback where a variant passes the device's
    /// limit.
    #[test]
    fn shared_memory_and_fits() {
        assert_eq!(shared_bytes(0, 100), 8 * 64 * (135 + 53));
        assert_eq!(shared_bytes(1, 100), 8 * 64 * (2 * 135 + 53));
        assert_eq!(shared_bytes(0, 128), 104_448);
        assert_eq!(shared_bytes(1, 128), 181_760);
        assert_eq!(shared_bytes(0, 1), 8 * 64 * (39 + 53));
        // Two blocks of fused_tc per SM of an H100 (228 KB, 1 KB reserved per block) up to d = 128.
        assert!(2 * (shared_bytes(0, 128) + 1024) <= 228 << 10);
        let shape = OpShape {
            q: 30,
            r_cols: 15,
            grams: 0,
            diag_only: false,
            sums: 0,
            h_width: 16,
            writes_h: false,
            p_width: 0,
            writes_p: false,
        };
        let (h100, ada) = (227 << 10, 99 << 10);
        assert!(fits(100, &shape, 0, h100) && fits(100, &shape, 1, h100) && fits(128, &shape, 1, h100));
        // A 99 KB device (sm_86/89): the one-buffer configuration up to d = 112.
        assert!(
            fits(100, &shape, 0, ada)
                && fits(112, &shape, 0, ada)
                && !fits(113, &shape, 0, ada)
                && !fits(100, &shape, 1, ada)
        );
        assert!(!fits(129, &shape, 0, h100));
        assert!(
            !fits(100, &OpShape { q: 33, ..shape }, 0, h100) && !fits(100, &OpShape { r_cols: 17, ..shape }, 0, h100)
        );
        // fused_tc_l2: 128 × (33 + 20) + 48 × (width + 4) doubles; 2 blocks per SM (≤ 113 KB each) up to d = 128,
        // and on a 99 KB device up to d = 112.
        assert_eq!(shared_bytes(2, 100), 8 * (128 * 53 + 48 * 116));
        assert_eq!(shared_bytes(2, 100), 98_816);
        assert_eq!(shared_bytes(2, 128), 104_960);
        assert!(2 * (shared_bytes(2, 128) + 1024) <= 228 << 10);
        assert!(fits(100, &shape, 2, h100) && fits(128, &shape, 2, h100));
        assert!(fits(112, &shape, 2, ada) && !fits(113, &shape, 2, ada));
        assert!(!fits(129, &shape, 2, h100) && !fits(100, &OpShape { q: 33, ..shape }, 2, h100));
        assert_eq!((grid(0, 1000), grid(2, 1000), grid(2, 0), grid(2, 10_000_000)), (16, 8, 1, GRID));
    }

    /// The default policy gives the kernel the passes with XᵀR and without full Grams (the gate's gradient and
    /// Hessian-vector products, the experts' gradient with diag(−H)); `Everywhere` every pass, `Off` none.
    #[test]
    fn which_passes_each_policy_serves() {
        let base = OpShape {
            q: 30,
            r_cols: 15,
            grams: 0,
            diag_only: false,
            sums: 1,
            h_width: 16,
            writes_h: false,
            p_width: 0,
            writes_p: false,
        };
        let estep = OpShape { q: 32, r_cols: 16, grams: 16, sums: 17, writes_h: true, ..base };
        let diag = OpShape { grams: 15, diag_only: true, ..base };
        let objective = OpShape { r_cols: 0, ..base };
        let shapes = [base, diag, estep, objective];
        let served = |policy: FusedPolicy| shapes.map(|sh| policy.serves(&sh));
        assert_eq!(served(FusedPolicy::SavesARead), [true, true, false, false]);
        assert_eq!(served(FusedPolicy::Everywhere), [true; 4]);
        assert_eq!(served(FusedPolicy::Off), [false; 4]);
        for policy in [FusedPolicy::Off, FusedPolicy::SavesARead, FusedPolicy::Everywhere] {
            assert_eq!(FusedPolicy::from_index(policy.index()), policy);
        }
    }
}
