// A host emulator of the CUDA execution model, for checking the kernels' index arithmetic, shared-memory
// use and warp-level data exchange on machines without a GPU (tests/emulated.rs compiles the joined kernel
// source, OUT_DIR/moe_kernels.cu, after this header, with AddressSanitizer where available).
//
// Model: every CUDA thread of a block is a std::thread; the blocks of a launch run one after another, so a
// `__shared__` variable can be a function-local `static` (one block owns it at a time). `__syncthreads()`
// is a barrier over the block, warp operations (shuffles, the DMMA of kernels/mma.cuh) exchange values
// through per-warp slots between two barriers over the warp's 32 threads. A thread that returns early drops
// out of both barriers, as an exited thread does on the GPU.
//
// What it checks: indexing, bounds (with ASan), barrier placement (real threads race where a barrier is
// missing), and the lane layout of the DMMA fragments as documented in kernels/mma.cuh. What it cannot:
// speed, the hardware's rounding inside one DMMA, memory-model subtleties beyond barriers.
//
// Limits: dynamic shared memory only through kernels/mma.cuh's MOE_DYNAMIC_SHARED (its size is the
// launch's `shared_bytes`, exactly, so that AddressSanitizer sees overruns); blockDim a multiple of 32; all
// 32 lanes of a warp take part in each warp operation (full masks).
#pragma once

#include <math.h>

#include <algorithm>
#include <barrier>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#define MOE_EMULATE 1
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))

using std::max;
using std::min;

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};

struct alignas(16) double2 {
    double x, y;
};

inline thread_local dim3 threadIdx;
inline thread_local dim3 blockIdx;
inline dim3 blockDim, gridDim;

namespace emu {

struct Warp {
    std::barrier<> bar{32};
    double a[32], b[32], c0[32], c1[32];
    uint64_t word[32];
};

struct Block {
    Block(unsigned threads, size_t shared_bytes) : bar(threads), shared(new double[(shared_bytes + 7) / 8]) {
        for (unsigned w = 0; w < threads / 32; ++w) warps.emplace_back(new Warp);
    }
    std::barrier<> bar;
    std::vector<std::unique_ptr<Warp>> warps;
    std::unique_ptr<double[]> shared;  // the dynamic shared memory
};

inline Block* block = nullptr;

inline unsigned linear_thread() { return threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z); }
inline unsigned lane() { return linear_thread() % 32; }
inline Warp& warp() { return *block->warps[linear_thread() / 32]; }

// Runs `kernel()` (a closure over the kernel's arguments) on a grid of blocks, with `shared_bytes` of
// dynamic shared memory per block.
template <class F>
void launch(dim3 grid, dim3 threads, F kernel, size_t shared_bytes = 0) {
    const unsigned nt = threads.x * threads.y * threads.z;
    if (nt == 0 || nt % 32 != 0 || nt > 1024) {
        std::fprintf(stderr, "emu::launch: %u threads per block (need a multiple of 32, at most 1024)\n", nt);
        std::abort();
    }
    gridDim = grid;
    blockDim = threads;
    for (unsigned bz = 0; bz < grid.z; ++bz)
        for (unsigned by = 0; by < grid.y; ++by)
            for (unsigned bx = 0; bx < grid.x; ++bx) {
                Block b(nt, shared_bytes);
                block = &b;
                std::vector<std::thread> pool;
                pool.reserve(nt);
                for (unsigned t = 0; t < nt; ++t) {
                    pool.emplace_back([&, t] {
                        blockIdx = dim3{bx, by, bz};
                        threadIdx = dim3{t % threads.x, (t / threads.x) % threads.y, t / (threads.x * threads.y)};
                        kernel();
                        b.warps[t / 32]->bar.arrive_and_drop();
                        b.bar.arrive_and_drop();
                    });
                }
                for (auto& th : pool) th.join();
                block = nullptr;
            }
}

}  // namespace emu

inline void __syncthreads() { emu::block->bar.arrive_and_wait(); }
inline double* moe_emu_dynamic_shared() { return emu::block->shared.get(); }
inline void __syncwarp(unsigned = 0xffffffffu) { emu::warp().bar.arrive_and_wait(); }

template <class T>
inline T __ldg(const T* p) { return *p; }

// Shuffles: every lane publishes its value, then reads its source lane's (lanes out of range read their own).
template <class T>
inline T emu_shuffle(T v, int src) {
    static_assert(sizeof(T) <= 8, "shuffle of at most 8 bytes");
    emu::Warp& w = emu::warp();
    const int me = (int)emu::lane();
    uint64_t word = 0;
    std::memcpy(&word, &v, sizeof(T));
    w.word[me] = word;
    w.bar.arrive_and_wait();
    T out;
    const uint64_t got = w.word[(src >= 0 && src < 32) ? src : me];
    std::memcpy(&out, &got, sizeof(T));
    w.bar.arrive_and_wait();
    return out;
}
template <class T>
inline T __shfl_sync(unsigned, T v, int src, int = 32) { return emu_shuffle(v, src); }
template <class T>
inline T __shfl_xor_sync(unsigned, T v, int mask, int = 32) { return emu_shuffle(v, (int)emu::lane() ^ mask); }
template <class T>
inline T __shfl_down_sync(unsigned, T v, unsigned delta, int = 32) { return emu_shuffle(v, (int)(emu::lane() + delta)); }
template <class T>
inline T __shfl_up_sync(unsigned, T v, unsigned delta, int = 32) { return emu_shuffle(v, (int)emu::lane() - (int)delta); }

// D = A·B + D for one warp, with the lane layout of kernels/mma.cuh (mma.m8n8k4 .f64):
// A[r][k] from lane 4r + k, B[k][c] from lane 4c + k; lane l = 4r + l%4 holds D[r][2(l%4) + i] in d_i.
inline void moe_emu_dmma_8x8x4(double& d0, double& d1, double a, double b) {
    emu::Warp& w = emu::warp();
    const int l = (int)emu::lane();
    w.a[l] = a;
    w.b[l] = b;
    w.c0[l] = d0;
    w.c1[l] = d1;
    w.bar.arrive_and_wait();
    const int r = l / 4;
    double out[2] = {w.c0[l], w.c1[l]};
    for (int i = 0; i < 2; ++i) {
        const int c = 2 * (l % 4) + i;
        for (int k = 0; k < 4; ++k) out[i] += w.a[4 * r + k] * w.b[4 * c + k];
    }
    w.bar.arrive_and_wait();
    d0 = out[0];
    d1 = out[1];
}
