// MultiWorkerMirroredStrategy: options, the environment's timeout, and MPI's communicator (or the
// error of a build without MPI).
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "backend/backend.h"
#include "distribute/communicator.h"
#include "distribute/mpi_communicator.h"
#include "kiln/config.h"
#include "kiln/distribute.h"
#include "kiln/error.h"

namespace kiln::distribute {

namespace {

constexpr const char* kOp = "MultiWorkerMirroredStrategy";

// KILN_COLLECTIVE_TIMEOUT in seconds, or `fallback` when it is unset.
double timeout_from_environment(double fallback) {
  const char* text = std::getenv("KILN_COLLECTIVE_TIMEOUT");
  if (!text || !*text) return fallback;
  char* end = nullptr;
  const double v = std::strtod(text, &end);
  if (*end != '\0' || !std::isfinite(v) || v <= 0)
    throw Error(kOp, std::string("KILN_COLLECTIVE_TIMEOUT is \"") + text +
                         "\"; expected a positive number of seconds (e.g. 300)");
  return v;
}

std::string number_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

}  // namespace

bool built_with_mpi() {
#if KILN_WITH_MPI
  return true;
#else
  return false;
#endif
}

MultiWorkerMirroredStrategy::MultiWorkerMirroredStrategy(MultiWorkerMirroredStrategyOptions options)
    : options_(options) {
  if (!std::isfinite(options_.timeout_seconds) || options_.timeout_seconds <= 0)
    throw Error(
        kOp, "timeout_seconds is " + number_text(options_.timeout_seconds) + "; expected a positive number of seconds");
  if (options_.bucket_bytes <= 0)
    throw Error(kOp, "bucket_bytes is " + std::to_string(options_.bucket_bytes) +
                         "; expected a positive size (e.g. 4 MiB, the default)");
  options_.timeout_seconds = timeout_from_environment(options_.timeout_seconds);
#if KILN_WITH_MPI
  communicator_ = make_mpi_communicator(options_.timeout_seconds);
#else
  throw Error(kOp, "kiln was built without MPI; rebuild with libopenmpi-dev installed");
#endif
}

// The NCCL group goes first: it may still be used by work queued on its GPU.
MultiWorkerMirroredStrategy::~MultiWorkerMirroredStrategy() { device_collectives_.reset(); }

backend::DeviceCollectives& Strategy::device_collectives(Device device) {
  throw Error("fit", name() + " has no collectives on " + device.str() + "; expected a model on the CPU");
}

Device MultiWorkerMirroredStrategy::worker_device() const {
  const auto gpus = static_cast<int>(config::list_physical_devices("GPU").size());
  return gpus > 0 ? Device::gpu(communicator_->local_rank() % gpus) : Device::cpu();
}

backend::DeviceCollectives& MultiWorkerMirroredStrategy::device_collectives(Device device) {
  if (device_collectives_) {
    if (device == collectives_device_) return *device_collectives_;
    throw Error("fit", "this process trained on " + collectives_device_.str() + " and now trains on " + device.str() +
                           "; expected one GPU per process for the whole job (worker_device())");
  }
  Communicator& comm = *communicator_;
  // Rank 0 makes the group's key and sends it; an empty key tells the others it could not.
  std::string key;
  std::exception_ptr failure;
  if (comm.rank() == 0) try {
      key = backend::get(device).make_collectives_key();
    } catch (const Error&) {
      failure = std::current_exception();
    }
  int64_t length = static_cast<int64_t>(key.size());
  comm.start_broadcast(&length, sizeof length, 0);
  comm.wait("the start of the GPU group");
  if (failure) std::rethrow_exception(failure);
  if (length == 0)
    throw Error("fit", "rank 0 could not start the GPU group (its output says why); expected NCCL on every host");
  key.resize(static_cast<std::size_t>(length));
  comm.start_broadcast(key.data(), length, 0);
  comm.wait("the start of the GPU group");
  device_collectives_ = backend::get(device).join_collectives(key, comm.rank(), comm.size(), options_.timeout_seconds);
  collectives_device_ = device;
  return *device_collectives_;
}

int MultiWorkerMirroredStrategy::num_replicas_in_sync() const { return communicator_->size(); }

int MultiWorkerMirroredStrategy::rank() const { return communicator_->rank(); }

}  // namespace kiln::distribute
