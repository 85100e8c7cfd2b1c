//! moe-cuda: the CUDA backend of moe-em. The CUDA driver, cuBLAS and NVRTC are loaded at run time with dlopen
//! (no link-time dependency), so a binary built without a GPU loads everywhere and reports
//! `E_BACKEND_UNAVAILABLE` where there is none.
//!
//! Layers: `ffi` (raw declarations and dlsym), `driver` (safe context, buffers, launches, cuBLAS calls), `kernels`
//! (host side of kernels/moe_kernels.cu), `backend` (`CudaBackend`, moe_core's `Backend`), and the host sides
//! of the other kernel files: `gram` (Gram reductions: GEMM or tensor-core kernel), `fused` (the fused
//! narrow pass), `xtw` (skinny Xᵀ·W reductions); `choice` (`KernelChoice`: every kernel knob at once).

mod backend;
mod choice;
pub mod driver;
mod error;
mod ffi;
mod fused;
mod gram;
#[doc(hidden)] // public only for the host emulation check of the kernels (dev tool)
pub mod kernels;
mod xtw;

pub use backend::CudaBackend;
pub use choice::KernelChoice;
pub use driver::{DeviceInfo, KernelSource};
pub use error::{GpuError, GpuErrorKind};
pub use fused::{FusedPolicy, VARIANTS as FUSED_VARIANTS};
pub use gram::{GramKernel, TcVariant, TC_MAX_D, TC_VARIANTS};

/// Device 0 when the CUDA backend can run on it (a GPU, its driver, cuBLAS, and the kernels for it: see
/// `driver::backend_missing`); `E_BACKEND_UNAVAILABLE` with the reason otherwise (never panics).
pub fn cuda_available() -> moe_core::Result<DeviceInfo> {
    let info = driver::device_info()?;
    match driver::backend_missing(driver::runtime()?, &info) {
        Some(why) => Err(GpuError::unavailable(why).into()),
        None => Ok(info),
    }
}
