// Collectives across processes on GPUs through NCCL. NCCL is loaded when a group is first joined
// (libnccl.so.2, dlopen), not linked: the backend then also loads where NCCL is not installed, and
// only a data-parallel fit on GPUs needs it. Groups are non-blocking (NCCL's config.blocking = 0),
// so that joining and waiting can give up at a deadline instead of hanging on a dead peer.
#include <chrono>
#include <cstring>
#include <string>
#include <thread>

#include "backend/cuda/check.h"
#include "backend/cuda/cuda_backend.h"
#include "kiln/error.h"

#if __has_include(<nccl.h>) && !defined(_WIN32)
#define KILN_CUDA_NCCL 1
#include <dlfcn.h>
#include <nccl.h>
#else
#define KILN_CUDA_NCCL 0
#endif

namespace kiln::backend {

namespace {

constexpr const char* kOp = "collectives";

#if KILN_CUDA_NCCL

// The NCCL functions used, from the library found at run time.
struct Nccl {
  decltype(&ncclGetUniqueId) get_unique_id = nullptr;
  decltype(&ncclCommInitRankConfig) init_rank_config = nullptr;
  decltype(&ncclAllReduce) all_reduce = nullptr;
  decltype(&ncclBroadcast) broadcast = nullptr;
  decltype(&ncclCommGetAsyncError) async_error = nullptr;
  decltype(&ncclCommAbort) abort = nullptr;
  decltype(&ncclCommDestroy) destroy = nullptr;
  decltype(&ncclGetErrorString) error_string = nullptr;
  std::string failure;  // why the library is unusable ("" when it loaded)
};

template <typename F>
void find(void* lib, const char* name, F& out, std::string& failure) {
  out = reinterpret_cast<F>(dlsym(lib, name));
  if (!out && failure.empty()) failure = std::string("libnccl.so.2 has no ") + name + " (NCCL older than 2.14?)";
}

const Nccl& nccl() {
  static const Nccl loaded = [] {
    Nccl n;
    void* lib = dlopen("libnccl.so.2", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
      const char* why = dlerror();
      n.failure = std::string("cannot load libnccl.so.2: ") + (why ? why : "not found");
      return n;
    }
    find(lib, "ncclGetUniqueId", n.get_unique_id, n.failure);
    find(lib, "ncclCommInitRankConfig", n.init_rank_config, n.failure);
    find(lib, "ncclAllReduce", n.all_reduce, n.failure);
    find(lib, "ncclBroadcast", n.broadcast, n.failure);
    find(lib, "ncclCommGetAsyncError", n.async_error, n.failure);
    find(lib, "ncclCommAbort", n.abort, n.failure);
    find(lib, "ncclCommDestroy", n.destroy, n.failure);
    find(lib, "ncclGetErrorString", n.error_string, n.failure);
    return n;
  }();
  if (!loaded.failure.empty())
    throw Error(kOp, loaded.failure + "; expected NCCL 2.14 or newer installed (Debian/Ubuntu: libnccl2)");
  return loaded;
}

[[noreturn]] void fail(ncclResult_t status, const char* call) {
  throw Error(kOp, std::string(call) + " failed: " + nccl().error_string(status) +
                       "; expected every process of the job on its own GPU (NCCL_DEBUG=INFO says more)");
}

// Polls a non-blocking group until its last call completed; false at the deadline.
bool settle(ncclComm_t comm, const char* call, std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    ncclResult_t state = ncclSuccess;
    const ncclResult_t status = nccl().async_error(comm, &state);
    if (status != ncclSuccess) fail(status, "ncclCommGetAsyncError");
    if (state == ncclSuccess) return true;
    if (state != ncclInProgress) fail(state, call);
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
}

ncclDataType_t nccl_type(DType dtype) {
  switch (dtype) {
    case DType::Float32:
      return ncclFloat32;
    case DType::Float64:
      return ncclFloat64;
    case DType::Int64:
      return ncclInt64;
    default:
      throw Error(kOp, "cannot combine " + dtype_name(dtype) + " across processes; expected float32, float64 or int64");
  }
}

class NcclCollectives final : public DeviceCollectives {
 public:
  NcclCollectives(int device, cudaStream_t stream, ncclComm_t comm) : device_(device), stream_(stream), comm_(comm) {
    DeviceGuard guard(device_);
    KILN_CUDA_CHECK(cudaEventCreateWithFlags(&done_, cudaEventDisableTiming));
  }
  ~NcclCollectives() override {
    DeviceGuard guard(device_);
    if (comm_) {  // an aborted group was freed by ncclCommAbort
      cudaStreamSynchronize(stream_);
      nccl().destroy(comm_);
    }
    cudaEventDestroy(done_);
  }
  NcclCollectives(const NcclCollectives&) = delete;
  NcclCollectives& operator=(const NcclCollectives&) = delete;

  void all_reduce(DType dtype, void* data, int64_t n, bool max) override {
    usable();
    DeviceGuard guard(device_);
    const ncclResult_t status = nccl().all_reduce(data, data, static_cast<std::size_t>(n), nccl_type(dtype),
                                                  max ? ncclMax : ncclSum, comm_, stream_);
    if (status != ncclSuccess && status != ncclInProgress) fail(status, "ncclAllReduce");
    queued("ncclAllReduce");
  }

  void broadcast(void* data, std::size_t bytes, int root) override {
    usable();
    DeviceGuard guard(device_);
    const ncclResult_t status = nccl().broadcast(data, data, bytes, ncclUint8, root, comm_, stream_);
    if (status != ncclSuccess && status != ncclInProgress) fail(status, "ncclBroadcast");
    queued("ncclBroadcast");
  }

  bool wait(double timeout_seconds) override {
    usable();
    DeviceGuard guard(device_);
    KILN_CUDA_CHECK(cudaEventRecord(done_, stream_));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_seconds);
    for (int polls = 0;; ++polls) {
      const cudaError_t status = cudaEventQuery(done_);
      if (status == cudaSuccess) return true;
      if (status != cudaErrorNotReady) KILN_CUDA_CHECK(status);
      ncclResult_t state = ncclSuccess;
      if (nccl().async_error(comm_, &state) == ncclSuccess && state != ncclSuccess && state != ncclInProgress)
        fail(state, "a collective");
      if (std::chrono::steady_clock::now() > deadline) {
        // Kernels waiting for a peer that never comes would block the stream forever: abort them
        // (ncclCommAbort also frees the group).
        nccl().abort(comm_);
        comm_ = nullptr;
        return false;
      }
      if (polls > 1000) std::this_thread::sleep_for(std::chrono::microseconds(polls > 10000 ? 1000 : 50));
    }
  }

 private:
  void usable() const {
    if (!comm_) throw Error(kOp, "the group was aborted after a collective missed its deadline; expected a new job");
  }
  // A non-blocking group may still be enqueuing the call: it must finish before the next one.
  void queued(const char* call) {
    if (!settle(comm_, call, std::chrono::steady_clock::now() + std::chrono::seconds(60)))
      throw Error(kOp, std::string(call) + " was not queued within 60 s; expected NCCL to queue it at once");
  }

  int device_;
  cudaStream_t stream_;
  ncclComm_t comm_;  // null once aborted
  cudaEvent_t done_ = nullptr;
};

#endif  // KILN_CUDA_NCCL

}  // namespace

#if KILN_CUDA_NCCL

std::string CudaBackend::make_collectives_key() {
  ncclUniqueId id;
  const ncclResult_t status = nccl().get_unique_id(&id);
  if (status != ncclSuccess) fail(status, "ncclGetUniqueId");
  return std::string(id.internal, sizeof id.internal);
}

std::unique_ptr<DeviceCollectives> CudaBackend::join_collectives(const std::string& key, int rank, int size,
                                                                 double timeout_seconds) {
  ncclUniqueId id;
  if (key.size() != sizeof id.internal)
    throw Error(kOp, "the group's key has " + std::to_string(key.size()) + " bytes; expected " +
                         std::to_string(sizeof id.internal) + " (made by make_collectives_key)");
  std::memcpy(id.internal, key.data(), sizeof id.internal);
  DeviceGuard guard(device_);
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  ncclComm_t comm = nullptr;
  const ncclResult_t status = nccl().init_rank_config(&comm, size, id, rank, &config);
  if (status != ncclSuccess && status != ncclInProgress) fail(status, "ncclCommInitRankConfig");
  const auto deadline =
      std::chrono::steady_clock::now() +
      std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(timeout_seconds));
  if (!settle(comm, "ncclCommInitRankConfig", deadline)) {
    nccl().abort(comm);
    throw Error(kOp, "the NCCL group of " + std::to_string(size) + " processes did not form within " +
                         std::to_string(timeout_seconds) +
                         " s; expected every process to join (one GPU each, reachable from the others)");
  }
  return std::make_unique<NcclCollectives>(device_, stream_, comm);
}

#else

std::string CudaBackend::make_collectives_key() {
  throw Error(kOp,
              "kiln's CUDA backend was built without NCCL's header (nccl.h); expected a build with NCCL "
              "installed (Debian/Ubuntu: libnccl-dev) for data-parallel training on GPUs");
}

std::unique_ptr<DeviceCollectives> CudaBackend::join_collectives(const std::string&, int, int, double) {
  return nullptr;  // never reached: make_collectives_key threw, and every process runs the same build
}

#endif

}  // namespace kiln::backend
