//! The CUDA side of the binding: moe-cuda's backend and device query, behind the same error codes
//! (no GPU or no driver → E_BACKEND_UNAVAILABLE).
use moe_core::{Backend, Data, Error, ErrorCode, Result};

/// What `deviceInfo()` reports.
pub struct GpuInfo {
    pub name: String,
    pub memory_bytes: f64,
    pub compute_capability: String,
}

pub fn new_backend(data: Data<'_>) -> Result<Box<dyn Backend + '_>> {
    let _ = data;
    Err(Error::new(ErrorCode::BackendUnavailable, "the CUDA backend is not built into this binary yet"))
}

pub fn device_info() -> Result<GpuInfo> {
    Err(Error::new(ErrorCode::BackendUnavailable, "the CUDA backend is not built into this binary yet"))
}
