// The register forms of the E-step and softmax rows (kernels/moe_kernels.cu `op_estep_small`,
// `op_softmax_small`, which `eval_row` runs for k, C ≤ MOE_SMALL_CLASSES) against the local-array forms
// `op_estep`, `op_softmax` they replace there: every output (R, Gram weights, sum terms, the stored H or
// probabilities) must be the same bits, row by row.
// - Softmax: every problem and every task that takes the register form (all but TASK_HESSIAN), C from 2 to
//   MOE_SMALL_CLASSES, zero and non-zero weights, targets with zeros (the f term skips them), logits large
//   enough that only the max shift keeps exp finite, −0 in the projections.
// - E-step: linear and logistic experts, k from 1 to MOE_SMALL_CLASSES, with and without storing H and the
//   sufficient statistics, zero weights, large logits, and gate logits of −∞ (lse's early return).
// The forms are called directly as host functions: no launch is needed for a per-row function.
#include "emu.h"
#include MOE_KERNELS
#include "check.h"

#include <cstring>
#include <string>
#include <vector>

namespace {

struct Row {
    std::vector<double> a, h, probs, r, gw, sv;
};

// One row of `p` (problem, task, classes set) through `form`: 0 the local-array form, 1 the register form.
Row run(const RowOpParams& p, const Row& in, double y, double s, int form) {
    Row out = in;
    out.r.assign(p.r_cols, -7.0);  // poisoned: every written entry must be written by both forms alike
    out.gw.assign(p.grams, -7.0);
    out.sv.assign(p.sums, -7.0);
    RowOut o = {out.r.data(), out.gw.data(), out.sv.data()};
    double* prow = p.p_width > 0 ? out.probs.data() : nullptr;
    if (p.op == OP_ESTEP) {
        if (form == 0) op_estep(p, o, out.a.data(), y, s, out.h.data());
        else op_estep_small<MOE_SMALL_CLASSES>(p, o, out.a.data(), y, s, out.h.data());
    } else {
        if (form == 0) op_softmax(p, o, out.a.data(), y, s, out.h.data(), prow);
        else op_softmax_small<MOE_SMALL_CLASSES>(p, o, out.a.data(), y, s, out.h.data(), prow);
    }
    return out;
}

bool same(const std::vector<double>& a, const std::vector<double>& b) {
    return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0);
}

}  // namespace

int main() {
    check::Rng rng(2026);
    bool ok = true;
    struct Problem {
        const char* name;
        int problem, family;
    };
    const Problem problems[] = {{"gate", PROBLEM_GATE, 0},
                                {"multinomial expert", PROBLEM_EXPERT, FAMILY_MULTINOMIAL},
                                {"logistic expert", PROBLEM_EXPERT, FAMILY_LOGISTIC},
                                {"symmetric gate", PROBLEM_SYM_GATE, 0},
                                {"symmetric logistic expert", PROBLEM_SYM_LOG_EXPERT, 0}};
    const int tasks[] = {TASK_OBJECTIVE, TASK_GRADIENT, TASK_HESSVEC, TASK_GRADIENT_DIAG, TASK_GRADIENT_DIAG_STORE,
                         TASK_HESSVEC_STORED};
    const int rows = 200;
    for (const Problem& pb : problems) {
        const bool two = pb.problem == PROBLEM_SYM_GATE || pb.problem == PROBLEM_SYM_LOG_EXPERT || pb.family == FAMILY_LOGISTIC;
        for (int C = 2; C <= MOE_SMALL_CLASSES; ++C) {
            if (two && C != 2) continue;
            for (int task : tasks) {
                const int m = C - 1, k = pb.problem == PROBLEM_EXPERT ? 3 : C;  // H width: experts k = 3
                RowOpParams p{};
                p.op = OP_SOFTMAX;
                p.problem = pb.problem;
                p.family = pb.family;
                p.classes = C;
                p.k = k;
                p.expert = 1;
                p.task = task;
                p.h_width = k;
                p.q = task == TASK_HESSVEC ? 2 * m : m;
                const bool diag = task == TASK_GRADIENT_DIAG || task == TASK_GRADIENT_DIAG_STORE;
                const bool gradient = diag || task == TASK_GRADIENT;
                p.r_cols = gradient || task == TASK_HESSVEC || task == TASK_HESSVEC_STORED ? m : 0;
                p.grams = diag ? m : 0;
                p.sums = gradient || task == TASK_OBJECTIVE ? 1 : 0;
                p.p_width = task == TASK_GRADIENT_DIAG_STORE || task == TASK_HESSVEC_STORED ? m : 0;
                int differ = 0;
                for (int i = 0; i < rows; ++i) {
                    Row in;
                    // Logits: mostly moderate, some beyond exp's range (|t| > 710) so that only the max shift
                    // keeps the exponentials finite, some −0.
                    const double scale = i % 13 == 5 ? 800.0 : 3.0;
                    in.a = rng.vec(p.q, -scale, scale);
                    if (i % 11 == 4) in.a[0] = -0.0;
                    in.h = rng.vec(k, 0.0, 1.0);
                    for (int j = 0; j < k; ++j)
                        if (i % 3 == 0 && j % 2 == 1) in.h[j] = 0.0;  // zero targets: the f term skips them
                    double hs = 0.0;
                    for (double v : in.h) hs += v;
                    for (double& v : in.h) v = hs > 0.0 ? v / hs : 0.0;
                    in.probs = rng.vec(m, 0.01, 0.5);
                    const double y = pb.problem == PROBLEM_SYM_LOG_EXPERT ? (rng.uniform() < 0.5 ? -1.0 : 1.0)
                                     : pb.problem == PROBLEM_EXPERT ? std::floor(rng.uniform() * C)
                                                                    : rng.symmetric();
                    const double s = i % 17 == 2 ? 0.0 : 0.2 + rng.uniform();
                    const Row want = run(p, in, y, s, 0), got = run(p, in, y, s, 1);
                    if (!same(got.r, want.r) || !same(got.gw, want.gw) || !same(got.sv, want.sv) || !same(got.probs, want.probs)) ++differ;
                }
                char what[160];
                std::snprintf(what, sizeof what, "%s C=%d task %d", pb.name, C, task);
                if (differ) std::printf("FAIL %s: %d of %d rows differ from op_softmax\n", what, differ, rows);
                ok &= differ == 0;
            }
        }
    }
    std::printf("%s op_softmax_small == op_softmax bit for bit (%d rows per problem, C and task)\n", ok ? "ok  " : "FAIL", rows);

    bool estep_ok = true;
    for (int family : {FAMILY_LINEAR, FAMILY_LOGISTIC})
        for (int k = 1; k <= MOE_SMALL_CLASSES; ++k)
            for (int flags : {FLAG_STORE | FLAG_SUFF, FLAG_SUFF, FLAG_STORE, 0}) {
                RowOpParams p{};
                p.op = OP_ESTEP;
                p.k = k;
                p.family = family;
                p.flags = flags;
                p.q = 2 * k;
                p.h_width = k;
                const bool suff = (flags & FLAG_SUFF) && family == FAMILY_LINEAR;
                p.r_cols = suff ? k : 0;
                p.grams = suff ? k : 0;
                p.sums = 1 + k;
                // The linear experts' per-pass constants: σ², −½log(2πσ²), 1/σ² (rowops::linear_expert_constants).
                std::vector<double> linear(3 * k);
                for (int j = 0; j < k; ++j) {
                    const double s2 = 0.3 + 2.0 * rng.uniform();
                    linear[j] = s2;
                    linear[k + j] = -0.5 * std::log(6.283185307179586 * s2);
                    linear[2 * k + j] = 1.0 / s2;
                }
                p.linear = linear.data();
                int differ = 0;
                for (int i = 0; i < rows; ++i) {
                    Row in;
                    const double scale = i % 13 == 5 ? 800.0 : 3.0;
                    in.a = rng.vec(p.q, -scale, scale);
                    if (i % 29 == 7)
                        for (int j = 0; j < k; ++j) in.a[j] = -HUGE_VAL;  // the gate's lse returns −∞ early
                    if (i % 11 == 4) in.a[k] = -0.0;
                    in.h = rng.vec(k, 0.0, 1.0);  // overwritten where the op stores H; compared either way
                    const double y = family == FAMILY_LOGISTIC ? std::floor(2.0 * rng.uniform()) : 2.0 * rng.symmetric();
                    const double s = i % 17 == 2 ? 0.0 : 0.2 + rng.uniform();
                    const Row want = run(p, in, y, s, 0), got = run(p, in, y, s, 1);
                    if (!same(got.r, want.r) || !same(got.gw, want.gw) || !same(got.sv, want.sv) || !same(got.h, want.h)) ++differ;
                }
                if (differ)
                    std::printf("FAIL E-step %s k=%d flags %d: %d of %d rows differ from op_estep\n",
                                family == FAMILY_LINEAR ? "linear" : "logistic", k, flags, differ, rows);
                estep_ok &= differ == 0;
            }
    std::printf("%s op_estep_small == op_estep bit for bit (%d rows per family, k and flags)\n", estep_ok ? "ok  " : "FAIL", rows);
    return ok && estep_ok ? 0 : 1;
}
