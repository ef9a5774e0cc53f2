// The communicator (communicator.h) of replicas that are threads of one process: MirroredStrategy's.
// Each round of collectives is a rendezvous: every rank posts the collectives it started and waits;
// the last rank to arrive carries the whole round out on every rank's buffers (sums in rank order,
// so the result does not depend on which rank arrived last) and wakes the others. A rank that does
// not arrive by the deadline is named, and a rank whose thread failed abandons the group, so that
// the others stop at once with its message instead of waiting for the deadline.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "distribute/communicator.h"

namespace kiln::distribute {

/// The ranks of one process and their rounds of collectives.
class ThreadGroup {
 public:
  /// `size` ranks whose rounds may wait `timeout_seconds` each.
  ThreadGroup(int size, double timeout_seconds);
  ThreadGroup(const ThreadGroup&) = delete;
  ThreadGroup& operator=(const ThreadGroup&) = delete;

  /// Rank `rank`'s communicator; the group must outlive it. Each rank's is used by one thread.
  std::unique_ptr<Communicator> member(int rank);
  /// Rank `rank`'s thread failed with `error`: every wait() from now on throws naming it. The first
  /// rank to abandon is kept as the cause (the others usually fail because of it).
  void abandon(int rank, const std::exception_ptr& error);
  /// The error of the first rank that abandoned the group, or null.
  std::exception_ptr first_failure() const;

  int size() const { return size_; }
  double timeout_seconds() const { return timeout_seconds_; }

  /// One collective a rank started (kiln's internals, for the members).
  struct Op {
    enum class Kind { AllReduce, Broadcast, AllGather } kind = Kind::AllReduce;
    void* data = nullptr;            // all-reduce and broadcast: the buffer, in place
    int64_t count = 0;               // all-reduce: elements; broadcast: bytes
    Elem elem = Elem::Float32;       // all-reduce
    ReduceOp op = ReduceOp::Sum;     // all-reduce
    int root = 0;                    // broadcast
    const int64_t* value = nullptr;  // all-gather: this rank's value
    int64_t* out = nullptr;          // all-gather: size() values
  };
  /// Rank `rank` arrives with its round's collectives `ops` and returns when every rank has and the
  /// round is carried out; throws kiln::Error("fit", ...) naming `what` and the ranks missing at the
  /// deadline, the rank that abandoned the group, or collectives that differ between ranks.
  void run_round(int rank, std::vector<Op>& ops, const std::string& what);

 private:
  // Carries out the round whose every rank has posted its collectives; "" or why it could not.
  std::string carry_out_round();

  const int size_;
  const double timeout_seconds_;
  mutable std::mutex mutex_;
  std::condition_variable arrived_;
  int64_t round_ = 0;                     // rounds completed
  std::vector<std::vector<Op>*> posted_;  // each rank's collectives of the current round, null until it arrives
  std::string broken_;                    // why the group is unusable ("" while it is usable)
  std::exception_ptr first_failure_;
};

}  // namespace kiln::distribute
