// The fp64 tensor-core (DMMA) rate of each mma.sync shape, measured alone: the ceiling that the Gram and
// fused kernels (kernels/gram_tc.cu, kernels/fused_tc.cu) are judged against. Ampere's m8n8k4 is the only
// f64 shape before sm_90; Hopper adds m16n8k4, m16n8k8 and m16n8k16, and its FP64 tensor peak (67 TFLOP/s on
// an H100 SXM) may need them. Each warp runs ACC independent accumulator chains from registers (no memory
// traffic), every SM holds WARPS warps; the result is checked against the closed form so the work cannot be
// optimised away. Built by scripts/pack-device.sh (nvcc -arch=sm_90), run by scripts/device-check.sh.
#include <cstdio>
#include <cuda_runtime.h>

#define ACC 8
#define ITERS 4096

#define CHECK(call)                                                                   \
    do {                                                                              \
        cudaError_t e_ = (call);                                                      \
        if (e_ != cudaSuccess) {                                                      \
            std::printf("CUDA error %s at %s:%d\n", cudaGetErrorString(e_), __FILE__, __LINE__); \
            return 1;                                                                 \
        }                                                                             \
    } while (0)

// Shape 0: m8n8k4 (A 1, B 1, D 2 doubles per lane); 1: m16n8k4 (A 2, B 1, D 4); 2: m16n8k8 (A 4, B 2, D 4);
// 3: m16n8k16 (A 8, B 4, D 4).
template <int SHAPE>
__global__ void dmma_loop(double a_in, double b_in, double* out) {
    double d[ACC][4];
#pragma unroll
    for (int c = 0; c < ACC; ++c) d[c][0] = d[c][1] = d[c][2] = d[c][3] = 0.0;
    const double a = a_in, b = b_in;
    for (int it = 0; it < ITERS; ++it) {
#pragma unroll
        for (int c = 0; c < ACC; ++c) {
            if (SHAPE == 0)
                asm volatile("mma.sync.aligned.m8n8k4.row.col.f64.f64.f64.f64 {%0,%1}, {%2}, {%3}, {%0,%1};\n"
                             : "+d"(d[c][0]), "+d"(d[c][1]) : "d"(a), "d"(b));
#if __CUDA_ARCH__ >= 900
            else if (SHAPE == 1)
                asm volatile("mma.sync.aligned.m16n8k4.row.col.f64.f64.f64.f64 {%0,%1,%2,%3}, {%4,%5}, {%6}, {%0,%1,%2,%3};\n"
                             : "+d"(d[c][0]), "+d"(d[c][1]), "+d"(d[c][2]), "+d"(d[c][3]) : "d"(a), "d"(a), "d"(b));
            else if (SHAPE == 2)
                asm volatile("mma.sync.aligned.m16n8k8.row.col.f64.f64.f64.f64 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                             : "+d"(d[c][0]), "+d"(d[c][1]), "+d"(d[c][2]), "+d"(d[c][3])
                             : "d"(a), "d"(a), "d"(a), "d"(a), "d"(b), "d"(b));
            else if (SHAPE == 3)
                asm volatile("mma.sync.aligned.m16n8k16.row.col.f64.f64.f64.f64 {%0,%1,%2,%3}, {%4,%5,%6,%7,%8,%9,%10,%11}, {%12,%13,%14,%15}, {%0,%1,%2,%3};\n"
                             : "+d"(d[c][0]), "+d"(d[c][1]), "+d"(d[c][2]), "+d"(d[c][3])
                             : "d"(a), "d"(a), "d"(a), "d"(a), "d"(a), "d"(a), "d"(a), "d"(a), "d"(b), "d"(b), "d"(b), "d"(b));
#endif
        }
    }
    double s = 0.0;
#pragma unroll
    for (int c = 0; c < ACC; ++c) s += d[c][0] + d[c][1] + (SHAPE == 0 ? 0.0 : d[c][2] + d[c][3]);
    out[blockIdx.x * blockDim.x + threadIdx.x] = s;
}

template <int SHAPE>
static int measure(const char* name, int m, int n, int k, int sms, int warps) {
    const int blocks = sms * 2, threads = warps * 32 / 2;
    double* out;
    CHECK(cudaMalloc(&out, sizeof(double) * blocks * threads));
    cudaEvent_t t0, t1;
    CHECK(cudaEventCreate(&t0));
    CHECK(cudaEventCreate(&t1));
    float best = 1e30f;
    for (int rep = 0; rep < 6; ++rep) {  // the first is the warm-up
        CHECK(cudaEventRecord(t0));
        dmma_loop<SHAPE><<<blocks, threads>>>(1.0, 0.5, out);
        const cudaError_t launched = cudaGetLastError();
        if (launched == cudaErrorLaunchOutOfResources) {  // too many registers for this many warps per block
            std::printf("| dmma %-9s | %2d warps/SM | not launchable (registers) |\n", name, warps);
            CHECK(cudaFree(out));
            return 0;
        }
        CHECK(launched);
        CHECK(cudaEventRecord(t1));
        CHECK(cudaEventSynchronize(t1));
        float ms;
        CHECK(cudaEventElapsedTime(&ms, t0, t1));
        if (rep > 0 && ms < best) best = ms;
    }
    // Every product is 1·0.5 summed over k per step: each D element = ITERS·k·0.5 (exact in fp64).
    double host;
    CHECK(cudaMemcpy(&host, out, sizeof(double), cudaMemcpyDeviceToHost));
    const int per_lane = (SHAPE == 0 ? 2 : 4) * ACC;
    const double want = per_lane * (double)ITERS * k * 0.5;
    const double flops = 2.0 * m * n * k * (double)ITERS * ACC * (blocks * threads / 32);
    std::printf("| dmma %-9s | %2d warps/SM | %7.2f TFLOP/s | %s |\n", name, warps, flops / (best * 1e-3) / 1e12,
                host == want ? "checked" : "WRONG RESULT");
    CHECK(cudaFree(out));
    return 0;
}

int main() {
    cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) {
        std::printf("no CUDA device\n");
        return 1;
    }
    std::printf("device %s, %d SMs, sm_%d%d\n", prop.name, prop.multiProcessorCount, prop.major, prop.minor);
    const int sms = prop.multiProcessorCount;
    int rc = 0;
    for (int warps : {8, 16, 32}) {
        rc |= measure<0>("m8n8k4", 8, 8, 4, sms, warps);
        if (prop.major >= 9) {
            rc |= measure<1>("m16n8k4", 16, 8, 4, sms, warps);
            rc |= measure<2>("m16n8k8", 16, 8, 8, sms, warps);
            rc |= measure<3>("m16n8k16", 16, 8, 16, sms, warps);
        }
    }
    return rc;
}
