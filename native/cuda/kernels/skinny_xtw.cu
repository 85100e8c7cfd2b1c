// Xᵀ·W for a narrow W, reading X once: out[g][f] = Σ_i w[i][g0 + g] · x_if^p for g < groups, f < d, with p = 1
// (XᵀR of a pass) or p = 2 (diagonal weighted Grams, Σ_i w_ig x_if²).
//
// Why a kernel: cuBLAS runs these as GEMMs with a huge inner dimension and a 100×15 output, which tile poorly
// (bench/GPU.md: ~7 ms for XᵀR at 1e7×100), and the p = 2 form needs the squares X⊙X written and read back
// first. The work is 2·groups FLOPs per element of X, so the kernel should be bound by one read of X and W.
//
// Floor at (rows 1e7, d 100, 15 columns): X 8.0 GB + W 1.2 GB = 9.2 GB, ≈ 3.1 ms at the 3.0 TB/s an H100
// copies. The previous design (one feature per thread, one row at a time, 15 scalar W loads per row) was load-
// instruction bound with ~8 bytes of X in flight per thread and took ~12 ms on an H100.
//
// Design (the host, src/xtw.rs `XtwPlan`, picks every shape parameter from rows and d only, never from the
// device, so the summation order is fixed):
// - A block is `lanes` row lanes of `width` feature threads (width = d, at most XTW_MAX_THREADS; for d = 100:
//   5 lanes × 100 = 500 of 512 threads, 2% idle instead of 22%). At each step the lanes read `lanes`
//   consecutive rows, i.e. one contiguous stretch of X: every warp load is fully coalesced.
// - Rows go in tiles of T = lanes·XTW_R rows (lane l takes tile rows l, l + lanes, ...). The tile's W rows (T ×
//   16 columns, zero past `groups` and past the block's rows) are staged in shared memory with coalesced loads
//   (row pitch XTW_WP = 18 doubles: 16-byte aligned, and the two lanes a warp may span read different banks) and
//   read back as double2 broadcasts: per row a thread does 1 global load, 8 shared loads and 16 FMAs (was 1 +
//   15 global loads).
// - Software pipeline: the XTW_R = 8 X values (and the W values to stage) of tile k + 1 are loaded into
//   registers right after the barrier of tile k, before tile k is computed, so each thread always has 64 bytes
//   of X in flight: 32 KB per SM continuously (16 warps), plus the W tile, instead of ~8 KB. W is double-
//   buffered in shared memory: one barrier per tile.
// - Registers (ptxas -v): 100 on sm_80, 128 on sm_90, no spills (acc 16 + 2×8 X + 2 W doubles).
// - At the end the lanes are summed in lane order through shared memory and each block writes one partial
//   partial[b][g][f] (count = grid, 5× fewer partials than one per lane); the host adds the blocks' partials in
//   a fixed two-level order (sum_partials over chunks of XTW_CHUNK blocks, then over the
//   chunks). No atomics: the same bits run to run.
// Prediction for (1e7, 100, 15): the 9.2 GB floor at ≈ 85% of the copy bandwidth, ≈ 3.6 ms (3.3–4 ms), plus
// ≈ 0.02 ms for the two-level sum (1056 partials of 1500 values, 12.7 MB, read by 198 blocks). Why it should get there: the issue work
// is ≈ 25 warp instructions per 32 elements of X (≈ 0.9 ms of issue over 132 SMs, 1.1 ms of FP64 FMA and
// shared-load throughput), all under the memory time, and 32 KB+ of X per SM always in flight covers ~1.5 µs
// of memory latency at 22 GB/s per SM. Risks: one 512-thread block per SM (the barrier per tile couples its
// warps; the next tile's loads are already in flight across it).
// More than XTW_MAX_G columns: the host launches once per group of them (each launch reads X again).

#define XTW_MAX_G 16
#define XTW_MAX_THREADS 512
#define XTW_R 8           // rows per lane per tile
#define XTW_MAX_LANES 8   // so that a tile is at most 64 rows
#define XTW_WP 18         // doubles per staged W row (16 columns + 2 of padding)
#define XTW_WREG 2        // W values each thread stages per tile: the host keeps lanes·XTW_R·16 ≤ XTW_WREG·blockDim

// The X values and W values of the tile of rows tile_first ... into registers; zeros past `last`.
__device__ __forceinline__ void xtw_load_tile(const double* x, const double* w, int d, int w_stride, int g0, int groups,
                                              int lanes, int lane, int f, bool mine, int tile_first, int last,
                                              double* xr, double* wr) {
    const double* p = x + ((size_t)(tile_first + lane) * d + f);
    const size_t step = (size_t)lanes * d;
    const int rows_left = mine ? last - tile_first - lane : 0;  // rows r·lanes < rows_left are present
#pragma unroll
    for (int r = 0; r < XTW_R; ++r) xr[r] = r * lanes < rows_left ? __ldg(p + r * step) : 0.0;
    const int tile_len = lanes * XTW_R * XTW_MAX_G;
    const int c = (int)threadIdx.x % XTW_MAX_G;  // blockDim.x is a multiple of XTW_MAX_G: the same column for every j
    const int row0 = (int)threadIdx.x / XTW_MAX_G, row_step = (int)blockDim.x / XTW_MAX_G;
    const double* pw = w + ((size_t)(tile_first + row0) * w_stride + g0 + c);
    const bool col = c < groups;
#pragma unroll
    for (int j = 0; j < XTW_WREG; ++j) {
        const int row = row0 + j * row_step;  // within the tile
        wr[j] = (col && row * XTW_MAX_G < tile_len && tile_first + row < last) ? __ldg(pw + (size_t)j * row_step * w_stride) : 0.0;
    }
}

// x: rows×d (row-major); w: rows×w_stride, of which columns g0 .. g0+groups−1 are used; `width` feature threads
// per lane, `lanes` lanes (src/xtw.rs `XtwPlan`); partial: gridDim.x × groups × d.
extern "C" __global__ void __launch_bounds__(XTW_MAX_THREADS)
    skinny_xtw(const double* x, const double* w, int rows, int d, int w_stride, int g0, int groups, int square, int width,
               int lanes, double* partial) {
    __shared__ __align__(16) double sw[2][XTW_MAX_LANES * XTW_R * XTW_WP];
    __shared__ double red[XTW_MAX_THREADS];
    const int t = (int)threadIdx.x, threads = (int)blockDim.x;
    const int lane = t / width, q = t % width;
    const bool active = lane < lanes;  // the threads past lanes·width only stage W and sum lanes
    const int tile_rows = lanes * XTW_R;
    const int span = (rows + (int)gridDim.x - 1) / (int)gridDim.x;
    const int first = min(rows, (int)blockIdx.x * span);
    const int last = min(rows, first + span);
    const int tiles = (last - first + tile_rows - 1) / tile_rows;
    double* out = partial + (size_t)blockIdx.x * groups * d;
    for (int f0 = 0; f0 < d; f0 += width) {  // d > XTW_MAX_THREADS: chunks of features, each over all rows
        const int f = f0 + q;
        const bool mine = active && f < d;
        double acc[XTW_MAX_G];
#pragma unroll
        for (int g = 0; g < XTW_MAX_G; ++g) acc[g] = 0.0;
        double xn[XTW_R], wn[XTW_WREG];
        xtw_load_tile(x, w, d, w_stride, g0, groups, lanes, lane, f, mine, first, last, xn, wn);
#pragma unroll 1
        for (int k = 0; k < tiles; ++k) {
            double xc[XTW_R];
#pragma unroll
            for (int r = 0; r < XTW_R; ++r) xc[r] = square ? xn[r] * xn[r] : xn[r];
            double* s = sw[k & 1];
#pragma unroll
            for (int j = 0; j < XTW_WREG; ++j) {
                const int e = t + j * threads;
                if (e < tile_rows * XTW_MAX_G) s[(e / XTW_MAX_G) * XTW_WP + e % XTW_MAX_G] = wn[j];
            }
            __syncthreads();  // s is complete; the other buffer's last reads were before this barrier
            if (k + 1 < tiles)
                xtw_load_tile(x, w, d, w_stride, g0, groups, lanes, lane, f, mine, first + (k + 1) * tile_rows, last, xn, wn);
            if (mine) {
#pragma unroll
                for (int r = 0; r < XTW_R; ++r) {
                    const double* sr = s + (r * lanes + lane) * XTW_WP;
#pragma unroll
                    for (int g = 0; g < XTW_MAX_G; g += 2) {
                        const double2 w2 = *reinterpret_cast<const double2*>(sr + g);
                        acc[g] += w2.x * xc[r];
                        acc[g + 1] += w2.y * xc[r];
                    }
                }
            }
        }
        // The lanes' sums in lane order, column by column, through shared memory; one partial per block.
#pragma unroll
        for (int g = 0; g < XTW_MAX_G; ++g) {
            if (g < groups) {
                __syncthreads();  // the tiles' (or the previous column's) reads of shared memory are done
                if (active) red[t] = acc[g];
                __syncthreads();
                for (int e = t; e < width; e += threads) {
                    if (f0 + e < d) {
                        double sum = red[e];
                        for (int l = 1; l < lanes; ++l) sum += red[l * width + e];
                        out[(size_t)g * d + f0 + e] = sum;
                    }
                }
            }
        }
        __syncthreads();  // the next chunk's tiles overwrite sw and red
    }
}

// Fixed-order sums of per-block partials (skinny_xtw's, the fused kernel's): out[c·len + e] = Σ partial[p·len + e]
// over p = c·chunk .. min(count, (c + 1)·chunk) − 1 in order, chunk c = blockIdx.y, one thread per value. With
// chunk = count it is the whole sum in block order; skinny_xtw sums chunks of XTW_CHUNK partials and then the
// chunks (33× more reading threads than one thread over 1056 partials). The order depends only on count and
// chunk: no atomics, the same bits run to run.
extern "C" __global__ void sum_partials(const double* partial, int count, int len, int chunk, double* out) {
    const int e = (int)(blockIdx.x * blockDim.x + threadIdx.x);
    if (e >= len) return;
    const int c = (int)blockIdx.y, end = min(count, (c + 1) * chunk);
    double acc = 0.0;
    for (int p = c * chunk; p < end; ++p) acc += partial[(size_t)p * len + e];
    out[(size_t)c * len + e] = acc;
}
