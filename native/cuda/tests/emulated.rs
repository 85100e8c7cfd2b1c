//! The CUDA kernels run on the host by the emulator of tests/emu/emu.h: each tests/emu/*.cpp program
//! includes the joined kernel source that build.rs writes (OUT_DIR/moe_kernels.cu), launches kernels on
//! random inputs and compares them with plain loops, exiting non-zero on a mismatch. This checks index
//! arithmetic, bounds (AddressSanitizer where the compiler has it), barrier placement and the DMMA lane
//! layout on machines without a GPU; the GPU tests (passes.rs, fits.rs) remain the proof on hardware.
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
