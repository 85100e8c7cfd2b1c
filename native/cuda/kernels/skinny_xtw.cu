// Xᵀ·W for a narrow W, reading X once: out[g][f] = Σ_i w[i][g0 + g] · x_if^p for g < groups, f < d, with p = 1
// (XᵀR of a pass) or p = 2 (diagonal weighted Grams, Σ_i w_ig x_if²).
//
// Why a kernel: cuBLAS runs these as GEMMs with a huge inner dimension and a 100×15 output, which tile poorly
// (bench/GPU.md: ~7 ms for XᵀR at 1e7×100 where one read of X takes ~2.7 ms), and the p = 2 form needs the
// squares X⊙X written and read back first: three passes of X's size through memory instead of one. The work
// is 2·groups FLOPs per element of X, so the kernel is bound by the one read of X (and of W).
//
// Layout: a fixed grid (the host picks it, never from the device load, so the summation order is fixed);
// block b owns the rows [b·span, (b+1)·span). Its threads form `lanes` row lanes of `width` feature threads
// (width = d rounded up to a warp, at most the block; lanes = blockDim.x / width): thread (lane, f) walks the
// features f, f + width, ... and, for each, the block's rows lane, lane + lanes, ... in order, accumulating up
// to XTW_MAX_G products in registers (a warp reads 32 consecutive features of a row: coalesced). Each
// (block, lane) writes its partial sums to partial[b·lanes + lane][g][f]; the host adds them in order (a GEMM
// against ones, as for the other per-block partials). No atomics: the same bits run to run. More than
// XTW_MAX_G columns: the host launches once per group of them.

#define XTW_MAX_G 16
#define XTW_THREADS 256

// x: rows×d (row-major); w: rows×w_stride, of which columns g0 .. g0+groups−1 are used;
// partial: (gridDim.x·lanes)×groups×d. Lanes and width as above (src/gram.rs mirrors them).
extern "C" __global__ void __launch_bounds__(XTW_THREADS) skinny_xtw(const double* x, const double* w, int rows, int d, int w_stride,
                                                                     int g0, int groups, int square, double* partial) {
    const int width = min((int)blockDim.x, (d + 31) / 32 * 32);
    const int lanes = (int)blockDim.x / width;
    const int lane = (int)threadIdx.x / width;
    if (lane >= lanes) return;  // the threads past lanes·width have no feature
    const int span = (rows + (int)gridDim.x - 1) / (int)gridDim.x;
    const int first = (int)blockIdx.x * span;
    const int last = min(rows, first + span);
    double* out = partial + ((size_t)blockIdx.x * lanes + lane) * groups * d;
    for (int f = (int)threadIdx.x % width; f < d; f += width) {
        double acc[XTW_MAX_G];
#pragma unroll
        for (int g = 0; g < XTW_MAX_G; ++g) acc[g] = 0.0;
        for (int i = first + lane; i < last; i += lanes) {
            const double v = x[(size_t)i * d + f];
            const double xv = square ? v * v : v;
            const double* wi = w + (size_t)i * w_stride + g0;
#pragma unroll
            for (int g = 0; g < XTW_MAX_G; ++g)
                if (g < groups) acc[g] += wi[g] * xv;
        }
#pragma unroll
        for (int g = 0; g < XTW_MAX_G; ++g)
            if (g < groups) out[(size_t)g * d + f] = acc[g];
    }
}

// out[e] = Σ_p partial[p·len + e] over p = 0 .. count−1 in order (the per-(block, lane) partials of
// skinny_xtw, or any other per-block partials): one thread per output value, a fixed order, no atomics.
extern "C" __global__ void sum_partials(const double* partial, int count, int len, double* out) {
    const int e = (int)(blockIdx.x * blockDim.x + threadIdx.x);
    if (e >= len) return;
    double acc = 0.0;
    for (int p = 0; p < count; ++p) acc += partial[(size_t)p * len + e];
    out[e] = acc;
}
