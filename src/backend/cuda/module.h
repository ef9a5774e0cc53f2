// The seam between libkiln and the CUDA module (kiln_cuda), which libkiln loads at run time with
// dlopen. Plain C++ types only: no CUDA header is reachable from here, so the loader in libkiln
// compiles without the toolkit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "backend/allocator.h"
#include "backend/backend.h"

namespace kiln::backend {

/// One GPU as the module sees it.
struct CudaDeviceProbe {
  int index = 0;
  std::string name;              ///< "NVIDIA H100 80GB HBM3"
  std::string pci_bus_id;        ///< "0000:19:00.0"
  std::size_t total_memory = 0;  ///< bytes
  int major = 0, minor = 0;      ///< compute capability
  int multiprocessors = 0;
  bool usable = false;
  std::string problem;  ///< why not usable ("" when usable)
  std::string action;   ///< what to do about it
};

/// Everything discovery needs: versions and devices. Version numbers use CUDA's encoding
/// (1000 * major + 10 * minor) for the runtime and driver, and cuDNN's / cuBLAS' own otherwise.
struct CudaProbe {
  int runtime_version = 0;                  ///< cudart linked into the module (static: built == loaded)
  int driver_version = 0;                   ///< highest CUDA version the driver supports; 0 without a driver
  int cublas_built = 0, cublas_loaded = 0;  ///< major * 10000 + minor * 100 + patch
  int cudnn_built = 0, cudnn_loaded = 0;    ///< cuDNN's CUDNN_VERSION encoding
  int cudnn_cudart_version = 0;             ///< CUDA runtime the loaded cuDNN was built for
  std::vector<std::string> architectures;   ///< {"sm_90", "compute_90"}
  int device_count_error = 0;               ///< cudaError_t of cudaGetDeviceCount (0: success)
  std::string device_count_error_name;      ///< "cudaErrorNoDevice"
  std::string device_count_error_text;      ///< cudaGetErrorString
  std::string stack_problem;                ///< a problem that affects every GPU (cuDNN mismatch...)
  std::string stack_action;
  std::vector<CudaDeviceProbe> devices;
};

namespace cuda_abi {

/// The backend's function list as text, one line per function: return type, name, parameters.
inline constexpr char kFunctions[] =
#define KILN_BACKEND_OP(ret, name, params) #ret " " #name #params "\n"
#define KILN_BACKEND_HOOK(ret, name, params) "hook " #ret " " #name #params "\n"
#include "backend/backend_ops.h"
    ;

/// 64-bit FNV-1a of `bytes`, continuing from `h`.
constexpr uint64_t fnv1a(std::string_view bytes, uint64_t h = 14695981039346656037ull) {
  for (const char c : bytes) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ull;
  }
  return h;
}

/// FNV-1a continued over the eight bytes of `value`.
constexpr uint64_t mix(uint64_t h, uint64_t value) {
  for (int i = 0; i < 8; ++i) {
    h ^= (value >> (8 * i)) & 0xffu;
    h *= 1099511628211ull;
  }
  return h;
}

}  // namespace cuda_abi

/// The interface of this build between libkiln and the CUDA module: a hash of the backend's
/// function list (backend_ops.h) and of the sizes of the types passed across, so adding or changing
/// any op changes it by itself and a module from another build is refused instead of called
/// through a stale table. The enums' values and CudaModule's own three functions are not covered.
constexpr uint64_t kCudaModuleAbi = [] {
  uint64_t h = cuda_abi::fnv1a(cuda_abi::kFunctions);
  for (const uint64_t size :
       {sizeof(Conv2dGeometry), sizeof(Pool2dGeometry), sizeof(ParamSlots), sizeof(UpdateRule), sizeof(UpdateTensor),
        sizeof(UnaryFn), sizeof(StridedCopy), sizeof(MemoryStats), sizeof(CudaDeviceProbe), sizeof(CudaProbe)})
    h = cuda_abi::mix(h, size);
  return h;
}();

/// What the module exports through its one entry point.
class CudaModule {
 public:
  virtual ~CudaModule() = default;
  /// kCudaModuleAbi of the module's build.
  virtual uint64_t abi() const = 0;
  /// Queries the runtime, libraries and devices and runs a smoke test on each GPU; never throws.
  virtual CudaProbe probe() = 0;
  /// The backend of GPU `index`, created on first use and kept for the process; throws kiln::Error.
  virtual Backend& backend(int index) = 0;
};

/// Result of loading the module (done once, lazily, by the loader in libkiln).
struct CudaModuleLoad {
  bool built_with_cuda = false;  ///< false when kiln was built without the CUDA module
  std::string path;              ///< the file that was (or would have been) opened
  CudaModule* module = nullptr;  ///< null when loading failed
  std::string error;             ///< dlerror() text or the ABI mismatch ("" on success)
  CudaProbe probe;               ///< valid when module != nullptr
};

/// Loads and probes the CUDA module once; never throws.
const CudaModuleLoad& cuda_module();
/// True when the environment asks for the CPU only (KILN_DEVICE=cpu).
bool gpus_hidden_by_env();

}  // namespace kiln::backend

/// The module's entry point, resolved by name with dlsym.
#define KILN_CUDA_ENTRY_NAME "kiln_cuda_module"
