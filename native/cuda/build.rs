// Compiles kernels/*.cu with nvcc into one fatbin (sm_80, sm_90 and compute_90 PTX for newer GPUs) that the
// crate embeds. Without nvcc (or with MOE_CUDA_NO_NVCC set) it embeds an empty fatbin and the crate compiles
// the .cu source with NVRTC at run time instead: the build never fails for want of a CUDA toolkit.
use std::{env, path::PathBuf, process::Command};

const KERNELS: &str = "kernels/moe_kernels.cu";

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
    println!("cargo::rerun-if-changed={KERNELS}");
    for var in ["NVCC", "CUDA_PATH", "CUDA_HOME", "MOE_CUDA_NO_NVCC"] {
        println!("cargo::rerun-if-env-changed={var}");
    }
    let fatbin = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR")).join("moe_kernels.fatbin");
    let built = match find_nvcc() {
        None => {
            println!("cargo::warning=nvcc not found: kernels will be compiled with NVRTC at run time");
            false
        }
        Some(nvcc) => {
            let status = Command::new(&nvcc)
                .args(["--fatbin", "-O3",
                       "-gencode", "arch=compute_80,code=sm_80",
                       "-gencode", "arch=compute_90,code=sm_90",
                       "-gencode", "arch=compute_90,code=compute_90",
                       KERNELS, "-o"])
                .arg(&fatbin)
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
