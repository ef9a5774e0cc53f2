// MirroredStrategy's fit (see mirrored_fit.h).
#include "distribute/mirrored_fit.h"

#include <exception>
#include <memory>
#include <thread>

#include "distribute/strategy_support.h"
#include "distribute/thread_communicator.h"
#include "io/model_config.h"
#include "io/model_io.h"
#include "kiln/error.h"
#include "kiln/losses.h"

namespace kiln::distribute {

namespace {

// One replica of a MirroredStrategy: a rank of the process's ThreadGroup.
class LocalReplica final : public Strategy {
 public:
  LocalReplica(const StrategyOptions& options, ThreadGroup& group, int rank)
      : options_(options), comm_(group.member(rank)) {}
  ~LocalReplica() override { device_group_.reset(); }  // before work that may use it is gone
  LocalReplica(const LocalReplica&) = delete;
  LocalReplica& operator=(const LocalReplica&) = delete;

  int num_replicas_in_sync() const override { return comm_->size(); }
  int rank() const override { return comm_->rank(); }
  std::string name() const override { return "MirroredStrategy"; }
  const StrategyOptions& options() const override { return options_; }
  Communicator& communicator() override { return *comm_; }
  bool callbacks_on_chief_only() const override { return true; }
  backend::DeviceCollectives& device_collectives(Device device) override { return device_group_.get(*comm_, device); }

 private:
  StrategyOptions options_;
  std::unique_ptr<Communicator> comm_;
  DeviceGroup device_group_;
};

// A copy of `model` on `device`, compiled alike: its layers rebuilt from the model's config (its
// weights, optimizer state and generator come from replica 0 when fit starts).
Model replica_copy(const Model& model, Device device) {
  std::string config;
  try {
    config = io::model_config_json(model, -1);
  } catch (const Error& e) {
    throw Error("fit", "MirroredStrategy copies the model to each replica from its config, and " + e.message() +
                           "; expected layers that have a config (as save() needs)");
  }
  const io::ModelConfig parsed = io::parse_model_config(config, "the model's config");
  Model copy = io::build_model(parsed, "the model's config");
  copy.to(device);
  std::vector<LossRef> losses;
  for (const auto& loss : model.losses()) losses.emplace_back(*loss);
  copy.compile(*model.optimizer(), losses, model.output_metrics(), model.loss_weights());
  return copy;
}

}  // namespace

History fit_mirrored(MirroredStrategy& strategy, Model& model, const std::vector<Tensor>& x,
                     const std::vector<Tensor>& y, const FitOptions& options) {
  const std::vector<Device>& devices = strategy.devices();
  if (model.device() != devices.front())
    throw Error("fit", "the model is on " + model.device().str() + " but MirroredStrategy trains replica 0 on " +
                           devices.front().str() +
                           "; expected the model on the strategy's first device (model.to(strategy->devices()[0]))");
  const int n = strategy.num_replicas_in_sync();
  std::vector<Model> copies;
  copies.reserve(static_cast<std::size_t>(n - 1));
  for (int r = 1; r < n; ++r) copies.push_back(replica_copy(model, devices[static_cast<std::size_t>(r)]));

  ThreadGroup group(n, strategy.options().timeout_seconds);
  std::vector<std::shared_ptr<LocalReplica>> replicas;
  replicas.reserve(static_cast<std::size_t>(n));
  for (int r = 0; r < n; ++r) replicas.push_back(std::make_shared<LocalReplica>(strategy.options(), group, r));
  const auto run = [&](int r, Model& m, FitOptions o, History* out) {
    o.strategy = replicas[static_cast<std::size_t>(r)];
    try {
      History h = m.fit(x, y, o);
      if (out) *out = std::move(h);
    } catch (...) {
      group.abandon(r, std::current_exception());
    }
  };
  std::vector<std::thread> threads;
  History history;
  try {
    for (int r = 1; r < n; ++r)
      threads.emplace_back([&, r] { run(r, copies[static_cast<std::size_t>(r - 1)], options, nullptr); });
    run(0, model, options, &history);
  } catch (...) {  // a thread could not start: the started ones stop at their first collective
    group.abandon(0, std::current_exception());
  }
  for (std::thread& t : threads) t.join();
  if (const std::exception_ptr failure = group.first_failure()) std::rethrow_exception(failure);
  return history;
}

}  // namespace kiln::distribute
