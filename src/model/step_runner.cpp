// Batches (how a pass cuts its dataset) and the eager runner.
#include "model/step_runner.h"

#include <algorithm>
#include <numeric>

#include "kiln/ops.h"

namespace kiln::model {

Batches::Batches(Tensors x, Tensors y, int64_t batch_size)
    : x_(std::move(x)), y_(std::move(y)), batch_size_(batch_size), order_(static_cast<std::size_t>(samples())) {
  std::iota(order_.begin(), order_.end(), 0);
}

void Batches::set_order(std::vector<int32_t> order) {
  order_ = std::move(order);
  order_on_device_ = Tensor::from_vector(order_, x_.front().device());
}

int64_t Batches::rows(int64_t step) const {
  const int64_t begin = step * batch_size_;
  return std::min(samples(), begin + batch_size_) - begin;
}

void Batches::set_shard(int rank, int replicas) {
  rank_ = rank;
  replicas_ = replicas;
}

std::pair<int64_t, int64_t> Batches::shard_range(int64_t step) const {
  const int64_t first = step * batch_size_, n = rows(step);
  return {first + n * rank_ / replicas_, first + n * (rank_ + 1) / replicas_};
}

std::pair<Tensors, Tensors> Batches::batch(int64_t step) const {
  const auto range = shard_range(step);
  const int64_t begin = range.first, end = range.second;
  const Tensor idx = order_on_device_.defined() ? order_on_device_.slice_rows(begin, end) : Tensor();
  const auto rows_of = [&](const Tensors& all) {
    Tensors out;
    for (const Tensor& t : all) out.push_back(idx.defined() ? take_rows(t, idx) : t.slice_rows(begin, end));
    return out;
  };
  return {rows_of(x_), rows_of(y_)};
}

bool EagerStep::run(int64_t step) {
  const auto [xb, yb] = batches_.batch(step);
  work_.eager(step, xb, yb);
  return true;
}

}  // namespace kiln::model
