// Elementwise activation kernels, compiled once per ISA (see CMakeLists.txt). Each works on a
// contiguous slice [0, n) on the calling thread; activation.cpp splits the work across threads.
#pragma once
#include <cstdint>

namespace fastnn::cpu {

struct ActivationKernels {
};

}  // namespace fastnn::cpu
