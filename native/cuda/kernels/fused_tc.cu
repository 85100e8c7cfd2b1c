// The fused narrow pass on the fp64 tensor cores, v2 (sm_80 and newer; joined after moe_kernels.cu and
// gram_tc.cu by build.rs). Host side: src/fused.rs. Emulated test: tests/emu/fused_tc.cpp.
//
// A narrow pass (σ² residual, the gate's Newton-CG objective / gradient / Hessian-vector / diag(−H), an
// E-step with k ≤ 16 linear experts) computes A = X·Pᵀ (P q×d), a per-row op on A (moe_kernels.cu
// `eval_row`, the single definition of the per-row mathematics), then XᵀR. It is memory-bound: its floor is
// one read of X. The unfused path reads X twice (cuBLAS A, the skinny XᵀR kernel). The first fused kernel
// (v1) read X once but measured slower than the unfused path on an H100 (bench/GPU.md, 11.7–16.8 ms per pass
// at (1e7, 100) against 5.5–10.5): its row op ran on one warp per 32-row tile while the other 7 waited, and
// it used the m8n8k4 DMMA, which runs at half the fp64 tensor rate of m16n8k16 on Hopper.
//
// Design of fused_tc / fused_tc_pipe (256 threads = 8 warps, tiles of FTC_ROWS = 64 rows; a FIXED grid,
// src/fused.rs `GRID`, block b walking the tiles b, b + gridDim.x, ... in order; fused_tc_l2: see Variants):
//   1. Stage: the whole X tile (64 × width, width = d rounded up to 16, row stride width + 4 ≡ 4 mod 16
//      doubles so that every fragment load below hits 16 distinct 8-byte banks per half-warp) goes to
//      dynamic shared memory by cp.async (16-byte copies where d is even and X 16-byte aligned); columns
//      d..width and the rows past the end of a short last tile are zero-filled by the copy itself (src-size
//      0), never read from global memory. X is read from global memory once per pass. The rows' inputs of
//      the row op come with it (ftc_stage_inputs: y, s, and the H row of ops that only read H, ≤ 16 wide;
//      64 × 19 doubles), so that the row op, on the block's critical path, waits on no global load.
//   2. A = X_tile·Pᵀ (64 × q, q ≤ 32) on the tensor cores: 4 row groups of 16 × ceil(q/8) column tiles of 8.
//      Warp w owns row group w % 4 and, for q > 16, the column tiles 2·(w/4), 2·(w/4)+1 over all k-steps
//      (one A fragment serves two MMAs); for q ≤ 16 both halves of the block compute the column tiles 0, 1,
//      half w/4 the k-steps ≡ w/4 (mod 2), and the odd half is added to the even one through shared memory
//      after a barrier (a fixed order: the same bits every run). A goes to shared memory (row stride 33).
//      P's B fragments are read from global memory each tile (__ldg): P ≤ 32 KB stays in L1 (what the two
//      blocks' ~170 KB of shared memory leave of the SM's 256 KB) or L2, the L1 and shared-memory paths have
//      the same bandwidth, and staging them would cost 32 KB more shared memory per block (one block per SM)
//      or 32 registers per lane across the row op (spills).
//   3. Row op: 64 threads (warps 0 and 1), one row each, call `eval_row` on A in shared memory; R goes to
//      shared memory (row stride 20 ≡ 4 mod 16; rows of a short last tile and columns past r_cols are zero);
//      Gram weights, sum terms, H and the probability store go to global memory exactly as `row_op` writes
//      them, so the host reductions are unchanged. The other 6 warps wait at the barrier: the overlap comes
//      from the other block on the SM (variant 0) or the next tile's copies in flight (variant 1).
//   4. XᵀR += R_tileᵀ·X_tile on the tensor cores: one row tile of 16 (r_cols ≤ 16) × width/8 feature tiles,
//      warp w owning feature tiles w and w + 8, K = the 64 rows (4 k-steps; a short tile skips its all-zero
//      ones); accumulated in registers over all the block's tiles, written once to partial[block] and summed
//      on the device in a fixed order (chunks of 32 blocks, then the chunks: fused.rs `launch`,
//      xtw::sum_partials). No float atomics anywhere.
// MMA shape: m16n8k16 on sm_90 (FTC_KT = 4), and on sm_80 the same fragments as 8 stacked m8n8k4 (FTC_KT = 0,
// mma.cuh: m16n8k16 is the rows g, g + 8 of two m8n8k4 tiles over 4 k-steps), so one body serves both.
// Floor (d = 100, width 112, q = 30, r_cols = 15), per row: A 1.75 m16n8k16, XᵀR 0.875; an SM issues one per
// ~16 cycles; one pass at 3.2 ms is ~84 cycles per row per SM, so the tensor pipe is ~50% busy and loads,
// MMAs and row op must overlap. Shared-memory traffic per row ≈ 6.5 KB (copy-in 0.9, A fragments 1.8, P
// fragments via L1 1.8, XᵀR fragments 1.9) ≈ 51 cycles at 128 B/cycle: under the 84, not by much.
//
// Variants (src/fused.rs `VARIANTS`; the bodies share the helpers below: copies, projection, A store, row op,
// XᵀR step, partials):
//   fused_tc       1 X buffer: 8·64·(width + 4 + 19 + 33 + 20) bytes = 94 KB at d = 100 (102 KB at d = 128),
//                  2 blocks per SM (launch bounds 256 × 2: ≤ 128 registers), whose load and compute phases
//                  interleave.
//   fused_tc_pipe  2 X buffers, a 2-stage cp.async pipeline: the next tile's copies fly while this tile is
//                  multiplied and its row op runs; 161.5 KB at d = 100 (177.5 KB at d = 128), 1 block per SM.
//   fused_tc_l2    (fused_tc_l2_body) 128-row tiles on 128 threads: A (128 × 33) and R (128 × 20) of the tile
//                  stay in shared memory, X does NOT: it streams through a ring of 3 chunks of 16 rows
//                  (cp.async, 2 chunks in flight) once to compute A, then the row op runs on all 128 threads,
//                  then the same rows stream through the ring again for XᵀR. The second read is meant to hit
//                  L2: between a row's two reads each SM reads about one tile per block (128 rows × 800 B ×
//                  2 blocks × 132 SMs ≈ 27 MB of X at d = 100, ≈ 32 MB with y, s, H and the per-row outputs)
//                  against the H100's 50 MB L2: a bet that only the GPU can confirm (a miss costs a second HBM
//                  read of X, the unfused path's traffic, not more). Shared memory 8·(128·53 + 48·(width + 4))
//                  bytes = 96.5 KB at d = 100 (102.5 KB at d = 128): 2 blocks per SM on an H100 (≤ 113 KB
//                  each), so up to 256 rows per SM are in the row op at once, where v2 has 128. Why not more:
//                  256-row tiles (108.5 KB of A and R alone) would leave 1 block per SM, the same 256 rows, and
//                  no other block to overlap the streaming phases with; a 32-row ring stage (2 × 32 rows) does
//                  not fit 2 blocks per SM at d = 128 (121.9 KB). Product 1 per chunk: warp w the column-tile
//                  pair w % 2 over the k-steps ≡ w / 2 (mod 2), the odd half added to the even one after the
//                  next chunk's barrier (a fixed order); XᵀR one k-step per chunk, warp w the feature tiles w,
//                  w + 4, w + 8, w + 12. The ring runs across phases: pass 1's first chunks load during the row
//                  op, the next tile's during pass 1. An L2 eviction hint (createpolicy + cp.async
//                  .L2::cache_hint: evict_last on the first read, evict_first on the second) is a lead for the
//                  GPU session if the second read misses; not used here.
// ptxas (nvcc 13, -O3, the joined source; registers sm_80 / sm_90, spills): fused_tc 128 / 128, fused_tc_pipe
// 140 / 137, fused_tc_l2 202 / 199 (launch bounds 128 × 2: up to 255; 2 blocks × 128 × 202 fit the 64k
// registers), no spills; the 2048-byte stack frame is eval_row's local arrays, as in `row_op`. (Before
// `eval_row` took p and log p from the same exponentials: fused_tc 118 / 120, fused_tc_pipe 120 / 122,
// fused_tc_l2 178 / 188.)
// Limits (src/fused.rs `fits`): d ≤ 128, q ≤ 32, r_cols ≤ 16, and the variant's shared memory within the
// device's per-block limit (fused_tc_l2 on a 99 KB device: d ≤ 112); other passes take the unfused path.

#if MOE_HAS_DMMA

#define FTC_ROWS 64       // rows per tile (two warps of row op)
#define FTC_THREADS 256   // 8 warps
#define FTC_MAX_D 128
#define FTC_MAX_Q 32      // 4 column tiles of 8 of A
#define FTC_MAX_R 16      // one m16 tile of Rᵀ
#define FTC_AS 33         // A row stride: odd, the row op's lanes fall in distinct banks
#define FTC_RS 20         // R row stride ≡ 4 (mod 16): conflict-free fragments
#define FTC_STAGED_H 16   // widest H row staged with the tile (ftc_stage_inputs)
#define FTC_IN_STRIDE 19  // per-row inputs: y, s, H (≤ 16); odd, the row op's lanes fall in distinct banks

#if MOE_HAS_DMMA_M16
#define FTC_KT 4
#else
#define FTC_KT 0
#endif

// D (16×8) += A (16×16)·B (16×8) with mma.cuh's m16n8k16 fragments: one m16n8k16 (KT = 4) or the 8 m8n8k4 it
// is made of (KT = 0, sm_80). `upper`: false skips rows 8..15 of A (KT = 0 only: the m16 shape computes them).
template <int KT>
__device__ __forceinline__ void ftc_mma(double (&d)[4], const double (&a)[8], const double (&b)[4], bool upper = true) {
    if constexpr (KT == 4) {
#if MOE_HAS_DMMA_M16
        dmma_16x8x16(d, a, b);
#endif
    } else {
#pragma unroll
        for (int s = 0; s < 4; ++s) {
            dmma_8x8x4(d[0], d[1], a[2 * s], b[s]);
            if (upper) dmma_8x8x4(d[2], d[3], a[2 * s + 1], b[s]);
        }
    }
}

// The dynamic shared memory of a launch with STAGES X buffers, each with its rows' inputs (src/fused.rs
// `shared_bytes`), in doubles.
__host__ __device__ __forceinline__ int ftc_shared_doubles(int stages, int d) {
    const int width = 16 * ((d + 15) / 16);
    return FTC_ROWS * (stages * (width + 4 + FTC_IN_STRIDE) + FTC_AS + FTC_RS);
}

// fused_tc_l2: tiles of FTL_ROWS rows, one thread per row; X streamed through a ring of FTL_RING chunks of
// FTL_CHUNK rows, twice per tile (for A, then for XᵀR: the second read from L2).
#define FTL_ROWS 128
#define FTL_THREADS FTL_ROWS
#define FTL_CHUNK 16
#define FTL_RING 3

// The dynamic shared memory of fused_tc_l2 (src/fused.rs `shared_bytes`), in doubles: A and R of a tile, the
// X ring.
__host__ __device__ __forceinline__ int ftl_shared_doubles(int d) {
    const int width = 16 * ((d + 15) / 16);
    return FTL_ROWS * (FTC_AS + FTC_RS) + FTL_RING * FTL_CHUNK * (width + 4);
}

// ---- Pieces shared by the bodies (the v2 body below and the L2 body after it) ----

// Copy slots of a block of `threads` threads: column cx (and cx + 1 in 16-byte mode, where d is even and X
// 16-byte aligned) of rows cr, cr + row_step, ... of a row range; width ≤ FTC_MAX_D ≤ threads, so
// row_step ≥ 1.
struct FtcCopy {
    bool pairs16, copies, col_in;
    int row_step, cr, cx;
};
__device__ __forceinline__ FtcCopy ftc_copy_slots(const double* x, int d, int width, int tid, int threads) {
    FtcCopy s;
    s.pairs16 = d % 2 == 0 && (reinterpret_cast<unsigned long long>(x) & 15) == 0;
    const int per_row = s.pairs16 ? width / 2 : width;
    s.row_step = threads / per_row;
    s.cr = tid / per_row;
    s.cx = (tid % per_row) * (s.pairs16 ? 2 : 1);
    s.copies = s.cr < s.row_step;
    s.col_in = s.cx < d;
    return s;
}
// Issues the cp.async copies of `rows` rows of X from pass row row0 into dst (row stride xstride): zeros past
// d and in the rows past nrows, filled by the copy itself (src-size 0), never read from global memory.
__device__ __forceinline__ void ftc_copy_rows(const FtcCopy& s, const double* x, int d, int row0, int nrows, int rows,
                                              double* dst, int xstride) {
    if (!s.copies) return;
    for (int r = s.cr; r < rows; r += s.row_step) {
        const bool valid = s.col_in && r < nrows;
        const double* src = valid ? x + (size_t)(row0 + r) * d + s.cx : x;
        if (s.pairs16) cp_async_16(dst + r * xstride + s.cx, src, valid);
        else cp_async_8(dst + r * xstride + s.cx, src, valid);
    }
}

// Whether the op's H rows are staged with the tile: ops that read H and never write it (every op but the
// E-steps, which store H through the row pointer), up to FTC_STAGED_H wide.
__device__ __forceinline__ bool ftc_stages_h(const RowOpParams& p) {
    return p.h_width > 0 && p.h_width <= FTC_STAGED_H && p.op != OP_ESTEP && p.op != OP_SYM_ESTEP;
}
// Issues the cp.async copies of the per-row inputs of `nrows` pass rows from row0 into dst (FTC_IN_STRIDE
// doubles a row): y at 0, s at 1 (when the pass has weights), the H row at 2.. (`stage_h`; through idx for
// gathered rows), so that the row op reads shared memory instead of waiting on global loads.
__device__ __forceinline__ void ftc_stage_inputs(const RowOpParams& p, bool stage_h, int row0, int nrows, double* dst, int tid,
                                                 int threads) {
    const int cols = 2 + (stage_h ? p.h_width : 0);
    for (int e = tid; e < nrows * cols; e += threads) {
        const int r = e / cols, c = e - r * cols, row = row0 + r;
        const double* src;
        if (c == 0) src = p.y + row;
        else if (c == 1) src = p.s ? p.s + row : nullptr;
        else src = p.h + (size_t)(p.idx ? p.idx[row] : (unsigned)row) * p.h_width + (c - 2);
        if (src) cp_async_8(dst + r * FTC_IN_STRIDE + c, src, true);
    }
}

// A warp's share of A = X·Pᵀ: column tiles nb, nb + 1 (`second`: the latter exists) over the k-steps ks0,
// ks0 + kstep, ... of one 16-row group; `projects`: column tile nb exists (warp-uniform). B fragments
// b[j][s] = Pᵀ[16ks + t + 4s][8(nb + j) + g] = P[8(nb + j) + g][16ks + t + 4s], read through __ldg (L1).
struct FtcProj {
    const double* p0;
    const double* p1;
    int n_0, n_1, nb, ks0, kstep;
    bool projects, second;
};
__device__ __forceinline__ FtcProj ftc_proj(const double* proj, int q, int d, int g, int nb, int ks0, int kstep) {
    FtcProj f;
    f.nb = nb;
    f.ks0 = ks0;
    f.kstep = kstep;
    f.projects = 8 * nb < q;
    f.second = 8 * (nb + 1) < q;
    f.n_0 = 8 * nb + g;
    f.n_1 = f.n_0 + 8;
    f.p0 = proj + (size_t)min(f.n_0, max(q - 1, 0)) * d;
    f.p1 = proj + (size_t)min(f.n_1, max(q - 1, 0)) * d;
    return f;
}
// c[j] = the row group's A in column tile nb + j (zero where the warp does not project): xa points at
// X[m0 + g][t] of the staged rows (row stride xstride); a[2s + i] = X[m0 + g + 8i][16ks + t + 4s].
template <int KT>
__device__ __forceinline__ void ftc_project(double (&c)[2][4], const FtcProj& f, const double* xa, int xstride, int q,
                                            int d, int ksteps, int t) {
#pragma unroll
    for (int j = 0; j < 2; ++j) c[j][0] = c[j][1] = c[j][2] = c[j][3] = 0.0;
    if (!f.projects) return;
    for (int ks = f.ks0; ks < ksteps; ks += f.kstep) {
        double a[8], b0[4], b1[4];
#pragma unroll
        for (int s = 0; s < 4; ++s) {
            const int k = 16 * ks + 4 * s;
            a[2 * s] = xa[k];
            a[2 * s + 1] = xa[8 * xstride + k];
            const bool kin = k + t < d;
            b0[s] = kin && f.n_0 < q ? __ldg(f.p0 + k + t) : 0.0;
            b1[s] = kin && f.n_1 < q ? __ldg(f.p1 + k + t) : 0.0;
        }
        ftc_mma<KT>(c[0], a, b0);
        if (f.second) ftc_mma<KT>(c[1], a, b1);
    }
}
// A to shared memory (row stride FTC_AS): D[g + 8i][2t + e] = c[j][2i + e] is A[m0 + g + 8i][8(nb + j) + 2t + e];
// `add`: added to what is there (the other k-half, stored first: a fixed order).
__device__ __forceinline__ void ftc_store_a(double* as, const double (&c)[2][4], int m0, int g, int t, int nb, int q, bool add) {
#pragma unroll
    for (int j = 0; j < 2; ++j)
#pragma unroll
        for (int i = 0; i < 2; ++i)
#pragma unroll
            for (int e = 0; e < 2; ++e) {
                const int col = 8 * (nb + j) + 2 * t + e;
                double* dst = as + (m0 + g + 8 * i) * FTC_AS + col;
                if (col < q) *dst = add ? *dst + c[j][2 * i + e] : c[j][2 * i + e];
            }
}

// The row op of tile row r (pass row row0 + r) on A in shared memory: R into shared memory (row stride FTC_RS),
// Gram weights, sum terms, H and the probability store to global memory exactly as `row_op` writes them. Rows
// past the end of a short last tile get a zero R row (their X rows are zero, but 0·NaN is not). `in`: the
// tile's staged inputs (ftc_stage_inputs, `staged_h`: with the H rows), or null: y, s and H from global memory.
__device__ __forceinline__ void ftc_row_op(const RowOpParams& p, const double* as, double* rs, int row0, int nrows, int r,
                                           const double* in = nullptr, bool staged_h = false) {
    if (r < nrows) {
        const int row = row0 + r;
        RowOut o = {rs + r * FTC_RS, p.gw + (size_t)row * p.grams, p.sv + (size_t)row * p.sums};
        const double* ri = in ? in + r * FTC_IN_STRIDE : nullptr;
        const double y = ri ? ri[0] : p.y[row], s = p.s ? (ri ? ri[1] : p.s[row]) : 1.0;
        double* hrow = staged_h ? const_cast<double*>(ri + 2) : h_row(p, row);  // staged: read only (ftc_stages_h)
        eval_row(p, as + r * FTC_AS, y, s, hrow, p_row(p, row), o);
    } else {
        for (int col = 0; col < FTC_MAX_R; ++col) rs[r * FTC_RS + col] = 0.0;
    }
}

// One 16-row k-step of XᵀR += Rᵀ·X for the feature tiles ft0 + ftstep·u (u < NU, those < ftiles): rr points at
// R[16ks + t][g] (row stride FTC_RS), xb at X[16ks + t][g] (row stride xstride). A fragment a[2s + i] =
// Rᵀ[g + 8i][16ks + t + 4s] = R[16ks + t + 4s][g + 8i], B fragment b[s] = X[16ks + t + 4s][8·ft + g];
// `upper`: R columns 8..15 exist.
template <int KT, int NU>
__device__ __forceinline__ void ftc_xtr_step(double (&acc)[NU][4], const double* rr, const double* xb, int xstride,
                                             int ft0, int ftstep, int ftiles, bool upper) {
    double a[8];
#pragma unroll
    for (int s = 0; s < 4; ++s) {
        a[2 * s] = rr[4 * s * FTC_RS];
        a[2 * s + 1] = rr[4 * s * FTC_RS + 8];
    }
#pragma unroll
    for (int u = 0; u < NU; ++u) {
        const int ft = ft0 + ftstep * u;
        if (ft < ftiles) {
            double b[4];
#pragma unroll
            for (int s = 0; s < 4; ++s) b[s] = xb[4 * s * xstride + 8 * ft];
            ftc_mma<KT>(acc[u], a, b, upper);
        }
    }
}
// The block's partial XᵀR (r_cols×d, row-major) at partial[blockIdx.x]: acc[u][2i + e] is (R column g + 8i,
// feature 8ft + 2t + e), ft = ft0 + ftstep·u.
template <int NU>
__device__ __forceinline__ void ftc_write_partial(double* partial, const double (&acc)[NU][4], int ft0, int ftstep,
                                                  int ftiles, int g, int t, int rc, int d) {
    const size_t outs = (size_t)rc * d;
#pragma unroll
    for (int u = 0; u < NU; ++u) {
        const int ft = ft0 + ftstep * u;
        if (ft < ftiles)
#pragma unroll
            for (int i = 0; i < 2; ++i)
#pragma unroll
                for (int e = 0; e < 2; ++e) {
                    const int row = g + 8 * i, f = 8 * ft + 2 * t + e;
                    if (row < rc && f < d) partial[blockIdx.x * outs + (size_t)row * d + f] = acc[u][2 * i + e];
                }
    }
}

// ---- v2: whole 64-row tiles of X in shared memory (fused_tc, fused_tc_pipe) ----

// One block's work. p: the row op with its per-row output pointers (p.a, p.r unused: A and R stay in shared
// memory); x: the pass's rows (rows×d, contiguous; H rows through p.idx); proj: P (q×d); partial: gridDim.x ×
// (r_cols×d) block partials of XᵀR. blockDim.x must be FTC_THREADS.
template <int KT, int STAGES>
__device__ __forceinline__ void fused_tc_body(const RowOpParams& p, const double* __restrict__ x,
                                              const double* __restrict__ proj, int d, double* __restrict__ partial) {
    static_assert(STAGES == 1 || STAGES == 2, "one buffer, or a two-stage pipeline");
    MOE_DYNAMIC_SHARED(smem);
    const int width = 16 * ((d + 15) / 16), xstride = width + 4;
    double* const xs = smem;                                  // STAGES × FTC_ROWS × xstride
    double* const as = xs + STAGES * FTC_ROWS * xstride;      // FTC_ROWS × FTC_AS
    double* const rs = as + FTC_ROWS * FTC_AS;                // FTC_ROWS × FTC_RS
    double* const ins = rs + FTC_ROWS * FTC_RS;               // STAGES × FTC_ROWS × FTC_IN_STRIDE: the rows' inputs
    const bool staged_h = ftc_stages_h(p);
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int g = lane / 4, t = lane % 4;  // fragment row and column (kernels/mma.cuh)
    const int q = p.q, rc = p.r_cols;
    const int ksteps = width / 16, ftiles = width / 8;

    // Product 1: this warp's row group m0.. and column tiles nb, nb + 1 over k-steps ks0, ks0 + kstep, ...
    const int nct = (q + 7) / 8;
    const bool ksplit = nct <= 2;  // block-uniform
    const int m0 = 16 * (warp % 4), half = warp / 4;
    const FtcProj pj = ftc_proj(proj, q, d, g, ksplit ? 0 : 2 * half, ksplit ? half : 0, ksplit ? 2 : 1);

    const FtcCopy cs = ftc_copy_slots(x, d, width, tid, FTC_THREADS);
    const int tiles = (p.rows + FTC_ROWS - 1) / FTC_ROWS;
    // Issues tile `tile`'s copies into X buffer `buf` and commits a group (an empty one past the last tile,
    // so that the waits count uniformly).
    auto stage = [&](int tile, int buf) {
        if (tile < tiles) {
            const int row0 = tile * FTC_ROWS, nrows = min(FTC_ROWS, p.rows - row0);
            ftc_copy_rows(cs, x, d, row0, nrows, FTC_ROWS, xs + buf * FTC_ROWS * xstride, xstride);
            ftc_stage_inputs(p, staged_h, row0, nrows, ins + buf * FTC_ROWS * FTC_IN_STRIDE, tid, FTC_THREADS);
        }
        cp_async_commit();
    };

    // R's columns past r_cols are never written: zero once (rows past a short tile: zeroed by the row op).
    for (int e = tid; e < FTC_ROWS * FTC_RS; e += FTC_THREADS) rs[e] = 0.0;
    // XᵀR accumulators: feature tiles warp + 8u (u = 0, 1), D rows g / g + 8 = R columns, D columns = features.
    double acc[2][4];
#pragma unroll
    for (int u = 0; u < 2; ++u) acc[u][0] = acc[u][1] = acc[u][2] = acc[u][3] = 0.0;

    int buf = 0;
    if constexpr (STAGES == 2) stage(blockIdx.x, 0);
    for (int tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
        const int row0 = tile * FTC_ROWS, nrows = min(FTC_ROWS, p.rows - row0);
        if constexpr (STAGES == 1) {
            __syncthreads();  // every warp is done with the previous tile's X, A and R
            stage(tile, 0);
            cp_async_wait<0>();
            __syncthreads();  // every thread's copies have landed
        } else {
            cp_async_wait<0>();  // this thread's copies of this tile have landed ...
            __syncthreads();     // ... and every thread's; every warp is done with the previous tile,
            stage(tile + gridDim.x, buf ^ 1);  // whose X buffer the next tile's copies overwrite
        }
        const double* bx = xs + buf * FTC_ROWS * xstride;

        // 2. A = X_tile·Pᵀ; the odd k-half (ksplit) is added to the even one after a barrier.
        double c[2][4];
        ftc_project<KT>(c, pj, bx + (m0 + g) * xstride + t, xstride, q, d, ksteps, t);
        if (pj.projects && (!ksplit || half == 0)) ftc_store_a(as, c, m0, g, t, pj.nb, q, false);
        if (ksplit) {
            __syncthreads();
            if (pj.projects && half == 1) ftc_store_a(as, c, m0, g, t, pj.nb, q, true);
        }
        __syncthreads();

        // 3. The row op: warps 0 and 1, one thread per row, on the staged inputs.
        if (tid < FTC_ROWS) ftc_row_op(p, as, rs, row0, nrows, tid, ins + buf * FTC_ROWS * FTC_IN_STRIDE, staged_h);
        __syncthreads();

        // 4. XᵀR += R_tileᵀ·X_tile, a short tile skipping its all-zero k-steps.
        if (rc > 0) {
            const int steps = (nrows + 15) / 16;
            for (int ks = 0; ks < steps; ++ks)
                ftc_xtr_step<KT, 2>(acc, rs + (16 * ks + t) * FTC_RS + g, bx + (16 * ks + t) * xstride + g, xstride, warp, 8,
                                    ftiles, rc > 8);
        }
        if constexpr (STAGES == 2) buf ^= 1;
    }
    cp_async_wait<0>();  // nothing may still be landing in shared memory when the block exits
    ftc_write_partial<2>(partial, acc, warp, 8, ftiles, g, t, rc, d);
}

// ---- fused_tc_l2: 128-row tiles, A and R in shared memory, X streamed twice (the second read from L2) ----

// One block's work, the same contract as fused_tc_body; blockDim.x must be FTL_THREADS. Per tile of 128 rows:
//   pass 0  the tile's X streams through the ring in 16-row chunks (cp.async, FTL_RING − 1 chunks in flight);
//           each chunk's A rows = X_chunk·Pᵀ go to shared memory (4 warps: column-tile pair w % 2, k-steps
//           ≡ w / 2 mod 2; the odd k-half is added to the even one after the next barrier, a fixed order);
//   row op  on all 128 threads, one row each (ftc_row_op), R to shared memory;
//   pass 1  the same rows of X stream through the ring again (read from L2, if they are still there) and
//           XᵀR += R_chunkᵀ·X_chunk (one k-step per chunk; warp w owns feature tiles w, w + 4, w + 8, w + 12,
//           accumulated in registers over all the block's tiles).
// The ring never stops: chunks are issued in the block's order (tile, pass, chunk), so the first chunks of
// pass 1 load during the row op and those of the next tile during pass 1. One barrier per chunk. A pass
// without XᵀR (r_cols = 0: objective, σ² residual) skips pass 1: X streams once.
template <int KT>
__device__ __forceinline__ void fused_tc_l2_body(const RowOpParams& p, const double* __restrict__ x,
                                                 const double* __restrict__ proj, int d, double* __restrict__ partial) {
    MOE_DYNAMIC_SHARED(smem);
    const int width = 16 * ((d + 15) / 16), xstride = width + 4;
    double* const as = smem;                      // FTL_ROWS × FTC_AS
    double* const rs = as + FTL_ROWS * FTC_AS;    // FTL_ROWS × FTC_RS
    double* const ring = rs + FTL_ROWS * FTC_RS;  // FTL_RING × FTL_CHUNK × xstride
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int g = lane / 4, t = lane % 4;
    const int q = p.q, rc = p.r_cols;
    const int ksteps = width / 16, ftiles = width / 8;
    const int half = warp / 2;  // k-half of product 1
    const FtcProj pj = ftc_proj(proj, q, d, g, 2 * (warp % 2), half, 2);
    const FtcCopy cs = ftc_copy_slots(x, d, width, tid, FTL_THREADS);
    const int tiles = (p.rows + FTL_ROWS - 1) / FTL_ROWS;
    const int passes = rc > 0 ? 2 : 1;  // no XᵀR (r_cols = 0): X streams once per tile
    auto tile_rows = [&](int tile) { return min(FTL_ROWS, p.rows - tile * FTL_ROWS); };

    // The producer: the next chunk to issue (tile, pass, chunk) into ring slot `slot`; a group is committed
    // per chunk (an empty one past the block's last tile, so that the waits count uniformly).
    int put_tile = blockIdx.x, put_pass = 0, put_chunk = 0, put_slot = 0;
    auto issue = [&]() {
        if (put_tile < tiles) {
            const int nrows = tile_rows(put_tile), r0 = FTL_CHUNK * put_chunk;
            ftc_copy_rows(cs, x, d, put_tile * FTL_ROWS + r0, min(FTL_CHUNK, nrows - r0), FTL_CHUNK,
                          ring + put_slot * FTL_CHUNK * xstride, xstride);
            if (++put_chunk == (nrows + FTL_CHUNK - 1) / FTL_CHUNK) {
                put_chunk = 0;
                if (++put_pass == passes) {
                    put_pass = 0;
                    put_tile += gridDim.x;
                }
            }
        }
        cp_async_commit();
        put_slot = put_slot == FTL_RING - 1 ? 0 : put_slot + 1;
    };

    for (int e = tid; e < FTL_ROWS * FTC_RS; e += FTL_THREADS) rs[e] = 0.0;  // R columns past r_cols stay zero
    double acc[4][4];
#pragma unroll
    for (int u = 0; u < 4; ++u) acc[u][0] = acc[u][1] = acc[u][2] = acc[u][3] = 0.0;

    static_assert(FTL_RING == 3, "the waits below keep FTL_RING - 1 = 2 chunks in flight");
    issue();
    issue();
    int slot = 0;
    for (int tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
        const int row0 = tile * FTL_ROWS, nrows = tile_rows(tile), chunks = (nrows + FTL_CHUNK - 1) / FTL_CHUNK;
        double c[2][4];
        int pending = -1;  // odd k-half (half 1): the chunk whose product in c is still to be added to A
        for (int pass = 0; pass < passes; ++pass) {
            for (int j = 0; j < chunks; ++j) {
                cp_async_wait<1>();  // this thread's copies of this chunk have landed ...
                __syncthreads();     // ... and every thread's; every warp is done with the previous chunk, whose
                issue();             // slot the chunk after next overwrites; half 0's A stores are visible
                const double* bx = ring + slot * FTL_CHUNK * xstride;
                slot = slot == FTL_RING - 1 ? 0 : slot + 1;
                if (pass == 0) {
                    if (pending >= 0 && pj.projects) ftc_store_a(as, c, FTL_CHUNK * pending, g, t, pj.nb, q, true);
                    ftc_project<KT>(c, pj, bx + g * xstride + t, xstride, q, d, ksteps, t);
                    if (half == 0) {
                        if (pj.projects) ftc_store_a(as, c, FTL_CHUNK * j, g, t, pj.nb, q, false);
                    } else {
                        pending = j;
                    }
                } else {
                    ftc_xtr_step<KT, 4>(acc, rs + (FTL_CHUNK * j + t) * FTC_RS + g, bx + t * xstride + g, xstride, warp, 4,
                                        ftiles, rc > 8);
                }
            }
            if (pass == 0) {
                __syncthreads();  // half 0's stores of the last chunk are visible
                if (pending >= 0 && pj.projects) ftc_store_a(as, c, FTL_CHUNK * pending, g, t, pj.nb, q, true);
                pending = -1;
                __syncthreads();  // A is complete
                ftc_row_op(p, as, rs, row0, nrows, tid);
                // Pass 1's first barrier makes R visible; pass 0 of the next tile overwrites A after at least one
                // barrier of pass 1, the row op's R after its own barriers.
            }
        }
    }
    cp_async_wait<0>();  // nothing may still be landing in shared memory when the block exits
    ftc_write_partial<4>(partial, acc, warp, 4, ftiles, g, t, rc, d);
}

// The launch configurations (src/fused.rs `VARIANTS`): one X buffer and 2 blocks per SM (≤ 128 registers),
// or the two-stage cp.async pipeline and 1 block per SM. Dynamic shared memory: ftc_shared_doubles(1 or 2, d).
#define FTC_PARAMS RowOpParams p, const double* __restrict__ x, const double* __restrict__ proj, int d, double* __restrict__ partial
extern "C" __global__ void __launch_bounds__(FTC_THREADS, 2) fused_tc(FTC_PARAMS) {
    fused_tc_body<FTC_KT, 1>(p, x, proj, d, partial);
}
extern "C" __global__ void __launch_bounds__(FTC_THREADS, 1) fused_tc_pipe(FTC_PARAMS) {
    fused_tc_body<FTC_KT, 2>(p, x, proj, d, partial);
}
// 128 threads, 2 blocks per SM (shared memory: ftl_shared_doubles(d), 96.5 KB at d = 100).
extern "C" __global__ void __launch_bounds__(FTL_THREADS, 2) fused_tc_l2(FTC_PARAMS) {
    fused_tc_l2_body<FTC_KT>(p, x, proj, d, partial);
}

#endif  // MOE_HAS_DMMA
