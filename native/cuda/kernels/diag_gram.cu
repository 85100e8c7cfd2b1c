// Diagonal weighted Grams without materialised squares: diag_g[f] = Σ_i gw[i][g] · x_if² for g < G, f < d.
//
// Why a kernel: the GEMM form (X⊙X)ᵀ·W needs the squares X⊙X written and read back, three passes of X's size
// through memory; this reads X once. Newton-CG's diag(−H) preconditioner (one per gate Newton step) and the
// diagonal information passes use it. The work is 2·G FLOPs per element of X, so the pass is bound by the
// one read of X (and the m×G weights).
//
// Layout: a fixed grid (the host picks it, never from the device load, so the summation order is fixed);
// block b owns the rows [b·span, (b+1)·span). Its threads form `lanes` row lanes of `width` feature threads
// (width = d rounded up to a warp, at most the block; lanes = blockDim.x / width): thread (lane, f) walks the
// features f, f + width, ... and, for each, the block's rows lane, lane + lanes, ... in order, accumulating up
// to DIAG_GRAM_MAX_G weighted squares in registers (a warp reads 32 consecutive features of a row: coalesced).
// Each (block, lane) writes its partial sums to partial[b·lanes + lane][g][f]; the host adds them in order (a
// GEMM against ones, as for the other per-block partials). No atomics: the same bits run to run. More than
// DIAG_GRAM_MAX_G Grams: the host launches once per group of them.

#define DIAG_GRAM_MAX_G 16
#define DIAG_GRAM_THREADS 256

// Feature threads per row lane for d features (shared with the host: src/gram.rs `diag_gram_lanes`).
__device__ __forceinline__ int diag_gram_width(int d, int threads) { return min(threads, (d + 31) / 32 * 32); }

// x: rows×d (row-major); gw: rows×gw_stride, of which the Grams g0 .. g0+groups−1 are summed;
// partial: (gridDim.x·lanes)×groups×d.
extern "C" __global__ void __launch_bounds__(DIAG_GRAM_THREADS) diag_gram(const double* x, const double* gw, int rows, int d,
                                                                          int gw_stride, int g0, int groups, double* partial) {
    const int width = diag_gram_width(d, (int)blockDim.x);
    const int lanes = (int)blockDim.x / width;
    const int lane = (int)threadIdx.x / width;
    if (lane >= lanes) return;  // the threads past lanes·width have no feature
    const int span = (rows + (int)gridDim.x - 1) / (int)gridDim.x;
    const int first = (int)blockIdx.x * span;
    const int last = min(rows, first + span);
    double* out = partial + ((size_t)blockIdx.x * lanes + lane) * groups * d;
    for (int f = (int)threadIdx.x % width; f < d; f += width) {
        double acc[DIAG_GRAM_MAX_G];
#pragma unroll
        for (int g = 0; g < DIAG_GRAM_MAX_G; ++g) acc[g] = 0.0;
        for (int i = first + lane; i < last; i += lanes) {
            const double v = x[(size_t)i * d + f];
            const double sq = v * v;
            const double* w = gw + (size_t)i * gw_stride + g0;
#pragma unroll
            for (int g = 0; g < DIAG_GRAM_MAX_G; ++g)
                if (g < groups) acc[g] += w[g] * sq;
        }
#pragma unroll
        for (int g = 0; g < DIAG_GRAM_MAX_G; ++g)
            if (g < groups) out[(size_t)g * d + f] = acc[g];
    }
}
