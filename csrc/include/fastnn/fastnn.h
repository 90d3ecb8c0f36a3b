// The fastnn CPU kernels for C++17 callers: include this (or one op's header) and link
// libfastnn.so. Where they are in an installed fastnn (pip install fastnn):
//   inc=$(python -c 'import fastnn; print(fastnn.get_include())')
//   lib=$(python -c 'import fastnn; print(fastnn.get_library())')
//   c++ -std=c++17 app.cpp -I"$inc" "$lib" -Wl,-rpath,"$(dirname "$lib")"
// or in CMake, with -Dfastnn_DIR="$(python -c 'import fastnn; print(fastnn.get_cmake_dir())')":
//   find_package(fastnn CONFIG REQUIRED)
//   target_link_libraries(app PRIVATE fastnn::fastnn)
//
// What a caller must know:
// - Arrays are raw pointers the caller owns; sizes and strides are int64_t counts of elements.
//   Tensors are row-major (C order) and contiguous unless a function takes strides; images are
//   NCHW. Outputs must not overlap inputs unless a function says it may.
// - The kernels do not check their arguments (the Python package does that before calling):
//   sizes that do not match the arrays read and write out of bounds.
// - Calls are synchronous. CPU kernels have no stream: a call returns when its outputs are
//   written. Each call runs on up to num_threads() OpenMP threads (fastnn/threads.h); called from
//   inside an OpenMP parallel region it runs on the calling thread only. Different threads
//   may call kernels at the same time: workspaces are per call or per thread.
// - The SIMD code (avx512, avx2 or scalar) is picked at the first kernel call: the best this CPU
//   runs, or the one the environment variable FASTNN_ISA names.
// - Exceptions: std::invalid_argument from set_num_threads(n < 1), and from the first kernel
//   call when FASTNN_ISA names an ISA this CPU or build lacks (the message lists the choices;
//   if that first call picks the ISA on an OpenMP worker thread, the process ends instead).
//   Nothing else is thrown on purpose; running out of memory inside a kernel may end the process.
//   The library is built with g++ and libstdc++: a caller built against libc++ cannot catch them.
#pragma once

#include "fastnn/activation.h"
#include "fastnn/conv2d.h"
#include "fastnn/dropout.h"
#include "fastnn/gemm.h"
#include "fastnn/optim.h"
#include "fastnn/pool.h"
#include "fastnn/softmax.h"
#include "fastnn/threads.h"
