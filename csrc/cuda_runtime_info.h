// Queries of the CUDA runtime that the rest of fastnn needs (compiled only with CUDA).
#pragma once
#include <string>

namespace fastnn::cuda {

// Exported from libfastnn.so for fastnn._C; not part of the C++ API (csrc/include/fastnn).
#pragma GCC visibility push(default)
// Number of usable GPUs; 0 with *error set when the runtime reports one (e.g. no driver).
int device_count(std::string* error);
// The device whose memory holds `pointer`, or -1 for host memory the runtime does not map.
// Throws std::runtime_error with the CUDA error text when the runtime fails (e.g. no driver).
int memory_device(const void* pointer);
// The calling thread's current device (CuPy's `cupy.cuda.Device()`); throws as above.
int current_device();
#pragma GCC visibility pop

}  // namespace fastnn::cuda
