//! The CUDA kernels run on the host by the emulator of tests/emu/emu.h: each tests/emu/*.cpp program
//! includes the joined kernel source that build.rs writes (OUT_DIR/moe_kernels.cu), launches kernels on
//! random inputs and compares them with plain loops, exiting non-zero on a mismatch. This checks index
//! arithmetic, bounds (AddressSanitizer where the compiler has it), barrier placement and the DMMA lane
//! layout on machines without a GPU; the GPU tests (passes.rs, fits.rs) remain the proof on hardware.
//! tests/emu/io/row_op.cpp is driven from here instead: it runs the per-row kernels on inputs this file writes,
//! and `row_ops_match_the_cpu_row_mathematics` compares them with moe_core's `rowops::eval_row`.
//! Skipped, with the reason printed, where no C++20 compiler is found (`CXX`, else `c++`).

use std::path::{Path, PathBuf};
use std::process::Command;

fn compiler() -> Option<String> {
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    let probe = Command::new(&cxx).arg("--version").output().ok()?;
    probe.status.success().then_some(cxx)
}

/// Compiles `program` against the joined kernels; with sanitizers when the toolchain links them.
fn build(cxx: &str, program: &Path, exe: &Path) -> Result<(), String> {
    let kernels = concat!(env!("OUT_DIR"), "/moe_kernels.cu");
    let emu_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/emu");
    let base = |sanitize: bool| {
        let mut c = Command::new(cxx);
        c.args(["-std=c++20", "-O1", "-g", "-pthread", "-Wall", "-Wno-unused-function", "-Wno-unknown-pragmas"])
            .arg(format!("-DMOE_KERNELS=\"{kernels}\""))
            .arg("-I")
            .arg(&emu_dir)
            .arg(program)
            .arg("-o")
            .arg(exe);
        if sanitize {
            c.args(["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined"]);
        }
        c
    };
    let mut last = String::new();
    for sanitize in [true, false] {
        let out = base(sanitize).output().map_err(|e| e.to_string())?;
        if out.status.success() {
            return Ok(());
        }
        last = String::from_utf8_lossy(&out.stderr).into_owned();
    }
    Err(last)
}

#[test]
fn kernels_under_the_host_emulator() {
    let Some(cxx) = compiler() else {
        println!("skipped: no C++ compiler (set CXX) for the kernel emulator");
        return;
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/emu");
    let mut programs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/emu")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cpp"))
        .collect();
    programs.sort();
    assert!(!programs.is_empty(), "no tests/emu/*.cpp programs");
    let out_dir = std::env::temp_dir().join(format!("moe-emu-{}", std::process::id()));
    std::fs::create_dir_all(&out_dir).unwrap();
    let mut failures = vec![];
    for program in &programs {
        let name = program.file_stem().unwrap().to_string_lossy().into_owned();
        let exe = out_dir.join(&name);
        if let Err(log) = build(&cxx, program, &exe) {
            failures.push(format!("{name}: does not compile:\n{log}"));
            continue;
        }
        let run = Command::new(&exe).env("ASAN_OPTIONS", "detect_leaks=0").output().expect("run an emulated test");
        print!("== {name}\n{}", String::from_utf8_lossy(&run.stdout));
        if !run.status.success() {
            failures.push(format!("{name}: {}\n{}", run.status, String::from_utf8_lossy(&run.stderr)));
        }
    }
    let _ = std::fs::remove_dir_all(&out_dir);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The per-row kernels (`row_op`, `row_op_tiled`, i.e. `eval_row` of kernels/moe_kernels.cu) against the CPU
/// backend's per-row mathematics, `moe_core::rowops::eval_row`, on every op that has a kernel: per row R,
/// Gram weights and sum terms, and the stores (H, probabilities) after the pass, all rows and gathered ones
/// (stores indexed through idx), with and without sample weights. Under the emulator the device's exp/log are
/// the host's, so both sides compute the same formulas in the same libm: 1e-12 relative (max-norm, scale ≥ 1)
/// leaves room only for operation order. On a GPU, tests/passes.rs compares whole passes with the CPU backend.
#[test]
fn row_ops_match_the_cpu_row_mathematics() {
    use moe_core::backend::{Family, RowOp, SoftmaxProblem, SoftmaxTask, SymKind};
    use moe_core::rng::Rng;
    let Some(cxx) = compiler() else {
        println!("skipped: no C++ compiler (set CXX) for the kernel emulator");
        return;
    };
    let dir = std::env::temp_dir().join(format!("moe-emu-row-op-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let exe = dir.join("row_op");
    let program = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/emu/io/row_op.cpp");
    build(&cxx, &program, &exe).unwrap_or_else(|log| panic!("tests/emu/io/row_op.cpp does not compile:\n{log}"));

    let linear = Family::Linear { sigma2: vec![0.6, 1.3, 2.2] };
    let families = [linear.clone(), Family::Logistic, Family::Multinomial { classes: 4 }];
    let problems = [
        SoftmaxProblem::Gate { k: 4 },
        SoftmaxProblem::Expert { j: 1, k: 3, classes: 4, logistic: false },
        SoftmaxProblem::Expert { j: 0, k: 3, classes: 2, logistic: true },
        SoftmaxProblem::SymGate,
        SoftmaxProblem::SymLogExpert,
    ];
    let tasks = [
        SoftmaxTask::Objective,
        SoftmaxTask::Gradient,
        SoftmaxTask::Hessian,
        SoftmaxTask::HessVec,
        SoftmaxTask::GradientDiag,
        SoftmaxTask::GradientDiagStore,
        SoftmaxTask::HessVecStored,
    ];
    let kinds = [SymKind::Linear { sigma: 0.8 }, SymKind::Logistic];
    let mut ops = vec![RowOp::Moments, RowOp::Gram, RowOp::LinearResidual { k: 3 }];
    for family in &families {
        for (store, suff) in [(true, true), (false, true), (true, false)] {
            ops.push(RowOp::EStep { k: 3, family: family.clone(), store, suff });
        }
        for stored_h in [false, true] {
            ops.push(RowOp::Gradient { k: 3, family: family.clone(), stored_h });
        }
    }
    ops.push(RowOp::EStep {
        k: 16,
        family: Family::Linear { sigma2: (0..16).map(|j| 0.5 + 0.1 * j as f64).collect() },
        store: true,
        suff: true,
    });
    for kind in kinds {
        ops.push(RowOp::SymEStep { kind, store: true, suff: true });
        ops.push(RowOp::SymGradient { kind, stored_h: false });
        ops.push(RowOp::SymGradient { kind, stored_h: true });
    }
    for problem in problems {
        for task in tasks {
            ops.push(RowOp::Softmax { problem, task });
        }
    }
    ops.push(RowOp::Softmax { problem: SoftmaxProblem::Gate { k: 16 }, task: SoftmaxTask::HessVec });
    ops.push(RowOp::HStats { width: 3, suff: true, symmetric: false });
    ops.push(RowOp::HStats { width: 2, suff: true, symmetric: true });

    // Labels each op reads: real, {0, 1}, {−1, +1} or classes 0..C−1 (0 = real).
    let labels = |op: &RowOp| -> i32 {
        let family = |f: &Family| match f {
            Family::Linear { .. } => 0,
            Family::Logistic => 2,
            Family::Multinomial { classes } => *classes as i32,
        };
        let kind = |k: &SymKind| if matches!(k, SymKind::Logistic) { -1 } else { 0 };
        match op {
            RowOp::EStep { family: f, .. } | RowOp::Gradient { family: f, .. } => family(f),
            RowOp::SymEStep { kind: k, .. } | RowOp::SymGradient { kind: k, .. } => kind(k),
            RowOp::Softmax { problem: SoftmaxProblem::Expert { classes, .. }, .. } => *classes as i32,
            RowOp::Softmax { problem: SoftmaxProblem::SymLogExpert, .. } => -1,
            _ => 0,
        }
    };
    let (rows, store_rows) = (150usize, 211usize); // three 64-row blocks, the last one short
    let mut failures = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        let shape = op.shape();
        let (params, consts) = moe_cuda::kernels::encode(op, &shape).unwrap().expect("every op here has a kernel");
        for gathered in [false, true] {
            let mut rng = Rng::new(900 + 2 * i as u32 + gathered as u32);
            let mut uniform = |lo: f64, hi: f64| lo + (hi - lo) * rng.uniform();
            let a: Vec<f64> = (0..rows * shape.q).map(|_| uniform(-2.0, 2.0)).collect();
            let y: Vec<f64> = (0..rows)
                .map(|_| match labels(op) {
                    0 => uniform(-2.0, 2.0),
                    -1 => {
                        if uniform(0.0, 1.0) < 0.5 {
                            -1.0
                        } else {
                            1.0
                        }
                    }
                    c => (uniform(0.0, c as f64).floor()).min(c as f64 - 1.0),
                })
                .collect();
            // Weights on every other op (some zero), none on the others.
            let s: Vec<f64> = if i % 2 == 0 {
                (0..rows).map(|r| if r % 17 == 3 { 0.0 } else { uniform(0.2, 1.5) }).collect()
            } else {
                vec![]
            };
            let n_store = if gathered { store_rows } else { rows };
            let (hw, pw) = (shape.h_width, shape.p_width);
            let mut h: Vec<f64> = (0..n_store * hw).map(|_| uniform(0.05, 1.0)).collect();
            for row in h.chunks_mut(hw.max(1)) {
                let t: f64 = row.iter().sum();
                row.iter_mut().for_each(|v| *v /= t);
            }
            let probs: Vec<f64> = (0..n_store * pw).map(|_| uniform(0.05, 0.5)).collect();
            let mut idx: Vec<u32> = (0..store_rows as u32).collect();
            Rng::new(77 + i as u32).shuffle(&mut idx);
            idx.truncate(if gathered { rows } else { 0 });

            // The kernels, emulated.
            let mut input: Vec<u8> = Vec::new();
            let size = std::mem::size_of::<moe_cuda::kernels::RowOpParams>();
            input.extend((size as u64).to_le_bytes());
            let mut p = params;
            p.rows = rows as i32;
            // SAFETY: RowOpParams is #[repr(C)] plain data without padding (ints, doubles, then addresses).
            input.extend_from_slice(unsafe { std::slice::from_raw_parts(&p as *const _ as *const u8, size) });
            let mut put = |values: &[f64]| {
                input.extend((values.len() as u64).to_le_bytes());
                values.iter().for_each(|v| input.extend(v.to_le_bytes()));
            };
            for values in [&a, &y, &s, &h, &probs, consts.as_ref().unwrap_or(&vec![])] {
                put(values);
            }
            input.extend((idx.len() as u64).to_le_bytes());
            idx.iter().for_each(|v| input.extend(v.to_le_bytes()));
            let (inp, outp) = (dir.join(format!("in-{i}-{gathered}")), dir.join(format!("out-{i}-{gathered}")));
            std::fs::write(&inp, &input).unwrap();
            let run = Command::new(&exe).arg(&inp).arg(&outp).env("ASAN_OPTIONS", "detect_leaks=0").output().unwrap();
            assert!(run.status.success(), "{op:?}: {}", String::from_utf8_lossy(&run.stderr));
            let bytes = std::fs::read(&outp).unwrap();
            let mut at = 0;
            let mut take = || {
                let n = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
                at += 8;
                let v: Vec<f64> =
                    bytes[at..at + 8 * n].chunks(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect();
                at += 8 * n;
                v
            };
            let kernels: Vec<Vec<Vec<f64>>> = (0..2).map(|_| (0..5).map(|_| take()).collect()).collect();

            // The CPU backend's row mathematics on the same rows (−7: entries an op does not write).
            let (mut r, mut w, mut sv) =
                (vec![-7.0; rows * shape.r_cols], vec![-7.0; rows * shape.grams], vec![0.0; rows * shape.sums]);
            let (mut h_cpu, mut p_cpu) = (h.clone(), probs.clone());
            let mut scratch = moe_core::rowops::Scratch::default();
            for row in 0..rows {
                let st = if gathered { idx[row] as usize } else { row };
                moe_core::rowops::eval_row(
                    op,
                    &a[row * shape.q..(row + 1) * shape.q],
                    y[row],
                    if s.is_empty() { 1.0 } else { s[row] },
                    &mut h_cpu[st * hw..(st + 1) * hw],
                    &mut p_cpu[st * pw..(st + 1) * pw],
                    &mut r[row * shape.r_cols..(row + 1) * shape.r_cols],
                    &mut w[row * shape.grams..(row + 1) * shape.grams],
                    &mut sv[row * shape.sums..(row + 1) * shape.sums],
                    &mut scratch,
                );
            }
            let want = [r, w, sv, h_cpu, p_cpu];
            for (kernel, got) in ["row_op", "row_op_tiled"].iter().zip(&kernels) {
                for (what, (g, c)) in
                    ["R", "Gram weights", "sum terms", "H", "probabilities"].iter().zip(got.iter().zip(&want))
                {
                    let scale = c.iter().fold(1.0f64, |m, v| m.max(v.abs()));
                    let err = g.iter().zip(c).map(|(g, c)| (g - c).abs()).fold(0.0f64, |m, e| {
                        if e > m || e.is_nan() {
                            e
                        } else {
                            m
                        }
                    });
                    let close = err <= 1e-12 * scale; // false for NaN
                    if g.len() != c.len() || !close {
                        failures.push(format!(
                            "{op:?} (gathered {gathered}) {kernel} {what}: {} values vs {}, error {err:e}",
                            g.len(),
                            c.len()
                        ));
                    }
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!("{} ops × (all rows, gathered) × (row_op, row_op_tiled) against rowops::eval_row", ops.len());
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
}
