// MultiWorkerMirroredStrategy: MPI's communicator (or the error of a build without MPI) and the
// NCCL group of the processes' GPUs.
#include <string>

#include "distribute/mpi_communicator.h"
#include "distribute/strategy_support.h"
#include "kiln/config.h"
#include "kiln/error.h"

namespace kiln::distribute {

namespace {
constexpr const char* kOp = "MultiWorkerMirroredStrategy";
}  // namespace

MultiWorkerMirroredStrategy::MultiWorkerMirroredStrategy(MultiWorkerMirroredStrategyOptions options)
    : options_(checked_options(kOp, options)), device_group_(std::make_unique<DeviceGroup>()) {
#if KILN_WITH_MPI
  communicator_ = make_mpi_communicator(options_.timeout_seconds);
#else
  throw Error(kOp, "kiln was built without MPI; rebuild with libopenmpi-dev installed");
#endif
}

// The NCCL group goes first: it may still be used by work queued on its GPU.
MultiWorkerMirroredStrategy::~MultiWorkerMirroredStrategy() { device_group_->reset(); }

Device MultiWorkerMirroredStrategy::worker_device() const {
  const auto gpus = static_cast<int>(config::list_physical_devices("GPU").size());
  return gpus > 0 ? Device::gpu(communicator_->local_rank() % gpus) : Device::cpu();
}

backend::DeviceCollectives& MultiWorkerMirroredStrategy::device_collectives(Device device) {
  return device_group_->get(*communicator_, device);
}

int MultiWorkerMirroredStrategy::num_replicas_in_sync() const { return communicator_->size(); }

int MultiWorkerMirroredStrategy::rank() const { return communicator_->rank(); }

}  // namespace kiln::distribute
