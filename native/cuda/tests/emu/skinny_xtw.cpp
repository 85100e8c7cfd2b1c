// skinny_xtw (kernels/skinny_xtw.cu) against plain loops, launched exactly as the host (src/xtw.rs) launches it:
// the same plan (grid, feature threads per lane, lanes, threads), groups of at most XTW_MAX_G columns, one
// partial per block summed in chunks of 32, then the chunks in order (both sum_partials);
// p = 1 (XᵀR) and p = 2 (diagonal Grams); a second run must give the same bits.
#include "emu.h"
#include MOE_KERNELS
#include "check.h"

// Mirrors XtwPlan::new (src/xtw.rs).
struct Plan {
    int grid, width, lanes, threads;
};
static Plan plan_for(int rows, int d) {
    const int min_rows_per_block = 256, max_grid = 1056, sm_warps = 16, sm_blocks = 4;
    Plan p;
    p.width = std::min(std::max(d, 1), XTW_MAX_THREADS);
    auto threads_for = [&](int lanes) { return std::max((lanes * p.width + 31) / 32 * 32, lanes * XTW_R * XTW_MAX_G / XTW_WREG); };
    int lanes = 1, best = 0;
    for (int l = 1; l <= std::min(XTW_MAX_LANES, XTW_MAX_THREADS / p.width); ++l) {
        const int t = threads_for(l);
        const int busy = std::min(std::max(sm_warps / (t / 32), 1), sm_blocks) * l * p.width;
        if (t <= XTW_MAX_THREADS && busy > best) lanes = l, best = busy;
    }
    p.lanes = lanes;
    p.threads = threads_for(lanes);
    p.grid = std::min(std::max((rows + min_rows_per_block - 1) / min_rows_per_block, 1), max_grid);
    return p;
}

// grid_override > 0: more blocks than the host would use for so few rows (empty and short blocks, tails).
static std::vector<double> run(const std::vector<double>& x, const std::vector<double>& w, int rows, int d, int cols, int square,
                               int grid_override) {
    Plan p = plan_for(rows, d);
    if (grid_override > 0) p.grid = grid_override;
    std::vector<double> out((size_t)cols * d, -7.0);
    for (int g0 = 0; g0 < cols; g0 += XTW_MAX_G) {
        const int groups = std::min(XTW_MAX_G, cols - g0);
        const int chunk = 32, chunks = (p.grid + chunk - 1) / chunk, len = groups * d;  // XTW_CHUNK (src/xtw.rs)
        std::vector<double> partial((size_t)p.grid * len, -1.0), chunk_sums((size_t)chunks * len, -1.0);
        emu::launch({(unsigned)p.grid}, {(unsigned)p.threads}, [&] {
            skinny_xtw(x.data(), w.data(), rows, d, cols, g0, groups, square, p.width, p.lanes, partial.data());
        });
        emu::launch({(unsigned)(len + 255) / 256, (unsigned)chunks}, {256},
                    [&] { sum_partials(partial.data(), p.grid, len, chunk, chunk_sums.data()); });
        emu::launch({(unsigned)(len + 255) / 256}, {256}, [&] { sum_partials(chunk_sums.data(), chunks, len, chunks, out.data() + (size_t)g0 * d); });
    }
    return out;
}

int main() {
    check::Rng rng(11);
    bool ok = true;
    // {rows, d, cols, grid override}
    const int shapes[][4] = {{0, 5, 2, 0},    {1, 1, 1, 0},    {1, 100, 15, 0},  {37, 7, 3, 0},    {37, 7, 3, 5},
                             {300, 1, 40, 0}, {257, 33, 17, 0}, {450, 100, 15, 0}, {651, 100, 15, 3}, {300, 33, 40, 3},
                             {129, 300, 2, 0}, {77, 300, 16, 2}, {45, 2, 5, 4},   {40, 1030, 3, 0}, {400, 3, 2, 40}};
    for (int square = 0; square < 2; ++square)
        for (auto& sh : shapes) {
            const int rows = sh[0], d = sh[1], cols = sh[2], grid = sh[3];
            auto x = rng.vec((size_t)rows * d, -2, 2), w = rng.vec((size_t)rows * cols, -1, 1);
            for (size_t i = 0; i < w.size(); i += 7) w[i] = 0.0;
            std::vector<double> want((size_t)cols * d, 0.0);
            for (int i = 0; i < rows; ++i)
                for (int g = 0; g < cols; ++g)
                    for (int f = 0; f < d; ++f) {
                        const double v = x[(size_t)i * d + f];
                        want[(size_t)g * d + f] += w[(size_t)i * cols + g] * (square ? v * v : v);
                    }
            auto got = run(x, w, rows, d, cols, square, grid);
            const Plan p = plan_for(rows, d);
            char what[160];
            std::snprintf(what, sizeof what, "skinny_xtw p=%d rows=%d d=%d cols=%d (grid %d, %d lanes of %d, %d threads)", 1 + square, rows,
                          d, cols, grid > 0 ? grid : p.grid, p.lanes, p.width, p.threads);
            ok &= check::close(what, got, want, 1e-13);
            ok &= check::close("skinny_xtw run to run", run(x, w, rows, d, cols, square, grid), got, 0.0);
        }
    return ok ? 0 : 1;
}
