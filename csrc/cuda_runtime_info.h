// Queries of the CUDA runtime that the rest of fastnn needs (compiled only with CUDA).
#pragma once
#include <string>

namespace fastnn::cuda {

// Number of usable GPUs; 0 with *error set when the runtime reports one (e.g. no driver).
int device_count(std::string* error);

}  // namespace fastnn::cuda
