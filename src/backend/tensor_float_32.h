// The seam between the process-wide TF32 setting (config/tensor_float_32.cpp) and the CUDA loader.
#pragma once

#include "backend/backend.h"

namespace kiln::backend {

/// Registers a CUDA backend on its first use and gives it the current TF32 setting, so that later
/// changes reach it too. The loader calls it once per backend, before handing the backend out.
void adopt_tensor_float_32(Backend& backend);

}  // namespace kiln::backend
