// ThreadGroup and its members (see thread_communicator.h).
#include "distribute/thread_communicator.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "kiln/error.h"
#include "layers/config_fields.h"

namespace kiln::distribute {

namespace {

std::string kind_name(ThreadGroup::Op::Kind kind) {
  switch (kind) {
    case ThreadGroup::Op::Kind::AllReduce:
      return "an all-reduce";
    case ThreadGroup::Op::Kind::Broadcast:
      return "a broadcast";
    case ThreadGroup::Op::Kind::AllGather:
      return "an all-gather";
  }
  return "a collective";
}

// Combines element `i` of every rank's buffer in rank order and writes the result to every rank.
template <typename T>
void reduce(const std::vector<std::vector<ThreadGroup::Op>*>& posted, std::size_t at, ReduceOp op) {
  const ThreadGroup::Op& first = (*posted[0])[at];
  for (int64_t i = 0; i < first.count; ++i) {
    T acc = static_cast<const T*>(first.data)[i];
    for (std::size_t r = 1; r < posted.size(); ++r) {
      const T v = static_cast<const T*>((*posted[r])[at].data)[i];
      acc = op == ReduceOp::Sum ? acc + v : std::max(acc, v);
    }
    for (const auto* ops : posted) static_cast<T*>((*ops)[at].data)[i] = acc;
  }
}

std::string error_text(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "an exception that is not a std::exception";
  }
}

class ThreadCommunicator final : public Communicator {
 public:
  ThreadCommunicator(ThreadGroup& group, int rank) : group_(group), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return group_.size(); }
  int local_rank() const override { return rank_; }
  double timeout_seconds() const override { return group_.timeout_seconds(); }
  void start_all_reduce(void* data, int64_t count, Elem elem, ReduceOp op) override {
    pending_.push_back(
        {.kind = ThreadGroup::Op::Kind::AllReduce, .data = data, .count = count, .elem = elem, .op = op});
  }
  void start_broadcast(void* data, int64_t bytes, int root) override {
    pending_.push_back({.kind = ThreadGroup::Op::Kind::Broadcast, .data = data, .count = bytes, .root = root});
  }
  void start_all_gather(const int64_t* value, int64_t* out) override {
    pending_.push_back({.kind = ThreadGroup::Op::Kind::AllGather, .value = value, .out = out});
  }
  void wait(const std::string& what) override {
    std::vector<ThreadGroup::Op> ops;
    ops.swap(pending_);
    group_.run_round(rank_, ops, what);
  }

 private:
  ThreadGroup& group_;
  const int rank_;
  std::vector<ThreadGroup::Op> pending_;
};

}  // namespace

ThreadGroup::ThreadGroup(int size, double timeout_seconds)
    : size_(size), timeout_seconds_(timeout_seconds), posted_(static_cast<std::size_t>(size), nullptr) {}

std::unique_ptr<Communicator> ThreadGroup::member(int rank) {
  return std::make_unique<ThreadCommunicator>(*this, rank);
}

void ThreadGroup::abandon(int rank, const std::exception_ptr& error) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!first_failure_) first_failure_ = error;
  if (broken_.empty()) broken_ = "replica " + std::to_string(rank) + " stopped: " + error_text(error);
  arrived_.notify_all();
}

std::exception_ptr ThreadGroup::first_failure() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return first_failure_;
}

void ThreadGroup::run_round(int rank, std::vector<Op>& ops, const std::string& what) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (!broken_.empty()) throw Error("fit", broken_ + " (before " + what + ")");
  const int64_t round = round_;
  posted_[static_cast<std::size_t>(rank)] = &ops;
  if (std::all_of(posted_.begin(), posted_.end(), [](const auto* p) { return p != nullptr; })) {
    const std::string failure = carry_out_round();
    std::fill(posted_.begin(), posted_.end(), nullptr);
    ++round_;
    if (!failure.empty()) broken_ = failure + " in " + what;
    arrived_.notify_all();
    if (!failure.empty()) throw Error("fit", broken_);
    return;
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_seconds_);
  const bool woken = arrived_.wait_until(lock, deadline, [&] { return round_ != round || !broken_.empty(); });
  // A round that failed broke the group; so did a rank that abandoned it meanwhile (this rank would
  // fail at its next round anyway).
  if (woken && broken_.empty()) return;
  std::string missing;
  for (int r = 0; r < size_; ++r)
    if (!posted_[static_cast<std::size_t>(r)]) missing += (missing.empty() ? "" : ", ") + std::to_string(r);
  posted_[static_cast<std::size_t>(rank)] = nullptr;  // the caller's `ops` die with the throw
  if (woken) throw Error("fit", broken_ + (round_ != round ? "" : " (during " + what + ")"));
  broken_ = "replica(s) " + missing + " did not join " + what + " within " + layers::number_text(timeout_seconds_) +
            " s; expected every replica to reach it (one may be stuck or slowed down: the timeout is "
            "StrategyOptions::timeout_seconds or KILN_COLLECTIVE_TIMEOUT)";
  arrived_.notify_all();
  throw Error("fit", broken_);
}

std::string ThreadGroup::carry_out_round() {
  const std::vector<Op>& first = *posted_[0];
  for (int r = 1; r < size_; ++r) {
    const std::vector<Op>& mine = *posted_[static_cast<std::size_t>(r)];
    if (mine.size() != first.size())
      return "replica " + std::to_string(r) + " started " + std::to_string(mine.size()) + " collectives, replica 0 " +
             std::to_string(first.size()) + "; expected every replica to run the same fit";
    for (std::size_t i = 0; i < first.size(); ++i) {
      const Op &a = first[i], &b = mine[i];
      if (a.kind != b.kind || a.count != b.count || a.elem != b.elem || a.op != b.op || a.root != b.root)
        return "replica " + std::to_string(r) + " started " + kind_name(b.kind) + " of " + std::to_string(b.count) +
               " where replica 0 started " + kind_name(a.kind) + " of " + std::to_string(a.count) +
               "; expected every replica to run the same fit";
    }
  }
  for (std::size_t i = 0; i < first.size(); ++i) {
    const Op& op = first[i];
    switch (op.kind) {
      case Op::Kind::AllReduce:
        if (op.elem == Elem::Float32)
          reduce<float>(posted_, i, op.op);
        else if (op.elem == Elem::Float64)
          reduce<double>(posted_, i, op.op);
        else
          reduce<int64_t>(posted_, i, op.op);
        break;
      case Op::Kind::Broadcast: {
        const void* src = (*posted_[static_cast<std::size_t>(op.root)])[i].data;
        for (const auto* ops : posted_)
          if ((*ops)[i].data != src) std::memcpy((*ops)[i].data, src, static_cast<std::size_t>(op.count));
        break;
      }
      case Op::Kind::AllGather:
        for (const auto* ops : posted_)
          for (int r = 0; r < size_; ++r) (*ops)[i].out[r] = *(*posted_[static_cast<std::size_t>(r)])[i].value;
        break;
    }
  }
  return "";
}

}  // namespace kiln::distribute
