// Which devices kiln sees, and whether the GPU stack works: TensorFlow's three checks
// (list_physical_devices, gpu_device_name, list_local_devices), the library versions kiln was
// built against and found, and the verdict with what to do. With --require-gpu the exit status
// is 1 when no GPU is usable.
#include <kiln/kiln.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

namespace {

std::string or_none(const std::string& s) { return s.empty() ? "(not found)" : s; }

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out.empty() ? "(none)" : out;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kiln devices: what kiln can run on, and why not when it cannot"};
  bool require_gpu = false;
  app.add_flag("--require-gpu", require_gpu, "exit with status 1 when no GPU is usable");
  CLI11_PARSE(app, argc, argv);

  std::printf("kiln %s, built %s CUDA\n\n", kiln::build_info().kiln_version.c_str(),
              kiln::test::is_built_with_cuda() ? "with" : "without");

  std::printf("list_physical_devices(\"GPU\"):\n");
  const auto gpus = kiln::config::list_physical_devices("GPU");
  if (gpus.empty()) std::printf("  []\n");
  for (const auto& d : gpus)
    std::printf("  PhysicalDevice(name='%s', device_type='%s')\n", d.name.c_str(), d.device_type.c_str());

  const std::string gpu_name = kiln::test::gpu_device_name();
  std::printf("\ngpu_device_name(): '%s'\n", gpu_name.c_str());

  std::printf("\nlist_local_devices():\n");
  for (const auto& d : kiln::list_local_devices()) {
    std::printf("  name: \"%s\"\n  device_type: \"%s\"\n  memory_limit: %zu\n", d.name.c_str(), d.device_type.c_str(),
                d.memory_limit);
    if (!d.physical_device_desc.empty())
      std::printf("  physical_device_desc: \"%s\"\n", d.physical_device_desc.c_str());
    std::printf("\n");
  }

  const kiln::BuildInfo info = kiln::build_info();
  std::printf("build_info():\n");
  std::printf("  %-14s %-14s %s\n", "", "built against", "loaded");
  std::printf("  %-14s %-14s %s\n", "CUDA runtime", or_none(info.cuda_runtime_built).c_str(),
              or_none(info.cuda_runtime_loaded).c_str());
  std::printf("  %-14s %-14s %s\n", "cuBLAS", or_none(info.cublas_built).c_str(), or_none(info.cublas_loaded).c_str());
  std::printf("  %-14s %-14s %s\n", "cuDNN", or_none(info.cudnn_built).c_str(), or_none(info.cudnn_loaded).c_str());
  std::printf("  driver supports CUDA %s\n", or_none(info.cuda_driver).c_str());
  std::printf("  GPU code in this build: %s\n", join(info.cuda_architectures).c_str());

  const kiln::GpuVerdict verdict = kiln::gpu_verdict();
  std::printf("\nverdict: %s\n", verdict.summary.c_str());
  if (!verdict.action.empty()) std::printf("action: %s\n", verdict.action.c_str());
  std::printf("default device: %s\n", kiln::default_device().str().c_str());
  return require_gpu && !verdict.usable ? 1 : 0;
}
