// Finds the CUDA backend at run time: dlopen (LoadLibrary on Windows) of the kiln_cuda module next
// to libkiln, one entry point, a probe of the stack. Any failure is recorded, never fatal: kiln then
// runs on the CPU and gpu_verdict() says why. Without the module in the build, GPU requests throw
// at once.
#ifdef _WIN32
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#ifndef NOMINMAX
#define NOMINMAX
#endif
#include <windows.h>
#else
#include <dlfcn.h>
#endif

#include <array>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <string_view>
#include <system_error>

#include "backend/backend_modes.h"
#include "backend/cuda/module.h"
#include "kiln/config.h"
#include "kiln/error.h"

namespace kiln::backend {

namespace {

// ---- shared libraries: the only platform-specific code of the loader ----

// The folder holding libkiln, found from the address of a function inside it ("" if unknown).
[[maybe_unused]] std::string library_dir() {
#ifdef _WIN32
  HMODULE self = nullptr;
  if (!GetModuleHandleExW(GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS | GET_MODULE_HANDLE_EX_FLAG_UNCHANGED_REFCOUNT,
                          reinterpret_cast<LPCWSTR>(&library_dir), &self))
    return "";
  std::wstring path(MAX_PATH, L'\0');
  DWORD n = 0;
  while ((n = GetModuleFileNameW(self, path.data(), static_cast<DWORD>(path.size()))) == path.size())
    path.resize(path.size() * 2);
  if (n == 0) return "";
  path.resize(n);
  return std::filesystem::path(path).parent_path().string();
#else
  Dl_info info{};
  if (dladdr(reinterpret_cast<const void*>(&library_dir), &info) == 0 || !info.dli_fname) return "";
  return std::filesystem::path(info.dli_fname).parent_path().string();
#endif
}

#ifdef _WIN32
std::string last_error_text() {
  const DWORD code = GetLastError();
  char* text = nullptr;
  const DWORD n =
      FormatMessageA(FORMAT_MESSAGE_ALLOCATE_BUFFER | FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS,
                     nullptr, code, 0, reinterpret_cast<char*>(&text), 0, nullptr);
  std::string out = n ? std::string(text, n) : "error " + std::to_string(code);
  if (text) LocalFree(text);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r' || out.back() == ' ')) out.pop_back();
  return out;
}
#endif

// Opens a shared library, kept for the process; nullptr with `error` set on failure.
[[maybe_unused]] void* open_library(const std::string& path, std::string& error) {
#ifdef _WIN32
  // With a full path, the DLLs it depends on (cuBLAS, cuDNN) are searched beside it first.
  const std::filesystem::path p(path);
  HMODULE h = LoadLibraryExW(p.c_str(), nullptr, p.is_absolute() ? LOAD_WITH_ALTERED_SEARCH_PATH : 0);
  if (!h) error = path + ": " + last_error_text();
  return reinterpret_cast<void*>(h);
#else
  void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char* err = dlerror();
    error = err ? err : "dlopen failed";
  }
  return h;
#endif
}

// The address of an exported function; nullptr with `error` set when it is absent.
[[maybe_unused]] void* find_symbol(void* library, const char* name, std::string& error) {
#ifdef _WIN32
  void* f = reinterpret_cast<void*>(GetProcAddress(static_cast<HMODULE>(library), name));
  if (!f) error = last_error_text();
#else
  void* f = dlsym(library, name);
  if (!f) {
    const char* err = dlerror();
    error = err ? err : "";
  }
#endif
  return f;
}

bool equals_ignoring_case(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

CudaModuleLoad load() {
  CudaModuleLoad r;
#ifdef KILN_CUDA_MODULE_NAME
  r.built_with_cuda = true;
  const std::string name = KILN_CUDA_MODULE_NAME;
  const std::string dir = library_dir();
  r.path = dir.empty() ? name : dir + "/" + name;
  std::error_code ec;
  // Next to libkiln first (build tree and install tree alike), else the loader's search path.
  void* handle = open_library(std::filesystem::exists(r.path, ec) ? r.path : name, r.error);
  if (!handle) return r;
  using Entry = CudaModule* (*)();
  std::string err;
  auto entry = reinterpret_cast<Entry>(find_symbol(handle, KILN_CUDA_ENTRY_NAME, err));
  if (!entry) {
    r.error = std::string(r.path) + " has no " KILN_CUDA_ENTRY_NAME " entry point (" + err + ")";
    return r;
  }
  CudaModule* module = entry();
  if (!module || module->abi() != kCudaModuleAbi) {
    r.error = r.path + " is from another build of kiln (interface " +
              (module ? std::to_string(module->abi()) : std::string("none")) + ", expected " +
              std::to_string(kCudaModuleAbi) + ")";
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
  return v && equals_ignoring_case(v, "cpu");
}

Backend& cuda(int index) {
  if (index >= 0 && index < kMaxGpus)
    if (Backend* b = resolved[index].load(std::memory_order_acquire)) return *b;
  const std::string gpu = "GPU " + std::to_string(index) + " requested";
  if (gpus_hidden_by_env())
    throw Error("cuda", gpu + ", but KILN_DEVICE=cpu hides the GPUs; expected Device::cpu(), or KILN_DEVICE unset");
  const CudaModuleLoad& state = cuda_module();
  if (!state.built_with_cuda)
    throw Error("cuda", gpu +
                            ", but kiln was built without CUDA; expected Device::cpu(), or a build configured "
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
  adopt_backend_modes(b);  // before anyone can issue work on it
  if (index < kMaxGpus) resolved[index].store(&b, std::memory_order_release);
  return b;
}

}  // namespace kiln::backend
