/// Data-parallel training over several processes (Keras' tf.distribute names): a strategy given to
/// fit splits every global batch among the processes, sums their gradients and applies the same
/// update on each, so P processes at global batch B train like one process at batch B.
///
///   auto strategy = std::make_shared<kiln::distribute::MultiWorkerMirroredStrategy>();
///   model.fit(x, y, {.batch_size = 256, .strategy = strategy});   // mpirun -np 4 ./train
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "kiln/device.h"

namespace kiln::backend {
class DeviceCollectives;
}  // namespace kiln::backend

namespace kiln::distribute {

class Communicator;

/// Whether this build of kiln has MPI (built with libopenmpi-dev installed); without it
/// MultiWorkerMirroredStrategy's constructor throws.
bool built_with_mpi();

/// How fit spreads training over replicas. Each replica (one process) holds the whole model and
/// the whole data set; fit hands it one shard of every global batch.
class Strategy {
 public:
  virtual ~Strategy() = default;
  /// Number of replicas that train together (Keras' num_replicas_in_sync).
  virtual int num_replicas_in_sync() const = 0;
  /// This process's replica, 0 to num_replicas_in_sync() - 1 (its MPI rank).
  virtual int rank() const = 0;
  /// True on replica 0, the one that prints and writes checkpoints (Keras' chief worker).
  bool is_chief() const { return rank() == 0; }
  /// The strategy's name in messages ("MultiWorkerMirroredStrategy").
  virtual std::string name() const = 0;
  /// Collectives used by fit (kiln's internals: src/distribute/communicator.h).
  virtual Communicator& communicator() = 0;
  /// The replicas' collectives on GPU `device` (kiln's internals: NCCL), formed at the first call;
  /// throws kiln::Error where the strategy or the build has none.
  virtual backend::DeviceCollectives& device_collectives(Device device);
};

/// Options of MultiWorkerMirroredStrategy.
struct MultiWorkerMirroredStrategyOptions {
  /// Seconds a collective (a gradient all-reduce, an epoch's log reduction) may wait for every
  /// replica before fit throws naming the replicas that did not arrive, instead of hanging when one
  /// died or stopped. The environment variable KILN_COLLECTIVE_TIMEOUT (seconds) overrides it.
  double timeout_seconds = 300.0;
  /// Gradients are summed in buckets of about this many bytes, each all-reduce started as soon as
  /// its bucket is packed, so packing the next bucket overlaps the transfer of the previous one.
  int64_t bucket_bytes = int64_t{4} << 20;
  /// After every epoch, compares a checksum of every weight across replicas and throws naming the
  /// replicas that differ from replica 0 (a cheap debug check: the updates are meant to be
  /// bit-identical).
  bool check_replicas = false;
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
  const MultiWorkerMirroredStrategyOptions& options() const { return options_; }

 private:
  MultiWorkerMirroredStrategyOptions options_;
  std::unique_ptr<Communicator> communicator_;
  std::unique_ptr<backend::DeviceCollectives> device_collectives_;
  Device collectives_device_ = Device::cpu();
};

}  // namespace kiln::distribute
