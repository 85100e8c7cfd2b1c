// skinny_xtw (kernels/skinny_xtw.cu) against plain loops, launched as the host launches it: groups of at most
// XTW_MAX_G columns, partials per (block, row lane) summed in order by sum_partials; p = 1 (XᵀR) and p = 2 (diagonal Grams).
#include "emu.h"
#include MOE_KERNELS
#include "check.h"

// Mirrors the host (src/gram.rs): row lanes per block for d features.
static int lanes_for(int d) { return XTW_THREADS / std::min(XTW_THREADS, (d + 31) / 32 * 32); }

static std::vector<double> run(const std::vector<double>& x, const std::vector<double>& w, int rows, int d, int cols, int square, unsigned grid) {
    const int lanes = lanes_for(d);
    std::vector<double> out((size_t)cols * d, 0.0);
    for (int g0 = 0; g0 < cols; g0 += XTW_MAX_G) {
        const int groups = std::min(XTW_MAX_G, cols - g0);
        const int count = (int)grid * lanes, len = groups * d;
        std::vector<double> partial((size_t)count * len, -1.0);
        emu::launch({grid}, {XTW_THREADS}, [&] { skinny_xtw(x.data(), w.data(), rows, d, cols, g0, groups, square, partial.data()); });
        emu::launch({(unsigned)(len + 255) / 256}, {256}, [&] { sum_partials(partial.data(), count, len, out.data() + (size_t)g0 * d); });
    }
    return out;
}

int main() {
    check::Rng rng(11);
    bool ok = true;
    const int shapes[][3] = {{0, 5, 2}, {1, 1, 1}, {37, 7, 3}, {500, 100, 15}, {300, 33, 40}, {129, 300, 2}};
    for (int square = 0; square < 2; ++square)
        for (auto& sh : shapes) {
            const int rows = sh[0], d = sh[1], cols = sh[2];
            auto x = rng.vec((size_t)rows * d, -2, 2), w = rng.vec((size_t)rows * cols, -1, 1);
            for (size_t i = 0; i < w.size(); i += 7) w[i] = 0.0;
            std::vector<double> want((size_t)cols * d, 0.0);
            for (int i = 0; i < rows; ++i)
                for (int g = 0; g < cols; ++g)
                    for (int f = 0; f < d; ++f) {
                        const double v = x[(size_t)i * d + f];
                        want[(size_t)g * d + f] += w[(size_t)i * cols + g] * (square ? v * v : v);
                    }
            auto got = run(x, w, rows, d, cols, square, 3);
            char what[96];
            std::snprintf(what, sizeof what, "skinny_xtw p=%d rows=%d d=%d cols=%d", 1 + square, rows, d, cols);
            ok &= check::close(what, got, want, 1e-13);
            ok &= check::close("skinny_xtw run to run", run(x, w, rows, d, cols, square, 3), got, 0.0);
        }
    return ok ? 0 : 1;
}
