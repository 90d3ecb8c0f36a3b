// Runtime ISA dispatch: every per-ISA kernel table, and the one in use.
#pragma once
#include <string>
#include <vector>

#include "cpu/simd/activation_simd.h"
#include "cpu/simd/conv2d_simd.h"
#include "cpu/simd/gemm_simd.h"
#include "cpu/simd/peak_simd.h"
#include "cpu/simd/pool_simd.h"
#include "cpu/simd/softmax_simd.h"

namespace fastnn::cpu {

struct IsaKernels {
  const char* name;
  const GemmKernels* gemm;
  const ActivationKernels* activation;
  const PeakKernels* peak;
  const Conv2dKernels* conv2d;
  const SoftmaxKernels* softmax;
  const PoolKernels* pool;
};

// Exported from libfastnn.so for fastnn._C; not part of the C++ API (csrc/include/fastnn).
#pragma GCC visibility push(default)
// The table picked at import: the best the CPU supports, or FASTNN_ISA if set.
const IsaKernels& isa();
// Names of the ISAs this build has and this CPU can run, best first.
std::vector<std::string> isas_available();
// Throws std::invalid_argument naming the choices when `name` is not available.
void set_isa(const std::string& name);
#pragma GCC visibility pop

}  // namespace fastnn::cpu
