// The one function that picks a backend by device.
#include "backend/backend.h"
#include "backend/cpu/cpu_backend.h"

namespace kiln::backend {

Backend& cpu() {
  static CpuBackend instance;
  return instance;
}

Backend& get(Device device) { return device.is_cpu() ? cpu() : cuda(device.index); }

}  // namespace kiln::backend
