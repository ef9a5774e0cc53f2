// fit under a MirroredStrategy: replica 0 is the caller's model on the caller's thread, every
// other replica a copy of it on its own device and thread; each runs Model::fit with a strategy of
// its own (its rank in a ThreadGroup), so the data-parallel fit itself is the one MPI's processes
// run (replica.h).
#pragma once

#include <vector>

#include "kiln/distribute.h"
#include "kiln/model.h"

namespace kiln::distribute {

/// Trains `model` (on strategy.devices()[0]) and its copies together; returns replica 0's History.
/// A replica that fails stops the others at their next collective, and its error is rethrown here.
History fit_mirrored(MirroredStrategy& strategy, Model& model, const std::vector<Tensor>& x,
                     const std::vector<Tensor>& y, const FitOptions& options);

}  // namespace kiln::distribute
