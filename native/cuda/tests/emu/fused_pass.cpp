// The emulator on a kernel that the GPU has already validated (fused_pass, bench/GPU.md): shared memory,
// barriers and per-block partials. Op Gram: R = s·y, so Σ_blocks partial = Σ_i s_i y_i x_i.
#include "emu.h"
#include MOE_KERNELS
#include "check.h"

int main() {
    check::Rng rng(7);
    bool ok = true;
    for (int d : {1, 7, 100}) {
        const int rows = 1000, grid = 5;
        auto x = rng.vec((size_t)rows * d, -1, 1), y = rng.vec(rows, -2, 2), s = rng.vec(rows, 0, 1);
        std::vector<double> gw(rows), partial((size_t)grid * d);
        RowOpParams p{};
        p.op = OP_GRAM;
        p.rows = rows;
        p.r_cols = 1;
        p.grams = 1;
        p.y = y.data();
        p.s = s.data();
        p.gw = gw.data();
        emu::launch({grid}, {FUSED_THREADS}, [&] { fused_pass(p, x.data(), nullptr, d, partial.data()); });
        std::vector<double> got(d, 0.0), want(d, 0.0);
        for (int b = 0; b < grid; ++b)
            for (int f = 0; f < d; ++f) got[f] += partial[(size_t)b * d + f];
        for (int i = 0; i < rows; ++i)
            for (int f = 0; f < d; ++f) want[f] += s[i] * y[i] * x[(size_t)i * d + f];
        char what[64];
        std::snprintf(what, sizeof what, "fused_pass gram xtr d=%d", d);
        ok &= check::close(what, got, want, 1e-13);
        ok &= check::close("fused_pass gram weights", gw, s, 0.0);
    }
    return ok ? 0 : 1;
}
