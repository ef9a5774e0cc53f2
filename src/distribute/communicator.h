// The collectives data-parallel fit needs, behind one interface: all-reduce, broadcast and
// all-gather, started without blocking and completed together by wait(), which gives up at a
// deadline and names the ranks that never joined (a rank that died must not hang the others).
// MPI implements it (mpi_communicator.cpp); an NCCL communicator for GPU replicas would be a
// second implementation of the same interface.
#pragma once

#include <cstdint>
#include <string>

namespace kiln::distribute {

/// Element types of a collective.
enum class Elem { Float32, Float64, Int64 };

/// How all_reduce combines the ranks' elements.
enum class ReduceOp { Sum, Max };

/// A group of ranks and the collectives fit runs on them. Every rank must start the same
/// collectives in the same order; the buffers must stay alive until wait() returns.
class Communicator {
 public:
  virtual ~Communicator() = default;
  /// This process's rank, 0 to size() - 1.
  virtual int rank() const = 0;
  /// Number of ranks.
  virtual int size() const = 0;
  /// This process's rank among the ranks of its host.
  virtual int local_rank() const = 0;
  /// Seconds wait() allows a round of collectives.
  virtual double timeout_seconds() const = 0;
  /// Starts combining `count` elements at `data` across ranks, in place.
  virtual void start_all_reduce(void* data, int64_t count, Elem elem, ReduceOp op) = 0;
  /// Starts copying `bytes` bytes at `data` from rank `root` to every rank.
  virtual void start_broadcast(void* data, int64_t bytes, int root) = 0;
  /// Starts gathering every rank's `value` into out[0..size()).
  virtual void start_all_gather(const int64_t* value, int64_t* out) = 0;
  /// Lets the collectives started so far advance without waiting for them (MPI advances
  /// non-blocking collectives only inside its calls); cheap, and never throws for a late rank.
  virtual void progress() {}
  /// Completes everything started since the last wait(). Throws kiln::Error("fit", ...) naming the
  /// ranks that did not join `what` ("the gradient all-reduce of epoch 2, step 12") within
  /// timeout_seconds(); the communicator is unusable afterwards and says so on every later call.
  virtual void wait(const std::string& what) = 0;
};

}  // namespace kiln::distribute
