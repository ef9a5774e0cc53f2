// The module's entry point: probes the CUDA stack (runtime, driver, cuBLAS, cuDNN, each GPU, with
// a smoke test) and creates one CudaBackend per GPU on first use.
#include "backend/cuda/module.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <memory>
#include <mutex>
#include <sstream>
#include <vector>

#include "backend/cuda/check.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/kernels.h"

#ifndef KILN_CUDA_ARCHS
#define KILN_CUDA_ARCHS ""
#endif

namespace kiln::backend {

namespace {

std::string cuda_version(int v) { return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10); }
std::string lib_version(int v) {
  return std::to_string(v / 10000) + "." + std::to_string((v % 10000) / 100) + "." + std::to_string(v % 100);
}

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

class CudaModuleImpl final : public CudaModule {
 public:
  uint64_t abi() const override { return kCudaModuleAbi; }

  CudaProbe probe() override {
    CudaProbe p;
    try {
      probe_stack(p);
      probe_devices(p);
    } catch (const std::exception& e) {  // probe never throws; record what stopped it
      if (p.stack_problem.empty()) {
        p.stack_problem = std::string("probing the CUDA stack failed: ") + e.what();
        p.stack_action = "check that nvidia-smi works and that the CUDA libraries match the driver";
      }
    }
    return p;
  }

  Backend& backend(int index) override {
    std::lock_guard lock(mutex_);
    int count = 0;
    KILN_CUDA_CHECK(cudaGetDeviceCount(&count));
    if (index < 0 || index >= count)
      throw Error("cuda", "GPU " + std::to_string(index) + " requested, but " + std::to_string(count) +
                              " GPU(s) are visible; expected an index in [0, " + std::to_string(count) + ")");
    if (backends_.size() < static_cast<std::size_t>(count)) backends_.resize(static_cast<std::size_t>(count), nullptr);
    // Created once and kept for the process: tensors may outlive any scope that could own them.
    if (!backends_[index]) backends_[index] = new CudaBackend(index);
    return *backends_[index];
  }

 private:
  static void probe_stack(CudaProbe& p) {
    cudaRuntimeGetVersion(&p.runtime_version);
    if (cudaDriverGetVersion(&p.driver_version) != cudaSuccess) p.driver_version = 0;
    p.architectures = split_commas(KILN_CUDA_ARCHS);
    p.cublas_built = CUBLAS_VERSION;
    int major = 0, minor = 0, patch = 0;
    if (cublasGetProperty(MAJOR_VERSION, &major) == CUBLAS_STATUS_SUCCESS &&
        cublasGetProperty(MINOR_VERSION, &minor) == CUBLAS_STATUS_SUCCESS &&
        cublasGetProperty(PATCH_LEVEL, &patch) == CUBLAS_STATUS_SUCCESS)
      p.cublas_loaded = major * 10000 + minor * 100 + patch;
    p.cudnn_built = CUDNN_VERSION;
    p.cudnn_loaded = static_cast<int>(cudnnGetVersion());
    p.cudnn_cudart_version = static_cast<int>(cudnnGetCudartVersion());

    if (p.cudnn_loaded / 10000 != CUDNN_MAJOR) {
      p.stack_problem = "cuDNN " + lib_version(p.cudnn_loaded) + " is loaded, but kiln was built against cuDNN " +
                        lib_version(CUDNN_VERSION);
      p.stack_action = "install cuDNN " + std::to_string(CUDNN_MAJOR) + " for CUDA " +
                       std::to_string(CUDART_VERSION / 1000) + ", or rebuild kiln against the installed cuDNN";
    } else if (p.cudnn_cudart_version / 1000 != CUDART_VERSION / 1000) {
      p.stack_problem = "the loaded cuDNN " + lib_version(p.cudnn_loaded) + " was built for CUDA " +
                        cuda_version(p.cudnn_cudart_version) + ", but kiln uses CUDA " + cuda_version(CUDART_VERSION);
      p.stack_action = "install the CUDA " + std::to_string(CUDART_VERSION / 1000) + " build of cuDNN " +
                       std::to_string(CUDNN_MAJOR) + " (Ubuntu: apt install libcudnn9-cuda-" +
                       std::to_string(CUDART_VERSION / 1000) + ") and put it first on the library path";
    } else if (p.cublas_loaded / 10000 != CUBLAS_VER_MAJOR) {
      p.stack_problem = "cuBLAS " + lib_version(p.cublas_loaded) + " is loaded, but kiln was built against cuBLAS " +
                        lib_version(CUBLAS_VERSION);
      p.stack_action = "install the cuBLAS of CUDA " + std::to_string(CUDART_VERSION / 1000) +
                       " or rebuild kiln against the installed toolkit";
    } else {
      // cuDNN 9 loads its sub-libraries lazily; a missing or mismatched one would fail mid-training.
      const std::pair<const char*, cudnnStatus_t> parts[] = {{"libcudnn_ops", cudnnOpsVersionCheck()},
                                                             {"libcudnn_cnn", cudnnCnnVersionCheck()}};
      for (const auto& [name, status] : parts)
        if (status != CUDNN_STATUS_SUCCESS) {
          p.stack_problem = std::string(name) + ".so." + std::to_string(CUDNN_MAJOR) +
                            " failed cuDNN's version check (" + cudnnGetErrorString(status) + ")";
          p.stack_action = "reinstall cuDNN so that all of its libraries come from one release";
          break;
        }
    }
  }

  void probe_devices(CudaProbe& p) {
    int count = 0;
    const cudaError_t status = cudaGetDeviceCount(&count);
    if (status != cudaSuccess) {
      p.device_count_error = static_cast<int>(status);
      p.device_count_error_name = cudaGetErrorName(status);
      p.device_count_error_text = cudaGetErrorString(status);
      (void)cudaGetLastError();
      return;
    }
    for (int i = 0; i < count; ++i) p.devices.push_back(probe_device(p, i));
  }

  CudaDeviceProbe probe_device(const CudaProbe& p, int i) {
    CudaDeviceProbe d;
    d.index = i;
    cudaDeviceProp prop{};
    cudaError_t status = cudaGetDeviceProperties(&prop, i);
    if (status != cudaSuccess) {
      d.problem = std::string("GPU ") + std::to_string(i) + " could not be queried: " + cudaGetErrorName(status) +
                  " (" + cudaGetErrorString(status) + ")";
      d.action = "check the GPU with nvidia-smi";
      (void)cudaGetLastError();
      return d;
    }
    d.name = prop.name;
    d.total_memory = prop.totalGlobalMem;
    d.major = prop.major;
    d.minor = prop.minor;
    d.multiprocessors = prop.multiProcessorCount;
    char bus[32] = {0};
    if (cudaDeviceGetPCIBusId(bus, sizeof(bus), i) == cudaSuccess) d.pci_bus_id = bus;
    const std::string who = "GPU " + std::to_string(i) + " (" + d.name + ", compute capability " +
                            std::to_string(d.major) + "." + std::to_string(d.minor) + ")";
    if (!p.stack_problem.empty()) {
      d.problem = p.stack_problem;
      d.action = p.stack_action;
      return d;
    }
    // Whether this build carries code the GPU can run (cubin for its architecture, or PTX to JIT).
    DeviceGuard guard(i);
    cudaFuncAttributes attr{};
    status = cudaFuncGetAttributes(&attr, kernels::probe_kernel());
    if (status == cudaErrorNoKernelImageForDevice || status == cudaErrorInvalidDeviceFunction) {
      (void)cudaGetLastError();
      d.problem = who + " has no code in this build of kiln, which has GPU code for " +
                  (p.architectures.empty() ? std::string("other architectures") : join(p.architectures));
      d.action = "rebuild kiln with -DCMAKE_CUDA_ARCHITECTURES=\"" + std::to_string(d.major * 10 + d.minor) +
                 "\" (or add " + std::to_string(d.major * 10 + d.minor) + " to the list)";
      return d;
    }
    if (status == cudaErrorUnsupportedPtxVersion || status == cudaErrorInvalidPtx) {
      (void)cudaGetLastError();
      d.problem = who + " needs this build's PTX compiled at run time, and the driver (CUDA " +
                  cuda_version(p.driver_version) + ") cannot compile PTX of CUDA " + cuda_version(CUDART_VERSION);
      d.action = "update the NVIDIA driver, or rebuild kiln with -DCMAKE_CUDA_ARCHITECTURES=\"" +
                 std::to_string(d.major * 10 + d.minor) + "-real\"";
      return d;
    }
    if (status != cudaSuccess) {
      (void)cudaGetLastError();
      d.problem = who + " cannot run CUDA code: " + cudaGetErrorName(status) + " (" + cudaGetErrorString(status) + ")";
      d.action = status == cudaErrorDevicesUnavailable
                     ? "the GPU is busy or in exclusive-process mode; free it or choose another (CUDA_VISIBLE_DEVICES)"
                     : "check the GPU with nvidia-smi and the driver's kernel log (dmesg)";
      return d;
    }
    // Smoke test: create the backend (stream, cuBLAS, cuDNN), run a kernel and read its result.
    try {
      Backend& b = backend(i);
      void* ptr = b.allocator().allocate(sizeof(float));
      float value = 0.f;
      b.fill(DType::Float32, ptr, 1, 1.5);
      b.copy_to_host(&value, ptr, sizeof(float));
      b.allocator().deallocate(ptr, sizeof(float));
      if (value != 1.5f) {
        d.problem = who + " ran a test kernel but returned a wrong value";
        d.action = "check the GPU with nvidia-smi and the driver's kernel log (dmesg)";
        return d;
      }
    } catch (const std::exception& e) {
      d.problem = who + " failed a smoke test: " + e.what();
      d.action = "check the GPU with nvidia-smi; reinstall the driver, CUDA and cuDNN if it persists";
      return d;
    }
    d.usable = true;
    return d;
  }

  std::mutex mutex_;
  std::vector<CudaBackend*> backends_;
};

}  // namespace

}  // namespace kiln::backend

extern "C" __attribute__((visibility("default"))) kiln::backend::CudaModule* kiln_cuda_module() {
  static kiln::backend::CudaModuleImpl instance;
  return &instance;
}
