#include "cpu/simd/activation_simd.h"

namespace fastnn::cpu::FASTNN_ISA_NAMESPACE {

extern const ActivationKernels activation_kernels = {};

}  // namespace fastnn::cpu::FASTNN_ISA_NAMESPACE
