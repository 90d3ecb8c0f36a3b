// The vector type of the ISA this translation unit is compiled for (GCC vector extensions):
// 16 floats with AVX-512, 8 with AVX2, 4 with the SSE2 baseline. Included only by the per-ISA
// sources in this folder: each copy lives in that build's ISA namespace.
#pragma once

namespace fastnn::cpu::FASTNN_ISA_NAMESPACE {

#if defined(__AVX512F__)
constexpr int kWidth = 16;
#elif defined(__AVX2__)
constexpr int kWidth = 8;
#else
constexpr int kWidth = 4;
#endif

typedef float vec __attribute__((vector_size(kWidth * sizeof(float))));
typedef float vec_unaligned __attribute__((vector_size(kWidth * sizeof(float)), aligned(alignof(float))));

inline vec load(const float* p) { return *reinterpret_cast<const vec_unaligned*>(p); }
inline void store(float* p, vec v) { *reinterpret_cast<vec_unaligned*>(p) = v; }
inline vec splat(float s) { return vec{} + s; }

}  // namespace fastnn::cpu::FASTNN_ISA_NAMESPACE
