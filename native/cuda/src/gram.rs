//! The Gram reductions of a pass: G_g = Σ_i gw[i][g]·x_i x_iᵀ (full) or its diagonal, for g < grams, over the
//! pass's rows. Full Grams have two implementations (`GramKernel`): the fp64 tensor-core kernel of
//! kernels/gram_tc.cu (the default where it runs: sm_80+, d ≤ 128; measured faster on an H100, bench/GPU.md),
//! or DGEMMs over weight-scaled copies of the rows (`MOE_CUDA_GRAM=gemm`, and the fallback). Both write the same
//! layout: `grams` full symmetric d×d matrices one after another; both reduce in a fixed order (no atomics),
//! so a pass is bit-reproducible on one GPU.

use crate::backend::{blocks, CudaBackend, PassRows, Scratch, State, THREADS};
use crate::driver::Stream;
use crate::xtw::{skinny_xtw, XtwPlan};
use moe_core::Result;
use std::ffi::c_void;
use std::sync::atomic::Ordering;

/// How full weighted Grams are computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GramKernel {
    /// Per chunk of rows, the weight-scaled rows of all Grams side by side and one DGEMM (cuBLAS).
    Gemm,
    /// kernels/gram_tc.cu: the scale in registers, X read about once, the upper triangle on the fp64 tensor
    /// cores. Falls back to `Gemm` for d > `TC_MAX_D`, on devices older than sm_80, or when the module has no
    /// such kernel. The default.
    TensorCore,
}

impl GramKernel {
    /// `MOE_CUDA_GRAM=gemm` or `=tc`; anything else (or unset) is the default, `TensorCore`.
    pub(crate) fn from_env() -> GramKernel {
        match std::env::var("MOE_CUDA_GRAM").as_deref() {
            Ok("gemm") => GramKernel::Gemm,
            _ => GramKernel::TensorCore,
        }
    }
}

/// One compiled variant of the tensor-core Gram kernel (kernels/gram_tc.cu `GRAM_TC_KERNEL`): its DMMA shape
/// (Ampere's m8n8k4, or Hopper's m16n8k16 on sm_90), its staging pipeline (rows per stage, stages in
/// flight) and its work split (Grams per warp, Gram groups and warps per block; the kernel's launch bounds
/// budget registers for `min_blocks` blocks per SM). All write the same partials, and the m16 variants issue
/// the same DMMAs on each accumulator in the same order, so they give identical bits. On an H100 m8n8k4
/// runs at half the fp64 tensor rate of the m16 shapes (33 against 64–66 TFLOP/s,
/// native/cuda/bench/dmma_rate.cu).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcVariant {
    pub name: &'static str,
    /// Needs sm_90 (Hopper's DMMA shapes).
    pub hopper: bool,
    rows: usize,
    stages: usize,
    /// Grams per warp (its accumulators: `grams` × `tiles` blocks of 16×16 features).
    grams: usize,
    /// Super tiles (16×16 features) per warp and Gram: 1, or 2 of the same column sharing its scaled B
    /// fragments (kernels/gram_tc.cu `gram_tc_task`).
    tiles: usize,
    /// Gram groups per block (the warps of all its groups share the staged rows of X).
    groups: usize,
    /// Warps per block at most (the kernel's launch bounds: 32 · max_warps threads).
    max_warps: usize,
    /// Blocks per SM the launch bounds budget registers for (and that the shared memory must allow).
    pub min_blocks: usize,
}

/// The variants, the sm_80 one first (the fallback). `MOE_CUDA_GRAM_TC=<name>` or `set_gram_tc_variant`
/// picks one; the default is `DEFAULT_TC_VARIANT` where the device has it. The later ones are candidates for
/// the m16k16 kernel's low issue rate (kernels/gram_tc.cu header, "Variants"; bench/GPU.md): cw, g2 and b12
/// measured no faster on an H100; p2 (half the scaling multiplies per DMMA) is not measured yet.
#[rustfmt::skip]
pub const TC_VARIANTS: [TcVariant; 6] = [
    TcVariant { name: "gram_tc", hopper: false, rows: 32, stages: 3, grams: 4, tiles: 1, groups: 1, max_warps: 8, min_blocks: 2 },
    TcVariant { name: "gram_tc_m16k16", hopper: true, rows: 32, stages: 3, grams: 4, tiles: 1, groups: 1, max_warps: 8, min_blocks: 2 },
    TcVariant { name: "gram_tc_m16k16_cw", hopper: true, rows: 32, stages: 3, grams: 4, tiles: 1, groups: 1, max_warps: 8, min_blocks: 2 },
    TcVariant { name: "gram_tc_m16k16_g2", hopper: true, rows: 32, stages: 2, grams: 2, tiles: 1, groups: 1, max_warps: 6, min_blocks: 3 },
    TcVariant { name: "gram_tc_m16k16_b12", hopper: true, rows: 64, stages: 3, grams: 4, tiles: 1, groups: 2, max_warps: 12, min_blocks: 1 },
    TcVariant { name: "gram_tc_m16k16_p2", hopper: true, rows: 32, stages: 3, grams: 2, tiles: 2, groups: 1, max_warps: 8, min_blocks: 2 },
];
/// m16n8k16 with 3 stages of 32 rows: the fastest of the shapes and pipelines measured on an H100
/// (kernels/gram_tc.cu, bench/GPU.md).
const DEFAULT_TC_VARIANT: usize = 1;

impl TcVariant {
    /// Bytes of dynamic shared memory at d features: the stages of X rows (stride width + 4) and of the
    /// block's weights.
    pub fn shared_bytes(&self, d: usize) -> usize {
        8 * self.stages * self.rows * (16 * d.div_ceil(16) + 4 + self.groups * self.grams)
    }

    /// A warp's tasks per Gram group over the upper triangle of `halves` × `halves` super tiles: one super tile
    /// each, or (`tiles` = 2) up to two of the same column, ceil((ub + 1) / 2) tasks in column ub.
    /// MIRRORS kernels/gram_tc.cu `gram_tc_tasks`.
    fn tasks(&self, halves: usize) -> usize {
        match self.tiles {
            1 => halves * (halves + 1) / 2,
            _ => (0..halves).map(|ub| (ub + 2) / 2).sum(),
        }
    }

    /// `MOE_CUDA_GRAM_TC`, else the default.
    pub(crate) fn index_from_env() -> usize {
        let name = std::env::var("MOE_CUDA_GRAM_TC").unwrap_or_default();
        TC_VARIANTS.iter().position(|v| v.name == name).unwrap_or(DEFAULT_TC_VARIANT)
    }
}

/// Bytes of weight-scaled rows materialised at once for the GEMM path (512 MiB measured best of 32, 128, 512
/// MiB on an H100, bench/GPU.md). `MOE_CUDA_GRAM_CHUNK_MB` overrides it (the benchmark measures a few values).
fn gram_chunk_bytes() -> usize {
    std::env::var("MOE_CUDA_GRAM_CHUNK_MB").ok().and_then(|v| v.parse::<usize>().ok()).filter(|&v| v > 0).unwrap_or(512)
        << 20
}

// Constants of kernels/gram_tc.cu (GRAM_TC_*).
/// Largest d the tensor-core kernel's shared memory holds.
pub const TC_MAX_D: usize = 128;
/// Rows per chunk are a multiple of this (whole m16n8k16 steps).
const TC_ROWS: usize = 16;
const TC_REDUCE_OUTPUTS: usize = 4;
/// The tensor-core partials (chunks × grams × width²) are kept under this many bytes...
const TC_PARTIAL_BYTES: usize = 256 << 20;
/// ...in at most this many row chunks (thousands of blocks at d = 100, G ≥ 8: many waves on 132 SMs)...
const TC_MAX_CHUNKS: usize = 256;
/// ...of at least this many rows (so that small passes do not pay for many partials).
const TC_MIN_CHUNK_ROWS: usize = 256;

/// The launch of kernels/gram_tc.cu for a pass of `rows` rows: a function of (rows, d, grams) only, so the
/// chunking, hence the order of the floating-point sums, is the same on every run.
/// MIRRORED by tests/emu/gram_tc.cpp (`plan`): change both together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct TcPlan {
    /// grid.x: blocks per Gram group (the warps' tasks spread over them) × blocks of Gram groups.
    blocks_x: u32,
    /// grid.y: row chunks, each summed into its own partial.
    chunks: u32,
    threads: u32,
    rows_per_chunk: usize,
    partial_len: usize,
}

impl TcPlan {
    fn new(rows: usize, d: usize, grams: usize, v: &TcVariant) -> TcPlan {
        // 16×16 super tiles (2×2 DMMA tiles), one warp per task (v.tiles super tiles of the upper triangle)
        // and Gram group (v.grams Grams); a block holds v.groups groups of `warps` warps.
        let halves = d.div_ceil(16);
        let width = 16 * halves;
        let tasks = v.tasks(halves);
        // As many warps per group as keep the blocks evenly filled (d = 100: 28 super tiles, 4 × 7 with ≤ 8
        // warps; p2: 16 tasks, 2 × 8).
        let blocks_per_group = tasks.div_ceil(v.max_warps / v.groups);
        let warps = tasks.div_ceil(blocks_per_group);
        let groups = grams.div_ceil(v.grams * v.groups);
        let per_chunk = grams * width * width;
        let max_chunks = (TC_PARTIAL_BYTES / (8 * per_chunk)).clamp(1, TC_MAX_CHUNKS);
        let rows_per_chunk = (rows.div_ceil(max_chunks).div_ceil(TC_ROWS) * TC_ROWS).max(TC_MIN_CHUNK_ROWS);
        let chunks = rows.div_ceil(rows_per_chunk).max(1);
        TcPlan {
            blocks_x: (blocks_per_group * groups) as u32,
            chunks: chunks as u32,
            threads: (32 * warps * v.groups) as u32,
            rows_per_chunk,
            partial_len: chunks * per_chunk,
        }
    }
}

impl CudaBackend {
    /// Chooses how full Grams are computed (the default: `MOE_CUDA_GRAM`, else `TensorCore`). Tests run both.
    pub fn set_gram_kernel(&self, kernel: GramKernel) {
        self.tensor_core_grams.store(kernel == GramKernel::TensorCore, Ordering::Relaxed);
    }

    /// Chooses the tensor-core Gram kernel's variant (an index into `TC_VARIANTS`; the default:
    /// `MOE_CUDA_GRAM_TC`, else the measured fastest).
    pub fn set_gram_tc_variant(&self, index: usize) {
        self.gram_tc_variant.store(index.min(TC_VARIANTS.len() - 1), Ordering::Relaxed);
    }

    /// The variant the tensor-core Grams run with now: the chosen one where this device and module have it,
    /// else the sm_80 one.
    pub fn gram_tc_variant(&self) -> TcVariant {
        let want = TC_VARIANTS[self.gram_tc_variant.load(Ordering::Relaxed)];
        let hopper = self.ctx.info.compute_capability.0 >= 9;
        if !want.hopper || (hopper && self.ctx.has_kernel(want.name)) {
            want
        } else {
            TC_VARIANTS[0]
        }
    }

    /// The kernel that full Grams use on this backend now: the choice of `set_gram_kernel`, or `Gemm` where
    /// the tensor-core kernel cannot run (d > `TC_MAX_D`, a device older than sm_80, no kernel in the module,
    /// or less shared memory per block than its staging needs at this d).
    pub fn full_gram_kernel(&self) -> GramKernel {
        let tc = self.tensor_core_grams.load(Ordering::Relaxed)
            && self.d <= TC_MAX_D
            && self.ctx.info.compute_capability.0 >= 8
            && self.ctx.has_kernel(TC_VARIANTS[0].name)
            && self.gram_tc_variant().shared_bytes(self.d) <= self.ctx.info.max_shared_bytes_per_block
            && self.ctx.has_kernel("gram_tc_reduce");
        if tc {
            GramKernel::TensorCore
        } else {
            GramKernel::Gemm
        }
    }

    /// Rows per Gram chunk of the GEMM path: the bytes of weight-scaled rows materialised at once
    /// (`set_gram_chunk_bytes`, else `MOE_CUDA_GRAM_CHUNK_MB`, else 512 MiB) over the bytes per row.
    fn gram_chunk_rows(&self, bytes_per_row: usize, rows: usize) -> usize {
        let bytes = match self.gram_chunk_bytes.load(Ordering::Relaxed) {
            0 => gram_chunk_bytes(),
            b => b,
        };
        (bytes / bytes_per_row).clamp(1, rows.max(1))
    }

    /// Sets the Gram chunk size of the GEMM path in bytes (0 = the default). A tuning knob for benchmarks,
    /// and lets tests exercise many chunks on small data.
    pub fn set_gram_chunk_bytes(&self, bytes: usize) {
        self.gram_chunk_bytes.store(bytes, Ordering::Relaxed);
    }

    /// The `grams` full Grams of the pass's rows into `out` (grams × d × d), with `full_gram_kernel`.
    pub(crate) fn full_grams(&self, st: &mut State, pr: &PassRows, gw: u64, grams: usize, out: u64) -> Result<()> {
        match self.full_gram_kernel() {
            GramKernel::TensorCore => self.tensor_core_grams(&mut st.scaled, Stream::Main, pr, gw, grams, out),
            GramKernel::Gemm => self.gemm_grams(st, pr, gw, grams, out),
        }
    }

    /// Per chunk of rows, Y = [diag(w_·g)·X_chunk]_g side by side (rows × grams·d), then one DGEMM
    /// X_chunkᵀ·Y (d × grams·d: the Grams one after another), accumulated over the chunks in order (β = 1
    /// after the first).
    fn gemm_grams(&self, st: &mut State, pr: &PassRows, gw: u64, grams: usize, out: u64) -> Result<()> {
        let (d, ctx) = (self.d, &*self.ctx);
        let width = grams * d;
        let chunk = self.gram_chunk_rows(8 * width, pr.rows);
        let scaled = st.scaled.at_least(ctx, chunk * width)?.ptr;
        let mut start = 0;
        while start < pr.rows {
            let rows = chunk.min(pr.rows - start);
            let (mut xp, mut gp, mut r, mut di, mut gi, mut op) = (
                pr.x + 8 * (start * d) as u64,
                gw + 8 * (start * grams) as u64,
                rows as i32,
                d as i32,
                grams as i32,
                scaled,
            );
            let mut args: [*mut c_void; 6] = [
                &mut xp as *mut _ as _,
                &mut gp as *mut _ as _,
                &mut r as *mut _ as _,
                &mut di as *mut _ as _,
                &mut gi as *mut _ as _,
                &mut op as *mut _ as _,
            ];
            ctx.launch("scale_rows", (blocks(rows * width), 1, 1), THREADS, 0, &mut args)?;
            let beta = if start == 0 { 0.0 } else { 1.0 };
            // column-major (d × grams·d) = X_chunk(d×rows) · Y(grams·d × rows)ᵀ
            ctx.dgemm(false, true, d, width, rows, 1.0, xp, d, scaled, width, beta, out, d)?;
            start += rows;
        }
        Ok(())
    }

    /// Values of the partial buffer `tensor_core_grams` needs for a pass of `rows` rows.
    pub(crate) fn tc_partial_len(&self, rows: usize, grams: usize) -> usize {
        TcPlan::new(rows, self.d, grams, &self.gram_tc_variant()).partial_len
    }

    /// kernels/gram_tc.cu on `stream`: `gram_tc` writes each row chunk's upper tiles to a partial (in
    /// `partials`: the GEMM path's scratch for scaled rows, as a pass uses one path or the other, or the side
    /// stream's own), `gram_tc_reduce` sums the partials in chunk order into both triangles.
    pub(crate) fn tensor_core_grams(
        &self,
        partials: &mut Scratch<f64>,
        stream: Stream,
        pr: &PassRows,
        gw: u64,
        grams: usize,
        out: u64,
    ) -> Result<()> {
        let (d, ctx) = (self.d, &*self.ctx);
        let variant = self.gram_tc_variant();
        let plan = TcPlan::new(pr.rows, d, grams, &variant);
        let partial = partials.at_least(ctx, plan.partial_len)?.ptr;
        let (mut xp, mut gp, mut rows, mut di, mut gi, mut per, mut pp) =
            (pr.x, gw, pr.rows as i32, d as i32, grams as i32, plan.rows_per_chunk as i32, partial);
        let mut args: [*mut c_void; 7] = [
            &mut xp as *mut _ as _,
            &mut gp as *mut _ as _,
            &mut rows as *mut _ as _,
            &mut di as *mut _ as _,
            &mut gi as *mut _ as _,
            &mut per as *mut _ as _,
            &mut pp as *mut _ as _,
        ];
        ctx.launch_on(
            stream,
            variant.name,
            (plan.blocks_x, plan.chunks, 1),
            plan.threads,
            variant.shared_bytes(d) as u32,
            &mut args,
        )?;
        let total = grams * d * d;
        let (mut chunks, mut op) = (plan.chunks as i32, out);
        let mut args: [*mut c_void; 5] = [
            &mut pp as *mut _ as _,
            &mut chunks as *mut _ as _,
            &mut di as *mut _ as _,
            &mut gi as *mut _ as _,
            &mut op as *mut _ as _,
        ];
        ctx.launch_on(
            stream,
            "gram_tc_reduce",
            (blocks(total.div_ceil(TC_REDUCE_OUTPUTS)), 1, 1),
            THREADS,
            0,
            &mut args,
        )?;
        Ok(())
    }

    /// diag_g[f] = Σ_i gw[i][g]·x_if² (grams × d) with the skinny Xᵀ·W kernel (one read of X) when it is on
    /// (`set_skinny_xtw`), else by GEMMs over materialised squares.
    pub(crate) fn diagonal_grams(&self, st: &mut State, pr: &PassRows, gw: u64, grams: usize, out: u64) -> Result<()> {
        if self.skinny_xtw.load(Ordering::Relaxed) {
            let plan = XtwPlan::new(pr.rows, self.d);
            let partial = st.partial.at_least(&self.ctx, plan.partial_len(grams, self.d))?.ptr;
            return skinny_xtw(&self.ctx, plan, pr.x, pr.rows, self.d, gw, grams, true, partial, out);
        }
        self.gemm_diagonal_grams(st, pr, gw, grams, out)
    }

    /// Per chunk of rows, the squares X⊙X, then one DGEMM (X⊙X)ᵀ·W (d × grams), accumulated over the chunks
    /// in order.
    fn gemm_diagonal_grams(&self, st: &mut State, pr: &PassRows, gw: u64, grams: usize, out: u64) -> Result<()> {
        let (d, ctx) = (self.d, &*self.ctx);
        let chunk = self.gram_chunk_rows(8 * d, pr.rows);
        let squares = st.scaled.at_least(ctx, chunk * d)?.ptr;
        let mut start = 0;
        while start < pr.rows {
            let rows = chunk.min(pr.rows - start);
            let (mut xp, mut len, mut sp) = (pr.x + 8 * (start * d) as u64, rows * d, squares);
            let mut args: [*mut c_void; 3] = [&mut xp as *mut _ as _, &mut len as *mut _ as _, &mut sp as *mut _ as _];
            ctx.launch("square_rows", (blocks(rows * d), 1, 1), THREADS, 0, &mut args)?;
            let beta = if start == 0 { 0.0 } else { 1.0 };
            // column-major (d × grams) = (X⊙X)(d×rows) · W(grams×rows)ᵀ, i.e. row-major grams×d.
            ctx.dgemm(
                false,
                true,
                d,
                grams,
                rows,
                1.0,
                squares,
                d,
                gw + 8 * (start * grams) as u64,
                grams,
                beta,
                out,
                d,
            )?;
            start += rows;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tc_plan_covers_the_rows_and_the_triangle() {
        let [sm80, m16, cw, g2, b12, p2] = TC_VARIANTS;
        // d = 100, G = 16 at 1e7 rows: 7 super tiles per side, 28 pairs in 4 blocks of 7 warps, 4 Gram groups;
        // 1.6 MB of partials per chunk, so the 256 MiB budget allows 167 chunks of 59888 rows.
        for v in [sm80, m16, cw] {
            let p = TcPlan::new(10_000_000, 100, 16, &v);
            assert_eq!((p.blocks_x, p.threads, p.chunks, p.rows_per_chunk), (16, 224, 167, 59888));
            assert_eq!(p.partial_len, 167 * 16 * 112 * 112);
        }
        // 2 Grams per warp, ≤ 6 warps: 5 blocks of 6 warps (2 idle) for each of 8 groups; the same chunks.
        let p = TcPlan::new(10_000_000, 100, 16, &g2);
        assert_eq!((p.blocks_x, p.threads, p.chunks, p.rows_per_chunk), (40, 192, 167, 59888));
        // 2 groups per block of ≤ 12 warps: 5 blocks of 2 × 6 warps for each pair of groups.
        let p = TcPlan::new(10_000_000, 100, 16, &b12);
        assert_eq!((p.blocks_x, p.threads, p.chunks, p.rows_per_chunk), (10, 384, 167, 59888));
        // 2 super tiles of a column per warp, 2 Grams: 16 tasks in 2 blocks of 8 warps for each of 8 groups.
        let p = TcPlan::new(10_000_000, 100, 16, &p2);
        assert_eq!((p.blocks_x, p.threads, p.chunks, p.rows_per_chunk), (16, 256, 167, 59888));
        // The tasks cover each column's super tiles once: columns of 1..=halves tiles in pairs.
        assert_eq!((1..=8).map(|h| p2.tasks(h)).collect::<Vec<_>>(), [1, 2, 4, 6, 9, 12, 16, 20]);
        assert_eq!((1..=8).map(|h| m16.tasks(h)).collect::<Vec<_>>(), [1, 3, 6, 10, 15, 21, 28, 36]);
        // (1e6, 100, 8): 256 chunks of 3920 rows, 8 blocks each.
        let p = TcPlan::new(1_000_000, 100, 8, &m16);
        assert_eq!((p.blocks_x, p.chunks, p.rows_per_chunk), (8, 256, 3920));
        let wide = TcPlan::new(10_000_000, TC_MAX_D, 136, &m16);
        for v in TC_VARIANTS {
            // `min_blocks` blocks per SM of an H100 (228 KB per SM, 1 KB of it reserved per block) at the
            // largest d.
            assert!(v.min_blocks * (v.shared_bytes(TC_MAX_D) + 1024) <= 228 << 10, "{}", v.name);
            // Small passes: one chunk of at least TC_MIN_CHUNK_ROWS; no rows still launches one (zero) chunk.
            assert_eq!(TcPlan::new(0, 5, 1, &v).chunks, 1);
            assert_eq!(TcPlan::new(1000, 5, 1, &v).chunks, 4);
            // Many Grams at the largest d: the partial budget bounds the chunks, the same for every variant
            // (the order of the sums).
            let p = TcPlan::new(10_000_000, TC_MAX_D, 136, &v);
            assert!(8 * p.partial_len <= TC_PARTIAL_BYTES && p.chunks >= 1);
            assert!(p.rows_per_chunk * p.chunks as usize >= 10_000_000);
            assert_eq!(
                (p.chunks, p.rows_per_chunk, p.partial_len),
                (wide.chunks, wide.rows_per_chunk, wide.partial_len)
            );
            for d in 1..=TC_MAX_D {
                for grams in [1, 3, 16] {
                    let p = TcPlan::new(1, d, grams, &v);
                    let halves = d.div_ceil(16);
                    let tasks = v.tasks(halves);
                    let warps = p.threads as usize / 32 / v.groups;
                    assert!(p.threads as usize <= 32 * v.max_warps && 32 * warps * v.groups == p.threads as usize);
                    // The kernel recomputes the blocks per group from its block size: the same split, covering
                    // every task of every Gram.
                    let per_group = tasks.div_ceil(warps);
                    assert_eq!(
                        per_group * grams.div_ceil(v.grams * v.groups),
                        p.blocks_x as usize,
                        "{} d = {d}",
                        v.name
                    );
                    assert!(per_group * warps >= tasks, "{} d = {d}", v.name);
                    // The kernel's copy slots need at least `width` threads per block.
                    assert!(p.threads as usize >= 16 * halves, "{} d = {d}", v.name);
                }
            }
        }
    }
}
