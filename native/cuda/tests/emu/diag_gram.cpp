// diag_gram (kernels/diag_gram.cu) against plain loops, launched as src/gram.rs launches it: groups of at most
// DIAG_GRAM_MAX_G Grams, partials per (block, row lane) summed in order.
#include "emu.h"
#include MOE_KERNELS
#include "check.h"

// Mirrors the host: lanes per block for d features.
static int lanes_for(int d) { return DIAG_GRAM_THREADS / std::min(DIAG_GRAM_THREADS, (d + 31) / 32 * 32); }

static std::vector<double> run(const std::vector<double>& x, const std::vector<double>& gw, int rows, int d, int grams, unsigned grid) {
    const int lanes = lanes_for(d);
    std::vector<double> out((size_t)grams * d, 0.0);
    for (int g0 = 0; g0 < grams; g0 += DIAG_GRAM_MAX_G) {
        const int groups = std::min(DIAG_GRAM_MAX_G, grams - g0);
        std::vector<double> partial((size_t)grid * lanes * groups * d, -1.0);
        emu::launch({grid}, {DIAG_GRAM_THREADS}, [&] { diag_gram(x.data(), gw.data(), rows, d, grams, g0, groups, partial.data()); });
        for (size_t p = 0; p < (size_t)grid * lanes; ++p)
            for (int e = 0; e < groups * d; ++e) out[(size_t)g0 * d + e] += partial[p * groups * d + e];
    }
    return out;
}

int main() {
    check::Rng rng(11);
    bool ok = true;
    const int shapes[][3] = {{0, 5, 2}, {1, 1, 1}, {37, 7, 3}, {500, 100, 15}, {300, 33, 40}, {129, 300, 2}};
    for (auto& sh : shapes) {
        const int rows = sh[0], d = sh[1], grams = sh[2];
        auto x = rng.vec((size_t)rows * d, -2, 2), gw = rng.vec((size_t)rows * grams, 0, 1);
        for (size_t i = 0; i < gw.size(); i += 7) gw[i] = 0.0;
        std::vector<double> want((size_t)grams * d, 0.0);
        for (int i = 0; i < rows; ++i)
            for (int g = 0; g < grams; ++g)
                for (int f = 0; f < d; ++f) want[(size_t)g * d + f] += gw[(size_t)i * grams + g] * x[(size_t)i * d + f] * x[(size_t)i * d + f];
        auto got = run(x, gw, rows, d, grams, 3);
        char what[96];
        std::snprintf(what, sizeof what, "diag_gram rows=%d d=%d G=%d", rows, d, grams);
        ok &= check::close(what, got, want, 1e-13);
        ok &= check::close("diag_gram run to run", run(x, gw, rows, d, grams, 3), got, 0.0);
    }
    return ok ? 0 : 1;
}
