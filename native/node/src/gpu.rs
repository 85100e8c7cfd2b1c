//! The CUDA side of the binding: moe-cuda's backend and device query. moe-cuda loads the driver with
//! dlopen, so this addon loads on machines without a GPU; there every CUDA request fails with
//! E_BACKEND_UNAVAILABLE (and a GPU out of memory with E_GPU_OOM, after which the CPU backend still works).
use moe_core::{Backend, Data, Result};

/// What `deviceInfo()` reports.
pub struct GpuInfo {
    pub name: String,
    pub memory_bytes: f64,
    pub compute_capability: String,
}

/// The CUDA backend over `data` (X, y and s are uploaded once, here).
pub fn new_backend(data: Data<'_>) -> Result<Box<dyn Backend + '_>> {
    Ok(Box::new(moe_cuda::CudaBackend::new(data)?))
}

pub fn device_info() -> Result<GpuInfo> {
    let info = moe_cuda::cuda_available()?;
    Ok(GpuInfo {
        name: info.name,
        memory_bytes: info.total_memory_bytes as f64,
        compute_capability: format!("{}.{}", info.compute_capability.0, info.compute_capability.1),
    })
}
