// FASTNN_HOST_DEVICE marks a function that both the CPU kernels (g++) and the CUDA kernels
// (nvcc) compile, so that the two devices share one definition of an op's arithmetic.
#pragma once

#ifdef __CUDACC__
#define FASTNN_HOST_DEVICE __host__ __device__
#else
#define FASTNN_HOST_DEVICE
#endif
