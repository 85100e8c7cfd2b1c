// gather (kernels/moe_kernels.cu) against a plain loop, launched as src/backend.rs's gather_to_host launches it
// (256 threads, ⌈rows·width / 256⌉ blocks): repeated, unordered and last rows, widths 1 (s), k (H) and d (X).
#include "emu.h"
#include MOE_KERNELS
#include "check.h"

int main() {
    check::Rng rng(29);
    bool ok = true;
    // {n, width, rows}
    const int shapes[][3] = {{1, 1, 1}, {5, 1, 9}, {40, 2, 17}, {300, 16, 512}, {513, 100, 37}, {9, 785, 4}};
    for (auto& sh : shapes) {
        const int n = sh[0], width = sh[1], rows = sh[2];
        auto src = rng.vec((size_t)n * width, -3, 3);
        std::vector<unsigned> idx(rows);
        for (int i = 0; i < rows; ++i) idx[i] = i == 0 ? n - 1 : (unsigned)(rng.next() % n);
        std::vector<double> want((size_t)rows * width), got((size_t)rows * width, -7.0);
        for (int i = 0; i < rows; ++i)
            for (int c = 0; c < width; ++c) want[(size_t)i * width + c] = src[(size_t)idx[i] * width + c];
        const unsigned threads = 256, blocks = std::max<unsigned>(((size_t)rows * width + threads - 1) / threads, 1);
        emu::launch({blocks}, {threads}, [&] { gather(src.data(), idx.data(), rows, width, got.data()); });
        char what[96];
        std::snprintf(what, sizeof what, "gather n=%d width=%d rows=%d", n, width, rows);
        ok &= check::close(what, got, want, 0.0);
    }
    return ok ? 0 : 1;
}
