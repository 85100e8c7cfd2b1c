// Joins the kernel sources (KERNELS, in order) into one translation unit, OUT_DIR/moe_kernels.cu, and compiles
// it with nvcc into one fatbin (sm_80, sm_90 and compute_90 PTX for newer GPUs) that the crate embeds, with
// the joined source beside it for NVRTC. Without nvcc (or with MOE_CUDA_NO_NVCC set) it embeds an empty
// fatbin and the crate compiles the source with NVRTC at run time instead: the build never fails for want of
// a CUDA toolkit. One translation unit because NVRTC gets no #include path; tests/emulated.rs compiles the same
// file on the host (tests/emu/emu.h) to check the kernels' indexing without a GPU.
use std::{env, path::PathBuf, process::Command};

/// The kernel sources in the order they are joined: shared device helpers first.
const KERNELS: &[&str] = &[
    "kernels/mma.cuh",
    "kernels/moe_kernels.cu",
    "kernels/skinny_xtw.cu",
    "kernels/gram_tc.cu",
    "kernels/fused_tc.cu",
];

fn find_nvcc() -> Option<PathBuf> {
    if env::var_os("MOE_CUDA_NO_NVCC").is_some() {
        return None;
    }
    let mut candidates: Vec<PathBuf> = vec![];
    if let Some(p) = env::var_os("NVCC") {
        candidates.push(p.into());
    }
    for var in ["CUDA_PATH", "CUDA_HOME"] {
        if let Some(p) = env::var_os(var) {
            candidates.push(PathBuf::from(p).join("bin/nvcc"));
        }
    }
    candidates.push("/usr/local/cuda/bin/nvcc".into());
    if let Some(path) = env::var_os("PATH") {
        candidates.extend(env::split_paths(&path).map(|d| d.join("nvcc")));
    }
    candidates.into_iter().find(|p| p.is_file())
}

fn main() {
    for file in KERNELS {
        println!("cargo::rerun-if-changed={file}");
    }
    for var in ["NVCC", "CUDA_PATH", "CUDA_HOME", "MOE_CUDA_NO_NVCC"] {
        println!("cargo::rerun-if-env-changed={var}");
    }
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    let source = out_dir.join("moe_kernels.cu");
    let mut joined = String::new();
    for file in KERNELS {
        let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("read {file}: {e}"));
        joined.push_str(&format!("// ---- {file} ----\n#line 1 \"{file}\"\n{text}\n"));
    }
    std::fs::write(&source, joined).expect("write the joined kernel source");
    let fatbin = out_dir.join("moe_kernels.fatbin");
    let built = match find_nvcc() {
        None => {
            println!("cargo::warning=nvcc not found: kernels will be compiled with NVRTC at run time");
            false
        }
        Some(nvcc) => {
            let status = Command::new(&nvcc)
                .args([
                    "--fatbin",
                    "-O3",
                    "-gencode",
                    "arch=compute_80,code=sm_80",
                    "-gencode",
                    "arch=compute_90,code=sm_90",
                    "-gencode",
                    "arch=compute_90,code=compute_90",
                    "-o",
                ])
                .arg(&fatbin)
                .arg(&source)
                .status();
            match status {
                Ok(s) if s.success() => true,
                other => {
                    println!("cargo::warning=nvcc failed ({other:?}): kernels will be compiled with NVRTC at run time");
                    false
                }
            }
        }
    };
    if !built {
        std::fs::write(&fatbin, b"").expect("write empty fatbin");
    }
}
