// Device discovery when no CUDA backend is available.
#include "kiln/config.h"

namespace kiln {

std::vector<PhysicalDevice> config::list_physical_devices(const std::string& device_type) {
  std::vector<PhysicalDevice> out;
  if (device_type.empty() || device_type == "CPU") out.push_back({"/physical_device:CPU:0", "CPU"});
  return out;
}

std::string test::gpu_device_name() { return ""; }
bool test::is_built_with_cuda() { return false; }

std::vector<LocalDevice> list_local_devices() {
  LocalDevice cpu;
  cpu.name = "/device:CPU:0";
  cpu.device_type = "CPU";
  return {cpu};
}

BuildInfo build_info() {
  BuildInfo info;
  info.kiln_version = KILN_VERSION;
  return info;
}

GpuVerdict gpu_verdict() {
  return {false, "kiln was built without CUDA, so no GPU can be used",
          "install the CUDA toolkit and cuDNN 9, then reconfigure and rebuild kiln"};
}

Device default_device() { return Device::cpu(); }

}  // namespace kiln
