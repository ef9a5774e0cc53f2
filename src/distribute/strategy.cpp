// What the strategies share (strategy_support.h): options' checks, the environment's timeout, the
// GPU group's forming.
#include <cmath>
#include <cstdlib>
#include <exception>
#include <string>

#include "distribute/strategy_support.h"
#include "kiln/error.h"
#include "layers/config_fields.h"

namespace kiln::distribute {

namespace {

// KILN_COLLECTIVE_TIMEOUT in seconds, or `fallback` when it is unset.
double timeout_from_environment(const std::string& op, double fallback) {
  const char* text = std::getenv("KILN_COLLECTIVE_TIMEOUT");
  if (!text || !*text) return fallback;
  char* end = nullptr;
  const double v = std::strtod(text, &end);
  if (*end != '\0' || !std::isfinite(v) || v <= 0)
    throw Error(op, std::string("KILN_COLLECTIVE_TIMEOUT is \"") + text +
                        "\"; expected a positive number of seconds (e.g. 300)");
  return v;
}

}  // namespace

bool built_with_mpi() {
#if KILN_WITH_MPI
  return true;
#else
  return false;
#endif
}

StrategyOptions checked_options(const std::string& op, StrategyOptions options) {
  if (!std::isfinite(options.timeout_seconds) || options.timeout_seconds <= 0)
    throw Error(op, "timeout_seconds is " + layers::number_text(options.timeout_seconds) +
                        "; expected a positive number of seconds");
  if (options.bucket_bytes <= 0)
    throw Error(op, "bucket_bytes is " + std::to_string(options.bucket_bytes) +
                        "; expected a positive size (e.g. 4 MiB, the default)");
  options.timeout_seconds = timeout_from_environment(op, options.timeout_seconds);
  return options;
}

backend::DeviceCollectives& Strategy::device_collectives(Device device) {
  throw Error("fit", name() + " has no collectives on " + device.str() + "; expected a model on the CPU");
}

backend::DeviceCollectives& DeviceGroup::get(Communicator& comm, Device device) {
  if (collectives_) {
    if (device == device_) return *collectives_;
    throw Error("fit", "this replica trained on " + device_.str() + " and now trains on " + device.str() +
                           "; expected one GPU per replica for the whole job");
  }
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
  collectives_ = backend::get(device).join_collectives(key, comm.rank(), comm.size(), comm.timeout_seconds());
  device_ = device;
  return *collectives_;
}

}  // namespace kiln::distribute
