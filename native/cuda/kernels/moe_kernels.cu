// moe-em CUDA kernels (float64). The per-row operations of moe_core::backend::RowOp, one thread per row,
// plus the small helpers of a pass (row gather, Gram-weight scaling, squares for diagonal Grams).
//
// A pass on the GPU is: A = X·Pᵀ (cuBLAS), `row_op` (this file: writes the per-row outputs R, Gram weights,
// per-row sum terms, and H), then the reductions XᵀR, Σ rows, Grams (cuBLAS). Every reduction is a GEMM or a
// two-stage sum in a fixed order: no float atomics, so a pass gives the same bits run to run. The optional
// fused kernel (fused_tc.cu) calls `eval_row` below: it is the one definition of the per-row mathematics.
//
// The mathematics of each op is moe_core::rowops::eval_row / docs/ALGORITHMS.md §2–§4; the comments name the
// formulas. Compiled by build.rs with nvcc (fatbin) or at run time by NVRTC: no #include at all.

#define MOE_MAX_WIDTH 64  // experts k and classes C per row (local arrays); the host rejects larger
// Experts k and classes C up to which the E-step and softmax rows run in registers (op_estep_small,
// op_softmax_small); above it (and for multinomial experts' E-steps, the Hessian task) the local-array forms.
#define MOE_SMALL_CLASSES 16

// Opcodes (must match src/kernels.rs `OpCode`).
#define OP_MOMENTS 0
#define OP_GRAM 1
#define OP_ESTEP 2
#define OP_SYM_ESTEP 3
#define OP_LINEAR_RESIDUAL 4
#define OP_SOFTMAX 5
#define OP_GRADIENT 6
#define OP_SYM_GRADIENT 7
#define OP_H_STATS 8

#define FAMILY_LINEAR 0
#define FAMILY_LOGISTIC 1
#define FAMILY_MULTINOMIAL 2

#define PROBLEM_GATE 0
#define PROBLEM_EXPERT 1
#define PROBLEM_SYM_GATE 2
#define PROBLEM_SYM_LOG_EXPERT 3

#define TASK_OBJECTIVE 0
#define TASK_GRADIENT 1
#define TASK_HESSIAN 2
#define TASK_HESSVEC 3
#define TASK_GRADIENT_DIAG 4
#define TASK_GRADIENT_DIAG_STORE 5
#define TASK_HESSVEC_STORED 6

#define FLAG_STORE 1
#define FLAG_SUFF 2
#define FLAG_STORED_H 4

#define LOG_2PI 1.8378770664093454835606594728112

// Layout shared with src/kernels.rs `RowOpParams` (#[repr(C)]): ints first (an even count, so the doubles
// start 8-aligned with no implicit padding), then doubles, then pointers.
struct RowOpParams {
    int op, rows, q, k, classes, family, flags, problem, task, expert, h_width, r_cols, grams, sums;
    int sym_linear;  // SymMoLinE (sym ops); HStats: symmetric
    int p_width;     // width of the probability store (Softmax GradientDiagStore / HessVecStored), else 0
    double sigma;
    const double* a;       // rows×q projections
    const double* y;       // rows
    const double* s;       // rows, or null (all ones)
    double* h;             // stored H (n×h_width), indexed through idx
    const unsigned* idx;   // H row of each pass row, or null (identity)
    const double* linear;  // linear experts: k σ_j², k −½log(2πσ_j²), k 1/σ_j² (host: rowops::linear_expert_constants)
    double* r;             // rows×r_cols
    double* gw;            // rows×grams (Gram weights; diagonal-only Grams too)
    double* sv;            // rows×sums (per-row terms of the sums)
    double* probs;         // stored softmax probabilities (n×p_width), indexed through idx like H
};

// Where one row's outputs go: R (r_cols), Gram weights (grams), sum terms (sums).
struct RowOut {
    double* r;
    double* gw;
    double* sv;
};

__device__ __forceinline__ double softplus(double t) { return fmax(t, 0.0) + log1p(exp(-fabs(t))); }
__device__ __forceinline__ double log_sigmoid(double t) { return -softplus(-t); }
__device__ __forceinline__ double sigmoid(double t) {
    if (t >= 0.0) return 1.0 / (1.0 + exp(-t));
    double e = exp(t);
    return e / (1.0 + e);
}

// log Σ exp(v[0..m)) (max-shifted).
__device__ double lse(const double* v, int m) {
    double mx = v[0];
    for (int c = 1; c < m; ++c) mx = fmax(mx, v[c]);
    if (mx < -1.7976931348623157e308) return mx;  // all −∞ (no INFINITY macro without headers under NVRTC)
    double acc = 0.0;
    for (int c = 0; c < m; ++c) acc += exp(v[c] - mx);
    return mx + log(acc);
}

// Log densities of the k experts of the general model for one row (ALGORITHMS §2).
__device__ void expert_log_density(const RowOpParams& p, const double* a, double y, double* logp) {
    const int k = p.k;
    for (int j = 0; j < k; ++j) {
        if (p.family == FAMILY_LINEAR) {  // the per-pass constants −½log(2πσ²) and 1/σ², as the CPU backend
            double e = y - a[k + j];
            logp[j] = p.linear[k + j] - 0.5 * e * e * p.linear[2 * k + j];
        } else if (p.family == FAMILY_LOGISTIC) {
            double eta = a[k + j];
            logp[j] = y * eta - softplus(eta);
        } else {
            const double* eta = a + k + j * p.classes;
            logp[j] = eta[(int)y] - lse(eta, p.classes);
        }
    }
}

// Gate log-probabilities log π_j = a_j − lse(a).
__device__ void gate_log_prob(const double* a, int k, double* logpi) {
    double l = lse(a, k);
    for (int j = 0; j < k; ++j) logpi[j] = a[j] - l;
}

// Symmetric model, one row: u = wᵀx, v = βᵀx. log[π_z p(y|z)] for z = +1 (out[0]) and −1 (out[1]).
__device__ void sym_log_joint(const RowOpParams& p, double u, double v, double y, double* out) {
    for (int t = 0; t < 2; ++t) {
        double z = t == 0 ? 1.0 : -1.0;
        double lp;
        if (p.sym_linear) {
            double e = y - z * v, s2 = p.sigma * p.sigma;
            lp = -0.5 * (LOG_2PI + log(s2)) - e * e / (2.0 * s2);
        } else {
            lp = log_sigmoid(z * y * v);
        }
        out[t] = log_sigmoid(z * u) + lp;
    }
}

__device__ void op_estep(const RowOpParams& p, const RowOut& o, const double* a, double y, double s, double* hrow) {
    const int k = p.k;
    double l[MOE_MAX_WIDTH], logp[MOE_MAX_WIDTH];
    gate_log_prob(a, k, l);
    expert_log_density(p, a, y, logp);
    double mx = -1.7976931348623157e308;
    for (int j = 0; j < k; ++j) {
        l[j] += logp[j];
        mx = fmax(mx, l[j]);
    }
    // ℓ = lse(l) and h_j = exp(l_j − max)/Σ from the same exponentials (as the CPU backend: one exp per
    // component; an E-step row was three).
    double acc = 0.0;
    for (int j = 0; j < k; ++j) {
        l[j] = exp(l[j] - mx);
        acc += l[j];
    }
    const double ell = mx + log(acc);
    double* sv = o.sv;
    sv[0] = s != 0.0 ? s * ell : 0.0;
    const bool suff = (p.flags & FLAG_SUFF) && p.family == FAMILY_LINEAR;
    for (int j = 0; j < k; ++j) {
        double h = l[j] / acc;
        sv[1 + j] = s * h;
        if (p.flags & FLAG_STORE) hrow[j] = h;
        if (suff) {
            o.gw[j] = s * h;
            o.r[j] = s * h * y;
        }
    }
}

// op_estep for k ≤ KMAX linear or logistic experts with the k values per row in registers (as
// op_softmax_small, and why): the same operations in the same order, so the same bits (tests/emu/
// row_small.cpp). The gate's log-sum-exp is `lse` inlined; the expert densities are expert_log_density's.
template <int KMAX>
__device__ __forceinline__ void op_estep_small(const RowOpParams& p, const RowOut& o, const double* a, double y, double s,
                                               double* hrow) {
    const int k = p.k;
    double gmx = a[0];
#pragma unroll
    for (int j = 1; j < KMAX; ++j)
        if (j < k) gmx = fmax(gmx, a[j]);
    double gate_lse = gmx;  // lse(a, k)
    if (!(gmx < -1.7976931348623157e308)) {
        double acc = 0.0;
#pragma unroll
        for (int j = 0; j < KMAX; ++j)
            if (j < k) acc += exp(a[j] - gmx);
        gate_lse = gmx + log(acc);
    }
    double l[KMAX], mx = -1.7976931348623157e308;
#pragma unroll
    for (int j = 0; j < KMAX; ++j)
        if (j < k) {
            double logp;
            if (p.family == FAMILY_LINEAR) {
                const double e = y - a[k + j];
                logp = p.linear[k + j] - 0.5 * e * e * p.linear[2 * k + j];
            } else {
                const double eta = a[k + j];
                logp = y * eta - softplus(eta);
            }
            l[j] = a[j] - gate_lse;
            l[j] += logp;
            mx = fmax(mx, l[j]);
        }
    double acc = 0.0;
#pragma unroll
    for (int j = 0; j < KMAX; ++j)
        if (j < k) {
            l[j] = exp(l[j] - mx);
            acc += l[j];
        }
    const double ell = mx + log(acc);
    o.sv[0] = s != 0.0 ? s * ell : 0.0;
    const bool suff = (p.flags & FLAG_SUFF) && p.family == FAMILY_LINEAR;
#pragma unroll
    for (int j = 0; j < KMAX; ++j)
        if (j < k) {
            const double h = l[j] / acc;
            o.sv[1 + j] = s * h;
            if (p.flags & FLAG_STORE) hrow[j] = h;
            if (suff) {
                o.gw[j] = s * h;
                o.r[j] = s * h * y;
            }
        }
}

__device__ void op_sym_estep(const RowOpParams& p, const RowOut& o, const double* a, double y, double s, double* hrow) {
    double l[2];
    sym_log_joint(p, a[0], a[1], y, l);
    double ell = lse(l, 2);
    double hp = exp(l[0] - ell), hm = exp(l[1] - ell);
    double* sv = o.sv;
    sv[0] = s != 0.0 ? s * ell : 0.0;
    sv[1] = s * hp;
    sv[2] = s * hm;
    if (p.flags & FLAG_STORE) { hrow[0] = hp; hrow[1] = hm; }
    if ((p.flags & FLAG_SUFF) && p.sym_linear) o.r[0] = s * (hp - hm) * y;
}

__device__ void op_linear_residual(const RowOpParams& p, const RowOut& o, const double* a, double y, double s, const double* hrow) {
    double* sv = o.sv;
    for (int j = 0; j < p.k; ++j) {
        double e = y - a[j];
        sv[j] = s * hrow[j] * e * e;
    }
}

// The Hessian-vector row r_c = ct·p_c (u_c − Σ_l p_l u_l)·sign with u_c = sign·(Dx)_c, from the m free-class
// probabilities `pr` and projections `dx` (rowops.rs `hess_vec_row`). The one expression of TASK_HESSVEC and
// TASK_HESSVEC_STORED: given the same p they agree bit for bit.
__device__ void hess_vec_row(const double* pr, const double* dx, int m, double ct, double sign, double* r) {
    double mean = 0.0;
    for (int l = 0; l < m; ++l) mean += pr[l] * (sign * dx[l]);
    for (int l = 0; l < m; ++l) r[l] = ct * pr[l] * (sign * dx[l] - mean) * sign;
}

// Softmax-regression pass (ALGORITHMS §3): weights c, targets t (T = Σ t, 1 up to rounding, kept explicit as
// in the reference), scores [V x; 0] (features y·x for the SymMoLogE expert: `sign` = y). `prow`: the row of
// the probability store (GradientDiagStore writes the m free-class p there, HessVecStored reads them), else null.
__device__ void op_softmax(const RowOpParams& p, const RowOut& o, const double* a, double y, double s, const double* hrow,
                           double* prow) {
    const int C = p.classes, m = C - 1;
    double c, sign = 1.0, t[MOE_MAX_WIDTH], logp[MOE_MAX_WIDTH];
    for (int l = 0; l < C; ++l) t[l] = 0.0;
    if (p.problem == PROBLEM_GATE) {
        c = s;
        for (int l = 0; l < C; ++l) t[l] = hrow[l];
    } else if (p.problem == PROBLEM_EXPERT) {
        c = s * hrow[p.expert];
        // Logistic experts: classes ordered (y=1, y=0); multinomial: class y.
        t[p.family == FAMILY_LOGISTIC ? (y == 1.0 ? 0 : 1) : (int)y] = 1.0;
    } else {
        c = s;
        t[0] = hrow[0];
        t[1] = hrow[1];
        if (p.problem == PROBLEM_SYM_LOG_EXPERT) sign = y;
    }
    double tsum = 0.0;
    for (int l = 0; l < C; ++l) tsum += t[l];
    const double ct = c * tsum;
    // The m free-class probabilities in `pr`, for one call of hess_vec_row at the end (a second inlined copy
    // costs the fused kernel spills): HessVecStored copies the p that this Newton step's GradientDiagStore
    // pass stored (A holds only D·x, q = m); the other tasks compute p and log p from the same exponentials
    // (as the CPU backend: C exponentials and one log per row), and HessVec finds D·x after V·x in A.
    double pr[MOE_MAX_WIDTH];
    if (p.task == TASK_HESSVEC_STORED) {
        for (int l = 0; l < m; ++l) pr[l] = prow[l];
    } else {
        for (int l = 0; l < m; ++l) logp[l] = sign * a[l];
        logp[m] = 0.0;
        double mx = logp[0];
        for (int l = 1; l < C; ++l) mx = fmax(mx, logp[l]);
        double total = 0.0;
        for (int l = 0; l < C; ++l) {
            pr[l] = exp(logp[l] - mx);
            total += pr[l];
        }
        const double norm = mx + log(total);
        for (int l = 0; l < C; ++l) {
            pr[l] /= total;
            logp[l] -= norm;
        }
    }
    const bool diag = p.task == TASK_GRADIENT_DIAG || p.task == TASK_GRADIENT_DIAG_STORE;
    const bool gradient = diag || p.task == TASK_GRADIENT || p.task == TASK_HESSIAN;
    if (gradient || p.task == TASK_OBJECTIVE) {
        double f = 0.0;
        for (int l = 0; l < C; ++l)
            if (t[l] != 0.0) f += t[l] * logp[l];
        o.sv[0] = c != 0.0 ? c * f : 0.0;
    }
    double* r = o.r;
    double* gw = o.gw;
    if (gradient) {
        for (int l = 0; l < m; ++l) r[l] = c * (t[l] - tsum * pr[l]) * sign;
    }
    if (p.task == TASK_HESSIAN) {
        int g = 0;
        for (int x = 0; x < m; ++x)
            for (int b = x; b < m; ++b) gw[g++] = ct * pr[x] * ((x == b ? 1.0 : 0.0) - pr[b]);
    }
    if (diag) {  // diag(−H): Newton-CG's preconditioner, from the same pass as f and g
        for (int l = 0; l < m; ++l) {
            gw[l] = ct * pr[l] * (1.0 - pr[l]);
            if (p.task == TASK_GRADIENT_DIAG_STORE) prow[l] = pr[l];  // bit for bit the p of HessVec below
        }
    }
    if (p.task == TASK_HESSVEC || p.task == TASK_HESSVEC_STORED)
        hess_vec_row(pr, p.task == TASK_HESSVEC ? a + m : a, m, ct, sign, r);
}

// op_softmax for C ≤ CMAX classes with every per-class value in registers: the same operations on the same
// values in the same order, so the same bits (tests/emu/row_small.cpp compares the two on every problem
// and task). Why: op_softmax keeps t, log p and p in local-memory arrays indexed at run time, so each of its
// C exponentials and C divisions waits on a local load and store of the one before; on an H100 the gate's
// row at k = 16 is most of a fused narrow pass (bench/GPU.md: ~27k cycles per 64-row tile of `fused_tc`, of
// which ~8k go to the exponentials alone, against ~8k for the tile's copy). Here the loops are unrolled over
// the compile-time CMAX (guarded by l < C), so the C exponentials, the C divisions and the H loads are
// independent instructions the scheduler overlaps. Only p stays an array (CMAX registers): the targets t are
// read where used (H, or the expert's one-hot class), log p_l = [V x; 0]_l − norm is recomputed from A.
template <int CMAX>
__device__ __forceinline__ void hess_vec_row_small(const double (&pr)[CMAX], const double* dx, int m, double ct, double sign,
                                                   double* r) {
    double mean = 0.0;
#pragma unroll
    for (int l = 0; l < CMAX; ++l)
        if (l < m) mean += pr[l] * (sign * dx[l]);
#pragma unroll
    for (int l = 0; l < CMAX; ++l)
        if (l < m) r[l] = ct * pr[l] * (sign * dx[l] - mean) * sign;
}

template <int CMAX>
__device__ __forceinline__ void op_softmax_small(const RowOpParams& p, const RowOut& o, const double* a, double y, double s,
                                                 const double* hrow, double* prow) {
    const int C = p.classes, m = C - 1;
    // Weights c and targets t as op_softmax sets them: t_l = th[l] (the gate, the symmetric problems) or the
    // expert's one-hot class `hot`.
    double c, sign = 1.0;
    const double* th = nullptr;
    int hot = -1;
    if (p.problem == PROBLEM_GATE) {
        c = s;
        th = hrow;
    } else if (p.problem == PROBLEM_EXPERT) {
        c = s * hrow[p.expert];
        hot = p.family == FAMILY_LOGISTIC ? (y == 1.0 ? 0 : 1) : (int)y;
    } else {
        c = s;
        th = hrow;
        if (p.problem == PROBLEM_SYM_LOG_EXPERT) sign = y;
    }
    auto target = [&](int l) { return th ? th[l] : (l == hot ? 1.0 : 0.0); };
    auto logit = [&](int l) { return l < m ? sign * a[l] : 0.0; };  // [V x; 0]_l (op_softmax's logp before − norm)
    double tsum = 0.0;
#pragma unroll
    for (int l = 0; l < CMAX; ++l)
        if (l < C) tsum += target(l);
    const double ct = c * tsum;
    double pr[CMAX], norm = 0.0;
    if (p.task == TASK_HESSVEC_STORED) {
#pragma unroll
        for (int l = 0; l < CMAX; ++l)
            if (l < m) pr[l] = prow[l];
    } else {
        double mx = logit(0);
#pragma unroll
        for (int l = 1; l < CMAX; ++l)
            if (l < C) mx = fmax(mx, logit(l));
        double total = 0.0;
#pragma unroll
        for (int l = 0; l < CMAX; ++l)
            if (l < C) {
                pr[l] = exp(logit(l) - mx);
                total += pr[l];
            }
        norm = mx + log(total);
#pragma unroll
        for (int l = 0; l < CMAX; ++l)
            if (l < C) pr[l] /= total;
    }
    const bool diag = p.task == TASK_GRADIENT_DIAG || p.task == TASK_GRADIENT_DIAG_STORE;
    const bool gradient = diag || p.task == TASK_GRADIENT;
    if (gradient || p.task == TASK_OBJECTIVE) {
        double f = 0.0;
#pragma unroll
        for (int l = 0; l < CMAX; ++l)
            if (l < C) {
                const double t = target(l);
                if (t != 0.0) f += t * (logit(l) - norm);
            }
        o.sv[0] = c != 0.0 ? c * f : 0.0;
    }
    if (gradient) {
#pragma unroll
        for (int l = 0; l < CMAX; ++l)
            if (l < m) o.r[l] = c * (target(l) - tsum * pr[l]) * sign;
    }
    if (diag) {
#pragma unroll
        for (int l = 0; l < CMAX; ++l)
            if (l < m) {
                o.gw[l] = ct * pr[l] * (1.0 - pr[l]);
                if (p.task == TASK_GRADIENT_DIAG_STORE) prow[l] = pr[l];
            }
    }
    if (p.task == TASK_HESSVEC || p.task == TASK_HESSVEC_STORED)
        hess_vec_row_small(pr, p.task == TASK_HESSVEC ? a + m : a, m, ct, sign, o.r);
}

// Gradient of the general model (ALGORITHMS §4; RowOp::Gradient).
__device__ void op_gradient(const RowOpParams& p, const RowOut& o, const double* a, double y, double s, const double* hrow) {
    const int k = p.k;
    if (k < 1) return;  // never (the backend checks k); tells host compilers that l below is set before lse reads it
    double l[MOE_MAX_WIDTH], logp[MOE_MAX_WIDTH], logpi[MOE_MAX_WIDTH], h[MOE_MAX_WIDTH];
    gate_log_prob(a, k, logpi);
    expert_log_density(p, a, y, logp);
    for (int j = 0; j < k; ++j) l[j] = logpi[j] + logp[j];
    double first;
    if (p.flags & FLAG_STORED_H) {
        first = 0.0;
        for (int j = 0; j < k; ++j) { h[j] = hrow[j]; if (h[j] != 0.0) first += h[j] * l[j]; }
    } else {
        first = lse(l, k);
        for (int j = 0; j < k; ++j) h[j] = exp(l[j] - first);
    }
    double* sv = o.sv;
    sv[0] = s != 0.0 ? s * first : 0.0;
    // Σ_j h_j is 1 up to rounding; kept explicit as in the reference.
    double hsum = 0.0;
    for (int j = 0; j < k; ++j) hsum += h[j];
    double* r = o.r;
    for (int j = 0; j < k - 1; ++j) r[j] = s * (h[j] - hsum * exp(logpi[j]));
    int col = k - 1;
    for (int j = 0; j < k; ++j) {
        if (p.family == FAMILY_LINEAR) {
            double s2 = p.linear[j], e = y - a[k + j];
            r[col++] = s * h[j] * e / s2;
            sv[1 + j] = s * h[j] * (e * e / (2.0 * s2 * s2) - 1.0 / (2.0 * s2));
        } else if (p.family == FAMILY_LOGISTIC) {
            r[col++] = s * h[j] * (y - sigmoid(a[k + j]));
        } else {
            const double* eta = a + k + j * p.classes;
            double z = lse(eta, p.classes);
            for (int c = 0; c < p.classes - 1; ++c)
                r[col++] = s * h[j] * ((c == (int)y ? 1.0 : 0.0) - exp(eta[c] - z));
        }
    }
}

// Gradient of the symmetric model w.r.t. (wᵀx, βᵀx) (RowOp::SymGradient).
__device__ void op_sym_gradient(const RowOpParams& p, const RowOut& o, const double* a, double y, double s, const double* hrow) {
    double u = a[0], v = a[1], l[2], hp, hm, first;
    sym_log_joint(p, u, v, y, l);
    if (p.flags & FLAG_STORED_H) {
        hp = hrow[0]; hm = hrow[1];
        first = 0.0;
        if (hp != 0.0) first += hp * l[0];
        if (hm != 0.0) first += hm * l[1];
    } else {
        first = lse(l, 2);
        hp = exp(l[0] - first); hm = exp(l[1] - first);
    }
    // d/du Σ_z h_z log σ(z u) = h+ − (h+ + h−) σ(u)
    double du = s * (hp - (hp + hm) * sigmoid(u));
    double dv;
    if (p.sym_linear) {  // d/dv of −(y − z v)²/(2σ²) = z (y − z v)/σ²
        dv = s * ((hp - hm) * y - (hp + hm) * v) / (p.sigma * p.sigma);
    } else {             // d/dv log σ(z y v) = z y σ(−z y v), summed: y (h+ − (h+ + h−) σ(y v))
        dv = s * y * (hp - (hp + hm) * sigmoid(y * v));
    }
    o.sv[0] = s != 0.0 ? s * first : 0.0;
    o.r[0] = du;
    o.r[1] = dv;
}

// Statistics of the stored H (RowOp::HStats): sums [0, N_j...]; `suff`: linear sufficient statistics.
__device__ void op_h_stats(const RowOpParams& p, const RowOut& o, double y, double s, const double* hrow) {
    const int width = p.h_width;
    double* sv = o.sv;
    sv[0] = 0.0;
    for (int j = 0; j < width; ++j) sv[1 + j] = s * hrow[j];
    if (p.flags & FLAG_SUFF) {
        if (p.sym_linear) {
            o.r[0] = s * (hrow[0] - hrow[1]) * y;
        } else {
            for (int j = 0; j < width; ++j) {
                o.gw[j] = s * hrow[j];
                o.r[j] = s * hrow[j] * y;
            }
        }
    }
}

// One row of any op: `a` its q projections, `hrow` its row of H and `prow` its row of the probability store
// (each null when the op uses none), outputs through `o`.
__device__ void eval_row(const RowOpParams& p, const double* a, double y, double s, double* hrow, double* prow,
                         const RowOut& o) {
    switch (p.op) {
        case OP_MOMENTS:
            o.sv[0] = s; o.sv[1] = s * y; o.sv[2] = s * y * y;
            break;
        case OP_GRAM:
            o.gw[0] = s;
            o.r[0] = s * y;
            break;
        case OP_ESTEP:
            if (p.k <= MOE_SMALL_CLASSES && p.family != FAMILY_MULTINOMIAL) op_estep_small<MOE_SMALL_CLASSES>(p, o, a, y, s, hrow);
            else op_estep(p, o, a, y, s, hrow);
            break;
        case OP_SYM_ESTEP: op_sym_estep(p, o, a, y, s, hrow); break;
        case OP_LINEAR_RESIDUAL: op_linear_residual(p, o, a, y, s, hrow); break;
        case OP_SOFTMAX:
            if (p.classes <= MOE_SMALL_CLASSES && p.task != TASK_HESSIAN) op_softmax_small<MOE_SMALL_CLASSES>(p, o, a, y, s, hrow, prow);
            else op_softmax(p, o, a, y, s, hrow, prow);
            break;
        case OP_GRADIENT: op_gradient(p, o, a, y, s, hrow); break;
        case OP_SYM_GRADIENT: op_sym_gradient(p, o, a, y, s, hrow); break;
        case OP_H_STATS: op_h_stats(p, o, y, s, hrow); break;
    }
}

// Row i of a per-row store (n×width, row-major) for pass row i: the store row is idx[i] for gathered rows
// (Rows::Order), else i; null when the op uses no such store (width 0).
__device__ __forceinline__ double* store_row(const RowOpParams& p, double* store, int width, int i) {
    return width > 0 ? store + (size_t)(p.idx ? p.idx[i] : (unsigned)i) * width : nullptr;
}
__device__ __forceinline__ double* h_row(const RowOpParams& p, int i) { return store_row(p, p.h, p.h_width, i); }
__device__ __forceinline__ double* p_row(const RowOpParams& p, int i) { return store_row(p, p.probs, p.p_width, i); }

// The per-row operation over precomputed projections A (rows×q): one thread per row.
extern "C" __global__ void row_op(RowOpParams p) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= p.rows) return;
    RowOut o = { p.r + (size_t)i * p.r_cols, p.gw + (size_t)i * p.grams, p.sv + (size_t)i * p.sums };
    eval_row(p, p.a + (size_t)i * p.q, p.y[i], p.s ? p.s[i] : 1.0, h_row(p, i), p_row(p, i), o);
}

// `row_op` with each block's rows staged through shared memory: one thread per row reads its projections
// and writes its outputs at a row stride, which in global memory touches a separate 32-byte sector per lane
// of a warp on every access (measured on an H100 at 1e6 rows: ~200 µs per narrow pass against ~60 µs for the
// bytes moved). Here the block copies its contiguous stretch of A (rows × q) into shared memory with
// coalesced loads, `eval_row` runs on shared-memory rows (odd strides: no bank conflicts between lanes), and
// R, the Gram weights and the sum terms go back with coalesced stores. The same `eval_row`, so the same bits
// as `row_op`. H and the probability store stay in global memory (read or written through `h_row`/`p_row`,
// possibly gathered). Shared memory: blockDim.x rows × the padded widths (host: kernels.rs `tiled_bytes`).
__device__ __forceinline__ int tile_stride(int width) { return width == 0 ? 0 : (width | 1); }
extern "C" __global__ void row_op_tiled(RowOpParams p) {
    MOE_DYNAMIC_SHARED(smem);
    const int tile = blockDim.x, t = threadIdx.x;
    const long long i0 = (long long)blockIdx.x * tile;
    const int rows = (int)min((long long)tile, p.rows - i0);
    const int qs = tile_stride(p.q), rs = tile_stride(p.r_cols), gs = tile_stride(p.grams), ss = tile_stride(p.sums);
    double* sa = smem;
    double* sr = sa + (size_t)tile * qs;
    double* sg = sr + (size_t)tile * rs;
    double* ss_ = sg + (size_t)tile * gs;
    const double* ga = p.a + i0 * p.q;
    for (int e = t; e < rows * p.q; e += tile) sa[(e / p.q) * qs + e % p.q] = ga[e];
    // eval_row writes every output entry of its shape; zeroing the tiles first keeps a future op that does
    // not from copying out another block's leftovers.
    for (int e = t; e < tile * (rs + gs + ss); e += tile) sr[e] = 0.0;
    __syncthreads();
    if (t < rows) {
        const int i = (int)(i0 + t);
        RowOut o = {sr + (size_t)t * rs, sg + (size_t)t * gs, ss_ + (size_t)t * ss};
        eval_row(p, sa + (size_t)t * qs, p.y[i], p.s ? p.s[i] : 1.0, h_row(p, i), p_row(p, i), o);
    }
    __syncthreads();
    for (int e = t; e < rows * p.r_cols; e += tile) p.r[i0 * p.r_cols + e] = sr[(e / p.r_cols) * rs + e % p.r_cols];
    for (int e = t; e < rows * p.grams; e += tile) p.gw[i0 * p.grams + e] = sg[(e / p.grams) * gs + e % p.grams];
    for (int e = t; e < rows * p.sums; e += tile) p.sv[i0 * p.sums + e] = ss_[(e / p.sums) * ss + e % p.sums];
}

// Gathers the rows idx[0..rows) of X (n×d), y and s into contiguous batch buffers (a mini-batch pass).
extern "C" __global__ void gather_rows(const double* x, const double* y, const double* s, const unsigned* idx,
                                       int rows, int d, double* bx, double* by, double* bs) {
    size_t t = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    size_t total = (size_t)rows * d;
    if (t < total) {
        size_t i = t / d, f = t % d;
        bx[t] = x[(size_t)idx[i] * d + f];
    }
    if (t < (size_t)rows) {
        by[t] = y[idx[t]];
        if (s) bs[t] = s[idx[t]];
    }
}

// out[i·width + c] = src[idx[i]·width + c] for i < rows, c < width: rows of a row-major device matrix into a
// contiguous one, which the host then reads in one copy (the preconditioners' sample rows of X, s and H).
extern "C" __global__ void gather(const double* src, const unsigned* idx, int rows, int width, double* out) {
    size_t t = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (t < (size_t)rows * width) out[t] = src[(size_t)idx[t / width] * width + t % width];
}

// Weight-scaled copies of a chunk of rows for the Gram GEMM: out[i][g·d + f] = gw[i][g]·x[i][f], i.e. row i of
// Y = [diag(w_·0)X | … | diag(w_·G−1)X] (rows × G·d, row-major). Then Xᵀ·Y holds the G Grams side by side.
extern "C" __global__ void scale_rows(const double* x, const double* gw, int rows, int d, int grams, double* out) {
    size_t t = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    size_t width = (size_t)grams * d;
    if (t >= (size_t)rows * width) return;
    size_t i = t / width, e = t % width, g = e / d, f = e % d;
    out[t] = gw[i * grams + g] * x[i * d + f];
}

// Squares of a chunk of rows (for diagonal Grams: diag_g = (X⊙X)ᵀ w_·g by GEMM).
extern "C" __global__ void square_rows(const double* x, size_t len, double* out) {
    size_t t = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (t < len) out[t] = x[t] * x[t];
}

extern "C" __global__ void fill(double* out, size_t len, double value) {
    size_t t = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (t < len) out[t] = value;
}
