// Gather and scatter-add along one axis of contiguous data seen as [outer, size, inner]
// (the embedding lookup and its backward). Ids arrive as u32, checked on the host.
#include "common.cuh"

// out[o, i, c] = src[o, ids[i], c]; out is [outer, n, inner].
#define INDEX_SELECT(T, sfx) \
    extern "C" __global__ void index_select_##sfx(u32 total, u32 n, u32 size, u32 inner, const u32* ids, const T* src, T* out) { \
        FOR_EACH(i, total) { \
            u32 c = i % inner, r = (i / inner) % n, o = i / inner / n; \
            out[i] = src[((u64)o * size + ids[r]) * inner + c]; \
        } \
    }
INDEX_SELECT(unsigned short, b2) INDEX_SELECT(u32, b4) INDEX_SELECT(u64, b8)

// out[o, d, c] = sum over the positions i with ids[i] == d of src[o, i, c], in
// increasing i: each output gathers its sources through a bucket list built on the
// host (starts[size + 1], positions[n]), so there are no atomics and the result is
// deterministic. out is [outer, size, inner], src [outer, n, inner].
#define INDEX_ADD(T, sfx) \
    extern "C" __global__ void index_add_##sfx(u32 total, u32 n, u32 size, u32 inner, const u32* starts, const u32* positions, const T* src, T* out) { \
        typedef AccT<T>::type A; \
        FOR_EACH(i, total) { \
            u32 c = i % inner, d = (i / inner) % size, o = i / inner / size; \
            A acc = 0; \
            for (u32 p = starts[d]; p < starts[d + 1]; ++p) acc += to_acc(src[((u64)o * n + positions[p]) * inner + c]); \
            out[i] = from_acc<T>(acc); \
        } \
    }
INDEX_ADD(float, f32) INDEX_ADD(double, f64) INDEX_ADD(bf16, bf16)
