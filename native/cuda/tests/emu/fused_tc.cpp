// The fused tensor-core pass (kernels/fused_tc.cu) against the GPU-validated unfused path, both emulated:
// the oracle computes A = X·Pᵀ with plain loops, runs the `row_op` kernel on it, and reduces XᵀR with plain
// loops; the fused kernel must give the same XᵀR (its block partials summed as the host sums them), Gram
// weights, per-row sum terms and stored H, to 1e-13 relative, and the same bits when run twice.
// Cases: the narrow ops of an EM iteration and a few others, d ∈ {1, 7, 8, 100, 128} (d not a multiple of
// 16 leaves padding; odd d takes the 8-byte copies), rows not a multiple of the 64-row tile, gathered rows
// (H through idx, as Rows::Order; the staged H rows too), zero rows of X with zero weight, a pass without
// sample weights (d = 8), and a pass over no rows; the default
// configuration (src/fused.rs VARIANTS[0], one X buffer) on all of them, the two-stage pipeline (VARIANTS[1]),
// the streamed 128-row variant (VARIANTS[2], fused_tc_l2) and the sm_80 form of the bodies (m8n8k4 instead of
// m16n8k16) on subsets. Small grids (2 blocks) keep the emulation short while blocks walk several tiles (the
// launch otherwise mirrors src/fused.rs `launch`: its threads per block, `shared_bytes` of dynamic shared
// memory).
// The probability store (SoftmaxTask::GradientDiagStore / HessVecStored) on every softmax problem, with sample
// weights and gathered rows: `row_op` GradientDiagStore gives GradientDiag's outputs (and Gradient's R and sum
// terms) and stores p; `row_op` HessVecStored (P = D) after it gives `row_op` HessVec's (P = [V; D]) R bit for
// bit; the fused kernel matches `row_op`.
#include "emu.h"
#include MOE_KERNELS
#include "check.h"
#include "row_op_launch.h"

#include <cstring>
#include <string>

namespace {

struct Op {
    const char* name;
    RowOpParams p;  // op fields and counts; pointers and rows filled per run
    int k;          // H width (0: none)
    int y_classes;  // labels: 0 real, −1 signs ±1, else integers in [0, y_classes)
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
        for (int k : {4, 16, 10}) {  // k = 10: q = 20, three column tiles of A (the second of the upper half unused)
            RowOpParams p = counts(OP_ESTEP, 2 * k, k, k, 1 + k, k);
            p.k = k;
            p.family = FAMILY_LINEAR;
            p.flags = FLAG_STORE | FLAG_SUFF;
            out.push_back({k == 4 ? "estep-linear-suff k=4" : k == 16 ? "estep-linear-suff k=16 (q=32, r=16)" : "estep-linear-suff k=10 (q=20)", p, k, 0});
        }
    }
    for (int task : {TASK_GRADIENT, TASK_HESSVEC, TASK_GRADIENT_DIAG, TASK_OBJECTIVE}) {  // the gate's Newton-CG passes
        const int k = 5, m = k - 1;
        RowOpParams p = counts(OP_SOFTMAX, task == TASK_HESSVEC ? 2 * m : m, 0, 0, 0, k);
        p.classes = k;
        p.k = k;
        p.problem = PROBLEM_GATE;
        p.task = task;
        if (task == TASK_GRADIENT || task == TASK_GRADIENT_DIAG) { p.r_cols = m; p.sums = 1; }
        if (task == TASK_HESSVEC) p.r_cols = m;
        if (task == TASK_GRADIENT_DIAG) p.grams = m;
        if (task == TASK_OBJECTIVE) p.sums = 1;
        const char* names[] = {"gate objective", "gate gradient", "", "gate Hessian-vector", "gate gradient + diag(-H)"};
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

// Inputs of one pass: `rows` pass rows; H and the probability store have `h_rows` rows, indexed through idx
// when `gathered`.
struct Inputs {
    int rows, d, h_rows;
    std::vector<double> x, y, s, proj, h, probs, linear;
    std::vector<unsigned> idx;
};

Inputs inputs(check::Rng& rng, const Op& op, int rows, int d, bool gathered, bool zero_rows) {
    Inputs in;
    in.rows = rows;
    in.d = d;
    in.h_rows = gathered ? 2 * rows + 5 : rows;
    in.x = rng.vec((size_t)rows * d, -1, 1);
    in.y.resize(rows);
    for (auto& v : in.y)
        v = op.y_classes > 0 ? (double)(rng.next() % op.y_classes) : op.y_classes < 0 ? (rng.next() % 2 ? 1.0 : -1.0)
                                                                                       : 4 * rng.uniform() - 2;
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
    in.probs = rng.vec((size_t)in.h_rows * op.p.p_width, 0.05, 0.5);
    // Linear experts' per-pass constants (RowOpParams::linear): k σ², k −½log(2πσ²), k 1/σ².
    const int k = op.p.k > 0 ? op.p.k : 1;
    const std::vector<double> s2 = rng.vec(k, 0.5, 2.5);
    in.linear = s2;
    for (double v : s2) in.linear.push_back(-0.5 * LOG_2PI - 0.5 * std::log(v));
    for (double v : s2) in.linear.push_back(1.0 / v);
    if (gathered) {
        std::vector<unsigned> all(in.h_rows);
        for (int i = 0; i < in.h_rows; ++i) all[i] = i;
        for (int i = in.h_rows - 1; i > 0; --i) std::swap(all[i], all[rng.next() % (i + 1)]);
        in.idx.assign(all.begin(), all.begin() + rows);
    }
    return in;
}

// What a pass produces, per row (Gram weights, sum terms; R from `unfused` only), reduced (XᵀR) and stored
// (H, probabilities).
struct Outputs {
    std::vector<double> xtr, gw, sv, h, probs, r;
};

RowOpParams bind(const Op& op, Inputs& in, Outputs& o) {
    o.h = in.h;
    o.probs = in.probs;
    RowOpParams p = op.p;
    p.rows = in.rows;
    p.y = in.y.data();
    p.s = in.s.empty() ? nullptr : in.s.data();  // no sample weights: s = 1 in the row op
    p.h = op.k ? o.h.data() : nullptr;
    p.probs = p.p_width ? o.probs.data() : nullptr;
    p.idx = in.idx.empty() ? nullptr : in.idx.data();
    p.linear = in.linear.data();
    o.gw.assign((size_t)in.rows * p.grams, -7.0);  // a value no op writes: unwritten entries show
    o.sv.assign((size_t)in.rows * p.sums, -7.0);
    p.gw = o.gw.data();
    p.sv = o.sv.data();
    return p;
}

// The unfused path: A by plain loops, the `row_op` kernel (or `row_op_tiled` with `tile` rows per block, its
// shared memory as src/kernels.rs `row_tile` sizes it), XᵀR by plain loops.
Outputs unfused(const Op& op, Inputs& in, unsigned tile = 0) {
    Outputs o;
    RowOpParams p = bind(op, in, o);
    const int q = p.q, d = in.d;
    std::vector<double> a((size_t)in.rows * q), &r = o.r;
    r.assign((size_t)in.rows * p.r_cols, 0.0);
    for (int i = 0; i < in.rows; ++i)
        for (int j = 0; j < q; ++j) {
            double v = 0;
            for (int f = 0; f < d; ++f) v += in.x[(size_t)i * d + f] * in.proj[(size_t)j * d + f];
            a[(size_t)i * q + j] = v;
        }
    p.a = a.data();
    p.r = r.data();
    launch_row_op(p, tile);
    o.xtr.assign((size_t)p.r_cols * d, 0.0);
    for (int i = 0; i < in.rows; ++i)
        for (int c = 0; c < p.r_cols; ++c)
            for (int f = 0; f < d; ++f) o.xtr[(size_t)c * d + f] += r[(size_t)i * p.r_cols + c] * in.x[(size_t)i * d + f];
    return o;
}

// A launch configuration of the kernel (src/fused.rs VARIANTS): entry point and X buffers (stages; 0: the
// streamed fused_tc_l2, 128 threads).
using Kernel = void (*)(RowOpParams, const double*, const double*, int, double*);
struct Variant {
    const char* name;
    Kernel kernel;
    int stages;
    unsigned threads() const { return stages == 0 ? FTL_THREADS : FTC_THREADS; }
    size_t shared_bytes(int d) const { return 8 * (size_t)(stages == 0 ? ftl_shared_doubles(d) : ftc_shared_doubles(stages, d)); }
};
// The sm_80 form of the default and the streamed configurations (m8n8k4; the emulator's build has the
// m16n8k16 one).
void fused_tc_sm80(RowOpParams p, const double* x, const double* proj, int d, double* partial) {
    fused_tc_body<0, 1>(p, x, proj, d, partial);
}
void fused_tc_l2_sm80(RowOpParams p, const double* x, const double* proj, int d, double* partial) {
    fused_tc_l2_body<0>(p, x, proj, d, partial);
}
const Variant one_buffer = {"1 buffer", fused_tc, 1}, pipeline = {"2-stage pipeline", fused_tc_pipe, 2},
              sm80 = {"sm_80 m8n8k4", fused_tc_sm80, 1}, l2 = {"L2 stream", fused_tc_l2, 0},
              l2_sm80 = {"L2 stream sm_80 m8n8k4", fused_tc_l2_sm80, 0};

// The fused kernel on `grid` blocks; XᵀR = the partials summed as src/fused.rs `launch` sums them: chunks of 32
// blocks in block order, then the chunks in order.
Outputs fused(const Op& op, Inputs& in, unsigned grid, const Variant& v = one_buffer) {
    Outputs o;
    RowOpParams p = bind(op, in, o);
    const size_t outs = (size_t)p.r_cols * in.d;
    std::vector<double> partial(grid * outs, -7.0);
    emu::launch({grid}, {v.threads()}, [&] { v.kernel(p, in.x.data(), in.proj.data(), in.d, partial.data()); }, v.shared_bytes(in.d));
    o.xtr.assign(outs, 0.0);
    for (unsigned first = 0; first < grid; first += 32) {
        std::vector<double> chunk(outs, 0.0);
        for (unsigned b = first; b < std::min(grid, first + 32); ++b)
            for (size_t e = 0; e < outs; ++e) chunk[e] += partial[b * outs + e];
        for (size_t e = 0; e < outs; ++e) o.xtr[e] += chunk[e];
    }
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
    if (!same_bits(got.probs, want.probs)) ok &= check::close((label + " stored p").c_str(), got.probs, want.probs, tol);
    return ok;
}

bool expect_same_bits(const std::string& what, const std::vector<double>& got, const std::vector<double>& want) {
    const bool same = same_bits(got, want);
    std::printf("%s %s: %s\n", same ? "ok  " : "FAIL", what.c_str(), same ? "bit-identical" : "bits differ");
    return same;
}

// A softmax problem (moe_core SoftmaxProblem) with its task set per pass.
Op softmax_problem(const char* name, int problem, int classes, int h_width, int y_classes) {
    RowOpParams p = counts(OP_SOFTMAX, 0, 0, 0, 0, h_width);
    p.problem = problem;
    p.classes = classes;
    p.k = h_width;
    if (problem == PROBLEM_EXPERT) {
        p.expert = 1;
        p.family = classes == 2 && y_classes == 2 ? FAMILY_LOGISTIC : FAMILY_MULTINOMIAL;
    }
    return {name, p, h_width, y_classes};
}

// The op of `problem` for one task, with its shape (moe_core RowOp::shape).
Op with_task(Op op, int task) {
    const int m = op.p.classes - 1;
    op.p.task = task;
    op.p.q = task == TASK_HESSVEC ? 2 * m : m;
    const bool diag = task == TASK_GRADIENT_DIAG || task == TASK_GRADIENT_DIAG_STORE;
    const bool gradient = diag || task == TASK_GRADIENT || task == TASK_HESSIAN;
    op.p.r_cols = gradient || task == TASK_HESSVEC || task == TASK_HESSVEC_STORED ? m : 0;
    op.p.grams = diag ? m : task == TASK_HESSIAN ? m * (m + 1) / 2 : 0;
    op.p.sums = gradient || task == TASK_OBJECTIVE ? 1 : 0;
    op.p.p_width = task == TASK_GRADIENT_DIAG_STORE || task == TASK_HESSVEC_STORED ? m : 0;
    return op;
}

// The store rows a pass over `in` touches (idx, or all rows).
std::vector<unsigned> store_rows(const Inputs& in) {
    if (!in.idx.empty()) return in.idx;
    std::vector<unsigned> all(in.rows);
    for (int i = 0; i < in.rows; ++i) all[i] = i;
    return all;
}

// One problem: Newton-CG's GradientDiag/GradientDiagStore pass at V, then its Hessian-vector pass in direction D,
// both ways.
bool stored_probabilities(check::Rng& rng, const Op& problem, int d, bool gathered) {
    const int m = problem.p.classes - 1;
    char label[160];
    std::snprintf(label, sizeof label, "%s d=%d%s", problem.name, d, gathered ? " gathered" : "");
    const std::string at(label);
    const Op hv = with_task(problem, TASK_HESSVEC), diag = with_task(problem, TASK_GRADIENT_DIAG),
             diag_store = with_task(problem, TASK_GRADIENT_DIAG_STORE), hv_stored = with_task(problem, TASK_HESSVEC_STORED);
    Inputs in_hv = inputs(rng, hv, 137, d, gathered, d == 7);  // P = [V; D]
    Inputs in_v = in_hv, in_d = in_hv;
    in_v.proj.assign(in_hv.proj.begin(), in_hv.proj.begin() + (size_t)m * d);
    in_d.proj.assign(in_hv.proj.begin() + (size_t)m * d, in_hv.proj.end());
    in_v.probs = rng.vec((size_t)in_v.h_rows * m, 0.05, 0.5);  // the rows the pass does not touch keep these
    bool ok = true;

    const Outputs plain = unfused(diag, in_v), stored = unfused(diag_store, in_v);
    ok &= expect_same_bits(at + " GradientDiagStore Gram weights == GradientDiag", stored.gw, plain.gw);
    ok &= expect_same_bits(at + " GradientDiagStore R == GradientDiag", stored.r, plain.r);
    ok &= expect_same_bits(at + " GradientDiagStore sum terms == GradientDiag", stored.sv, plain.sv);
    const Outputs gradient = unfused(with_task(problem, TASK_GRADIENT), in_v);  // the same f and g, bit for bit
    ok &= expect_same_bits(at + " GradientDiag R == Gradient", plain.r, gradient.r);
    ok &= expect_same_bits(at + " GradientDiag sum terms == Gradient", plain.sv, gradient.sv);
    // p_c = exp(sign·(Vx)_c − lse(sign·Vx, 0)) by plain loops, in the stored rows; the other rows untouched.
    std::vector<double> want = in_v.probs;
    const std::vector<unsigned> rows = store_rows(in_v);
    for (int i = 0; i < in_v.rows; ++i) {
        const double sign = problem.p.problem == PROBLEM_SYM_LOG_EXPERT ? in_v.y[i] : 1.0;
        std::vector<double> z(m + 1, 0.0);
        for (int c = 0; c < m; ++c) {
            for (int f = 0; f < d; ++f) z[c] += in_v.x[(size_t)i * d + f] * in_v.proj[(size_t)c * d + f];
            z[c] *= sign;
        }
        double mx = 0.0, sum = 0.0;
        for (double v : z) mx = std::fmax(mx, v);
        for (double v : z) sum += std::exp(v - mx);
        for (int c = 0; c < m; ++c) want[(size_t)rows[i] * m + c] = std::exp(z[c] - mx) / sum;
    }
    ok &= check::close((at + " GradientDiagStore stored p").c_str(), stored.probs, want, 1e-13);
    ok &= compare(at + " GradientDiagStore fused", fused(diag_store, in_v, 2), stored);
    if (gathered) ok &= compare(at + " GradientDiagStore fused, 2-stage pipeline", fused(diag_store, in_v, 2, pipeline), stored);
    if (gathered) ok &= compare(at + " GradientDiagStore fused, L2 stream", fused(diag_store, in_v, 1, l2), stored);

    in_d.probs = stored.probs;
    const Outputs direct = unfused(hv, in_hv), from_store = unfused(hv_stored, in_d);
    ok &= expect_same_bits(at + " HessVecStored R == HessVec", from_store.r, direct.r);
    ok &= expect_same_bits(at + " HessVecStored XtR == HessVec", from_store.xtr, direct.xtr);
    ok &= expect_same_bits(at + " HessVecStored leaves the store", from_store.probs, in_d.probs);
    ok &= compare(at + " HessVecStored fused", fused(hv_stored, in_d, 2), from_store);
    if (gathered) ok &= compare(at + " HessVecStored fused, 2-stage pipeline", fused(hv_stored, in_d, 2, pipeline), from_store);
    if (gathered) ok &= compare(at + " HessVecStored fused, L2 stream", fused(hv_stored, in_d, 1, l2), from_store);
    return ok;
}

}  // namespace

int main() {
    check::Rng rng(2026);
    bool ok = true;
    const unsigned grid = 2;
    const auto all = ops();
    for (int d : {1, 7, 8, 100, 128}) {
        for (const Op& op : all) {
            // 137 rows = 2 full tiles of 64 and one of 9, over 2 blocks (block 0 walks tiles 0 and 2);
            // gathered rows on every other op.
            const bool gathered = (&op - all.data()) % 2 == 1;
            Inputs in = inputs(rng, op, 137, d, gathered, d == 7);
            if (d == 8) in.s.clear();  // a pass without sample weights
            char label[160];
            std::snprintf(label, sizeof label, "%s d=%d%s%s%s", op.name, d, gathered ? " gathered" : "",
                          d == 7 ? " zero rows" : "", d == 8 ? " no weights" : "");
            ok &= compare(label, fused(op, in, grid), unfused(op, in));
        }
    }
    for (const Variant* v : {&pipeline, &sm80, &l2}) {  // the other configurations, on subsets
        for (int d : {7, 100}) {
            if (v == &sm80 && d == 7) continue;  // the copies do not depend on the MMA shape
            for (const Op& op : all) {
                // 301 rows: 4 full tiles of 64 and one of 45, block 0 walking 3 tiles through the pipeline; for
                // the L2 variant 2 tiles of 128 and one of 45, block 0 walking tiles 0 and 2 (short).
                Inputs in = inputs(rng, op, 301, d, (&op - all.data()) % 2 == 0, d == 7);
                ok &= compare(std::string(op.name) + " d=" + std::to_string(d) + " " + v->name, fused(op, in, grid, *v),
                              unfused(op, in));
            }
        }
    }
    // The tiled row op (shared-memory staging) against `row_op`: the same eval_row, so the same bits; 137
    // rows = 2 tiles of 64 and one of 9; gathered rows on every other op; a pass over no rows.
    for (int d : {7, 100})
        for (const Op& op : all) {
            const bool gathered = (&op - all.data()) % 2 == 0;
            for (int rows : {137, 0}) {
                Inputs in = inputs(rng, op, rows, d, gathered, d == 7);
                const Outputs direct = unfused(op, in), tiled = unfused(op, in, 64);
                const std::string at = std::string(op.name) + " d=" + std::to_string(d) + " rows=" + std::to_string(rows) + " tiled row op";
                ok &= expect_same_bits(at + " R", tiled.r, direct.r) && expect_same_bits(at + " Gram weights", tiled.gw, direct.gw) &&
                      expect_same_bits(at + " sum terms", tiled.sv, direct.sv) && expect_same_bits(at + " H", tiled.h, direct.h) &&
                      expect_same_bits(at + " stored p", tiled.probs, direct.probs);
            }
        }
    for (const Op& problem : {softmax_problem("tiled: multinomial expert C=4", PROBLEM_EXPERT, 4, 3, 4)})
        for (int task : {TASK_GRADIENT_DIAG_STORE, TASK_GRADIENT, TASK_HESSIAN}) {
            Op op = with_task(problem, task);
            Inputs in = inputs(rng, op, 137, 7, true, false);
            const Outputs direct = unfused(op, in), tiled = unfused(op, in, 64);
            const std::string at = std::string(op.name) + " task " + std::to_string(task) + " tiled row op";
            ok &= expect_same_bits(at + " R", tiled.r, direct.r) && expect_same_bits(at + " Gram weights", tiled.gw, direct.gw) &&
                  expect_same_bits(at + " sum terms", tiled.sv, direct.sv) && expect_same_bits(at + " stored p", tiled.probs, direct.probs);
        }
    {  // the L2 variant: its sm_80 form (q = 32 and q = 8), d = 128 at the limits (E-step q = 32, r_cols = 16;
       // Hessian-vector q = 30), one block walking all 3 tiles (2 of 128 rows and one of 45)
        const Op& estep16 = all[1];  // q = 32, r_cols = 16
        const Op& hv16 = all[7];     // q = 30, r_cols = 15
        for (const Op* op : {&estep16, &all[4]}) {
            Inputs in = inputs(rng, *op, 301, 100, true, false);
            ok &= compare(std::string(op->name) + " d=100 " + l2_sm80.name, fused(*op, in, grid, l2_sm80), unfused(*op, in));
        }
        for (const Op* op : {&estep16, &hv16}) {
            Inputs in = inputs(rng, *op, 301, 128, false, false);
            ok &= compare(std::string(op->name) + " d=128 L2 stream", fused(*op, in, grid, l2), unfused(*op, in));
            Inputs in1 = inputs(rng, *op, 301, 100, true, false);
            ok &= compare(std::string(op->name) + " d=100 L2 stream, 1 block (3 tiles)", fused(*op, in1, 1, l2), unfused(*op, in1));
        }
    }
    for (const Variant* v : {&one_buffer, &pipeline, &l2}) {  // a pass over no rows: zero partials, nothing written
        const Op& op = all[0];
        Inputs in = inputs(rng, op, 0, 100, false, false);
        Outputs got = fused(op, in, 1, *v);
        ok &= check::close((std::string("estep no rows XtR ") + v->name).c_str(), got.xtr,
                           std::vector<double>(got.xtr.size(), 0.0), 0.0);
    }
    {  // the probability store, every softmax problem (moe_core SoftmaxProblem)
        const Op problems[] = {
            softmax_problem("stored p: gate k=5", PROBLEM_GATE, 5, 5, 0),
            softmax_problem("stored p: logistic expert", PROBLEM_EXPERT, 2, 3, 2),
            softmax_problem("stored p: multinomial expert C=4", PROBLEM_EXPERT, 4, 3, 4),
            softmax_problem("stored p: sym gate", PROBLEM_SYM_GATE, 2, 2, -1),
            softmax_problem("stored p: sym logistic expert", PROBLEM_SYM_LOG_EXPERT, 2, 2, -1),
        };
        for (const Op& problem : problems)
            for (int d : {7, 100})
                for (bool gathered : {false, true}) ok &= stored_probabilities(rng, problem, d, gathered);
    }
    for (const Variant* v : {&one_buffer, &pipeline, &l2}) {  // run to run: the same bits
        const Op& op = all[1];  // E-step, k = 16 (q = 32, r_cols = 16)
        Inputs in = inputs(rng, op, 301, 100, true, false);
        Outputs a = fused(op, in, grid, *v), b = fused(op, in, grid, *v);
        const bool same = same_bits(a.xtr, b.xtr) && same_bits(a.gw, b.gw) && same_bits(a.sv, b.sv) && same_bits(a.h, b.h);
        std::printf("%s fused_tc %s run to run: %s\n", same ? "ok  " : "FAIL", v->name, same ? "bit-identical" : "bits differ");
        ok &= same;
    }
    return ok ? 0 : 1;
}
