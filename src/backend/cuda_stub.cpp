// Linked instead of the CUDA backend when kiln is built without CUDA.
#include "backend/backend.h"
#include "kiln/error.h"

namespace kiln::backend {

Backend& cuda(int index) {
  throw Error("cuda", "GPU " + std::to_string(index) +
                          " requested, but kiln was built without CUDA; expected Device::cpu(), or a "
                          "build configured with the CUDA toolkit present");
}

}  // namespace kiln::backend
