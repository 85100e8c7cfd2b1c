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

// Hopper's own fp64 shape m16n8k16 (PTX ISA 7.8+, sm_90; at twice the rate of m8n8k4 on an H100, measured by
// native/cuda/bench/dmma_rate.cu). One warp computes D (16×8) += A (16×16) · B (16×8); with g = lane / 4 and
// t = lane % 4:
//   a[2s + i] = A[g + 8i][t + 4s]   (i = 0, 1; s < 4)
//   b[s]      = B[t + 4s][g]
//   d0, d1 = D[g][2t + 0/1],  d2, d3 = D[g + 8][2t + 0/1]
// i.e. the rows g and g + 8 of two stacked m8n8k4 tiles, over 4 consecutive k-steps of 4: a kernel keeps the
// m8n8k4 data layout and only issues fewer, larger instructions (checked on an H100 against the CPU backend).
#if defined(MOE_EMULATE) || (defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900)
#define MOE_HAS_DMMA_M16 1
#else
#define MOE_HAS_DMMA_M16 0
#endif

#if MOE_HAS_DMMA_M16
__device__ __forceinline__ void dmma_16x8x16(double (&d)[4], const double (&a)[8], const double (&b)[4]) {
#ifdef MOE_EMULATE
    // The documented semantics, as the stacked m8n8k4 products it is made of (hardware rounding not modelled).
    for (int s = 0; s < 4; ++s) {
        moe_emu_dmma_8x8x4(d[0], d[1], a[2 * s], b[s]);
        moe_emu_dmma_8x8x4(d[2], d[3], a[2 * s + 1], b[s]);
    }
#else
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f64.f64.f64.f64 {%0,%1,%2,%3}, "
                 "{%4,%5,%6,%7,%8,%9,%10,%11}, {%12,%13,%14,%15}, {%0,%1,%2,%3};\n"
                 : "+d"(d[0]), "+d"(d[1]), "+d"(d[2]), "+d"(d[3])
                 : "d"(a[0]), "d"(a[1]), "d"(a[2]), "d"(a[3]), "d"(a[4]), "d"(a[5]), "d"(a[6]), "d"(a[7]),
                   "d"(b[0]), "d"(b[1]), "d"(b[2]), "d"(b[3]));
#endif
}
#endif

// The block's dynamic shared memory (the launch's shared_bytes) as doubles. Under the emulator, a per-block
// buffer of exactly that size.
#ifdef MOE_EMULATE
#define MOE_DYNAMIC_SHARED(name) double* name = moe_emu_dynamic_shared()
#else
#define MOE_DYNAMIC_SHARED(name) extern __shared__ __align__(16) double name[]
#endif

// Asynchronous 8-byte global → shared copies (cp.async, sm_80+), for software-pipelined staging: `valid`
// false fills the destination with zero without reading `src` (src-size 0). Completion: commit a group, then
// wait until at most N groups are still in flight; a barrier after the wait makes every thread's copies
// visible to the block. Under the emulator the copy is immediate and commit/wait are no-ops.
#if MOE_HAS_DMMA
__device__ __forceinline__ void cp_async_8(double* dst, const double* src, bool valid) {
#ifdef MOE_EMULATE
    *dst = valid ? *src : 0.0;
#else
    const unsigned s = (unsigned)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.ca.shared.global [%0], [%1], 8, %2;\n" ::"r"(s), "l"(src), "r"(valid ? 8 : 0) : "memory");
#endif
}
// 16-byte form: two doubles, both addresses 16-byte aligned.
__device__ __forceinline__ void cp_async_16(double* dst, const double* src, bool valid) {
#ifdef MOE_EMULATE
    dst[0] = valid ? src[0] : 0.0;
    dst[1] = valid ? src[1] : 0.0;
#else
    const unsigned s = (unsigned)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(src), "r"(valid ? 16 : 0) : "memory");
#endif
}
__device__ __forceinline__ void cp_async_commit() {
#ifndef MOE_EMULATE
    asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}
template <int N>
__device__ __forceinline__ void cp_async_wait() {
#ifndef MOE_EMULATE
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
#endif
}
#endif
