// Dropout's mask as a function of (seed, element index), shared by the CPU kernels
// (cpu/dropout_slice.h, cpu/dropout.cpp) and the CUDA kernel (cuda/dropout.cu) so that both
// devices drop the same elements. The stream is splitmix64 (Steele, Lea and Flood, "Fast
// splittable pseudorandom number generators", 2014): output k is mix(seed + (k+1) * golden
// gamma), so any slice can be generated on its own. Each 64-bit output decides two elements:
// element 2k takes its low 32 bits and element 2k+1 its high 32 bits; an element is dropped
// when its bits are below p * 2^32.
#pragma once
#include <cmath>
#include <cstdint>

#include "host_device.h"

namespace fastnn {
// Internal linkage: each including translation unit is compiled for its own ISA (or for the
// GPU) and must keep its own copy (one shared inline definition would let the linker pick any
// ISA's code).
namespace {

constexpr uint64_t kGoldenGamma = 0x9e3779b97f4a7c15ull;

// Output k of the stream is mix(stream_state(seed, k)).
FASTNN_HOST_DEVICE inline uint64_t mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// What output `pair` of the stream mixes: stepping it by kGoldenGamma gives the next output's.
FASTNN_HOST_DEVICE inline uint64_t stream_state(uint64_t seed, uint64_t pair) {
  return seed + (pair + 1) * kGoldenGamma;
}

// Whether an element with these 32 random bits is kept (threshold from drop_threshold).
FASTNN_HOST_DEVICE inline bool kept(uint32_t bits, uint64_t threshold) { return uint64_t(bits) >= threshold; }

// Elements whose bits are below this are dropped: probability p, exact to 2^-32.
inline uint64_t drop_threshold(double p) { return uint64_t(std::llround(p * 4294967296.0)); }

// What kept elements are multiplied by.
template <class T>
T keep_scale(double p) {
  return T(1 / (1 - p));
}

}  // namespace
}  // namespace fastnn
