// MPI's non-blocking collectives with a deadline. MPI itself would wait forever for a rank that
// died or stopped, so every round of collectives also exchanges one small "arrived" message with
// each other rank: when the round misses its deadline, the messages that never came name the
// ranks that did not join. Requests are tested in a loop that yields the CPU between tests.
#include "distribute/mpi_communicator.h"

#if KILN_WITH_MPI

#include <mpi.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include "kiln/error.h"
#include "layers/config_fields.h"

namespace kiln::distribute {

namespace {

constexpr int kArrivedTag = 7301;  // the tag of the "arrived" messages on the duplicated communicator

void check(int status, const char* call) {
  if (status == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(status, text, &length);
  throw Error("MultiWorkerMirroredStrategy", std::string(call) + " failed: " + std::string(text, length) +
                                                 "; expected a working MPI (run under mpirun or srun)");
}

// The deadline of a round that missed it (0 while none has): a peer may be dead, and MPI_Finalize's
// closing exchange with every process of the job may then wait for it forever (Open MPI 4 under
// `mpirun --enable-recovery` did, at times, on a loaded machine). A peer that is alive (it left fit
// with an error) finalizes with this process as usual.
std::atomic<double> missed_deadline_seconds{0.0};

void finalize_at_exit() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized) return;
  if (const double seconds = missed_deadline_seconds.load(); seconds > 0) {
    // A watchdog bounds MPI_Finalize by the collective deadline; past it the process ends without
    // finalizing, with status 1 (a rank is gone: the job failed), saying so.
    std::thread([seconds] {
      std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
      std::fprintf(stderr,
                   "kiln: MPI_Finalize did not complete within %g s after a rank was lost; exiting without it "
                   "(status 1)\n",
                   seconds);
      std::_Exit(1);
    }).detach();
  }
  MPI_Finalize();
}

// Initializes MPI once per process unless the program has; kiln calls MPI from one thread only.
void ensure_initialized() {
  static const bool done = [] {
    int initialized = 0;
    check(MPI_Initialized(&initialized), "MPI_Initialized");
    if (!initialized) {
      int provided = 0;
      check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
      std::atexit(finalize_at_exit);
    }
    return true;
  }();
  (void)done;
}

MPI_Datatype mpi_type(Elem elem) {
  switch (elem) {
    case Elem::Float32:
      return MPI_FLOAT;
    case Elem::Float64:
      return MPI_DOUBLE;
    case Elem::Int64:
      return MPI_INT64_T;
  }
  return MPI_BYTE;
}

class MpiCommunicator final : public Communicator {
 public:
  explicit MpiCommunicator(double timeout_seconds) : timeout_(timeout_seconds) {
    ensure_initialized();
    check(MPI_Comm_dup(MPI_COMM_WORLD, &comm_), "MPI_Comm_dup");
    check(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
    check(MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
    MPI_Comm host = MPI_COMM_NULL;
    check(MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &host), "MPI_Comm_split_type");
    check(MPI_Comm_rank(host, &local_rank_), "MPI_Comm_rank");
    MPI_Comm_free(&host);
    arrived_.resize(static_cast<std::size_t>(size_));
  }
  ~MpiCommunicator() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    // After a missed deadline requests are still pending on the communicator: leave it.
    if (!finalized && broken_.empty()) MPI_Comm_free(&comm_);
  }
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_rank() const override { return local_rank_; }
  double timeout_seconds() const override { return timeout_; }

  void start_all_reduce(void* data, int64_t count, Elem elem, ReduceOp op) override {
    begin_round();
    MPI_Request r = MPI_REQUEST_NULL;
    check(MPI_Iallreduce(MPI_IN_PLACE, data, static_cast<int>(count), mpi_type(elem),
                         op == ReduceOp::Sum ? MPI_SUM : MPI_MAX, comm_, &r),
          "MPI_Iallreduce");
    ops_.push_back(r);
  }

  void start_broadcast(void* data, int64_t bytes, int root) override {
    begin_round();
    MPI_Request r = MPI_REQUEST_NULL;
    check(MPI_Ibcast(data, static_cast<int>(bytes), MPI_BYTE, root, comm_, &r), "MPI_Ibcast");
    ops_.push_back(r);
  }

  void start_all_gather(const int64_t* value, int64_t* out) override {
    begin_round();
    MPI_Request r = MPI_REQUEST_NULL;
    check(MPI_Iallgather(value, 1, MPI_INT64_T, out, 1, MPI_INT64_T, comm_, &r), "MPI_Iallgather");
    ops_.push_back(r);
  }

  void progress() override {
    if (ops_.empty() || !broken_.empty()) return;
    int done = 0;
    MPI_Testall(static_cast<int>(ops_.size()), ops_.data(), &done, MPI_STATUSES_IGNORE);
  }

  void wait(const std::string& what) override {
    if (!broken_.empty()) unusable(what);
    std::vector<MPI_Request> all = ops_;
    all.insert(all.end(), tokens_.begin(), tokens_.end());
    const auto start = std::chrono::steady_clock::now();
    const auto deadline = start + std::chrono::duration<double>(timeout_);
    for (int polls = 0;; ++polls) {
      int done = 0;
      check(MPI_Testall(static_cast<int>(all.size()), all.data(), &done, MPI_STATUSES_IGNORE), "MPI_Testall");
      if (done) break;
      if (std::chrono::steady_clock::now() > deadline) missed(what);
      // Spin briefly (a step's all-reduce usually completes within microseconds of the last rank
      // arriving), then yield so that a waiting rank leaves the cores to the others.
      if (polls > 2000) std::this_thread::sleep_for(std::chrono::microseconds(polls > 20000 ? 1000 : 50));
    }
    ops_.clear();
    tokens_.clear();
    in_round_ = false;
  }

 private:
  // The first collective of a round tells every other rank that this one arrived.
  void begin_round() {
    if (!broken_.empty()) unusable("a collective");
    if (in_round_) return;
    in_round_ = true;
    ++round_;
    recv_from_.clear();
    for (int peer = 0; peer < size_; ++peer) {
      if (peer == rank_) continue;
      MPI_Request r = MPI_REQUEST_NULL;
      check(MPI_Irecv(&arrived_[static_cast<std::size_t>(peer)], 1, MPI_INT64_T, peer, kArrivedTag, comm_, &r),
            "MPI_Irecv");
      recv_from_.push_back(peer);
      tokens_.push_back(r);
      check(MPI_Isend(&round_, 1, MPI_INT64_T, peer, kArrivedTag, comm_, &r), "MPI_Isend");
      tokens_.push_back(r);
    }
  }

  [[noreturn]] void missed(const std::string& what) {
    missed_deadline_seconds.store(timeout_);
    // tokens_ alternates (receive from peer, send to peer), in recv_from_'s order.
    std::vector<int> absent;
    for (std::size_t i = 0; i < recv_from_.size(); ++i) {
      int got = 0;
      MPI_Test(&tokens_[2 * i], &got, MPI_STATUS_IGNORE);
      if (!got) absent.push_back(recv_from_[i]);
    }
    const std::string t = layers::number_text(timeout_);
    if (absent.empty()) {
      broken_ = "every rank joined " + what + " but it did not complete within " + t + " s";
      throw Error("fit", broken_ + "; expected the ranks to reach each other (check the network between the hosts)");
    }
    std::string names;
    for (std::size_t i = 0; i < absent.size(); ++i) names += (i ? ", " : "") + std::to_string(absent[i]);
    broken_ =
        std::string(absent.size() == 1 ? "rank " : "ranks ") + names + " did not join " + what + " within " + t + " s";
    throw Error("fit", broken_ + " (rank " + std::to_string(rank_) +
                           " waited); it may have died, stopped or left fit with an error (see its output and the "
                           "launcher's); expected every rank to run the same fit (KILN_COLLECTIVE_TIMEOUT sets the "
                           "deadline in seconds)");
  }

  [[noreturn]] void unusable(const std::string& what) const {
    throw Error("fit", "cannot run " + what + ": an earlier collective failed (" + broken_ +
                           "); expected a new job (the strategy's processes are out of step)");
  }

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1, local_rank_ = 0;
  double timeout_;
  std::vector<MPI_Request> ops_, tokens_;
  std::vector<int> recv_from_;
  std::vector<int64_t> arrived_;
  int64_t round_ = 0;
  bool in_round_ = false;
  std::string broken_;  // why a round failed; "" while the communicator works
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator(double timeout_seconds) {
  return std::make_unique<MpiCommunicator>(timeout_seconds);
}

}  // namespace kiln::distribute

#endif  // KILN_WITH_MPI
