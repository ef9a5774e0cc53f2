// Status checks: every CUDA, cuBLAS and cuDNN call goes through one of these macros, which turn a
// failure into kiln::Error naming the call, the file and line, and the status.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include "kiln/error.h"

namespace kiln::backend::cuda_detail {

[[noreturn]] void throw_cuda(const char* call, const char* file, int line, cudaError_t status);
[[noreturn]] void throw_cublas(const char* call, const char* file, int line, cublasStatus_t status);
[[noreturn]] void throw_cudnn(const char* call, const char* file, int line, cudnnStatus_t status);
/// "CUBLAS_STATUS_NOT_INITIALIZED" and the like.
const char* cublas_status_name(cublasStatus_t status);

}  // namespace kiln::backend::cuda_detail

#define KILN_CUDA_CHECK(call)                                                            \
  do {                                                                                   \
    const cudaError_t kiln_status_ = (call);                                             \
    if (kiln_status_ != cudaSuccess)                                                     \
      ::kiln::backend::cuda_detail::throw_cuda(#call, __FILE__, __LINE__, kiln_status_); \
  } while (0)

#define KILN_CUBLAS_CHECK(call)                                                            \
  do {                                                                                     \
    const cublasStatus_t kiln_status_ = (call);                                            \
    if (kiln_status_ != CUBLAS_STATUS_SUCCESS)                                             \
      ::kiln::backend::cuda_detail::throw_cublas(#call, __FILE__, __LINE__, kiln_status_); \
  } while (0)

#define KILN_CUDNN_CHECK(call)                                                            \
  do {                                                                                    \
    const cudnnStatus_t kiln_status_ = (call);                                            \
    if (kiln_status_ != CUDNN_STATUS_SUCCESS)                                             \
      ::kiln::backend::cuda_detail::throw_cudnn(#call, __FILE__, __LINE__, kiln_status_); \
  } while (0)

/// After a <<<>>> launch: reports a bad configuration or an earlier asynchronous fault.
#define KILN_LAUNCH_CHECK(kernel_name)                                                                      \
  do {                                                                                                      \
    const cudaError_t kiln_status_ = cudaGetLastError();                                                    \
    if (kiln_status_ != cudaSuccess)                                                                        \
      ::kiln::backend::cuda_detail::throw_cuda("launch of " kernel_name, __FILE__, __LINE__, kiln_status_); \
  } while (0)
