// The fused narrow pass on the fp64 tensor cores (sm_80 and newer; joined after moe_kernels.cu by build.rs).
//
// A narrow pass (σ² residual, the gate's Newton-CG objective / gradient / Hessian-vector / diag(−H), an
// E-step with k ≤ 16 linear experts) is memory-bound: its floor is one read of X. The unfused path reads X
// twice (the DGEMMs A = X·Pᵀ and XᵀR) and writes and reads A and R; the first fused kernel read X once but ran
// its projections as scalar loops over P in global memory, its row op on 16 of 256 threads, and needed 128
// registers for 2 blocks per SM (bench/GPU.md: 2–5× slower). This kernel reads X once and does both products
// on the tensor cores (DMMA m8n8k4, kernels/mma.cuh):
//
//   Grid: a FIXED number of blocks (src/fused.rs `GRID`), each walking the row tiles blockIdx.x,
//   blockIdx.x + gridDim.x, ... in order; block b's partial XᵀR goes to partial[b] and the host sums the
//   partials in block order. No float atomics: a pass gives the same bits run to run, on any load.
//   Per tile of FTC_ROWS = 32 rows (default configuration: 256 threads = 8 warps, 2 blocks per SM):
//   1. X tile → shared memory (coalesced; row stride FTC_XS ≡ 4 mod 16 doubles, so that the 8×4 and 4×8
//      fragments below hit 16 distinct 8-byte banks per half-warp); columns d..dp (dp = d rounded up to 8)
//      stay zero, so the DMMA k-steps never read past a row and never see garbage.
//   2. A = X_tile·Pᵀ: warp w computes columns 8·(w mod 4).. +8 of A for all 32 rows (4 DMMA tiles per
//      k-step) over the even (w < 4) or odd (w ≥ 4) k-steps; the odd share is added to the even one through
//      shared memory, in that order. Hence q ≤ 32. The B fragments (≤ 16 doubles per lane) come from P in
//      global memory each tile (L1/L2-resident): kept in registers for the whole pass they would be live
//      across the row op and push the kernel past 128 registers (measured: 148-byte spills on sm_90).
//   3. Row op: warp 0, one thread per row, calls moe_kernels.cu's `eval_row` (the single definition of the
//      per-row mathematics). A full warp of rows: a warp issues every instruction for all 32 lanes whether
//      they are active or not, so spreading 32 rows over 8 warps would cost 8× the issue slots for the
//      transcendental-heavy row op. The other warps wait at the barrier; the other block on the SM (2 per
//      SM: 256 threads × 128 registers, 46 KB of shared memory each) keeps loading and multiplying. R goes
//      to shared memory (rows of a short last tile are zero); Gram weights, sum terms and H go to global
//      memory exactly as `row_op` writes them, so the host reductions (sums, diagonal and full Grams) are
//      unchanged.
//   4. XᵀR += R_tileᵀ·X_tile on the tensor cores: the (r_cols/8)×(dp/8) output tiles are spread over the
//      8 warps (≤ 4 each at r_cols ≤ 16, d ≤ 128), accumulated in registers over all tiles of the block.
// The same code is also built for 128-thread blocks (3 or 4 per SM: more rows of row op in flight per SM),
// to be measured against the default (bench/GPU.md).
// Limits (host: fused.rs `fits`): d ≤ 128, q ≤ 32, r_cols ≤ 16 (static shared memory ≤ 48 KB: the X tile
// 33.8 KB, A 8.4 KB, R 5.1 KB). Other passes take the unfused path.

#if MOE_HAS_DMMA

#define FTC_ROWS 32                    // rows per tile (a full warp of row ops)
#define FTC_MAX_D 128
#define FTC_MAX_Q 32                   // 4 slices of 8 columns of A
#define FTC_MAX_R 16
#define FTC_XS (FTC_MAX_D + 4)         // ≡ 4 (mod 16): conflict-free fragments
#define FTC_AS (FTC_MAX_Q + 1)         // odd: the row op's 32 rows fall in distinct banks
#define FTC_RS (FTC_MAX_R + 4)         // ≡ 4 (mod 16): conflict-free fragments

// The kernel for THREADS = 256 (8 warps: 4 slices of 8 columns of A × 2 shares of the k-steps) or 128 (4 warps,
// all k-steps each). p: the row op with its per-row output pointers (p.a unused: A stays in shared memory);
// x: the pass's rows (rows×d, contiguous; H rows through p.idx); proj: P (q×d); partial: gridDim.x ×
// (r_cols×d) block partials.
template <int THREADS>
__device__ __forceinline__ void fused_tc_body(const RowOpParams& p, const double* x, const double* proj, int d,
                                              double* partial) {
    constexpr int WARPS = THREADS / 32;
    constexpr int KSPLIT = WARPS / 4;                  // warps sharing one 8-column slice of A
    constexpr int KPART = FTC_MAX_D / 4 / KSPLIT;      // k-steps (of 4 features) per warp at most
    constexpr int OUT_TILES = (FTC_MAX_R / 8) * (FTC_MAX_D / 8) / WARPS;  // XᵀR tiles per warp at most
    static_assert(WARPS == 4 || WARPS == 8, "4 slices of A over 4 or 8 warps");
    __shared__ double xs[FTC_ROWS * FTC_XS];
    __shared__ double as[FTC_ROWS * FTC_AS];
    __shared__ double rs[FTC_ROWS * FTC_RS];
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int fr = lane / 4, fc = lane % 4;  // this lane's fragment row and column (kernels/mma.cuh)
    const int q = p.q, rc = p.r_cols;
    const int dp = (d + 7) & ~7;
    const int ksteps = dp / 4, ftiles = dp / 8, out_tiles = ((rc + 7) / 8) * ftiles;

    for (int e = tid; e < FTC_ROWS * FTC_XS; e += THREADS) xs[e] = 0.0;
    for (int e = tid; e < FTC_ROWS * FTC_RS; e += THREADS) rs[e] = 0.0;
    __syncthreads();  // before any thread stages its part of the first tile

    // This warp's part of A: columns n0..n0+8 (slice warp % 4), k-steps ks = KSPLIT·j + kh (kh = warp / 4).
    const int n0 = 8 * (warp % 4), kh = warp / 4;
    // XᵀR accumulators: tile t = warp + WARPS·u covers R columns 8·(t / ftiles).. and features 8·(t % ftiles)..
    double acc[OUT_TILES][2];
#pragma unroll
    for (int u = 0; u < OUT_TILES; ++u) acc[u][0] = acc[u][1] = 0.0;

    // Where this thread's first element of a tile lands (i0, c0); later ones advance by THREADS.
    const int i0 = tid / d, c0 = tid - i0 * d;
    const int tiles = (p.rows + FTC_ROWS - 1) / FTC_ROWS;
    for (int tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
        const int row0 = tile * FTC_ROWS, nrows = min(FTC_ROWS, p.rows - row0);
        // 1. Stage the tile: consecutive threads read consecutive doubles of the contiguous rows.
        const double* xt = x + (size_t)row0 * d;
        int i = i0, c = c0;
        for (int e = tid; e < nrows * d; e += THREADS) {
            xs[i * FTC_XS + c] = xt[e];
            for (c += THREADS; c >= d; c -= d) ++i;
        }
        if (nrows < FTC_ROWS)  // a short last tile: rows past the end are zero, not the previous tile's
            for (int e = nrows * FTC_XS + tid; e < FTC_ROWS * FTC_XS; e += THREADS) xs[e] = 0.0;
        __syncthreads();

        // 2. A = X_tile·Pᵀ: this warp's 8 columns of A for the 4 row groups of 8, over its share of the
        //    k-steps (ks ≡ kh mod KSPLIT); share 0 is stored, then the others added in order (same bits
        //    every run). Its B fragments Pᵀ[k][n] = P[n][k] (n = n0 + fr, k = 4·ks + fc) are re-read every tile: P (≤ 32 KB)
        //    stays in L1/L2, and holding them in registers across the row op would cost 32 registers (spills).
        double a[FTC_ROWS / 8][2];
        const bool projects = n0 < q;
        if (projects) {
            double pf[KPART];
#pragma unroll
            for (int j = 0; j < KPART; ++j) {
                const int n = n0 + fr, k = 4 * (KSPLIT * j + kh) + fc;
                pf[j] = (n < q && k < d) ? proj[(size_t)n * d + k] : 0.0;
            }
#pragma unroll
            for (int mt = 0; mt < FTC_ROWS / 8; ++mt) a[mt][0] = a[mt][1] = 0.0;
#pragma unroll
            for (int j = 0; j < KPART; ++j) {
                const int ks = KSPLIT * j + kh;
                if (ks < ksteps) {
#pragma unroll
                    for (int mt = 0; mt < FTC_ROWS / 8; ++mt)
                        dmma_8x8x4(a[mt][0], a[mt][1], xs[(8 * mt + fr) * FTC_XS + 4 * ks + fc], pf[j]);
                }
            }
        }
        for (int share = 0; share < KSPLIT; ++share) {
            if (projects && kh == share) {
#pragma unroll
                for (int mt = 0; mt < FTC_ROWS / 8; ++mt)
#pragma unroll
                    for (int j = 0; j < 2; ++j) {
                        const int col = n0 + 2 * fc + j;
                        double* dst = as + (8 * mt + fr) * FTC_AS + col;
                        if (col < q) *dst = share == 0 ? a[mt][j] : *dst + a[mt][j];
                    }
            }
            __syncthreads();
        }

        // 3. The row op: warp 0, one thread per row; R into shared memory, the rest to global memory.
        if (tid < nrows) {
            const int row = row0 + tid;
            RowOut o = { rs + tid * FTC_RS, p.gw + (size_t)row * p.grams, p.sv + (size_t)row * p.sums };
            eval_row(p, as + tid * FTC_AS, p.y[row], p.s ? p.s[row] : 1.0, h_row(p, row), p_row(p, row), o);
        } else if (tid < FTC_ROWS) {
            for (int col = 0; col < FTC_MAX_R; ++col) rs[tid * FTC_RS + col] = 0.0;
        }
        __syncthreads();

        // 4. XᵀR += R_tileᵀ·X_tile: A fragment R[i][c] (c = row of the product), B fragment X[i][f].
#pragma unroll
        for (int u = 0; u < OUT_TILES; ++u) {
            const int t = warp + WARPS * u;
            if (t < out_tiles) {
                const int cb = 8 * (t / ftiles), fb = 8 * (t % ftiles);
#pragma unroll
                for (int ks = 0; ks < FTC_ROWS / 4; ++ks) {
                    const int r = 4 * ks + fc;
                    dmma_8x8x4(acc[u][0], acc[u][1], rs[r * FTC_RS + cb + fr], xs[r * FTC_XS + fb + fr]);
                }
            }
        }
        __syncthreads();
    }

    // The block's partial XᵀR (r_cols×d, row-major): lane holds columns 2·fc, 2·fc + 1 of fragment row fr.
    const size_t outs = (size_t)rc * d;
#pragma unroll
    for (int u = 0; u < OUT_TILES; ++u) {
        const int t = warp + WARPS * u;
        if (t < out_tiles) {
            const int row = 8 * (t / ftiles) + fr, fb = 8 * (t % ftiles) + 2 * fc;
#pragma unroll
            for (int j = 0; j < 2; ++j)
                if (row < rc && fb + j < d) partial[blockIdx.x * outs + (size_t)row * d + fb + j] = acc[u][j];
        }
    }
}


// The launch configurations (src/fused.rs `VARIANTS`): 256 threads and 2 blocks per SM (128 registers, no
// spills: the default), and 128 threads with 3 (no spills) or 4 blocks per SM (48 B of spills): more rows in
// the row op at once per SM. The same code; which is fastest is for the GPU to say (bench/GPU.md).
extern "C" __global__ void __launch_bounds__(256, 2)
fused_tc(RowOpParams p, const double* x, const double* proj, int d, double* partial) {
    fused_tc_body<256>(p, x, proj, d, partial);
}
extern "C" __global__ void __launch_bounds__(128, 3)
fused_tc_128x3(RowOpParams p, const double* x, const double* proj, int d, double* partial) {
    fused_tc_body<128>(p, x, proj, d, partial);
}
extern "C" __global__ void __launch_bounds__(128, 4)
fused_tc_128x4(RowOpParams p, const double* x, const double* proj, int d, double* partial) {
    fused_tc_body<128>(p, x, proj, d, partial);
}

#endif  // MOE_HAS_DMMA
