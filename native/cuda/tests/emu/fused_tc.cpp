// The fused tensor-core pass (kernels/fused_tc.cu) against the GPU-validated unfused path, both emulated:
// the oracle computes A = X·Pᵀ with plain loops, runs the `row_op` kernel on it, and reduces XᵀR with plain
// loops; the fused kernel must give the same XᵀR (its block partials summed in block order, as the host
// does), Gram weights, per-row sum terms and stored H, to 1e-13 relative, and the same bits when run twice.
// Cases: the narrow ops of an EM iteration and a few others, d ∈ {1, 7, 8, 100, 128} (d not a multiple of
// 8 leaves padding), rows not a multiple of the tile, gathered rows (H through idx, as Rows::Order), zero
// rows of X with zero weight, and a pass over no rows; the default 256-thread configuration on all of them,
// the 128-thread one (src/fused.rs VARIANTS) on a subset. Small grids (3 blocks) keep the emulation short
// while blocks walk several tiles.
#include "emu.h"
#include MOE_KERNELS
#include "check.h"

#include <cstring>
#include <string>

namespace {

struct Op {
    const char* name;
    RowOpParams p;  // op fields and counts; pointers and rows filled per run
    int k;          // H width (0: none)
    int y_classes;  // labels: 0 real, else integers in [0, y_classes)
};

RowOpParams counts(int op, int q, int r_cols, int grams, int sums, int h_width) {
    RowOpParams p{};
    p.op = op;
    p.q = q;
    p.r_cols = r_cols;
    p.grams = grams;
    p.sums = sums;
    p.h_width = h_width;
    return p;
}

std::vector<Op> ops() {
    std::vector<Op> out;
    {  // E-step, k linear experts, store H, sufficient statistics (k Grams, R = s h y)
        for (int k : {4, 16}) {
            RowOpParams p = counts(OP_ESTEP, 2 * k, k, k, 1 + k, k);
            p.k = k;
            p.family = FAMILY_LINEAR;
            p.flags = FLAG_STORE | FLAG_SUFF;
            out.push_back({k == 4 ? "estep-linear-suff k=4" : "estep-linear-suff k=16 (q=32, r=16)", p, k, 0});
        }
    }
    for (int task : {TASK_GRADIENT, TASK_HESSVEC, TASK_DIAG, TASK_OBJECTIVE}) {  // the gate's Newton-CG passes
        const int k = 5, m = k - 1;
        RowOpParams p = counts(OP_SOFTMAX, task == TASK_HESSVEC ? 2 * m : m, 0, 0, 0, k);
        p.classes = k;
        p.k = k;
        p.problem = PROBLEM_GATE;
        p.task = task;
        if (task == TASK_GRADIENT) { p.r_cols = m; p.sums = 1; }
        if (task == TASK_HESSVEC) p.r_cols = m;
        if (task == TASK_DIAG) p.grams = m;
        if (task == TASK_OBJECTIVE) p.sums = 1;
        const char* names[] = {"gate objective", "gate gradient", "", "gate Hessian-vector", "gate diag(-H)"};
        out.push_back({names[task], p, k, 0});
    }
    {  // the largest Hessian-vector pass of (1e7, 100, 16): q = 30, r_cols = 15
        const int k = 16, m = k - 1;
        RowOpParams p = counts(OP_SOFTMAX, 2 * m, m, 0, 0, k);
        p.classes = k;
        p.k = k;
        p.problem = PROBLEM_GATE;
        p.task = TASK_HESSVEC;
        out.push_back({"gate Hessian-vector k=16", p, k, 0});
    }
    {  // σ² residual
        RowOpParams p = counts(OP_LINEAR_RESIDUAL, 3, 0, 0, 3, 3);
        p.k = 3;
        out.push_back({"linear residual", p, 3, 0});
    }
    {  // gradient of the general model, 2 multinomial experts × 3 classes: q = 8, r_cols = 1 + 2·2
        RowOpParams p = counts(OP_GRADIENT, 2 + 2 * 3, 1 + 2 * 2, 0, 1, 0);
        p.k = 2;
        p.family = FAMILY_MULTINOMIAL;
        p.classes = 3;
        out.push_back({"gradient multinomial", p, 0, 3});
    }
    {  // symmetric E-step, SymMoLinE with suff
        RowOpParams p = counts(OP_SYM_ESTEP, 2, 1, 0, 3, 2);
        p.sym_linear = 1;
        p.sigma = 0.8;
        p.flags = FLAG_STORE | FLAG_SUFF;
        out.push_back({"sym estep linear", p, 2, 0});
    }
    {  // no projections at all (q = 0): the Gram pass
        out.push_back({"gram (q=0)", counts(OP_GRAM, 0, 1, 1, 0, 0), 0, 0});
    }
    return out;
}

// Inputs of one pass: `rows` pass rows; H has `h_rows` rows, indexed through idx when `gathered`.
struct Inputs {
    int rows, d, h_rows;
    std::vector<double> x, y, s, proj, h, sigma2;
    std::vector<unsigned> idx;
};

Inputs inputs(check::Rng& rng, const Op& op, int rows, int d, bool gathered, bool zero_rows) {
    Inputs in;
    in.rows = rows;
    in.d = d;
    in.h_rows = gathered ? 2 * rows + 5 : rows;
    in.x = rng.vec((size_t)rows * d, -1, 1);
    in.y.resize(rows);
    for (auto& v : in.y) v = op.y_classes ? (double)(rng.next() % op.y_classes) : 4 * rng.uniform() - 2;
    in.s = rng.vec(rows, 0.25, 1.75);
    if (zero_rows)  // every 5th row all zero with zero weight
        for (int i = 0; i < rows; i += 5) {
            std::fill(in.x.begin() + (size_t)i * d, in.x.begin() + (size_t)(i + 1) * d, 0.0);
            in.s[i] = 0.0;
        }
    in.proj = rng.vec((size_t)op.p.q * d, -0.9, 0.9);
    const int w = op.k;
    in.h = rng.vec((size_t)in.h_rows * w, 0.05, 1.0);
    for (int i = 0; i < in.h_rows && w > 0; ++i) {
        double t = 0;
        for (int j = 0; j < w; ++j) t += in.h[(size_t)i * w + j];
        for (int j = 0; j < w; ++j) in.h[(size_t)i * w + j] /= t;
    }
    in.sigma2 = rng.vec(64, 0.5, 2.5);
    if (gathered) {
        std::vector<unsigned> all(in.h_rows);
        for (int i = 0; i < in.h_rows; ++i) all[i] = i;
        for (int i = in.h_rows - 1; i > 0; --i) std::swap(all[i], all[rng.next() % (i + 1)]);
        in.idx.assign(all.begin(), all.begin() + rows);
    }
    return in;
}

// What a pass produces, per row (Gram weights, sum terms), reduced (XᵀR) and stored (H).
struct Outputs {
    std::vector<double> xtr, gw, sv, h;
};

RowOpParams bind(const Op& op, Inputs& in, std::vector<double>& h, std::vector<double>& gw, std::vector<double>& sv) {
    RowOpParams p = op.p;
    p.rows = in.rows;
    p.y = in.y.data();
    p.s = in.s.data();
    p.h = op.k ? h.data() : nullptr;
    p.idx = in.idx.empty() ? nullptr : in.idx.data();
    p.sigma2 = in.sigma2.data();
    gw.assign((size_t)in.rows * p.grams, -7.0);  // a value no op writes: unwritten entries show
    sv.assign((size_t)in.rows * p.sums, -7.0);
    p.gw = gw.data();
    p.sv = sv.data();
    return p;
}

// The unfused path: A by plain loops, the `row_op` kernel, XᵀR by plain loops.
Outputs unfused(const Op& op, Inputs& in) {
    Outputs o;
    o.h = in.h;
    RowOpParams p = bind(op, in, o.h, o.gw, o.sv);
    const int q = p.q, d = in.d;
    std::vector<double> a((size_t)in.rows * q), r((size_t)in.rows * p.r_cols, 0.0);
    for (int i = 0; i < in.rows; ++i)
        for (int j = 0; j < q; ++j) {
            double v = 0;
            for (int f = 0; f < d; ++f) v += in.x[(size_t)i * d + f] * in.proj[(size_t)j * d + f];
            a[(size_t)i * q + j] = v;
        }
    p.a = a.data();
    p.r = r.data();
    if (in.rows > 0) emu::launch({(unsigned)((in.rows + 63) / 64)}, {64}, [&] { row_op(p); });
    o.xtr.assign((size_t)p.r_cols * d, 0.0);
    for (int i = 0; i < in.rows; ++i)
        for (int c = 0; c < p.r_cols; ++c)
            for (int f = 0; f < d; ++f) o.xtr[(size_t)c * d + f] += r[(size_t)i * p.r_cols + c] * in.x[(size_t)i * d + f];
    return o;
}

// A launch configuration of the kernel (src/fused.rs VARIANTS): entry point and threads per block.
struct Variant {
    const char* name;
    void (*kernel)(RowOpParams, const double*, const double*, int, double*);
    unsigned threads;
};
const Variant k256 = {"256 threads", fused_tc, 256}, k128 = {"128 threads", fused_tc_128x3, 128};

// The fused kernel on `grid` blocks; XᵀR = Σ over blocks, in block order, of the partials.
Outputs fused(const Op& op, Inputs& in, unsigned grid, const Variant& v = k256) {
    Outputs o;
    o.h = in.h;
    RowOpParams p = bind(op, in, o.h, o.gw, o.sv);
    const size_t outs = (size_t)p.r_cols * in.d;
    std::vector<double> partial(grid * outs, -7.0);
    emu::launch({grid}, {v.threads}, [&] { v.kernel(p, in.x.data(), in.proj.data(), in.d, partial.data()); });
    o.xtr.assign(outs, 0.0);
    for (unsigned b = 0; b < grid; ++b)
        for (size_t e = 0; e < outs; ++e) o.xtr[e] += partial[b * outs + e];
    return o;
}

bool same_bits(const std::vector<double>& a, const std::vector<double>& b) {
    return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0);
}

bool compare(const std::string& label, const Outputs& got, const Outputs& want) {
    const double tol = 1e-13;
    bool ok = true;
    ok &= check::close((label + " XtR").c_str(), got.xtr, want.xtr, tol);
    if (!want.gw.empty()) ok &= check::close((label + " Gram weights").c_str(), got.gw, want.gw, tol);
    if (!want.sv.empty()) ok &= check::close((label + " sum terms").c_str(), got.sv, want.sv, tol);
    if (!same_bits(got.h, want.h)) ok &= check::close((label + " H").c_str(), got.h, want.h, tol);
    return ok;
}

}  // namespace

int main() {
    check::Rng rng(2026);
    bool ok = true;
    const unsigned grid = 3;
    const auto all = ops();
    for (int d : {1, 7, 8, 100, 128}) {
        for (const Op& op : all) {
            // 137 rows = 4 full tiles of 32 and one of 9, over 3 blocks (two of them walk 2 tiles); gathered
            // rows on every other op.
            const bool gathered = (&op - all.data()) % 2 == 1;
            Inputs in = inputs(rng, op, 137, d, gathered, d == 7);
            char label[160];
            std::snprintf(label, sizeof label, "%s d=%d%s%s", op.name, d, gathered ? " gathered" : "",
                          d == 7 ? " zero rows" : "");
            ok &= compare(label, fused(op, in, grid), unfused(op, in));
        }
    }
    for (int d : {7, 100}) {  // the 128-thread build of the same code (no k-step split), on a subset
        for (const Op& op : all) {
            Inputs in = inputs(rng, op, 137, d, (&op - all.data()) % 2 == 0, false);
            ok &= compare(std::string(op.name) + " d=" + std::to_string(d) + " 128 threads", fused(op, in, grid, k128),
                          unfused(op, in));
        }
    }
    {  // a pass over no rows: zero partials, nothing written
        const Op& op = all[0];
        Inputs in = inputs(rng, op, 0, 100, false, false);
        Outputs got = fused(op, in, 1);
        ok &= check::close("estep no rows XtR", got.xtr, std::vector<double>(got.xtr.size(), 0.0), 0.0);
    }
    {  // run to run: the same bits
        const Op& op = all[1];  // E-step, k = 16 (q = 32, r_cols = 16)
        Inputs in = inputs(rng, op, 301, 100, true, false);
        Outputs a = fused(op, in, grid), b = fused(op, in, grid);
        const bool same = same_bits(a.xtr, b.xtr) && same_bits(a.gw, b.gw) && same_bits(a.sv, b.sv) && same_bits(a.h, b.h);
        std::printf("%s fused_tc run to run: %s\n", same ? "ok  " : "FAIL", same ? "bit-identical" : "bits differ");
        ok &= same;
    }
    return ok ? 0 : 1;
}
