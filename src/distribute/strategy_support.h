// What the strategies share: their options' checks, and the forming of a GPU group (NCCL) among a
// communicator's ranks.
#pragma once

#include <memory>
#include <string>

#include "backend/backend.h"
#include "distribute/communicator.h"
#include "kiln/distribute.h"

namespace kiln::distribute {

/// `options` checked (a positive timeout and bucket size; errors name `op`), with the timeout from
/// KILN_COLLECTIVE_TIMEOUT when that is set.
StrategyOptions checked_options(const std::string& op, StrategyOptions options);

/// The GPU group of a communicator's ranks, formed at the first get() and kept: rank 0 makes the
/// group's key and the communicator carries it to the others.
class DeviceGroup {
 public:
  /// The group on GPU `device`; throws kiln::Error when a later call names another device, or the
  /// group cannot be formed.
  backend::DeviceCollectives& get(Communicator& comm, Device device);
  /// Frees the group (before the work that may still use it is gone: call it first).
  void reset() { collectives_.reset(); }

 private:
  std::unique_ptr<backend::DeviceCollectives> collectives_;
  Device device_ = Device::cpu();
};

}  // namespace kiln::distribute
