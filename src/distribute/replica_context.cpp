// The replica context of the fit in progress (replica_context.h): one per thread, so a fit on
// another thread does not see it.
#include "distribute/replica_context.h"

#include "distribute/communicator.h"
#include "kiln/error.h"

namespace kiln::distribute {

namespace {

thread_local ReplicaContext* current_context = nullptr;

}  // namespace

ReplicaContext* ReplicaContext::current() { return current_context; }

int ReplicaContext::replicas() const { return host_.size(); }

void ReplicaContext::all_reduce_sum(Tensor& t, const std::string& what) {
  if (t.dtype() != DType::Float32 && t.dtype() != DType::Float64)
    throw Error("fit", what + " is " + dtype_name(t.dtype()) + "; expected float32 or float64 to sum over replicas");
  if (!t.device().is_cpu()) {
    if (!device_group_)
      throw Error("fit", what + " is on " + t.device().str() +
                             " but the replicas train on the CPU; expected it on the model's device");
    device_group_->all_reduce(t.dtype(), t.raw_data(), t.numel(), /*max=*/false);
    return;
  }
  host_.start_all_reduce(t.raw_data(), t.numel(), t.dtype() == DType::Float64 ? Elem::Float64 : Elem::Float32,
                         ReduceOp::Sum);
  host_.wait(what);
}

ScopedReplicaContext::ScopedReplicaContext(ReplicaContext* context) : previous_(current_context) {
  current_context = context;
}

ScopedReplicaContext::~ScopedReplicaContext() { current_context = previous_; }

}  // namespace kiln::distribute
