//! Choosing the moe-core backend that runs a request: the multi-threaded CPU backend or moe-cuda's GPU
//! backend. Both are used through `&dyn Backend`, so every export is written once.
use crate::request::Device;
use moe_core::{Backend, CpuBackend, Data, Result};

/// The backend for `device` over `data` (for CUDA, X, y and s are uploaded here, once).
pub fn new_backend(device: Device, data: Data<'_>, threads: usize) -> Result<Box<dyn Backend + '_>> {
    Ok(match device {
        Device::Cpu => Box::new(CpuBackend::new(data, threads)?),
        Device::Cuda => crate::gpu::new_backend(data)?,
    })
}

/// Builds the backend for `device` over `data` and runs `work` with it; the backend (and, for CUDA, its
/// device buffers) lives exactly as long as the call.
pub fn with_backend<R>(
    device: Device,
    data: Data<'_>,
    threads: usize,
    work: impl FnOnce(&dyn Backend) -> Result<R>,
) -> Result<R> {
    work(&*new_backend(device, data, threads)?)
}
