// Runs CUDA kernels on the host: each block's threads are std::threads, __syncthreads a
// std::barrier, warp shuffles a per-warp exchange with barriers. Blocks run in turn, so
// `__shared__` (static locals) is per block.
#pragma once
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>
#include <array>
#include <functional>
#include <math.h>
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
struct dim3 { unsigned x = 1, y = 1, z = 1; };
thread_local dim3 threadIdx, blockIdx;
dim3 blockDim, gridDim;
thread_local unsigned g_tid;
std::barrier<>* g_block;
std::vector<std::unique_ptr<std::barrier<>>> g_warp;
std::vector<std::array<uint64_t, 32>> g_slots;
inline void __syncthreads() { g_block->arrive_and_wait(); }
template <class T> T shfl_impl(T v, unsigned src) {
    unsigned lane = g_tid & 31, w = g_tid >> 5;
    uint64_t bits = 0; std::memcpy(&bits, &v, sizeof(T));
    g_slots[w][lane] = bits;
    g_warp[w]->arrive_and_wait();
    uint64_t r = g_slots[w][src & 31];
    g_warp[w]->arrive_and_wait();
    T out; std::memcpy(&out, &r, sizeof(T));
    return out;
}
template <class T> T __shfl_xor_sync(unsigned, T v, int o) { return shfl_impl(v, (g_tid & 31) ^ o); }
template <class T> T __shfl_sync(unsigned, T v, int src) { return shfl_impl(v, src); }
inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
using std::isinf;

inline void launch(dim3 grid, dim3 block, const std::function<void()>& f) {
    blockDim = block; gridDim = grid;
    unsigned n = block.x * block.y * block.z, warps = (n + 31) / 32;
    for (unsigned z = 0; z < grid.z; ++z)
        for (unsigned y = 0; y < grid.y; ++y)
            for (unsigned x = 0; x < grid.x; ++x) {
                std::barrier<> bar(n);
                g_block = &bar;
                g_warp.clear();
                for (unsigned w = 0; w < warps; ++w) g_warp.emplace_back(new std::barrier<>(std::min(32u, n - w * 32)));
                g_slots.assign(warps, {});
                std::vector<std::thread> ts;
                for (unsigned t = 0; t < n; ++t)
                    ts.emplace_back([&, t] {
                        g_tid = t;
                        threadIdx = {t % block.x, (t / block.x) % block.y, t / (block.x * block.y)};
                        blockIdx = {x, y, z};
                        f();
                        g_block->arrive_and_drop();
                        g_warp[t >> 5]->arrive_and_drop();
                    });
                for (auto& t : ts) t.join();
            }
}
