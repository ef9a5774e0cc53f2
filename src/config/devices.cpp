// Device discovery in TensorFlow's names, the build/loaded versions and the verdict on the GPU
// stack, all from the CUDA module's probe (backend/cuda_loader.cpp). Nothing here throws.
#include <algorithm>
#include <cstdlib>
#include <string>

#include "backend/cuda/module.h"
#include "kiln/config.h"

// Versions the CUDA module was built against (compile definitions from src/backend/cuda/).
#ifndef KILN_CUDA_BUILT
#define KILN_CUDA_BUILT ""
#define KILN_CUDA_BUILT_MAJOR ""
#define KILN_CUBLAS_BUILT ""
#define KILN_CUDNN_BUILT ""
#define KILN_CUDA_ARCHS ""
#endif

namespace kiln {

namespace {

using backend::CudaDeviceProbe;
using backend::CudaModuleLoad;

std::string cuda_version(int v) {
  if (v <= 0) return "";
  return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10);
}
[[maybe_unused]] std::string lib_version(int v) {
  if (v <= 0) return "";
  return std::to_string(v / 10000) + "." + std::to_string((v % 10000) / 100) + "." + std::to_string(v % 100);
}

#ifdef KILN_CUDA_MODULE_NAME
constexpr bool kBuiltWithCuda = true;
#else
constexpr bool kBuiltWithCuda = false;
#endif

// The probe, or nullptr when GPUs are hidden or kiln has no CUDA module.
const CudaModuleLoad* load_state() {
  if (!kBuiltWithCuda || backend::gpus_hidden_by_env()) return nullptr;
  return &backend::cuda_module();
}

std::vector<const CudaDeviceProbe*> usable_gpus() {
  std::vector<const CudaDeviceProbe*> out;
  const CudaModuleLoad* s = load_state();
  if (!s || !s->module) return out;
  for (const auto& d : s->probe.devices)
    if (d.usable) out.push_back(&d);
  return out;
}

// "libcudnn.so.9" from "libcudnn.so.9: cannot open shared object file: No such file or directory".
std::string missing_file(const std::string& dl_error) {
  const auto pos = dl_error.find(": cannot open shared object file");
  return pos == std::string::npos ? "" : dl_error.substr(0, pos);
}

[[maybe_unused]] GpuVerdict module_failed(const CudaModuleLoad& s) {
  const std::string file = missing_file(s.error);
  const std::string cuda_major = KILN_CUDA_BUILT_MAJOR;
  const std::string module_name = s.path.substr(s.path.rfind('/') + 1);
  if (!file.empty() && (file == s.path || file == module_name))
    return {false, "the CUDA backend module " + s.path + " is missing (" + s.error + ")",
            "reinstall kiln: its CUDA module is built and installed next to libkiln"};
  if (file.find("libcudnn") != std::string::npos)
    return {false, "the CUDA backend could not be loaded: " + file + " (cuDNN) was not found",
            "install cuDNN 9 for CUDA " + cuda_major + " (Ubuntu: apt install libcudnn9-cuda-" + cuda_major +
                "; or pip install nvidia-cudnn-cu" + cuda_major + " and add its lib folder to LD_LIBRARY_PATH)"};
  if (file.find("libcublas") != std::string::npos)
    return {false, "the CUDA backend could not be loaded: " + file + " (cuBLAS) was not found",
            "install the CUDA " + cuda_major + " runtime libraries (Ubuntu: apt install libcublas-" + cuda_major +
                "-0, or the CUDA toolkit) or add their folder (e.g. /usr/local/cuda/lib64) to LD_LIBRARY_PATH"};
  if (!file.empty())
    return {false, "the CUDA backend could not be loaded: " + file + " was not found (" + s.error + ")",
            "install the library, or add its folder to LD_LIBRARY_PATH"};
  if (s.error.find("undefined symbol") != std::string::npos)
    return {false,
            "the CUDA backend could not be loaded: a CUDA library found at run time is older than the one "
            "kiln was built against (" +
                s.error + ")",
            std::string("install cuDNN ") + KILN_CUDNN_BUILT + " or newer and cuBLAS " + KILN_CUBLAS_BUILT +
                " or newer, or rebuild kiln against the installed libraries"};
  return {false, "the CUDA backend could not be loaded (" + s.error + ")",
          "reinstall kiln, or rebuild it on this machine"};
}

[[maybe_unused]] GpuVerdict count_failed(const backend::CudaProbe& p) {
  const std::string runtime = cuda_version(p.runtime_version);
  const std::string& name = p.device_count_error_name;
  if (name == "cudaErrorInsufficientDriver") {
    if (p.driver_version == 0)
      return {false, "no NVIDIA driver was found (libcuda.so.1 could not be loaded)",
              "install the NVIDIA driver (one supporting CUDA " + runtime +
                  ") and check that nvidia-smi works; in a container, start it with --gpus all"};
    return {
        false,
        "the NVIDIA driver supports CUDA " + cuda_version(p.driver_version) + ", but kiln's CUDA runtime is " + runtime,
        "update the NVIDIA driver to one that supports CUDA " + runtime + " (see nvidia-smi for the current one)"};
  }
  if (name == "cudaErrorNoDevice")
    return {false,
            "the NVIDIA driver (CUDA " + cuda_version(p.driver_version) + ") is installed, but no GPU is visible",
            "check nvidia-smi and CUDA_VISIBLE_DEVICES; in a container, start it with --gpus all"};
  if (name == "cudaErrorSystemDriverMismatch" || name == "cudaErrorCompatNotSupportedOnDevice")
    return {false, "the CUDA driver library does not match the kernel driver (" + p.device_count_error_text + ")",
            "remove the CUDA forward-compatibility package from the library path, or reinstall the NVIDIA driver"};
  return {false, "CUDA could not list the GPUs: " + name + " (" + p.device_count_error_text + ")",
          "check that nvidia-smi works; reinstall the NVIDIA driver if it does not"};
}

std::string describe(const CudaDeviceProbe& d) {
  return "device: " + std::to_string(d.index) + ", name: " + d.name +
         (d.pci_bus_id.empty() ? "" : ", pci bus id: " + d.pci_bus_id) +
         ", compute capability: " + std::to_string(d.major) + "." + std::to_string(d.minor);
}

}  // namespace

std::vector<PhysicalDevice> config::list_physical_devices(const std::string& device_type) {
  std::vector<PhysicalDevice> out;
  if (device_type.empty() || device_type == "CPU") out.push_back({"/physical_device:CPU:0", "CPU"});
  if (device_type.empty() || device_type == "GPU")
    for (const auto* d : usable_gpus()) out.push_back({"/physical_device:GPU:" + std::to_string(d->index), "GPU"});
  return out;
}

std::string test::gpu_device_name() {
  const auto gpus = usable_gpus();
  return gpus.empty() ? "" : "/device:GPU:" + std::to_string(gpus.front()->index);
}

bool test::is_built_with_cuda() { return kBuiltWithCuda; }

std::vector<LocalDevice> list_local_devices() {
  std::vector<LocalDevice> out;
  LocalDevice cpu;
  cpu.name = "/device:CPU:0";
  cpu.device_type = "CPU";
  out.push_back(cpu);
  for (const auto* d : usable_gpus()) {
    LocalDevice gpu;
    gpu.name = "/device:GPU:" + std::to_string(d->index);
    gpu.device_type = "GPU";
    gpu.memory_limit = d->total_memory;
    gpu.physical_device_desc = describe(*d);
    gpu.gpu_name = d->name;
    gpu.compute_major = d->major;
    gpu.compute_minor = d->minor;
    gpu.multiprocessors = d->multiprocessors;
    out.push_back(gpu);
  }
  return out;
}

BuildInfo build_info() {
  BuildInfo info;
  info.kiln_version = KILN_VERSION;
  info.built_with_cuda = kBuiltWithCuda;
#ifdef KILN_CUDA_MODULE_NAME
  info.cuda_runtime_built = KILN_CUDA_BUILT;
  info.cublas_built = KILN_CUBLAS_BUILT;
  info.cudnn_built = KILN_CUDNN_BUILT;
  {
    const std::string archs = KILN_CUDA_ARCHS;
    std::size_t start = 0;
    while (start < archs.size()) {
      const auto comma = std::min(archs.find(',', start), archs.size());
      if (comma > start) info.cuda_architectures.push_back(archs.substr(start, comma - start));
      start = comma + 1;
    }
  }
  if (const CudaModuleLoad* s = load_state(); s && s->module) {
    const auto& p = s->probe;
    info.cuda_runtime_loaded = cuda_version(p.runtime_version);  // linked statically into the module
    info.cuda_driver = cuda_version(p.driver_version);
    info.cublas_loaded = lib_version(p.cublas_loaded);
    info.cudnn_loaded = lib_version(p.cudnn_loaded);
  }
#endif
  return info;
}

GpuVerdict gpu_verdict() {
  if (!kBuiltWithCuda)
    return {false, "kiln was built without CUDA, so no GPU can be used",
            "install the CUDA toolkit and cuDNN 9, then reconfigure and rebuild kiln"};
  if (backend::gpus_hidden_by_env())
    return {false, "the GPUs are hidden by KILN_DEVICE=cpu, so kiln runs on the CPU", "unset KILN_DEVICE to use a GPU"};
#ifdef KILN_CUDA_MODULE_NAME
  const CudaModuleLoad& s = backend::cuda_module();
  if (!s.module) return module_failed(s);
  const auto& p = s.probe;
  if (p.device_count_error != 0) return count_failed(p);
  if (p.devices.empty())
    return {false, "the NVIDIA driver is installed, but no GPU is visible",
            "check nvidia-smi and CUDA_VISIBLE_DEVICES; in a container, start it with --gpus all"};
  for (const auto& d : p.devices)
    if (d.usable)
      return {true,
              "GPU " + std::to_string(d.index) + " (" + d.name + ", compute capability " + std::to_string(d.major) +
                  "." + std::to_string(d.minor) + ") is usable: CUDA runtime " + cuda_version(p.runtime_version) +
                  ", driver supports CUDA " + cuda_version(p.driver_version) + ", cuBLAS " +
                  lib_version(p.cublas_loaded) + ", cuDNN " + lib_version(p.cudnn_loaded),
              ""};
  return {false, p.devices.front().problem, p.devices.front().action};
#else
  return {};
#endif
}

Device default_device() {
  const auto gpus = usable_gpus();
  if (gpus.empty()) return Device::cpu();
  if (const char* v = std::getenv("KILN_DEVICE")) {
    try {
      const Device wanted = Device::parse(v);
      if (wanted.is_cpu()) return wanted;
      for (const auto* d : gpus)
        if (d->index == wanted.index) return wanted;
    } catch (...) {  // an unknown value falls back to the default choice
    }
  }
  return Device::gpu(gpus.front()->index);
}

}  // namespace kiln
