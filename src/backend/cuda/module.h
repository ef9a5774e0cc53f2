// The seam between libkiln and the CUDA module (kiln_cuda), which libkiln loads at run time with
// dlopen. Plain C++ types only: no CUDA header is reachable from here, so the loader in libkiln
// compiles without the toolkit.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "backend/backend.h"

namespace kiln::backend {

/// Bumped whenever CudaModule, the structs below or Backend's virtual functions change, so a stale
/// module is refused.
constexpr int kCudaModuleAbi = 3;

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

/// What the module exports through its one entry point.
class CudaModule {
 public:
  virtual ~CudaModule() = default;
  /// kCudaModuleAbi of the module's build.
  virtual int abi() const = 0;
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
