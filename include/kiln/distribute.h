/// Data-parallel training (Keras' tf.distribute names): a strategy given to fit splits every global
/// batch among replicas, sums their gradients and applies the same update on each, so P replicas at
/// global batch B train like one process at batch B. MultiWorkerMirroredStrategy: one process per
/// replica (mpirun, srun); MirroredStrategy: one process, one replica per local GPU.
///
///   auto strategy = std::make_shared<kiln::distribute::MultiWorkerMirroredStrategy>();
///   model.fit(x, y, {.batch_size = 256, .strategy = strategy});   // mpirun -np 4 ./train
///
///   auto mirrored = std::make_shared<kiln::distribute::MirroredStrategy>();   // every local GPU
///   model.fit(x, y, {.batch_size = 256, .strategy = mirrored});
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kiln/device.h"

namespace kiln::backend {
class DeviceCollectives;
}  // namespace kiln::backend

namespace kiln::distribute {

class Communicator;
class DeviceGroup;

/// Whether this build of kiln has MPI (built with libopenmpi-dev installed); without it
/// MultiWorkerMirroredStrategy's constructor throws.
bool built_with_mpi();

/// Options of a strategy (MultiWorkerMirroredStrategyOptions, MirroredStrategyOptions).
struct StrategyOptions {
  /// Seconds a collective (a gradient all-reduce, an epoch's log reduction) may wait for every
  /// replica before fit throws naming the replicas that did not arrive, instead of hanging when one
  /// died or stopped. The environment variable KILN_COLLECTIVE_TIMEOUT (seconds) overrides it.
  double timeout_seconds = 300.0;
  /// Gradients are summed in buckets of about this many bytes, each all-reduce started as soon as
  /// its bucket is packed, so packing the next bucket overlaps the transfer of the previous one.
  /// (Replicas on GPUs sum every gradient in one buffer per type after backward, on the device.)
  int64_t bucket_bytes = int64_t{4} << 20;
  /// After every epoch, compares a checksum of every weight across replicas and throws naming the
  /// replicas that differ from replica 0 (a cheap debug check: the updates are meant to be
  /// bit-identical).
  bool check_replicas = false;
};

/// Options of MultiWorkerMirroredStrategy.
using MultiWorkerMirroredStrategyOptions = StrategyOptions;
/// Options of MirroredStrategy.
using MirroredStrategyOptions = StrategyOptions;

/// How fit spreads training over replicas. Each replica holds the whole model and the whole data
/// set; fit hands it one shard of every global batch.
class Strategy {
 public:
  virtual ~Strategy() = default;
  /// Number of replicas that train together (Keras' num_replicas_in_sync).
  virtual int num_replicas_in_sync() const = 0;
  /// This replica, 0 to num_replicas_in_sync() - 1 (its MPI rank; 0 for MirroredStrategy, whose
  /// process holds every replica and returns replica 0's results).
  virtual int rank() const = 0;
  /// True on replica 0, the one that prints and writes checkpoints (Keras' chief worker).
  bool is_chief() const { return rank() == 0; }
  /// The strategy's name in messages ("MultiWorkerMirroredStrategy").
  virtual std::string name() const = 0;
  /// The options in force (timeout_seconds after the environment override).
  virtual const StrategyOptions& options() const = 0;
  /// Collectives used by fit (kiln's internals: src/distribute/communicator.h).
  virtual Communicator& communicator() = 0;
  /// True where only replica 0 runs the callbacks and the other replicas take its decisions (the
  /// first epoch, a changed learning rate): replicas that are threads of one process (kiln's
  /// internals). False where every process runs its own callbacks.
  virtual bool callbacks_on_chief_only() const { return false; }
  /// The replicas' collectives on GPU `device` (kiln's internals: NCCL), formed at the first call;
  /// throws kiln::Error where the strategy or the build has none.
  virtual backend::DeviceCollectives& device_collectives(Device device);
};

/// One process per GPU or per CPU node, bootstrapped by MPI (mpirun -np N, mpirun --hostfile,
/// Slurm's srun): Keras' MultiWorkerMirroredStrategy. The first strategy made initializes MPI
/// unless the program did (then MPI is finalized at exit); every strategy works on its own
/// duplicate of MPI_COMM_WORLD. Every process must call fit with the same data, model and options.
/// A model on the CPU sums gradients through MPI; a model on a GPU (worker_device()) through NCCL,
/// on the GPU, inside the recorded step.
class MultiWorkerMirroredStrategy final : public Strategy {
 public:
  /// Joins MPI_COMM_WORLD; throws kiln::Error when kiln was built without MPI or a timeout or
  /// bucket size is not positive.
  explicit MultiWorkerMirroredStrategy(MultiWorkerMirroredStrategyOptions options = {});
  /// Frees the strategy's communicator (MPI itself is finalized at exit).
  ~MultiWorkerMirroredStrategy() override;
  MultiWorkerMirroredStrategy(const MultiWorkerMirroredStrategy&) = delete;
  MultiWorkerMirroredStrategy& operator=(const MultiWorkerMirroredStrategy&) = delete;

  /// The number of processes in MPI_COMM_WORLD.
  int num_replicas_in_sync() const override;
  /// This process's rank in MPI_COMM_WORLD.
  int rank() const override;
  /// "MultiWorkerMirroredStrategy".
  std::string name() const override { return "MultiWorkerMirroredStrategy"; }
  /// The MPI collectives (kiln's internals).
  Communicator& communicator() override { return *communicator_; }
  /// The NCCL group of the processes' GPUs (kiln's internals), formed at the first fit on a GPU.
  backend::DeviceCollectives& device_collectives(Device device) override;
  /// The device this process should train on: GPU (local rank modulo the GPUs of its host), where
  /// the host has GPUs, so that the processes of one host take one GPU each; else the CPU.
  ///   model.to(strategy->worker_device());
  Device worker_device() const;
  /// The options in force (timeout_seconds after the environment override).
  const StrategyOptions& options() const override { return options_; }

 private:
  StrategyOptions options_;
  std::unique_ptr<Communicator> communicator_;
  std::unique_ptr<DeviceGroup> device_group_;  // the NCCL group, formed at the first fit on a GPU
};

/// One process training one replica per local GPU, each on its own thread: Keras'
/// MirroredStrategy. fit trains the given model as replica 0 on devices()[0] and a copy of it on
/// each other device (rebuilt from its config, so every layer must have one, as for save()); the
/// copies start from the model's weights, optimizer state and generator, receive no callbacks (replica
/// 0 runs them and the others follow its learning rate and its decision to stop) and are dropped
/// when fit returns. GPU replicas sum gradients through NCCL, inside the recorded step; CPU
/// replicas through memory.
class MirroredStrategy final : public Strategy {
 public:
  /// Replicas on `devices`: every GPU of list_physical_devices("GPU") when empty, or the CPU alone
  /// when there is none. Throws kiln::Error for a GPU listed twice or missing, a list mixing the
  /// CPU with GPUs, or a timeout or bucket size that is not positive. The CPU may be listed more
  /// than once (replicas that share its cores: a data-parallel program tried on a machine without
  /// GPUs, slower than one replica).
  explicit MirroredStrategy(std::vector<Device> devices = {}, MirroredStrategyOptions options = {});

  /// devices().size().
  int num_replicas_in_sync() const override { return static_cast<int>(devices_.size()); }
  /// 0: the process holds every replica, and fit returns replica 0's History.
  int rank() const override { return 0; }
  /// "MirroredStrategy".
  std::string name() const override { return "MirroredStrategy"; }
  /// The options in force (timeout_seconds after the environment override).
  const StrategyOptions& options() const override { return options_; }
  /// Throws: fit gives each replica its own collectives (kiln's internals).
  Communicator& communicator() override;
  /// The replicas' devices, replica 0's first (the model's device when fit is called).
  const std::vector<Device>& devices() const { return devices_; }

 private:
  std::vector<Device> devices_;
  StrategyOptions options_;
};

}  // namespace kiln::distribute
