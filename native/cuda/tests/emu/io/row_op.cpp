// The per-row kernels (`row_op`, `row_op_tiled`) on inputs written by the Rust test tests/emulated.rs
// (`row_ops_match_the_cpu_row_mathematics`), which compares their outputs with moe_core::rowops::eval_row: the
// kernels' per-row mathematics against the CPU backend's, without a GPU.
// Usage: row_op IN OUT. IN: the RowOpParams bytes (u64 size first, checked against this build's struct), then
// arrays, each a u64 count and its values (f64, idx u32): a, y, s, h, probs, linear, idx (empty arrays: none).
// OUT: for `row_op` then `row_op_tiled` (64-row tiles), the arrays r, gw, sv, h, probs, each a u64 count and
// f64 values.
#include "emu.h"
#include MOE_KERNELS
#include "row_op_launch.h"

#include <cstdint>
#include <cstdio>
#include <vector>

namespace {

template <typename T>
bool read_array(std::FILE* f, std::vector<T>& v) {
    uint64_t n = 0;
    if (std::fread(&n, 8, 1, f) != 1) return false;
    v.resize(n);
    return n == 0 || std::fread(v.data(), sizeof(T), n, f) == n;
}

void write_array(std::FILE* f, const std::vector<double>& v) {
    const uint64_t n = v.size();
    std::fwrite(&n, 8, 1, f);
    if (n) std::fwrite(v.data(), 8, n, f);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: row_op IN OUT\n");
        return 2;
    }
    std::FILE* in = std::fopen(argv[1], "rb");
    if (!in) return 2;
    uint64_t size = 0;
    RowOpParams p{};
    if (std::fread(&size, 8, 1, in) != 1 || size != sizeof(RowOpParams) || std::fread(&p, sizeof p, 1, in) != 1) {
        std::fprintf(stderr, "RowOpParams: %llu bytes from the Rust side, %zu here\n", (unsigned long long)size, sizeof p);
        return 2;
    }
    std::vector<double> a, y, s, h, probs, linear;
    std::vector<unsigned> idx;
    if (!(read_array(in, a) && read_array(in, y) && read_array(in, s) && read_array(in, h) && read_array(in, probs) &&
          read_array(in, linear) && read_array(in, idx))) {
        std::fprintf(stderr, "short input\n");
        return 2;
    }
    std::fclose(in);
    std::FILE* out = std::fopen(argv[2], "wb");
    if (!out) return 2;
    for (unsigned tile : {0u, 64u}) {
        std::vector<double> r((size_t)p.rows * p.r_cols, -7.0), gw((size_t)p.rows * p.grams, -7.0),
            sv((size_t)p.rows * p.sums, -7.0), ho = h, po = probs;  // −7: a value no op writes
        RowOpParams q = p;
        q.a = a.data();
        q.y = y.data();
        q.s = s.empty() ? nullptr : s.data();
        q.h = ho.empty() ? nullptr : ho.data();
        q.probs = po.empty() ? nullptr : po.data();
        q.linear = linear.empty() ? nullptr : linear.data();
        q.idx = idx.empty() ? nullptr : idx.data();
        q.r = r.data();
        q.gw = gw.data();
        q.sv = sv.data();
        launch_row_op(q, tile);
        for (const auto* v : {&r, &gw, &sv, &ho, &po}) write_array(out, *v);
    }
    return std::fclose(out) == 0 ? 0 : 1;
}
