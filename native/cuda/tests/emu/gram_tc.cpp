// The tensor-core weighted Grams (kernels/gram_tc.cu) launched exactly as the host launches them, against
// plain double loops: G_g = Σ_i gw[i][g] x_i x_iᵀ, both triangles, over shapes that exercise the padding
// (d not a multiple of 8 or 16), idle warps, Gram groups with fewer than 4 Grams, partial row stages and
// several chunks; then the same launch again must give identical bits. Every variant (src/gram.rs
// `TC_VARIANTS`: Ampere's m8n8k4 or Hopper's m16n8k16, the staging pipeline, Grams and super tiles per warp,
// Gram groups per block) is checked, with X 16-byte aligned (paired copies where d is even) and misaligned (single copies);
// the m16 variants issue the same DMMAs on each accumulator in the same order, so they must also give the
// bits of gram_tc_m16k16.
#include "emu.h"
#include MOE_KERNELS
#include "check.h"

// MIRRORS native/cuda/src/gram.rs (`TcPlan::new` and its constants): keep the two in step.
struct TcPlan {
    unsigned blocks_x, chunks, threads;
    int rows_per_chunk;
    size_t partial_len;
};
constexpr size_t TC_PARTIAL_BYTES = 256u << 20;
constexpr size_t TC_MAX_CHUNKS = 256;
constexpr size_t TC_MIN_CHUNK_ROWS = 256;
constexpr size_t TC_ROWS = 16;

// The two launches of gram.rs `tensor_core_grams` (256 threads per block for the reduction; gram.rs `blocks`
// launches at least one block).
using GramKernel = void (*)(const double*, const double*, int, int, int, int, double*);
// MIRRORS src/gram.rs `TC_VARIANTS`: kernel, rows per stage, stages, Grams per warp, super tiles per warp,
// Gram groups per block, warps per block at most.
struct Variant {
    const char* name;
    GramKernel kernel;
    int rows, stages, grams, tiles, groups, max_warps;
};
static const Variant kVariants[] = {
    {"gram_tc", gram_tc, 32, 3, 4, 1, 1, 8},
    {"gram_tc_m16k16", gram_tc_m16k16, 32, 3, 4, 1, 1, 8},
    {"gram_tc_m16k16_cw", gram_tc_m16k16_cw, 32, 3, 4, 1, 1, 8},
    {"gram_tc_m16k16_g2", gram_tc_m16k16_g2, 32, 2, 2, 1, 1, 6},
    {"gram_tc_m16k16_b12", gram_tc_m16k16_b12, 64, 3, 4, 1, 2, 12},
    {"gram_tc_m16k16_p2", gram_tc_m16k16_p2, 32, 3, 2, 2, 1, 8},
};

static TcPlan plan(size_t rows, size_t d, size_t grams, const Variant& v) {
    const size_t halves = (d + 15) / 16, width = 16 * halves, tasks = gram_tc_tasks((int)halves, v.tiles);
    const size_t per_block = v.max_warps / v.groups;
    const size_t blocks_per_group = (tasks + per_block - 1) / per_block;
    const size_t warps = (tasks + blocks_per_group - 1) / blocks_per_group;
    const size_t groups = (grams + v.grams * v.groups - 1) / (v.grams * v.groups);
    const size_t per_chunk = grams * width * width;
    const size_t max_chunks = std::clamp(TC_PARTIAL_BYTES / (8 * per_chunk), (size_t)1, TC_MAX_CHUNKS);
    const size_t per = (rows + max_chunks - 1) / max_chunks;
    const size_t rows_per_chunk = std::max((per + TC_ROWS - 1) / TC_ROWS * TC_ROWS, TC_MIN_CHUNK_ROWS);
    const size_t chunks = std::max((rows + rows_per_chunk - 1) / rows_per_chunk, (size_t)1);
    return {(unsigned)(blocks_per_group * groups), (unsigned)chunks, (unsigned)(32 * warps * v.groups),
            (int)rows_per_chunk, chunks * per_chunk};
}

static std::vector<double> run(const Variant& v, const double* x, const std::vector<double>& gw, int rows, int d, int grams) {
    const TcPlan pl = plan(rows, d, grams, v);
    // NaN-filled: a value read that the kernel never wrote shows up as a NaN in the result.
    std::vector<double> partial(pl.partial_len, NAN), out((size_t)grams * d * d, NAN);
    emu::launch({pl.blocks_x, pl.chunks}, {pl.threads},
                [&] { v.kernel(x, gw.data(), rows, d, grams, pl.rows_per_chunk, partial.data()); },
                8 * v.stages * v.rows * (16 * ((d + 15) / 16) + 4 + v.grams * v.groups));
    const size_t total = out.size();
    const size_t threads = (total + GRAM_TC_REDUCE_OUTPUTS - 1) / GRAM_TC_REDUCE_OUTPUTS;
    emu::launch({(unsigned)std::max((threads + 255) / 256, (size_t)1)}, {256},
                [&] { gram_tc_reduce(partial.data(), (int)pl.chunks, d, grams, out.data()); });
    return out;
}

int main() {
    bool ok = true;
    struct Shape {
        int d, grams, rows;
    };
    // Sizes are small: each emulated block spawns its threads (costly under the sanitizers) and every DMMA
    // is two barriers over 32 threads; the whole program takes well under a minute.
    std::vector<Shape> shapes;
    for (int d : {1, 5, 8, 13})
        for (int grams : {1, 3, 16})
            for (int rows : {1, 7}) shapes.push_back({d, grams, rows});
    // Several chunks (256 rows each) and a last stage of 1000 − 3·256 − 14·16 = 8 rows; 301 = 256 + 45 rows:
    // a last stage that is not a multiple of 4 (the DMMA's k).
    shapes.push_back({13, 3, 1000});
    shapes.push_back({33, 1, 301});
    // The shapes the backend cares about: d = 100 (28 super-tile pairs: 4 blocks of 7 warps per Gram group;
    // 5 Grams: a second group with one Gram; 45 = 32 + 13 rows) and d = 128 (36 pairs: 5 blocks of 8 warps,
    // 4 warps idle).
    shapes.push_back({100, 5, 45});
    shapes.push_back({128, 3, 13});
    shapes.push_back({100, 16, 1});  // 4 full Gram groups
    shapes.push_back({5, 5, 0});  // no rows: zero Grams
    // gram_tc_m16k16's result per shape, which the other m16 variants must match bit for bit.
    std::vector<std::vector<double>> m16(shapes.size());
    for (const Variant& v : kVariants)
        for (size_t si = 0; si < shapes.size(); ++si) {
            const Shape& s = shapes[si];
            // The other variants on every wide shape and a few small ones (the emulator is slow); the variants
            // written later than gram_tc_m16k16 skip its 4 full Gram groups at d = 100 (the slowest shape).
            if (v.kernel != gram_tc && s.d < 33 && s.rows != 1000 && si != 0) continue;
            const bool later = v.kernel != gram_tc && v.kernel != gram_tc_m16k16;
            if (later && s.d == 100 && s.grams == 16) continue;
            const size_t rows = s.rows, d = s.d, grams = s.grams;
            check::Rng rng(11 + si);  // the same inputs per shape for every variant
            auto x = rng.vec(rows * d, -1, 1), gw = rng.vec(rows * grams, 0, 1);
            for (size_t e = 0; e < gw.size(); e += 3) gw[e] = 0.0;  // zero weights (e.g. unused rows) are common
            std::vector<double> want(grams * d * d, 0.0);
            for (size_t i = 0; i < rows; ++i)
                for (size_t g = 0; g < grams; ++g)
                    for (size_t a = 0; a < d; ++a)
                        for (size_t b = 0; b < d; ++b) want[(g * d + a) * d + b] += gw[i * grams + g] * x[i * d + a] * x[i * d + b];
            // X at a 16-byte boundary (vector new) and, for the first variant, one double past it.
            for (int shift = 0; shift < (v.kernel == gram_tc ? 2 : 1); ++shift) {
                std::vector<double> xs(x.size() + 2);
                double* base = xs.data() + ((reinterpret_cast<uintptr_t>(xs.data()) & 15) ? 1 : 0) + shift;
                std::copy(x.begin(), x.end(), base);
                const auto got = run(v, base, gw, s.rows, s.d, s.grams);
                const TcPlan pl = plan(rows, d, grams, v);
                char what[160];
                std::snprintf(what, sizeof what, "%s d=%d grams=%d rows=%d%s (grid %u×%u, %u threads)", v.name, s.d, s.grams,
                              s.rows, shift ? " misaligned" : "", pl.blocks_x, pl.chunks, pl.threads);
                ok &= check::close(what, got, want, 1e-13);
                const auto again = run(v, base, gw, s.rows, s.d, s.grams);
                if (std::memcmp(got.data(), again.data(), got.size() * sizeof(double)) != 0) {
                    std::printf("FAIL %s: a second run gave different bits\n", what);
                    ok = false;
                }
                if (v.kernel == gram_tc_m16k16) m16[si] = got;
                if (later && (m16[si].size() != got.size() ||
                              std::memcmp(got.data(), m16[si].data(), got.size() * sizeof(double)) != 0)) {
                    std::printf("FAIL %s: not the bits of gram_tc_m16k16\n", what);
                    ok = false;
                }
            }
        }
    return ok ? 0 : 1;
}
