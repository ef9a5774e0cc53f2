// MultiWorkerMirroredStrategy: options, the environment's timeout, and MPI's communicator (or the
// error of a build without MPI).
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "distribute/communicator.h"
#include "distribute/mpi_communicator.h"
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

MultiWorkerMirroredStrategy::~MultiWorkerMirroredStrategy() = default;

int MultiWorkerMirroredStrategy::num_replicas_in_sync() const { return communicator_->size(); }

int MultiWorkerMirroredStrategy::rank() const { return communicator_->rank(); }

}  // namespace kiln::distribute
