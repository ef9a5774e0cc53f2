// RecordedBatches: the recording, its replays and the device-side batch state.
#include "model/recorded_batches.h"

#include "kiln/error.h"
#include "kiln/ops.h"

namespace kiln::model {

std::unique_ptr<RecordedBatches> RecordedBatches::make(const std::vector<Tensor>& x, const std::vector<Tensor>& y,
                                                       int64_t batch_size, int64_t shard_first, int64_t shard_rows) {
  auto& be = backend::get(x.front().device());
  if (!be.can_capture() || batch_size < 1 || x.front().size(0) < batch_size) return nullptr;
  if (shard_rows < 0) shard_rows = batch_size - shard_first;
  if (shard_first < 0 || shard_rows < 1 || shard_first + shard_rows > batch_size)
    throw Error("recorded_batches",
                "the shard [" + std::to_string(shard_first) + ", " + std::to_string(shard_first + shard_rows) +
                    ") is not a non-empty part of a batch of " + std::to_string(batch_size) + " rows");
  return std::unique_ptr<RecordedBatches>(new RecordedBatches(be, x, y, batch_size, shard_first, shard_rows));
}

RecordedBatches::RecordedBatches(backend::Backend& be, const std::vector<Tensor>& x, const std::vector<Tensor>& y,
                                 int64_t batch_size, int64_t shard_first, int64_t shard_rows)
    : be_(be), x_(x), y_(y), batch_size_(batch_size) {
  const Device device = x.front().device();
  order_ = Tensor::zeros({x.front().size(0)}, DType::Int32, device);
  batch_ = Tensor::zeros({batch_size}, DType::Int32, device);
  shard_ = batch_.slice_rows(shard_first, shard_first + shard_rows);
  index_ = static_cast<int64_t*>(be_.allocator().allocate(sizeof(int64_t)));  // no int64 tensors
}

RecordedBatches::~RecordedBatches() {
  graph_.reset();  // waits for the replays, then gives the recording's pool back
  be_.allocator().deallocate(index_, sizeof(int64_t));
}

void RecordedBatches::set_order(const std::vector<int32_t>& order) {
  if (static_cast<int64_t>(order.size()) != order_.numel())
    throw Error("recorded_batches", "the sample order has " + std::to_string(order.size()) + " entries; expected " +
                                        std::to_string(order_.numel()) + " (one per row)");
  // Fixed addresses: the recording reads them; the copy queues before the later replays.
  be_.copy_from_host(order_.raw_data(), order.data(), order.size() * sizeof(int32_t));
}

RecordedBatches::Ran RecordedBatches::run(int64_t step, const Body& body) {
  if (index_on_device_ != step) {
    be_.copy_from_host(index_, &step, sizeof(int64_t));
    index_on_device_ = step;
  }
  if (graph_) {
    graph_->launch();
    ++index_on_device_;
    return Ran::Replayed;
  }
  try {
    be_.begin_capture();
    try {
      be_.select_batch(static_cast<const int32_t*>(order_.raw_data()), index_, static_cast<int32_t*>(batch_.raw_data()),
                       batch_size_);
      const auto rows_of = [&](const std::vector<Tensor>& all) {
        std::vector<Tensor> out;
        out.reserve(all.size());
        for (const Tensor& t : all) out.push_back(take_rows(t, shard_));
        return out;
      };
      body(rows_of(x_), rows_of(y_));
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
  // Recording ran nothing: this first launch is the batch itself.
  graph_->launch();
  ++index_on_device_;
  return Ran::Recorded;
}

}  // namespace kiln::model
