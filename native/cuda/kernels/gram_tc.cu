// Weighted Grams on the fp64 tensor cores (DMMA, kernels/mma.cuh: m8n8k4 on sm_80, m16n8k16 on sm_90):
//   G_g = Σ_i gw[i][g] · x_i x_iᵀ   for g < grams, over the `rows` rows of X (row-major rows×d) and the Gram
// weights gw (row-major rows×grams). The host side is native/cuda/src/gram.rs (`TcPlan`: grid, block and
// partial-buffer arithmetic); the emulated test tests/emu/gram_tc.cpp mirrors that plan.
//
// Why: the GEMM path (gram.rs `full_grams`) materialises weight-scaled copies of the rows (rows × G·d) and
// runs one DGEMM per chunk, ~256 GB of memory traffic per pass at (1e7, 100, 16) and ~13 TFLOP/s effective.
// Here the scale is applied in registers, X is read from HBM about once, and only the upper triangle is
// computed, so the pass is bound by the DMMA rate instead.
//
// Design.
// - Features are padded to `width` = 16·ceil(d/16) (zeros in shared memory; X is never read past d). The
//   output is cut into 8×8 tiles; a warp owns one "super tile" pair (ua ≤ ub) of 2×2 tiles, i.e. the
//   16×16 block of features [16ua, 16ua+16) × [16ub, 16ub+16), for GRAMS = 4 (or 2) Grams at once. On the
//   diagonal (ua = ub) the lower tile is skipped: 3 DMMAs instead of 4.
//   Per k-step (4 rows) a lane loads 4 values of X (2 tiles of A, 2 of B) and 4 weights, forms the 8 scaled
//   B fragments with 8 multiplies and issues 16 m8n8k4 DMMAs, or 8 m16n8k4-equivalents: on an H100 m8n8k4
//   runs at half the fp64 tensor rate of the m16 shapes (bench/GPU.md), so sm_90 uses m16n8k16 (4 k-steps
//   per instruction, the diagonal's lower tile computed and dropped).
// - DMMA operands: G[a][b] += Σ_k A[a][k]·B[k][b] with A[a][k] = X[r_k][16ua + 8i + a] (unscaled) and
//   B[k][b] = w[r_k]·X[r_k][16ub + 8j + b]. With the lane layout of mma.cuh, lane l holds A[l/4][l%4] and
//   B[l%4][l/4]: both are X[r_(l%4)][tile·8 + l/4], so one shared load serves the A and the B fragment of a
//   tile, and the weight of row l%4 scales B in a register.
// - Accumulators: 4 Grams × 2×2 tiles × 2 doubles = 32 doubles (64 registers) per lane; launch bounds cap
//   the kernel at 128 registers (2 blocks of 256 threads per SM): m8n8k4 112–120 registers, no spills;
//   m16n8k16 128 with ~40 bytes spilled.
// - A block = `warps` warps per Gram group (≤ 8 in all, one group per block in the measured kernels) sharing
//   one row chunk; the super-tile pairs of a group are spread over ceil(pairs/8) blocks (the host picks
//   warps = ceil(pairs / blocks) so few warps idle: d = 100 → 28 pairs → 4 blocks of 7 warps). It stages
//   rows of X (padded, row stride width + 4 doubles so that the 16 lanes of a half-warp hit 16 distinct
//   banks: r·stride + c, r, c < 4, distinct mod 16) and their weights in a 3-stage cp.async pipeline of
//   32-row stages in dynamic shared memory (≤ 104 KB at d = 128; see gram_tc_body), and every warp runs its
//   DMMAs over the stage at hand.
// - Grid: (blocks per group × blocks of groups, chunks). blockIdx.x varies fastest, so all blocks of one row chunk
//   are launched together and read the same rows at about the same time: X comes from HBM about once and
//   the other blocks re-read it from L2.
// - Each block writes its upper tiles to partial[chunk][g][width][width] (the lower tiles of that square are
//   never written nor read). gram_tc_reduce sums the chunks in order and writes both triangles: the result
//   is bit-reproducible run to run. No atomics.
//
// Variants (GRAM_TC_KERNEL below, gram.rs `TC_VARIANTS`), written without a GPU after the measurement of
// gram_tc_m16k16 on an H100 (bench/GPU.md: 68.8 ms for 16 Grams at (1e7, 100, 16), ~50% of the m16n8k16
// rate; ncu: 0.33 instructions issued per scheduler cycle, 14 warps per SM = 2 blocks of 7, limited by 128
// registers and the shared memory; 36 bytes spilled). Few warps and a low issue rate point at latency
// (shared loads → multiplies → DMMA, the barrier every 2 steps, spill traffic) rather than at a saturated
// pipe, so each variant changes one of: spills, warps per SM, staging work per DMMA. The register file is
// split over the SM's 4 schedulers (16K registers each), so the warps per SM at R registers are 4 ·
// floor(16384 / (32 · R)) rounded down to whole blocks. All m16 variants issue the same DMMAs on each
// accumulator in the same order as gram_tc_m16k16, hence the same bits (checked by the emulator and, on a
// GPU, by passes.rs). ptxas (nvcc 13, sm_90) and the expected residency at d = 100:
// - gram_tc_m16k16_cw: as gram_tc_m16k16, but the B fragments are loaded and scaled one tile column j at a
//   time (COLWISE), the weights loaded again for each j: 124 registers, no spills (against 128 + 36 bytes),
//   same 2 blocks × 7 warps. Tests whether the spills matter; costs 16 more (broadcast) weight loads per 8
//   DMMAs.
// - gram_tc_m16k16_g2: 2 Grams per warp (half the accumulators), column-wise, 2 stages of 32 rows (60 KB at
//   d = 100, 67 KB at d = 128), ≤ 6 warps per block, launch bounds (192, 3): 95 registers, no spills → 3
//   blocks × 6 warps = 18 warps per SM (5 per scheduler) instead of 14. d = 100: 5 blocks of 6 warps (2
//   idle) per group of 2 Grams, 8 groups. Per DMMA it loads twice the X fragments, and each row chunk is
//   staged by 40 blocks instead of 16 (X crosses L2 → SM 40 times: 320 GB at 1e7 rows, against 128 GB).
// - gram_tc_m16k16_b12: 2 Gram groups per block (GPB = 2: 8 Grams, warps 0..5 on the first group's pairs,
//   6..11 on the second's), ≤ 12 warps, launch bounds (384, 1): 160 registers, no spills; 3 stages of 64 rows
//   (186 KB at d = 100, 210 KB at d = 128: H100 only; less shared memory per block → GEMM path). One block
//   of 12 warps per SM; each staged row of X serves 8 Grams (a chunk staged by 10 blocks instead of 16: fewer
//   copy instructions and L2 reads per DMMA) and a barrier comes every 4 steps instead of 2. d = 100: 5
//   blocks of 2 × 6 warps (4 idle) per 8 Grams. Risk: a single block per SM has no other block to cover its
//   barriers and pipeline fill.
// Measured on an H100 (bench/GPU.md, second session, 16 Grams at (1e7, 100, 16)): m16k16 68.3 ms, cw 70.2,
// g2 102.2, b12 68.4. Then ncu on gram_tc_m16k16: the FP64 pipe that runs the DMMAs also runs the 4 DMULs per
// DMMA that scale B, and 26% of the stalls are those DMULs waiting behind DMMAs ("math pipe throttle"); 26%
// more are fixed-latency waits (DMUL → DMMA operand).
// - gram_tc_m16k16_p2 (written after that, without a GPU): each warp owns TWO super tiles of the same column
//   half ub, (ua[0], ub) and (ua[1], ub), for 2 Grams (TILES = 2, column-wise). Each scaled B fragment serves
//   two DMMAs instead of one: 2 DMULs per DMMA instead of 4, and per m16 step 24 fragment loads + 16 weight
//   loads + 16 DMULs for 8 DMMAs (gram_tc_m16k16: 16 + 32 + 32). The same 32 accumulator doubles per lane;
//   two A fragments live instead of one. d = 100: 16 tasks per Gram pair (columns of 1, 1, 2, 2, 3, 3, 4
//   tasks; 4 of them a lone tile) = 2 blocks of 8 warps, 8 Gram pairs: 16 blocks per row chunk, as
//   gram_tc_m16k16. Each accumulator sees the same DMMAs in the same order: the same bits.
#define GRAM_TC_MAX_D 128   // above it the backend keeps the GEMM path
#define GRAM_TC_GRAMS 4     // Grams per warp at most

#if MOE_HAS_DMMA
#if MOE_HAS_DMMA_M16
// Tile column j of one Gram's 2×2 accumulator tiles (acc[i][j][e]: tile row i, lane values e) through one
// m16n8k16: D rows g / g + 8 are the tiles i = 0 / 1 of column j.
__device__ __forceinline__ void gram_tc_mma_column(double (&acc)[2][2][2], int j, const double (&a)[8], const double (&b)[4]) {
    double d[4] = {acc[0][j][0], acc[0][j][1], acc[1][j][0], acc[1][j][1]};
    dmma_16x8x16(d, a, b);
    acc[0][j][0] = d[0], acc[0][j][1] = d[1], acc[1][j][0] = d[2], acc[1][j][1] = d[3];
}
#endif

// A warp's tasks over the upper triangle of halves × halves super tiles (16×16 features). TILES = 1: one super
// tile (ua, ub) per task, row by row (ua outer). TILES = 2: a column half ub and the row halves ua[0] = 2q,
// ua[1] = 2q + 1 (−1 past the diagonal: the column's lone last tile), column by column: ceil((ub + 1) / 2)
// tasks in column ub. MIRRORED by src/gram.rs `tasks`.
__host__ __device__ __forceinline__ int gram_tc_tasks(int halves, int tiles) {
    if (tiles == 1) return halves * (halves + 1) / 2;
    int tasks = 0;
    for (int ub = 0; ub < halves; ++ub) tasks += (ub + 2) / 2;
    return tasks;
}
template <int TILES>
__device__ __forceinline__ void gram_tc_task(int task, int halves, int (&ua)[TILES], int& ub) {
    if constexpr (TILES == 1) {
        int row = 0, p = task;
        while (p >= halves - row) {
            p -= halves - row;
            ++row;
        }
        ua[0] = row;
        ub = row + p;
    } else {
        int col = 0, q = task;
        while (q >= (col + 2) / 2) {
            q -= (col + 2) / 2;
            ++col;
        }
        ub = col;
        ua[0] = 2 * q;
        ua[1] = 2 * q + 1 <= col ? 2 * q + 1 : -1;
    }
}

// One block's work (see the header). KT = 0: Ampere's m8n8k4, the 2×2 tiles of a super tile as 4 DMMAs
// (3 on the diagonal); KT = 4: Hopper's m16n8k16, the tile rows i = 0, 1 in one instruction per tile column j
// (the diagonal's lower tile is computed and dropped), over 4 k-steps of 4 rows. GRAMS Grams per warp, GPB
// Gram groups per block (its blockDim.x / 32 warps: GPB groups × `warps` pairs); COLWISE (m16 only): load and
// scale the B fragments one tile column at a time (fewer live registers, more weight loads).
//
// Staging is a STAGES-deep software pipeline of ROWS-row stages in dynamic shared memory (the host's
// `TcVariant`): the copies of stage s + STAGES − 1 (cp.async) fly while the warps multiply stage s, one
// barrier per stage. Each thread's copy slots (row, column) are fixed for the whole kernel, so the copy
// loop has no division in it; X travels in 16-byte pairs where d is even and X is 16-byte aligned.
template <int KT, int ROWS, int STAGES, int GRAMS, int GPB, bool COLWISE, int TILES>
__device__ __forceinline__ void gram_tc_body(const double* __restrict__ x, const double* __restrict__ gw, int rows, int d,
                                             int grams, int rows_per_chunk, double* __restrict__ partial) {
    static_assert(ROWS % 16 == 0 && STAGES >= 2, "stages of whole m16n8k16 steps, at least double-buffered");
    static_assert(KT == 0 || KT == 4, "m8n8k4 or m16n8k16");
    static_assert(GRAMS >= 1 && GRAMS <= GRAM_TC_GRAMS && GPB >= 1, "Grams per warp, Gram groups per block");
    static_assert(TILES == 1 || (TILES == 2 && KT == 4 && COLWISE), "two super tiles per warp: m16n8k16, column-wise");
    constexpr int BG = GPB * GRAMS;  // the block's Grams (weights staged per row)
    constexpr int KROWS = 4 * (KT == 0 ? 1 : KT);  // rows per instruction step
    MOE_DYNAMIC_SHARED(smem);
    const int halves = (d + 15) / 16;
    const int width = 16 * halves;
    const int stride = width + 4;  // the 16 lanes of a half-warp hit 16 distinct banks: r·stride + c, r, c < 4
    const int tasks = gram_tc_tasks(halves, TILES);
    // The block's warps: GPB Gram groups × `warps` tasks (super tiles, or pairs of them: TILES) each.
    const int warps = blockDim.x / 32 / GPB;
    const int blocks_per_group = (tasks + warps - 1) / warps;
    const int gb0 = (blockIdx.x / blocks_per_group) * BG;  // the block's first Gram
    const int sub = GPB == 1 ? 0 : threadIdx.x / 32 / warps, lane = threadIdx.x % 32;  // sub: the warp's group
    const int warp = GPB == 1 ? threadIdx.x / 32 : threadIdx.x / 32 % warps;
    const int g0 = gb0 + sub * GRAMS;  // this warp's first Gram
    const int task = (blockIdx.x % blocks_per_group) * warps + warp;
    const bool active = task < tasks && (GPB == 1 || g0 < grams);  // warp-uniform
    // The warp's super tiles (ua[u], ub), u < TILES (ua[1] < 0: a column with an odd count has a lone one).
    int ua[TILES], ub;
    gram_tc_task<TILES>(active ? task : 0, halves, ua, ub);
    const int k = lane % 4, c = lane / 4;
    const int fb = 16 * ub + c;  // this lane's feature in tile 0 of B (tile 1: + 8)
    int fa[TILES];               // ... and of A, per super tile
#pragma unroll
    for (int u = 0; u < TILES; ++u) fa[u] = 16 * ua[u] + c;
    const bool two = TILES == 2 && ua[TILES - 1] >= 0;  // warp-uniform: the second super tile exists

    double* const sx = smem;                              // STAGES × ROWS × stride
    double* const sw = smem + STAGES * ROWS * stride;     // STAGES × ROWS × BG
    // This thread's copy slots: column cx (and cx + 1 when paired) of rows cr, cr + row_step, ... (the host
    // launches at least `width` threads, so row_step ≥ 1).
    const bool pairs16 = d % 2 == 0 && (reinterpret_cast<unsigned long long>(x) & 15) == 0;
    const int per_row = pairs16 ? width / 2 : width;
    const int row_step = blockDim.x / per_row;
    const int cr = threadIdx.x / per_row, cx = (threadIdx.x % per_row) * (pairs16 ? 2 : 1);
    const bool copies_x = cr < row_step, col_in = cx < d;

    double acc[GRAMS][TILES][2][2][2];  // Gram, super tile, DMMA tile row i, column j, lane values
#pragma unroll
    for (int g = 0; g < GRAMS; ++g)
#pragma unroll
        for (int u = 0; u < TILES; ++u)
#pragma unroll
            for (int i = 0; i < 2; ++i)
#pragma unroll
                for (int j = 0; j < 2; ++j) acc[g][u][i][j][0] = acc[g][u][i][j][1] = 0.0;

    const long long row0 = (long long)blockIdx.y * rows_per_chunk;
    const long long row_end = min((long long)rows, row0 + rows_per_chunk);
    const int stages = (int)max(0LL, (row_end - row0 + ROWS - 1) / ROWS);
    // Issues the copies of stage s into buffer s % STAGES: X padded with zeros past d and past the rows,
    // weights zero past the rows (0·stale could be NaN). Always commits a group (empty past the last stage),
    // so that the wait below counts groups uniformly.
    auto stage = [&](int s) {
        if (s < stages) {
            const long long base = row0 + (long long)s * ROWS;
            double* bx = sx + (s % STAGES) * ROWS * stride;
            if (copies_x) {
                for (int r = cr; r < ROWS; r += row_step) {
                    const bool valid = col_in && base + r < row_end;
                    const double* src = valid ? x + (base + r) * d + cx : x;
                    if (pairs16) cp_async_16(bx + r * stride + cx, src, valid);
                    else cp_async_8(bx + r * stride + cx, src, valid);
                }
            }
            for (int e = threadIdx.x; e < ROWS * BG; e += blockDim.x) {  // BG a power of two: shifts
                const int r = e / BG, g = e % BG;
                const bool valid = base + r < row_end && gb0 + g < grams;
                cp_async_8(sw + (s % STAGES) * ROWS * BG + e, valid ? gw + (base + r) * grams + gb0 + g : gw, valid);
            }
        }
        cp_async_commit();
    };
#pragma unroll
    for (int s = 0; s < STAGES - 1; ++s) stage(s);
    for (int s = 0; s < stages; ++s) {
        cp_async_wait<STAGES - 2>();  // this thread's copies of stage s have landed ...
        __syncthreads();              // ... and every thread's; every warp is also done with stage s − 1,
        stage(s + STAGES - 1);        // whose buffer the next copies overwrite
        const double* bx = sx + (s % STAGES) * ROWS * stride;
        const double* bw = sw + (s % STAGES) * ROWS * BG + sub * GRAMS;  // this warp's Grams
        // Instruction steps that hold rows (a short last stage skips its all-zero steps).
        const long long left = row_end - (row0 + (long long)s * ROWS);
        const int steps = (int)min((long long)ROWS / KROWS, (left + KROWS - 1) / KROWS);
        if (active) {
            for (int step = 0; step < steps; ++step) {
                if constexpr (KT == 0) {
                    const int r = 4 * step + k;  // this lane's row of the k-step: A[.][k], B[k][.]
                    const double* xr = bx + r * stride;
                    const double xa0 = xr[fa[0]], xa1 = xr[fa[0] + 8], xb0 = xr[fb], xb1 = xr[fb + 8];
                    const bool diag = ua[0] == ub;
#pragma unroll
                    for (int g = 0; g < GRAMS; ++g) {
                        if (g0 + g < grams) {  // warp-uniform: Grams past the end cost no DMMAs
                            const double w = bw[r * BG + g];
                            const double b0 = w * xb0, b1 = w * xb1;
                            dmma_8x8x4(acc[g][0][0][0][0], acc[g][0][0][0][1], xa0, b0);
                            dmma_8x8x4(acc[g][0][0][1][0], acc[g][0][0][1][1], xa0, b1);
                            if (!diag) dmma_8x8x4(acc[g][0][1][0][0], acc[g][0][1][0][1], xa1, b0);
                            dmma_8x8x4(acc[g][0][1][1][0], acc[g][0][1][1][1], xa1, b1);
                        }
                    }
                } else {
#if MOE_HAS_DMMA_M16
                    if constexpr (!COLWISE) {
                        double a[2 * KT], xb0[KT], xb1[KT];
    #pragma unroll
                        for (int t = 0; t < KT; ++t) {
                            const double* xr = bx + (KROWS * step + 4 * t + k) * stride;
                            a[2 * t] = xr[fa[0]];
                            a[2 * t + 1] = xr[fa[0] + 8];
                            xb0[t] = xr[fb];
                            xb1[t] = xr[fb + 8];
                        }
    #pragma unroll
                        for (int g = 0; g < GRAMS; ++g) {
                            if (g0 + g < grams) {
                                double b0[KT], b1[KT];
    #pragma unroll
                                for (int t = 0; t < KT; ++t) {
                                    const double w = bw[(KROWS * step + 4 * t + k) * BG + g];
                                    b0[t] = w * xb0[t];
                                    b1[t] = w * xb1[t];
                                }
                                gram_tc_mma_column(acc[g][0], 0, a, b0);
                                gram_tc_mma_column(acc[g][0], 1, a, b1);
                            }
                        }
                    } else {
                        // Column by column (see the header, gram_tc_m16k16_cw): the A fragments (one per super
                        // tile), then per tile column j its 4 B values, scaled per Gram with weights loaded again
                        // for each j; each scaled B fragment serves the TILES super tiles (gram_tc_m16k16_p2).
                        double a[TILES][2 * KT];
#pragma unroll
                        for (int u = 0; u < TILES; ++u)
#pragma unroll
                            for (int t = 0; t < KT; ++t) {
                                const double* xr = bx + (KROWS * step + 4 * t + k) * stride;
                                a[u][2 * t] = u == 0 || two ? xr[fa[u]] : 0.0;
                                a[u][2 * t + 1] = u == 0 || two ? xr[fa[u] + 8] : 0.0;
                            }
#pragma unroll
                        for (int j = 0; j < 2; ++j) {
                            double xb[KT];
#pragma unroll
                            for (int t = 0; t < KT; ++t) xb[t] = bx[(KROWS * step + 4 * t + k) * stride + fb + 8 * j];
#pragma unroll
                            for (int g = 0; g < GRAMS; ++g) {
                                if (g0 + g < grams) {
                                    double b[KT];
#pragma unroll
                                    for (int t = 0; t < KT; ++t) b[t] = bw[(KROWS * step + 4 * t + k) * BG + g] * xb[t];
#pragma unroll
                                    for (int u = 0; u < TILES; ++u)
                                        if (u == 0 || two) gram_tc_mma_column(acc[g][u], j, a[u], b);
                                }
                            }
                        }
                    }
#endif
                }
            }
        }
    }
    cp_async_wait<0>();  // nothing may still be landing in shared memory when the block exits
    if (!active) return;
    // D layout (mma.cuh): lane holds D[l/4][2(l%4) + e], e = 0, 1.
    const size_t square = (size_t)width * width;
    double* out = partial + ((size_t)blockIdx.y * grams + g0) * square;
#pragma unroll
    for (int g = 0; g < GRAMS; ++g) {
        if (g0 + g >= grams) break;
#pragma unroll
        for (int u = 0; u < TILES; ++u) {
            if (u > 0 && !two) break;
            const bool diag = ua[u] == ub;
#pragma unroll
            for (int i = 0; i < 2; ++i)
#pragma unroll
                for (int j = 0; j < 2; ++j) {
                    if (diag && i == 1 && j == 0) continue;
                    const int a = 16 * ua[u] + 8 * i + c, b = 16 * ub + 8 * j + 2 * k;
                    double* o = out + g * square + (size_t)a * width + b;
                    o[0] = acc[g][u][i][j][0];
                    o[1] = acc[g][u][i][j][1];
                }
        }
    }
}

// The kernels (src/gram.rs `TC_VARIANTS`: shape, rows per stage, stages, Grams per warp, threads per block at
// most, blocks per SM the registers are budgeted for); the m16 ones exist only in sm_90 code. Dynamic shared
// memory: STAGES·ROWS·(width + 4 + GRAMS) doubles.
#define GRAM_TC_PARAMS                                                                                          \
    const double *__restrict__ x, const double *__restrict__ gw, int rows, int d, int grams, int rows_per_chunk, \
        double *__restrict__ partial
#define GRAM_TC_ARGS x, gw, rows, d, grams, rows_per_chunk, partial
#define GRAM_TC_KERNEL(name, KT, ROWS, STAGES, GRAMS, GPB, COLWISE, TILES, THREADS, MIN_BLOCKS)            \
    extern "C" __global__ void __launch_bounds__(THREADS, MIN_BLOCKS) name(GRAM_TC_PARAMS) { \
        gram_tc_body<KT, ROWS, STAGES, GRAMS, GPB, COLWISE, TILES>(GRAM_TC_ARGS);                           \
    }
// Measured on an H100 (bench/GPU.md, 16 Grams of d = 100 over 1e7 rows): m16n8k16 with 3 stages of 32 rows
// 81.5 ms (68.8 in the last run); 2 × 32 rows 83.5, 2 × 16 and 4 × 16 rows 87.0, m16n8k8 (3 × 32) 84.9,
// m8n8k4 (3 × 32) 125.0.
GRAM_TC_KERNEL(gram_tc, 0, 32, 3, 4, 1, false, 1, 256, 2)
#if MOE_HAS_DMMA_M16
GRAM_TC_KERNEL(gram_tc_m16k16, 4, 32, 3, 4, 1, false, 1, 256, 2)
// Measured slower than gram_tc_m16k16 (g2, cw) or no faster (b12) on an H100 (bench/GPU.md, second session).
GRAM_TC_KERNEL(gram_tc_m16k16_g2, 4, 32, 2, 2, 1, true, 1, 192, 3)
GRAM_TC_KERNEL(gram_tc_m16k16_cw, 4, 32, 3, 4, 1, true, 1, 256, 2)
GRAM_TC_KERNEL(gram_tc_m16k16_b12, 4, 64, 3, 4, 2, false, 1, 384, 1)
// Written without a GPU (see the header, "Variants"): not measured yet.
GRAM_TC_KERNEL(gram_tc_m16k16_p2, 4, 32, 3, 2, 1, true, 2, 256, 2)
#endif

// out[g][a][b] (grams × d × d, both triangles) = Σ over chunks, in chunk order, of the upper-tile partial of
// gram_tc at (min(a, b), max(a, b)). A grid-stride loop: the host launches one thread per
// GRAM_TC_REDUCE_OUTPUTS values (consecutive threads still read consecutive values), which keeps enough
// loads in flight on the GPU and the emulated launch (one host thread per CUDA thread) small.
#define GRAM_TC_REDUCE_OUTPUTS 4
extern "C" __global__ void gram_tc_reduce(const double* __restrict__ partial, int chunks, int d, int grams,
                                          double* __restrict__ out) {
    const size_t dd = (size_t)d * d, total = dd * grams;
    const size_t width = 16 * (size_t)((d + 15) / 16), square = width * width;
    const size_t step = (size_t)grams * square;
    for (size_t t = (size_t)blockIdx.x * blockDim.x + threadIdx.x; t < total; t += (size_t)gridDim.x * blockDim.x) {
        const size_t g = t / dd, a = (t % dd) / d, b = t % d;
        const double* p = partial + g * square + min(a, b) * width + max(a, b);
        double s = 0.0;
        for (int ch = 0; ch < chunks; ++ch) s += p[ch * step];
        out[t] = s;
    }
}
#endif
