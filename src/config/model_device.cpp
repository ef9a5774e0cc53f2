// The device new models start on, announced once per process.
#include <iostream>
#include <mutex>
#include <optional>

#include "kiln/config.h"

namespace kiln {

namespace {
std::mutex mutex;
std::optional<Device> chosen;  // set explicitly, or resolved (and announced) on first use
}  // namespace

void set_default_device(Device device) {
  std::lock_guard lock(mutex);
  chosen = device;
}

Device model_device() {
  std::lock_guard lock(mutex);
  if (chosen) return *chosen;
  chosen = default_device();
  if (chosen->is_cuda()) {
    std::string name;
    for (const auto& d : list_local_devices())
      if (d.name == chosen->tf_name()) name = " (" + d.gpu_name + ")";
    std::cerr << "kiln: using " << chosen->tf_name() << name << '\n';
  } else {
    const GpuVerdict v = gpu_verdict();
    std::cerr << "kiln: using the CPU: " << v.summary << (v.action.empty() ? "" : " (" + v.action + ")") << '\n';
  }
  return *chosen;
}

}  // namespace kiln
