// Queries of the CUDA runtime that the rest of fastnn needs (compiled only with CUDA).
#pragma once
#include <string>

namespace fastnn::cuda {

// Exported from libfastnn.so for fastnn._C; not part of the C++ API (csrc/include/fastnn).
#pragma GCC visibility push(default)
// Number of usable GPUs; 0 with *error set when the runtime reports one (e.g. no driver).
int device_count(std::string* error);
#pragma GCC visibility pop

}  // namespace fastnn::cuda
