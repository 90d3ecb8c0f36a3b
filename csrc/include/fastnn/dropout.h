// Dropout on the CPU with a counter-based random stream: whether element i is kept depends only
// on (seed, i), so the backward regenerates the forward's mask from the seed and nothing is
// stored between them, and the result does not depend on the thread count.
#pragma once
#include <cstdint>

// libfastnn.so is built with hidden visibility; what this header declares is its API.
#pragma GCC visibility push(default)
namespace fastnn::cpu {

// y[i] = x[i] / (1 - p) where element i is kept (probability 1 - p), else 0. The backward of a
// call is the same call on grad_y with the same p and seed. T is float or double; 0 <= p < 1.
// The pragma does not reach template instantiations: the attribute exports float and double.
template <class T>
[[gnu::visibility("default")]] void dropout(int64_t n, const T* x, double p, uint64_t seed, T* y);

}  // namespace fastnn::cpu
#pragma GCC visibility pop
