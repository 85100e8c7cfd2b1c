// Device helpers shared by the kernel files (joined first by build.rs into one translation unit).
//
// The fp64 tensor-core multiply-accumulate (DMMA, sm_80 and newer): one warp computes D = A·B + D with
// A 8×4, B 4×8, D 8×8, one double of A and of B and two of D per lane:
//   A (row-major)    lane holds A[lane / 4][lane % 4]
//   B (column-major) lane holds B[lane % 4][lane / 4]
//   D                lane holds D[lane / 4][2·(lane % 4) + i] in d_i, i = 0, 1
// (PTX ISA, "mma.m8n8k4" with .f64; the same layout as CUTLASS's SM80_8x8x4_F64F64F64F64_TN.)
// Kernels that use it are compiled only where it exists: `#if MOE_HAS_DMMA`. Under MOE_EMULATE (the host
// emulator of tests/emu/emu.h) the multiply is done by the emulator with the same lane layout.

#if defined(MOE_EMULATE) || (defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800)
#define MOE_HAS_DMMA 1
#else
#define MOE_HAS_DMMA 0
#endif

#if MOE_HAS_DMMA
__device__ __forceinline__ void dmma_8x8x4(double& d0, double& d1, double a, double b) {
#ifdef MOE_EMULATE
    moe_emu_dmma_8x8x4(d0, d1, a, b);
#else
    asm volatile("mma.sync.aligned.m8n8k4.row.col.f64.f64.f64.f64 {%0,%1}, {%2}, {%3}, {%0,%1};\n"
                 : "+d"(d0), "+d"(d1)
                 : "d"(a), "d"(b));
#endif
}
#endif
