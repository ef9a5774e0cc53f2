// The seam between the process-wide math modes (config/backend_modes.cpp: TF32 and op determinism)
// and the CUDA loader.
#pragma once

#include "backend/backend.h"

namespace kiln::backend {

/// Registers a CUDA backend on its first use and gives it the current TF32 and op-determinism
/// settings, so that later changes reach it too. The loader calls it once per backend, before
/// handing the backend out.
void adopt_backend_modes(Backend& backend);

}  // namespace kiln::backend
