//! GPU benchmark of the CUDA backend (run on the GPU machine; see bench/GPU.md for what it reports).
//!
//! 1. Ceilings: device-to-device copy bandwidth and DGEMM rate (cuBLAS), measured here.
//! 2. EM per-iteration times, CUDA vs CPU backend, at (1e6, 100, 8), with the per-pass times of 3. at that
//!    shape; CUDA on the Fashion-MNIST shape (60000×784, 2 multinomial experts × 10 classes).
//! 3. Per-pass times at (n, d, k) = (1e7, 100, 16), linear experts: the E-step with the Gram chunk size of the
//!    GEMM Grams swept; each narrow pass with the defaults (the fused kernel, kernels/fused_tc.cu, where it
//!    serves the pass), in each launch configuration of the fused kernel, and unfused three ways (the gate's
//!    Hessian-vector pass both ways: HessVec, and HessVecStored from the probabilities its GradientDiagStore
//!    pass stored); and the EM per-iteration time there.
//!
//! The E-step and EM rows are measured in every kernel configuration of `CONFIGS` (the defaults, the fused
//! kernel on every pass, the E-step's Grams overlapping the gate's M-step, the unfused narrow pass and the
//! cuBLAS reductions they replaced, and the opt-in stored probabilities; the defaults' EM
//! rows once per launch variant of the fused kernel). Every fit is wrapped in
//! a counter of passes, bytes and FLOPs, which gives the floor: Σ over passes of max(bytes / copy bandwidth,
//! FLOPs / DGEMM rate).
//!
//! 4. `--targets` instead: only the performance targets' table (bench/RESULTS.md; EM per iteration, CUDA and
//!    CPU backend, at the four shapes, floors and targets), which runs without a GPU too (the CPU half); on a
//!    GPU a second table gives the same for the fastest of the kernel settings still to decide (`candidates()`).
//!
//! Usage: gpu_bench [--quick] [--targets]   (--quick: smaller sizes, for a smoke run). Prints a table last.

use moe_core::backend::{Backend, Family, RowOp, Rows, SoftmaxProblem, SoftmaxTask, Watched};
use moe_core::rng::Rng;
use moe_core::{Control, CpuBackend, Data, ExpertKind, FitOutput, FitSpec, ModelSpec, Noise};
use moe_cuda::driver::{Context, DeviceBuffer, Timer};
use moe_cuda::{CudaBackend, FusedPolicy, GramKernel, KernelChoice, FUSED_VARIANTS, TC_VARIANTS};
use std::cell::{Cell, RefCell};
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Device-to-device copy bandwidth in bytes/s (read + write), median of 7 copies of 2 GiB.
fn copy_bandwidth(ctx: &Context) -> f64 {
    let len = 1usize << 28; // 2 GiB of f64
    let a = DeviceBuffer::<f64>::alloc(ctx, len).unwrap();
    let b = DeviceBuffer::<f64>::alloc(ctx, len).unwrap();
    a.zero(ctx).unwrap();
    let timer = Timer::new(ctx).unwrap();
    let mut times = vec![];
    for rep in 0..8 {
        timer.start(ctx).unwrap();
        b.copy_from(ctx, &a, len).unwrap();
        let ms = timer.stop_ms(ctx).unwrap();
        if rep > 0 {
            times.push(ms);
        }
    }
    2.0 * (len * 8) as f64 / (median(times) * 1e-3)
}

/// DGEMM rate in FLOP/s for C(m×n) = A(m×k)·B(k×n), median of 7 (random operands).
fn dgemm_rate(ctx: &Context, m: usize, n: usize, k: usize) -> f64 {
    let mut rng = Rng::new(3);
    let mut rand = |len: usize| (0..len).map(|_| rng.uniform() - 0.5).collect::<Vec<f64>>();
    let a = DeviceBuffer::from_host(ctx, &rand(m * k)).unwrap();
    let b = DeviceBuffer::from_host(ctx, &rand(k * n)).unwrap();
    let c = DeviceBuffer::<f64>::alloc(ctx, m * n).unwrap();
    let timer = Timer::new(ctx).unwrap();
    let mut times = vec![];
    for rep in 0..8 {
        timer.start(ctx).unwrap();
        ctx.dgemm(false, false, m, n, k, 1.0, a.ptr, m, b.ptr, k, 0.0, c.ptr, m).unwrap();
        let ms = timer.stop_ms(ctx).unwrap();
        if rep > 0 {
            times.push(ms);
        }
    }
    2.0 * (m * n * k) as f64 / (median(times) * 1e-3)
}

/// Counts what the passes of a fit must move and compute (the minimum: X read once per pass, H read and/or
/// written once, projections and reductions as GEMM FLOPs, Grams counted symmetric-half). Every op counts as
/// a pass of its own, as the CUDA backend runs them. Fed by a `Watched` wrapper around the fit's backend.
struct Counting {
    n: usize,
    d: usize,
    passes: Cell<usize>,
    bytes: Cell<f64>,
    flops: Cell<f64>,
    /// Σ over passes of max(bytes/bw, flops/rate), seconds.
    floor_s: Cell<f64>,
    /// Wall time inside the backend's passes, seconds: the rest of an iteration is the algorithm's host work.
    in_passes_s: Cell<f64>,
    bandwidth: f64,
    rate: f64,
    /// The current iteration's passes: (label, host time before it, its time), ms; `mark` ends an iteration.
    timeline: RefCell<Vec<(String, f64, f64)>>,
    last_timeline: RefCell<Vec<(String, f64, f64)>>,
    last_end: Cell<Option<Instant>>,
}

impl Counting {
    fn new(n: usize, d: usize, bandwidth: f64, rate: f64) -> Self {
        Counting {
            n,
            d,
            passes: Cell::new(0),
            bytes: Cell::new(0.0),
            flops: Cell::new(0.0),
            floor_s: Cell::new(0.0),
            in_passes_s: Cell::new(0.0),
            bandwidth,
            rate,
            timeline: RefCell::default(),
            last_timeline: RefCell::default(),
            last_end: Cell::new(None),
        }
    }
    fn reset(&self) {
        self.passes.set(0);
        self.bytes.set(0.0);
        self.flops.set(0.0);
        self.floor_s.set(0.0);
        self.in_passes_s.set(0.0);
    }
    /// An iteration was recorded: its passes become `last_timeline`, with the host time after the last pass.
    fn mark(&self) {
        let now = Instant::now();
        let tail = self.last_end.get().map_or(0.0, |e| (now - e).as_secs_f64() * 1e3);
        let mut line = self.timeline.take();
        line.push(("(record)".into(), tail, 0.0));
        self.last_timeline.replace(line);
        self.last_end.set(Some(now));
    }
    fn count(&self, rows: Rows, ops: &[(&[f64], &RowOp)], took: std::time::Duration) {
        let end = Instant::now();
        let gap = self.last_end.get().map_or(0.0, |e| ((end - took) - e).as_secs_f64() * 1e3);
        let label = ops.iter().map(|(_, op)| op.label()).collect::<Vec<_>>().join(" + ");
        self.timeline.borrow_mut().push((label, gap, took.as_secs_f64() * 1e3));
        self.last_end.set(Some(end));
        self.in_passes_s.set(self.in_passes_s.get() + took.as_secs_f64());
        let m = match rows {
            Rows::All => self.n,
            Rows::Order { len, .. } => len,
        } as f64;
        let d = self.d as f64;
        for (_, op) in ops {
            let sh = op.shape();
            // Per row: the stores read (and written back) beside X, y and s.
            let store = |width: usize, writes: bool| width as f64 * (1.0 + writes as u8 as f64);
            let bytes = 8.0 * m * (d + 2.0 + store(sh.h_width, sh.writes_h) + store(sh.p_width, sh.writes_p));
            let gram_flops = if sh.diag_only { 2.0 * d } else { d * (d + 1.0) };
            let flops = m * (2.0 * d * sh.q as f64 + 2.0 * d * sh.r_cols as f64 + sh.grams as f64 * gram_flops);
            self.passes.set(self.passes.get() + 1);
            self.bytes.set(self.bytes.get() + bytes);
            self.flops.set(self.flops.get() + flops);
            self.floor_s.set(self.floor_s.get() + (bytes / self.bandwidth).max(flops / self.rate));
        }
    }
}

/// A planted linear / multinomial mixture, generated on all cores (deterministic per chunk).
fn planted(n: usize, d: usize, k: usize, classes: usize, seed: u32) -> (Vec<f64>, Vec<f64>) {
    let mut rng = Rng::new(seed);
    let c = classes.max(1);
    let gate: Vec<f64> = (0..k * d).map(|_| 2.0 * rng.uniform() - 1.0).collect();
    let experts: Vec<f64> = (0..k * c * d).map(|_| 2.0 * rng.uniform() - 1.0).collect();
    let mut x = vec![0.0; n * d];
    let mut y = vec![0.0; n];
    let threads = std::thread::available_parallelism().map(|t| t.get()).unwrap_or(1);
    let rows_per = n.div_ceil(threads * 4).max(1);
    std::thread::scope(|scope| {
        for (t, (xc, yc)) in x.chunks_mut(rows_per * d).zip(y.chunks_mut(rows_per)).enumerate() {
            let (gate, experts) = (&gate, &experts);
            scope.spawn(move || {
                let mut rng = Rng::new(seed.wrapping_add(1000 + t as u32));
                for (xi, yi) in xc.chunks_mut(d).zip(yc.iter_mut()) {
                    for v in xi.iter_mut() {
                        *v = 2.0 * rng.uniform() - 1.0;
                    }
                    let dot = |w: &[f64]| w.iter().zip(xi.iter()).map(|(a, b)| a * b).sum::<f64>();
                    let z = argmax((0..k).map(|j| dot(&gate[j * d..(j + 1) * d]) + 0.5 * rng.uniform()));
                    *yi = if classes == 0 {
                        dot(&experts[z * d..(z + 1) * d]) + 0.2 * (2.0 * rng.uniform() - 1.0)
                    } else {
                        argmax((0..c).map(|l| dot(&experts[(z * c + l) * d..(z * c + l + 1) * d]) + rng.uniform()))
                            as f64
                    };
                }
            });
        }
    });
    (x, y)
}

fn argmax(v: impl Iterator<Item = f64>) -> usize {
    v.enumerate().fold((0, f64::NEG_INFINITY), |b, (i, x)| if x > b.1 { (i, x) } else { b }).0
}

/// Per-iteration milliseconds of a fit (iterations 1..last; iteration 0 holds the initialisation).
fn per_iteration_ms(out: &FitOutput) -> f64 {
    let it = &out.iterations;
    let last = it.len() - 1;
    if last < 2 {
        return it[last].elapsed_ms;
    }
    (it[last].elapsed_ms - it[1].elapsed_ms) / (last - 1) as f64
}

struct Row {
    label: String,
    ms: f64,
    floor_ms: f64,
    note: String,
}

fn fit_row<B: Backend + ?Sized>(
    label: &str,
    b: &B,
    model: &ModelSpec,
    iters: usize,
    bw: f64,
    rate: f64,
) -> (Row, FitOutput) {
    let counting = Counting::new(b.n(), b.d(), bw, rate);
    let watched = Watched::new(b, |rows: Rows, ops: &[(&[f64], &RowOp)], took| counting.count(rows, ops, took));
    let spec = FitSpec { max_iter: iters, tol: 0.0, ..FitSpec::default() };
    // Count the passes of iterations 1.. only: reset the counters when iteration 1 is recorded.
    let mut seen = 0;
    let t = Instant::now();
    let out = moe_core::fit(&watched, model, &spec, 1, None, None, &mut |r| {
        if r.iter == 1 {
            counting.reset();
        }
        counting.mark();
        seen = r.iter;
        Control::Continue
    })
    .unwrap();
    let wall = t.elapsed().as_secs_f64();
    let per = per_iteration_ms(&out);
    let later = (seen.max(2) - 1) as f64;
    let floor_ms = counting.floor_s.get() * 1e3 / later;
    let note = format!(
        "{:.0} passes/iter ({:.1} ms in them), {:.2} GB, {:.2} TFLOP per iter; nll {:.6}; wall {:.1} s",
        counting.passes.get() as f64 / later,
        counting.in_passes_s.get() * 1e3 / later,
        counting.bytes.get() / later / 1e9,
        counting.flops.get() / later / 1e12,
        out.iterations.last().unwrap().nll,
        wall
    );
    println!("{label}: {per:.1} ms/iter (floor {floor_ms:.1} ms); {note}");
    if std::env::var_os("MOE_BENCH_TIMELINE").is_some() || label.ends_with("cuda default") {
        // Where the last iteration's time went: each pass and the host work before it (the M-step's solves,
        // the preconditioner), ms.
        let line = counting.last_timeline.borrow();
        let host: f64 = line.iter().map(|e| e.1).sum();
        let steps: Vec<String> = line.iter().map(|(what, gap, ms)| format!("[host {gap:.2}] {what} {ms:.2}")).collect();
        println!("  last iteration: host {host:.2} ms in all: {}", steps.join(" → "));
    }
    (Row { label: label.into(), ms: per, floor_ms, note }, out)
}

fn linear_model(k: usize, d: usize) -> ModelSpec {
    ModelSpec {
        experts: ExpertKind::Linear,
        symmetric: false,
        k,
        d,
        n_classes: 0,
        noise: Noise::Fitted,
        ridge: 0.0,
        intercept: false,
    }
}

/// The projections the per-pass timings use: 2k rows of d small values (the same for every table).
fn pass_projections(k: usize, d: usize) -> Vec<f64> {
    let mut rng = Rng::new(9);
    (0..2 * k * d).map(|_| 0.2 * (rng.uniform() - 0.5)).collect()
}

fn pass_ms(b: &CudaBackend, proj: &[f64], op: &RowOp, reps: usize) -> f64 {
    b.pass(Rows::All, proj, op).unwrap(); // warm-up (allocates scratch)
    median(
        (0..reps)
            .map(|_| {
                let t = Instant::now();
                b.pass(Rows::All, proj, op).unwrap();
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect(),
    )
}

/// A configuration of the CUDA backend's kernels, labelled for the table.
#[derive(Clone, Copy, PartialEq)]
struct Config {
    label: &'static str,
    kernels: KernelChoice,
}

const DEFAULTS: KernelChoice = KernelChoice::DEFAULT;

/// The configurations compared side by side: the defaults, the candidates not measured yet (the fused kernel
/// on every pass it fits; the E-step's Grams overlapping the gate's M-step; both), the unfused narrow pass, the
/// untiled row op and the cuBLAS reductions they replaced, and the opt-in probability store of bench/GPU.md.
const CONFIGS: [Config; 9] = [
    Config { label: "default", kernels: DEFAULTS },
    Config { label: "fused everywhere", kernels: KernelChoice { fused: FusedPolicy::Everywhere, ..DEFAULTS } },
    Config { label: "overlapped Grams", kernels: KernelChoice { overlap: true, ..DEFAULTS } },
    Config {
        label: "fused everywhere, overlapped Grams",
        kernels: KernelChoice { fused: FusedPolicy::Everywhere, overlap: true, ..DEFAULTS },
    },
    Config { label: "unfused", kernels: KernelChoice { fused: FusedPolicy::Off, ..DEFAULTS } },
    Config {
        label: "unfused, direct row op",
        kernels: KernelChoice { fused: FusedPolicy::Off, tiled: false, ..DEFAULTS },
    },
    Config {
        label: "unfused, cuBLAS reductions",
        kernels: KernelChoice {
            fused: FusedPolicy::Off,
            gram: GramKernel::Gemm,
            skinny: false,
            tiled: false,
            ..DEFAULTS
        },
    },
    Config {
        label: "unfused, cuBLAS xtw",
        kernels: KernelChoice { fused: FusedPolicy::Off, skinny: false, ..DEFAULTS },
    },
    Config { label: "stored p", kernels: KernelChoice { stored_p: true, ..DEFAULTS } },
];

/// The linear E-step pass with sufficient statistics (k weighted Grams) in every configuration.
fn estep_rows(gpu: &CudaBackend, n: usize, d: usize, k: usize, rows: &mut Vec<Row>) {
    let proj = pass_projections(k, d);
    let estep = RowOp::EStep { k, family: Family::Linear { sigma2: vec![1.0; k] }, store: true, suff: true };
    // The Grams nearly alone: HStats with sufficient statistics reads the H the E-step stored (no
    // projections, no row-op transcendentals): k Grams, XᵀR with k columns, k sums. The rate is counted on
    // the Grams' symmetric half, k·n·d(d+1) FLOPs, for each Gram kernel.
    // Each variant of the tensor-core kernel is timed; the fastest is kept for the rows that follow.
    let hstats = RowOp::HStats { width: k, suff: true, symmetric: false };
    gpu.pass(Rows::All, &proj, &estep).unwrap(); // stores the H that HStats reads
    let mut best: Option<(f64, usize)> = None;
    let kernels =
        std::iter::once((GramKernel::Gemm, 0)).chain((0..TC_VARIANTS.len()).map(|i| (GramKernel::TensorCore, i)));
    for (gram, i) in kernels {
        gpu.set_kernels(KernelChoice { fused: FusedPolicy::Off, gram, skinny: false, ..DEFAULTS });
        gpu.set_gram_tc_variant(i);
        if gram == GramKernel::TensorCore && gpu.gram_tc_variant() != TC_VARIANTS[i] {
            continue; // a Hopper variant on an older device
        }
        let ms = pass_ms(gpu, &[], &hstats, 5);
        let tflops = (k * n * d * (d + 1)) as f64 / (ms * 1e-3) / 1e12;
        let label =
            if gram == GramKernel::Gemm { "Gemm".to_string() } else { format!("TensorCore {}", TC_VARIANTS[i].name) };
        println!("Gram pass (HStats) n={n} d={d} k={k}, {label} grams: {ms:.2} ms, {tflops:.1} TFLOP/s on the symmetric half");
        rows.push(Row {
            label: format!("pass HStats+suff ({k} Grams) n={n}, {label}"),
            ms,
            floor_ms: f64::NAN,
            note: format!("{tflops:.1} TFLOP/s (symmetric half)"),
        });
        if gram == GramKernel::TensorCore && best.is_none_or(|(b, _)| ms < b) {
            best = Some((ms, i));
        }
    }
    if let Some((_, i)) = best {
        println!("fastest tensor-core variant: {} (used below)", TC_VARIANTS[i].name);
        gpu.set_gram_tc_variant(i);
    }
    // The overlap changes nothing in a lone pass (`pass` computes its Grams at once): its rows are the EM ones.
    for config in CONFIGS.into_iter().filter(|c| !c.kernels.overlap) {
        gpu.set_kernels(config.kernels);
        let ms = pass_ms(gpu, &proj, &estep, 5);
        let used = if gpu.full_gram_kernel() == GramKernel::TensorCore { "tc" } else { "gemm" };
        println!("E-step pass n={n} d={d} k={k} ({k} Grams), {}: {ms:.2} ms (grams ran: {used})", config.label);
        rows.push(Row {
            label: format!("pass E-step+suff n={n} k={k}, {}", config.label),
            ms,
            floor_ms: f64::NAN,
            note: format!("grams ran: {used}"),
        });
    }
    gpu.set_kernels(DEFAULTS);
}

/// Each narrow pass of an EM iteration with linear experts at (n, d, k): the defaults (the fused kernel where
/// it saves a read of X), the fused kernel in each launch configuration (`FusedPolicy::Everywhere`: on the
/// objective and the residual too), and unfused: the tiled and the untiled row op, cuBLAS's XᵀR.
fn narrow_pass_rows(gpu: &CudaBackend, n: usize, d: usize, k: usize, proj: &[f64], bw: f64, rows: &mut Vec<Row>) {
    let m = k - 1;
    let others = [
        ("linear residual", RowOp::LinearResidual { k }, k),
        ("gate objective", RowOp::Softmax { problem: SoftmaxProblem::Gate { k }, task: SoftmaxTask::Objective }, m),
        ("gate gradient", RowOp::Softmax { problem: SoftmaxProblem::Gate { k }, task: SoftmaxTask::Gradient }, m),
        (
            "gate Hessian-vector",
            RowOp::Softmax { problem: SoftmaxProblem::Gate { k }, task: SoftmaxTask::HessVec },
            2 * m,
        ),
        (
            "gate gradient + diag(−H)",
            RowOp::Softmax { problem: SoftmaxProblem::Gate { k }, task: SoftmaxTask::GradientDiag },
            m,
        ),
        // Newton-CG with stored probabilities: the store pass first (it creates the store the next one reads).
        (
            "gate gradient + diag(−H) + store p",
            RowOp::Softmax { problem: SoftmaxProblem::Gate { k }, task: SoftmaxTask::GradientDiagStore },
            m,
        ),
        (
            "gate Hessian-vector from stored p",
            RowOp::Softmax { problem: SoftmaxProblem::Gate { k }, task: SoftmaxTask::HessVecStored },
            m,
        ),
    ];
    let reps = if n >= 5_000_000 { 5 } else { 11 };
    for (label, op, q) in others {
        // The defaults, the fused kernel on the pass (whether or not the default policy gives it the pass) in
        // every launch configuration, then the unfused path three ways.
        gpu.set_kernels(DEFAULTS);
        let default = pass_ms(gpu, &proj[..q * d], &op, reps);
        gpu.set_fused_policy(FusedPolicy::Everywhere);
        let fused: Vec<f64> = (0..FUSED_VARIANTS.len())
            .map(|v| {
                gpu.set_fused_variant(v);
                pass_ms(gpu, &proj[..q * d], &op, reps)
            })
            .collect();
        gpu.set_fused_variant(0);
        gpu.set_fused_policy(FusedPolicy::Off);
        let unfused = pass_ms(gpu, &proj[..q * d], &op, reps);
        gpu.set_tiled_row_op(false);
        let direct = pass_ms(gpu, &proj[..q * d], &op, reps);
        gpu.set_tiled_row_op(true);
        gpu.set_skinny_xtw(false);
        let cublas = pass_ms(gpu, &proj[..q * d], &op, reps);
        gpu.set_skinny_xtw(true);
        let variants: Vec<String> =
            FUSED_VARIANTS.iter().zip(&fused).map(|((name, _), ms)| format!("{name} {ms:.2}")).collect();
        // Floor: one read of X, y and s, of the stored H and of the stored (or written) probabilities (the
        // pass's FLOPs are far below the DGEMM rate's).
        let sh = op.shape();
        let floor_ms = 8.0 * n as f64 * (d + 2 + sh.h_width + sh.p_width) as f64 / bw * 1e3;
        println!("pass {label}: {default:.2} ms default, unfused {unfused:.2} ms ({direct:.2} ms direct row op, {cublas:.2} ms with cuBLAS XᵀR) \
                  (floor {floor_ms:.2} ms); fused kernel ms by variant: {}", variants.join(", "));
        rows.push(Row {
            label: format!("pass {label} n={n}"),
            ms: default,
            floor_ms,
            note: format!(
                "unfused {unfused:.2} ms (direct row op {direct:.2}, cuBLAS XᵀR {cublas:.2}); fused by variant: {}",
                variants.join(", ")
            ),
        });
    }
    gpu.set_kernels(DEFAULTS);
}

/// EM per iteration in every configuration, the fused ones in each launch variant of the fused kernel; returns
/// the rows (CONFIGS order) and the default's output.
fn em_rows(
    gpu: &CudaBackend,
    what: &str,
    model: &ModelSpec,
    iters: usize,
    bw: f64,
    rate: f64,
) -> (Vec<Row>, FitOutput) {
    let mut out = vec![];
    let mut default_fit = None;
    for config in CONFIGS {
        gpu.set_kernels(config.kernels);
        // The defaults also in the fused kernel's other launch configurations.
        let variants = if config == CONFIGS[0] { FUSED_VARIANTS.len() } else { 1 };
        for (v, (kernel, _)) in FUSED_VARIANTS.iter().enumerate().take(variants) {
            gpu.set_fused_variant(v);
            let label = if v > 0 {
                format!("{what}, cuda {}, {kernel}", config.label)
            } else {
                format!("{what}, cuda {}", config.label)
            };
            let (row, fit) = fit_row(&label, gpu, model, iters, bw, rate);
            default_fit.get_or_insert(fit);
            out.push(row);
        }
    }
    gpu.set_fused_variant(0);
    gpu.set_kernels(DEFAULTS);
    // What a default flip would buy at this shape (bench/GPU.md's runbook: make default what wins at both).
    let fastest = out.iter().min_by(|a, b| a.ms.total_cmp(&b.ms)).unwrap();
    println!(
        "{what}: fastest configuration {:.2} ms/iter ({}), the defaults {:.2}",
        fastest.ms,
        fastest.label.rsplit_once("cuda ").map_or("", |(_, c)| c),
        out[0].ms
    );
    (out, default_fit.unwrap())
}

/// One problem of the performance targets' table.
struct Target {
    label: &'static str,
    n: usize,
    d: usize,
    k: usize,
    /// 0 for linear experts, else multinomial experts with this many classes (ridge 1e-2).
    classes: usize,
    /// EM iterations timed on each backend (the first after the initialisation is not counted).
    iters: (usize, usize),
    seed: u32,
}

/// The kernel settings waiting for a GPU to decide them (bench/GPU.md, "Where things stand"): the fused kernel
/// where it saves a read of X or on every pass, the E-step's Grams at once or overlapping the gate's M-step,
/// and the Gram variant gram_tc_m16k16 or p2, in every combination. `--targets` times each, so one run shows
/// what making one the default would give against the targets; each is a knob of the same build, so its row
/// measures that default as it would be. Labelled by their settings, not relative to the defaults of the day.
fn candidates() -> Vec<(String, KernelChoice, &'static str)> {
    let mut out = vec![];
    for variant in ["gram_tc_m16k16", "gram_tc_m16k16_p2"] {
        for fused in [FusedPolicy::SavesARead, FusedPolicy::Everywhere] {
            for overlap in [false, true] {
                let label = format!(
                    "fused {}, Grams {}, {variant}",
                    if fused == FusedPolicy::Everywhere { "everywhere" } else { "where it saves a read" },
                    if overlap { "overlapped" } else { "at once" }
                );
                out.push((label, KernelChoice { fused, overlap, ..DEFAULTS }, variant));
            }
        }
    }
    out
}

/// `--targets`: the performance targets' table (bench/RESULTS.md), in one run: EM per iteration on the CUDA
/// backend (default kernels) and on the CPU backend (all cores) at (1e5, 50, 4), (1e6, 100, 8), (1e7, 100, 16)
/// and the Fashion-MNIST shape, each with its floor (the CUDA fit's passes over the ceilings measured in the
/// same run) and the targets; then the same for the fastest of `candidates()` at each shape. Without a GPU the
/// CUDA columns stay empty and the floors use nominal H100 ceilings (a smoke run of the CPU half:
/// `gpu_bench --targets --quick`, smaller n).
fn targets(quick: bool) {
    // Checked here too, so that the smoke run without a GPU catches a renamed variant.
    for (label, _, variant) in candidates() {
        assert!(TC_VARIANTS.iter().any(|v| v.name == variant), "candidate {label}: no Gram variant {variant}");
    }
    let gpu_ok = moe_cuda::cuda_available().is_ok();
    let (bw, rate) = if gpu_ok {
        let ctx = Context::new().unwrap();
        let ceilings = (copy_bandwidth(&ctx), dgemm_rate(&ctx, 4096, 4096, 4096));
        println!("ceilings: D2D copy {:.0} GB/s, DGEMM 4096³ {:.1} TFLOP/s", ceilings.0 / 1e9, ceilings.1 / 1e12);
        ceilings
    } else {
        println!("no GPU: CUDA columns empty; floors over nominal H100 ceilings (3000 GB/s, 60 TFLOP/s)");
        (3e12, 6e13)
    };
    let scale = |n: usize| if quick { n / 100 } else { n };
    let problems = [
        Target { label: "linear (1e5, 50, 4)", n: scale(100_000), d: 50, k: 4, classes: 0, iters: (5, 5), seed: 11 },
        Target { label: "linear (1e6, 100, 8)", n: scale(1_000_000), d: 100, k: 8, classes: 0, iters: (5, 3), seed: 6 },
        Target {
            label: "linear (1e7, 100, 16)",
            n: scale(10_000_000),
            d: 100,
            k: 16,
            classes: 0,
            iters: (3, 2),
            seed: 5,
        },
        Target {
            label: "multinomial 60000×784, k = 2, C = 10",
            n: scale(60_000),
            d: 784,
            k: 2,
            classes: 10,
            iters: (3, 2),
            seed: 7,
        },
    ];
    let mut lines = vec![];
    let mut candidate_lines = vec![];
    let mut predict_lines = vec![];
    for t in problems {
        let (x, y) = planted(t.n, t.d, t.k, t.classes, t.seed);
        let data = Data { x: &x, n: t.n, d: t.d, y: &y, s: None };
        let model = if t.classes == 0 {
            linear_model(t.k, t.d)
        } else {
            ModelSpec {
                experts: ExpertKind::Multinomial,
                symmetric: false,
                k: t.k,
                d: t.d,
                n_classes: t.classes,
                noise: Noise::Fitted,
                ridge: 1e-2,
                intercept: false,
            }
        };
        // The defaults, then each candidate setting (the fastest kept for the second table).
        let mut upload_ms = None; // CudaBackend::new: X, y (and s) copied from pageable host memory
        let (cuda, fastest) = match gpu_ok {
            false => (None, None),
            true => {
                let upload = Instant::now();
                let gpu = CudaBackend::new(data).unwrap();
                upload_ms = Some(upload.elapsed().as_secs_f64() * 1e3);
                let cuda_row = |label: &str| {
                    let label = format!("targets: {}, cuda {label}", t.label);
                    fit_row(&label, &gpu, &model, 1, bw, rate); // warm-up
                    fit_row(&label, &gpu, &model, t.iters.0, bw, rate).0
                };
                let default = cuda_row("default");
                let mut fastest: Option<(String, Row)> = None;
                let candidates = candidates();
                for (label, kernels, variant) in candidates.iter().cloned() {
                    if t.classes > 0 && (kernels.overlap || variant != candidates[0].2) {
                        continue; // multinomial experts: no E-step Grams to overlap, one Gram (Ĝ) per fit
                    }
                    gpu.set_kernels(kernels);
                    gpu.set_gram_tc_variant(TC_VARIANTS.iter().position(|v| v.name == variant).unwrap());
                    if gpu.gram_tc_variant().name != variant {
                        continue; // a Hopper variant on an older device
                    }
                    let row = cuda_row(&label);
                    if fastest.as_ref().is_none_or(|(_, f)| row.ms < f.ms) {
                        fastest = Some((label, row));
                    }
                }
                (Some(default), fastest)
            }
        };
        let cpu_backend = CpuBackend::new(data, 0).unwrap();
        let threads = cpu_backend.threads();
        let (cpu, cpu_fit) =
            fit_row(&format!("targets: {}, cpu({threads})", t.label), &cpu_backend, &model, t.iters.1, bw, rate);
        let floor = cuda.as_ref().map_or(cpu.floor_ms, |c| c.floor_ms);
        let cuda_ms = cuda.as_ref().map(|c| c.ms);
        lines.push(target_line(&t, None, cuda_ms, floor, &cpu, threads));
        if let Some((label, row)) = fastest {
            candidate_lines.push(target_line(&t, Some(&label), Some(row.ms), row.floor_ms, &cpu, threads));
        }
        // Predictions run on the CPU backend under either native backend (src/backends/native.ts): checked here
        // against what the CUDA backend would pay before any kernel, the upload of X.
        let predict = Instant::now();
        let predictions = moe_core::predict(&cpu_backend, &model, &cpu_fit.params).unwrap();
        let predict_ms = predict.elapsed().as_secs_f64() * 1e3;
        let gb = (8 * t.n * t.d) as f64 / 1e9;
        let upload = upload_ms.map_or("—".to_string(), |ms| format!("{ms:.1} ({:.1} GB/s)", gb / (ms / 1e3)));
        predict_lines.push(format!(
            "| {} | {gb:.3} | {predict_ms:.1} ({:.1} GB/s) | {upload} |",
            t.label,
            gb / (predict_ms / 1e3)
        ));
        std::hint::black_box(predictions);
    }
    println!("\n| problem (EM, per iteration{}) | CUDA ms | floor ms | CUDA / floor | CPU backend ms | CPU / CUDA | target |",
             if quick { ", --quick: n / 100" } else { "" });
    println!("|---|---:|---:|---:|---:|---:|---|");
    lines.iter().for_each(|l| println!("{l}"));
    if !candidate_lines.is_empty() {
        println!(
            "\nThe fastest kernel setting of `candidates()` at each shape (what making it the default would give):"
        );
        println!("| problem | setting | CUDA ms | floor ms | CUDA / floor | CPU backend ms | CPU / CUDA | target |");
        println!("|---|---|---:|---:|---:|---:|---:|---|");
        candidate_lines.iter().for_each(|l| println!("{l}"));
    }
    println!(
        "\nPredictions (one pass over X) on the CPU backend, all cores, against the CUDA backend's upload of X and y:"
    );
    println!("| problem | X (GB) | CPU backend predict ms | CUDA upload ms |");
    println!("|---|---:|---:|---:|");
    predict_lines.iter().for_each(|l| println!("{l}"));
}

/// One row of the targets' table: the CUDA time (None without a GPU; with the kernel `setting` that ran it, for
/// the candidates' table) against its floor and the CPU backend's, with the verdict of the targets where
/// the shape has one.
fn target_line(
    t: &Target,
    setting: Option<&str>,
    cuda_ms: Option<f64>,
    floor: f64,
    cpu: &Row,
    threads: usize,
) -> String {
    let ms = |v: Option<f64>| v.map_or("—".to_string(), |v| format!("{v:.2}"));
    let ratio = |v: Option<f64>| v.map_or("—".to_string(), |v| format!("{v:.2}×"));
    let speedup = cuda_ms.map(|c| cpu.ms / c);
    let verdict = match (t.k, t.d, cuda_ms, speedup) {
        (8, 100, Some(_), Some(x)) => format!("≥ 50×: {}", if x >= 50.0 { "met" } else { "not met" }),
        (16, 100, Some(c), _) => {
            let met = c <= 100.0 && c <= 2.0 * floor;
            format!("≤ 100 ms and ≤ 2× floor: {}", if met { "met" } else { "not met" })
        }
        _ => "—".to_string(),
    };
    let setting = setting.map_or(String::new(), |s| format!(" {s} |"));
    format!(
        "| {} |{setting} {} | {floor:.2} | {} | {:.1} ({threads} threads) | {} | {verdict} |",
        t.label,
        ms(cuda_ms),
        ratio(cuda_ms.map(|c| c / floor)),
        cpu.ms,
        ratio(speedup)
    )
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    if std::env::args().any(|a| a == "--targets") {
        return targets(quick);
    }
    let info = match moe_cuda::cuda_available() {
        Ok(i) => i,
        Err(e) => {
            println!("no GPU: {e}");
            return;
        }
    };
    println!(
        "device: {} (sm_{}{}, {} SMs, {:.1} GiB), driver {}",
        info.name,
        info.compute_capability.0,
        info.compute_capability.1,
        info.multiprocessors,
        info.total_memory_bytes as f64 / (1u64 << 30) as f64,
        info.driver_version
    );
    println!("libraries: {:?}", info.library_paths);
    let mut rows: Vec<Row> = vec![];
    // `--profile`: only 3 EM iterations at (1e6, 100, 8) with the default kernels, for a profiler (ncu) to
    // attribute the iteration's time to kernels.
    if std::env::args().any(|a| a == "--profile") {
        let (n, d, k) = (1_000_000, 100, 8);
        let (x, y) = planted(n, d, k, 0, 6);
        let gpu = CudaBackend::new(Data { x: &x, n, d, y: &y, s: None }).unwrap();
        fit_row(&format!("EM linear n={n} d={d} k={k} (profile)"), &gpu, &linear_model(k, d), 3, 3e12, 6e13);
        return;
    }

    // 1. Ceilings.
    let ctx = Context::new().unwrap();
    println!("kernels: {}", ctx.kernel_source);
    let bw = copy_bandwidth(&ctx);
    let rate_square = dgemm_rate(&ctx, 4096, 4096, 4096);
    let rate_tall = dgemm_rate(&ctx, 100, 100, 1 << 20); // the Gram shape: d×d over many rows
    println!(
        "ceilings: D2D copy {:.0} GB/s, DGEMM 4096³ {:.1} TFLOP/s, DGEMM 100×100×2^20 {:.1} TFLOP/s",
        bw / 1e9,
        rate_square / 1e12,
        rate_tall / 1e12
    );
    drop(ctx);
    let rate = rate_square;
    rows.push(Row {
        label: "ceiling: D2D copy (GB/s)".into(),
        ms: bw / 1e9,
        floor_ms: f64::NAN,
        note: "read+write bytes / time".into(),
    });
    rows.push(Row {
        label: "ceiling: DGEMM 4096³ (TFLOP/s)".into(),
        ms: rate_square / 1e12,
        floor_ms: f64::NAN,
        note: format!("100×100×2^20: {:.1} TFLOP/s", rate_tall / 1e12),
    });

    // 2a. EM at (1e6, 100, 8): CUDA vs CPU.
    let d = 100;
    let (n_mid, k_mid) = if quick { (200_000, 8) } else { (1_000_000, 8) };
    {
        let (x, y) = planted(n_mid, d, k_mid, 0, 6);
        let data = Data { x: &x, n: n_mid, d, y: &y, s: None };
        let model = linear_model(k_mid, d);
        let gpu = CudaBackend::new(data).unwrap();
        estep_rows(&gpu, n_mid, d, k_mid, &mut rows);
        narrow_pass_rows(&gpu, n_mid, d, k_mid, &pass_projections(k_mid, d), bw, &mut rows);
        let (em, gout) = em_rows(&gpu, &format!("EM linear n={n_mid} d={d} k={k_mid}"), &model, 5, bw, rate);
        drop(gpu);
        let cpu = CpuBackend::new(data, 0).unwrap();
        let (c, cout) =
            fit_row(&format!("EM linear cpu({}) n={n_mid} d={d} k={k_mid}", cpu.threads()), &cpu, &model, 3, bw, rate);
        let nll_gap = (gout.iterations[2].nll - cout.iterations[2].nll).abs() / cout.iterations[2].nll.abs();
        println!("nll at iteration 2, cuda (default) vs cpu: relative gap {nll_gap:.1e}");
        for g in &em {
            let config = g.label.rsplit_once("cuda ").map_or("", |(_, c)| c);
            println!("speed-up cuda ({config}) / cpu: {:.1}×", c.ms / g.ms);
            rows.push(Row {
                label: format!("speed-up EM cuda ({config}) vs cpu (×)"),
                ms: c.ms / g.ms,
                floor_ms: f64::NAN,
                note: format!("target ≥ 50×; nll rel gap (default) {nll_gap:.1e}"),
            });
        }
        rows.extend(em);
        rows.push(c);
    }

    // 2b. Fashion-MNIST shape: 60000×784, 2 multinomial experts × 10 classes.
    {
        let (n, d, k, c) = (60_000, 784, 2, 10);
        let (x, y) = planted(n, d, k, c, 7);
        let data = Data { x: &x, n, d, y: &y, s: None };
        let model = ModelSpec {
            experts: ExpertKind::Multinomial,
            symmetric: false,
            k,
            d,
            n_classes: c,
            noise: Noise::Fitted,
            ridge: 1e-2,
            intercept: false,
        };
        let gpu = CudaBackend::new(data).unwrap();
        // CUDA only here; `--targets` times the CPU backend at this shape too.
        let (g, _) = fit_row("EM multinomial cuda 60000×784 k=2 C=10", &gpu, &model, 3, bw, rate);
        rows.push(g);
    }

    // 3. Passes at the large shape, Gram chunk sweep.
    let (n_big, k_big) = if quick { (1_000_000, 16) } else { (10_000_000, 16) };
    {
        let t = Instant::now();
        let (x, y) = planted(n_big, d, k_big, 0, 5);
        println!("generated {n_big}×{d} in {:.1} s", t.elapsed().as_secs_f64());
        let data = Data { x: &x, n: n_big, d, y: &y, s: None };
        let t = Instant::now();
        let gpu = CudaBackend::new(data).unwrap();
        println!(
            "upload: {:.2} s; fused tensor-core kernel available: {}",
            t.elapsed().as_secs_f64(),
            gpu.fused_available()
        );
        let proj = pass_projections(k_big, d);
        let sigma2 = vec![1.0; k_big];
        let estep = RowOp::EStep { k: k_big, family: Family::Linear { sigma2 }, store: true, suff: true };
        gpu.set_gram_kernel(GramKernel::Gemm); // the chunk size is a knob of the GEMM Grams only
        for mb in [32, 128, 512] {
            std::env::set_var("MOE_CUDA_GRAM_CHUNK_MB", mb.to_string());
            let ms = pass_ms(&gpu, &proj, &estep, 3);
            println!("E-step pass (k={k_big} Grams), Gram chunk {mb} MB: {ms:.1} ms");
            rows.push(Row {
                label: format!("pass E-step+suff n={n_big} chunk {mb}MB"),
                ms,
                floor_ms: f64::NAN,
                note: String::new(),
            });
        }
        std::env::remove_var("MOE_CUDA_GRAM_CHUNK_MB");
        estep_rows(&gpu, n_big, d, k_big, &mut rows);
        narrow_pass_rows(&gpu, n_big, d, k_big, &proj, bw, &mut rows);
        gpu.set_kernels(DEFAULTS);
        // 3b. EM at the large shape (CUDA only), every configuration.
        let (em, _) =
            em_rows(&gpu, &format!("EM linear n={n_big} d={d} k={k_big}"), &linear_model(k_big, d), 3, bw, rate);
        rows.extend(em);
    }

    println!("\n| what | value (ms, or as labelled) | floor ms | notes |\n|---|---:|---:|---|");
    for r in rows {
        let floor = if r.floor_ms.is_nan() { "".into() } else { format!("{:.1}", r.floor_ms) };
        println!("| {} | {:.2} | {} | {} |", r.label, r.ms, floor, r.note);
    }
}
