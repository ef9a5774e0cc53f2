// GraphStep: fit's recorded batch loop plus the optimizer's device-side update.
#include "model/graph_step.h"

namespace kiln::model {

std::unique_ptr<GraphStep> GraphStep::make(Optimizer& opt, const std::vector<Tensor>& params, const Tensor& x,
                                           const Tensor& y, int64_t batch_size) {
  auto batches = RecordedBatches::make(x, y, batch_size);
  if (!batches) return nullptr;
  const int64_t full_batches = x.size(0) / batch_size;
  auto update = optimizers::DeviceUpdate::make(opt, params, full_batches);
  if (!update) return nullptr;
  return std::unique_ptr<GraphStep>(new GraphStep(std::move(update), std::move(batches), full_batches));
}

GraphStep::GraphStep(std::unique_ptr<optimizers::DeviceUpdate> update, std::unique_ptr<RecordedBatches> batches,
                     int64_t full_batches)
    : update_(std::move(update)), batches_(std::move(batches)), full_batches_(full_batches) {}

void GraphStep::start_epoch(const std::vector<int32_t>& order, int64_t first_iteration) {
  batches_->set_order(order);
  update_->prepare(first_iteration, full_batches_);
}

GraphStep::Ran GraphStep::run(int64_t step, const Body& body) {
  const Ran ran = batches_->run(step, [&](const Tensor& xb, const Tensor& yb) {
    body(xb, yb);
    update_->queue(batches_->counter());
  });
  if (ran != Ran::Failed) ++unsettled_;
  return ran;
}

void GraphStep::settle(Optimizer& opt) {
  if (!unsettled_) return;
  opt.restore(opt.slots(), opt.iterations() + unsettled_);
  unsettled_ = 0;
}

}  // namespace kiln::model
