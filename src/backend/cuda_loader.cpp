// Finds the CUDA backend at run time: dlopen of the kiln_cuda module next to libkiln, one entry
// point, a probe of the stack. Any failure is recorded, never fatal: kiln then runs on the CPU and
// gpu_verdict() says why. Without the module in the build, GPU requests throw at once.
#include <dlfcn.h>
#include <strings.h>
#include <sys/stat.h>

#include <array>
#include <atomic>
#include <cstdlib>

#include "backend/cuda/module.h"
#include "backend/tensor_float_32.h"
#include "kiln/config.h"
#include "kiln/error.h"

namespace kiln::backend {

namespace {

// The folder holding libkiln, found from the address of a function inside it.
std::string library_dir() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<const void*>(&library_dir), &info) == 0 || !info.dli_fname) return "";
  const std::string path = info.dli_fname;
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? "" : path.substr(0, slash);
}

CudaModuleLoad load() {
  CudaModuleLoad r;
#ifdef KILN_CUDA_MODULE_NAME
  r.built_with_cuda = true;
  const std::string name = KILN_CUDA_MODULE_NAME;
  const std::string dir = library_dir();
  r.path = dir.empty() ? name : dir + "/" + name;
  struct stat st{};
  // Next to libkiln first (build tree and install tree alike), else the loader's search path.
  void* handle = dlopen((stat(r.path.c_str(), &st) == 0 ? r.path : name).c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char* err = dlerror();
    r.error = err ? err : "dlopen failed";
    return r;
  }
  using Entry = CudaModule* (*)();
  auto entry = reinterpret_cast<Entry>(dlsym(handle, KILN_CUDA_ENTRY_NAME));
  if (!entry) {
    const char* err = dlerror();
    r.error = std::string(r.path) + " has no " KILN_CUDA_ENTRY_NAME " entry point (" + (err ? err : "") + ")";
    return r;
  }
  CudaModule* module = entry();
  if (!module || module->abi() != kCudaModuleAbi) {
    r.error = r.path + " is from another build of kiln (interface " + std::to_string(module ? module->abi() : -1) +
              ", expected " + std::to_string(kCudaModuleAbi) + ")";
    return r;
  }
  // Kept loaded for the process: backends and their memory live until exit.
  r.probe = module->probe();
  r.module = module;
#endif
  return r;
}

constexpr int kMaxGpus = 64;
std::array<std::atomic<Backend*>, kMaxGpus> resolved{};

}  // namespace

const CudaModuleLoad& cuda_module() {
  static const CudaModuleLoad state = load();
  return state;
}

bool gpus_hidden_by_env() {
  const char* v = std::getenv("KILN_DEVICE");
  return v && strcasecmp(v, "cpu") == 0;
}

Backend& cuda(int index) {
  if (index >= 0 && index < kMaxGpus)
    if (Backend* b = resolved[index].load(std::memory_order_acquire)) return *b;
  const std::string gpu = "GPU " + std::to_string(index) + " requested";
  if (gpus_hidden_by_env())
    throw Error("cuda", gpu + ", but KILN_DEVICE=cpu hides the GPUs; expected Device::cpu(), or KILN_DEVICE unset");
  const CudaModuleLoad& state = cuda_module();
  if (!state.built_with_cuda)
    throw Error("cuda", gpu + ", but kiln was built without CUDA; expected Device::cpu(), or a build configured "
                              "with the CUDA toolkit and cuDNN present");
  const auto& devices = state.probe.devices;
  if (!state.module || devices.empty()) {
    const GpuVerdict v = gpu_verdict();
    throw Error("cuda", gpu + ", but " + v.summary + "; " + v.action);
  }
  if (index < 0 || index >= static_cast<int>(devices.size()))
    throw Error("cuda", gpu + ", but " + std::to_string(devices.size()) +
                            " GPU(s) are visible; expected an index in [0, " + std::to_string(devices.size()) + ")");
  const CudaDeviceProbe& d = devices[static_cast<std::size_t>(index)];
  if (!d.usable) throw Error("cuda", gpu + ", but " + d.problem + "; " + d.action);
  Backend& b = state.module->backend(index);
  adopt_tensor_float_32(b);  // before anyone can issue work on it
  if (index < kMaxGpus) resolved[index].store(&b, std::memory_order_release);
  return b;
}

}  // namespace kiln::backend
