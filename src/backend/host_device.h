// KILN_HOST_DEVICE: marks a function that the CPU backend and the CUDA kernels share (nvcc compiles
// it for both sides; the host compiler sees a plain inline function).
#pragma once

#if defined(__CUDACC__)
#define KILN_HOST_DEVICE __host__ __device__
#else
#define KILN_HOST_DEVICE
#endif
