// Builds the error messages of the status-check macros.
#include "backend/cuda/check.h"

#include <cstring>
#include <string>

namespace kiln::backend::cuda_detail {

namespace {

// The path from the project root ("src/backend/cuda/cuda_gemm.cpp"), not the build machine's.
std::string short_path(const char* file) {
  for (const char* root : {"/src/", "/kernels/"}) {
    if (const char* p = std::strstr(file, root)) return p + 1;
  }
  return file;
}

std::string where(const char* call, const char* file, int line) {
  return std::string(call) + " at " + short_path(file) + ":" + std::to_string(line);
}

// Errors after which the context is broken and every later call fails the same way.
bool is_sticky(cudaError_t s) {
  return s == cudaErrorIllegalAddress || s == cudaErrorLaunchFailure || s == cudaErrorIllegalInstruction ||
         s == cudaErrorMisalignedAddress || s == cudaErrorHardwareStackError || s == cudaErrorAssert ||
         s == cudaErrorInvalidPc || s == cudaErrorLaunchTimeout || s == cudaErrorECCUncorrectable;
}

}  // namespace

void throw_cuda(const char* call, const char* file, int line, cudaError_t status) {
  std::string msg =
      where(call, file, line) + " failed with " + cudaGetErrorName(status) + " (" + cudaGetErrorString(status) + ")";
  if (is_sticky(status))
    msg +=
        "; the GPU context is unusable after this error, so restart the process (run under "
        "compute-sanitizer to find the faulting kernel)";
  else
    msg += "; expected cudaSuccess";
  throw Error("cuda", msg);
}

const char* cublas_status_name(cublasStatus_t status) {
  switch (status) {
    case CUBLAS_STATUS_SUCCESS:
      return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED:
      return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED:
      return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE:
      return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH:
      return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR:
      return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED:
      return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR:
      return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED:
      return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR:
      return "CUBLAS_STATUS_LICENSE_ERROR";
  }
  return "CUBLAS_STATUS_UNKNOWN";
}

void throw_cublas(const char* call, const char* file, int line, cublasStatus_t status) {
  throw Error("cuda", where(call, file, line) + " failed with " + cublas_status_name(status) +
                          "; expected CUBLAS_STATUS_SUCCESS");
}

void throw_cudnn(const char* call, const char* file, int line, cudnnStatus_t status) {
  char detail[512] = {0};
  cudnnGetLastErrorString(detail, sizeof(detail));
  std::string msg = where(call, file, line) + " failed with " + cudnnGetErrorString(status);
  if (detail[0]) msg += std::string(" (") + detail + ")";
  throw Error("cuda", msg + "; expected CUDNN_STATUS_SUCCESS");
}

}  // namespace kiln::backend::cuda_detail
