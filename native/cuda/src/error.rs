//! The errors of the CUDA layer, before they become `moe_core::Error`: out of memory is kept apart from
//! every other failure so that callers can fall back to the CPU (the process stays usable after an OOM).

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GpuErrorKind {
    /// No driver library, no device, or a library/kernel image that cannot be used here.
    Unavailable,
    /// A device allocation failed (driver or cuBLAS workspace).
    OutOfMemory,
    /// Any other CUDA failure.
    Failed,
}

#[derive(Clone, Debug)]
pub struct GpuError {
    pub kind: GpuErrorKind,
    pub message: String,
}

impl GpuError {
    pub fn unavailable(message: impl Into<String>) -> Self {
        GpuError { kind: GpuErrorKind::Unavailable, message: message.into() }
    }
    pub fn out_of_memory(message: impl Into<String>) -> Self {
        GpuError { kind: GpuErrorKind::OutOfMemory, message: message.into() }
    }
    pub fn failed(message: impl Into<String>) -> Self {
        GpuError { kind: GpuErrorKind::Failed, message: message.into() }
    }
}

impl fmt::Display for GpuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for GpuError {}

pub type GpuResult<T> = Result<T, GpuError>;
