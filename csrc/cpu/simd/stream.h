// Non-temporal (streaming) vector stores for outputs too large for the caches: they write whole
// lines to memory without first reading them in (a regular store reads each line before
// overwriting it, 1.5x the traffic of a copy) and do not evict the inputs. Included after
// vec.h by the per-ISA sources; without x86 they are regular stores.
#pragma once
#include <algorithm>
#include <cstdint>

#include "cpu/simd/vec.h"
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace fastnn::cpu::FASTNN_ISA_NAMESPACE {

// Outputs at least this large are written with streaming stores. Copies measured on this
// machine's 2 cores leave the caches between 8 and 16 MiB (the 260 MiB L3 the VM reports is
// shared with other tenants), and a kernel calls this per thread slice.
constexpr int64_t kStreamingMinBytes = int64_t(4) << 20;

// Streaming kernels prefetch their inputs this many floats (4 KB) ahead: the hardware prefetcher
// alone kept too few lines in flight from memory (the measurements are in activation_simd.cpp
// and pool_simd.cpp).
constexpr int64_t kPrefetchAhead = 1024;

// Elements from p to the next vector-aligned address (0 if aligned), at most n.
inline int64_t until_aligned(const float* p, int64_t n) {
  const int64_t misaligned = int64_t(reinterpret_cast<uintptr_t>(p) % sizeof(vec));
  return misaligned == 0 ? 0 : std::min<int64_t>(n, int64_t((sizeof(vec) - misaligned) / sizeof(float)));
}

// *p = v without reading p's line into the cache; p must be vector-aligned.
inline void stream(float* p, vec v) {
#if defined(__AVX512F__)
  _mm512_stream_ps(p, reinterpret_cast<__m512>(v));
#elif defined(__AVX__)
  _mm256_stream_ps(p, reinterpret_cast<__m256>(v));
#elif defined(__SSE__)
  _mm_stream_ps(p, reinterpret_cast<__m128>(v));
#else
  store(p, v);
#endif
}

// Streaming stores are weakly ordered: this makes them visible before any later store (the end
// of a parallel region, the result handed back) is.
inline void stream_fence() {
#if defined(__SSE__)
  _mm_sfence();
#endif
}

}  // namespace fastnn::cpu::FASTNN_ISA_NAMESPACE
