// Helpers of the emulated kernel tests: deterministic random data and a relative-error check.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <vector>

namespace check {

// splitmix64: deterministic inputs, no dependence on the C++ library's distributions.
struct Rng {
    uint64_t state;
    explicit Rng(uint64_t seed) : state(seed) {}
    uint64_t next() {
        uint64_t z = (state += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
    double uniform() { return (next() >> 11) * 0x1.0p-53; }                    // [0, 1)
    double symmetric() { return 2.0 * uniform() - 1.0; }                        // [-1, 1)
    std::vector<double> vec(size_t n, double lo, double hi) {
        std::vector<double> v(n);
        for (auto& x : v) x = lo + (hi - lo) * uniform();
        return v;
    }
};

// max_i |got_i − want_i| / max(1, max_i |want_i|); prints and returns false above `tol`.
inline bool close(const char* what, const std::vector<double>& got, const std::vector<double>& want, double tol) {
    if (got.size() != want.size()) {
        std::printf("FAIL %s: %zu values, expected %zu\n", what, got.size(), want.size());
        return false;
    }
    double scale = 1.0, err = 0.0;
    for (double w : want) scale = std::fmax(scale, std::fabs(w));
    size_t worst = 0;
    for (size_t i = 0; i < got.size(); ++i) {
        double e = std::fabs(got[i] - want[i]);
        if (!(e <= err)) { err = e; worst = i; }  // NaN counts as the worst
    }
    bool ok = err / scale <= tol;
    std::printf("%s %s: relative error %.3g (tolerance %.1g)", ok ? "ok  " : "FAIL", what, err / scale, tol);
    if (!ok) std::printf(", worst at %zu: %.17g vs %.17g", worst, got[worst], want[worst]);
    std::printf("\n");
    return ok;
}

}  // namespace check
