//! moe-cuda: the CUDA backend of moe-em. The CUDA driver, cuBLAS and NVRTC are loaded at run time with dlopen
//! (no link-time dependency), so a binary built without a GPU loads everywhere and reports
//! `E_BACKEND_UNAVAILABLE` where there is none.
//!
//! Layers: `ffi` (raw declarations and dlsym), `driver` (safe context, buffers, launches, cuBLAS calls), `kernels` (host side of kernels/moe_kernels.cu), `fused` (host side of kernels/fused_tc.cu: the
//! opt-in fused narrow pass), `backend` (`CudaBackend`, moe_core's `Backend`).

mod backend;
pub mod driver;
mod error;
mod ffi;
mod fused;
#[doc(hidden)] // public only for the host emulation check of the kernels (dev tool)
pub mod kernels;

pub use backend::CudaBackend;
pub use driver::{DeviceInfo, KernelSource};
pub use fused::VARIANTS as FUSED_VARIANTS;
pub use error::{GpuError, GpuErrorKind};

/// Device 0 when a usable GPU and driver are present; `E_BACKEND_UNAVAILABLE` otherwise (never panics).
pub fn cuda_available() -> moe_core::Result<DeviceInfo> {
    Ok(driver::device_info()?)
}
