// MirroredStrategy's devices and options; fit's replicas are run by mirrored_fit.cpp.
#include <algorithm>
#include <string>

#include "distribute/strategy_support.h"
#include "kiln/config.h"
#include "kiln/error.h"

namespace kiln::distribute {

namespace {

constexpr const char* kOp = "MirroredStrategy";

std::vector<Device> every_gpu_or_the_cpu() {
  std::vector<Device> out;
  const auto gpus = static_cast<int>(config::list_physical_devices("GPU").size());
  out.reserve(static_cast<std::size_t>(gpus) + 1);
  for (int i = 0; i < gpus; ++i) out.push_back(Device::gpu(i));
  if (out.empty()) out.push_back(Device::cpu());
  return out;
}

void check_devices(const std::vector<Device>& devices) {
  const auto gpus = static_cast<int>(config::list_physical_devices("GPU").size());
  const bool cpu = devices.front().is_cpu();
  for (std::size_t i = 0; i < devices.size(); ++i) {
    const Device d = devices[i];
    if (d.is_cpu() != cpu)
      throw Error(kOp, "devices lists " + devices.front().str() + " and " + d.str() +
                           "; expected GPUs only or the CPU only (replicas that differ in speed would wait for "
                           "the slowest at every step)");
    if (d.is_cpu()) continue;
    if (d.index >= gpus)
      throw Error(kOp, "devices lists " + d.str() + " but this machine has " + std::to_string(gpus) +
                           " GPU(s); expected devices of config::list_physical_devices(\"GPU\")");
    if (std::find(devices.begin(), devices.begin() + static_cast<std::ptrdiff_t>(i), d) !=
        devices.begin() + static_cast<std::ptrdiff_t>(i))
      throw Error(kOp, "devices lists " + d.str() +
                           " twice; expected each GPU once (NCCL sums across distinct "
                           "GPUs)");
  }
}

}  // namespace

MirroredStrategy::MirroredStrategy(std::vector<Device> devices, MirroredStrategyOptions options)
    : devices_(devices.empty() ? every_gpu_or_the_cpu() : std::move(devices)), options_(checked_options(kOp, options)) {
  check_devices(devices_);
}

Communicator& MirroredStrategy::communicator() {
  throw Error(kOp, "the strategy has no communicator of its own; fit gives each of its replicas one");
}

}  // namespace kiln::distribute
