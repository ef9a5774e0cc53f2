// GraphStep: recording, replay and the device-side step state of fit's recorded training step.
#include "model/graph_step.h"

#include "kiln/error.h"
#include "kiln/ops.h"

namespace kiln::model {

std::unique_ptr<GraphStep> GraphStep::make(Optimizer& opt, const std::vector<Tensor>& params, const Tensor& x,
                                           const Tensor& y, int64_t batch_size) {
  auto& be = backend::get(x.device());
  if (!be.can_capture() || x.size(0) < batch_size) return nullptr;
  auto update = optimizers::DeviceUpdate::make(opt, params, x.size(0) / batch_size);
  if (!update) return nullptr;
  return std::unique_ptr<GraphStep>(new GraphStep(be, std::move(update), x, y, batch_size));
}

GraphStep::GraphStep(backend::Backend& be, std::unique_ptr<optimizers::DeviceUpdate> update, const Tensor& x,
                     const Tensor& y, int64_t batch_size)
    : be_(be), update_(std::move(update)), x_(x), y_(y), batch_size_(batch_size) {
  order_ = Tensor::zeros({x.size(0)}, DType::Int32, x.device());
  batch_ = Tensor::zeros({batch_size}, DType::Int32, x.device());
  index_ = static_cast<int64_t*>(be_.allocator().allocate(sizeof(int64_t)));  // no int64 tensors
}

GraphStep::~GraphStep() {
  graph_.reset();  // waits for the replays, then gives the recording's pool back
  be_.allocator().deallocate(index_, sizeof(int64_t));
}

void GraphStep::start_epoch(const std::vector<int32_t>& order, int64_t first_iteration) {
  if (static_cast<int64_t>(order.size()) != order_.numel())
    throw Error("fit", "epoch order has " + std::to_string(order.size()) + " entries; expected " +
                           std::to_string(order_.numel()));
  // Fixed addresses: the recording reads them; the copies queue before this epoch's replays.
  be_.copy_from_host(order_.raw_data(), order.data(), order.size() * sizeof(int32_t));
  update_->prepare(first_iteration, order_.numel() / batch_size_);
  index_on_device_ = -1;
}

GraphStep::Ran GraphStep::run(int64_t step, const Body& body) {
  if (index_on_device_ != step) {
    be_.copy_from_host(index_, &step, sizeof(int64_t));
    index_on_device_ = step;
  }
  if (graph_) {
    graph_->launch();
    ++index_on_device_;
    ++unsettled_;
    return Ran::Replayed;
  }
  try {
    be_.begin_capture();
    try {
      be_.select_batch(static_cast<const int32_t*>(order_.raw_data()), index_,
                       static_cast<int32_t*>(batch_.raw_data()), batch_size_);
      body(take_rows(x_, batch_), take_rows(y_, batch_));
      update_->queue(index_);
      be_.advance_counter(index_);
    } catch (...) {
      be_.abort_capture();
      throw;
    }
    graph_ = be_.end_capture();
  } catch (const std::exception& e) {
    failure_ = e.what();
    index_on_device_ = -1;
    return Ran::Failed;
  }
  // Recording ran nothing: this first launch is the step itself.
  graph_->launch();
  ++index_on_device_;
  ++unsettled_;
  return Ran::Recorded;
}

void GraphStep::settle(Optimizer& opt) {
  if (!unsettled_) return;
  opt.restore(opt.slots(), opt.iterations() + unsettled_);
  unsettled_ = 0;
}

}  // namespace kiln::model
