//! Out of GPU memory is a typed, recoverable error: with the device filled up, creating a backend fails with
//! E_GPU_OOM, the CPU backend still works, and once memory is free again the GPU backend works too.
//! (Its own test binary: it fills the GPU, which would starve tests running beside it.)

mod common;

use common::*;
use moe_core::backend::{Backend, RowOp, Rows};
use moe_core::{CpuBackend, ErrorCode};
use moe_cuda::driver::{Context, DeviceBuffer};
use moe_cuda::CudaBackend;

#[test]
fn out_of_memory_is_typed_and_recoverable() {
    let Some(info) = gpu_or_skip("out_of_memory_is_typed_and_recoverable") else { return };
    let ctx = Context::new().unwrap();

    // A single absurd request (far beyond the card) is refused with the OOM code.
    let e: moe_core::Error = DeviceBuffer::<f64>::alloc(&ctx, info.total_memory_bytes).err().expect("oom").into();
    assert_eq!(e.code, ErrorCode::GpuOom, "{e}");

    // Fill the card in 1 GiB blocks, then ask for a backend whose data needs more than what is left.
    let mut hog = Vec::new();
    loop {
        match DeviceBuffer::<f64>::alloc(&ctx, 1 << 27) {
            Ok(b) => hog.push(b),
            Err(e) => {
                assert_eq!(moe_core::Error::from(e).code, ErrorCode::GpuOom);
                break;
            }
        }
    }
    let (free, _) = ctx.memory().unwrap();
    println!("filled {} GiB; {} MiB left", hog.len(), free >> 20);
    let (n, d) = (1_500_000, 100); // 1.2 GB of X: more than the < 1 GiB left
    let problem = Problem::random(9, n, d, Labels::Real, false);
    let e = CudaBackend::new(problem.data()).err().expect("the data cannot fit");
    assert_eq!(e.code, ErrorCode::GpuOom, "{e}");

    // The process is still usable: the CPU backend computes, and after freeing, the GPU does too.
    let cpu = CpuBackend::new(problem.data(), 0).unwrap();
    let moments_cpu = cpu.pass(Rows::All, &[], &RowOp::Moments).unwrap();
    drop(hog);
    let gpu = CudaBackend::new(problem.data()).unwrap();
    let moments_gpu = gpu.pass(Rows::All, &[], &RowOp::Moments).unwrap();
    assert_close("moments after OOM", &moments_gpu.sums, &moments_cpu.sums, 1e-12);
}
