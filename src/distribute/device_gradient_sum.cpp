// DeviceGradientSum (see device_gradient_sum.h): one flat buffer per dtype, so each step makes one
// NCCL all-reduce per dtype after backward (NCCL splits and pipelines a large buffer itself).
#include "distribute/device_gradient_sum.h"

#include <algorithm>

#include "kiln/error.h"
#include "tensor/tensor_impl.h"

namespace kiln::distribute {

DeviceGradientSum::DeviceGradientSum(backend::DeviceCollectives& group, std::vector<Tensor> statistics,
                                     std::vector<Tensor> counters, int replicas)
    : group_(group), statistics_(std::move(statistics)), counters_(std::move(counters)), replicas_(replicas) {}

void DeviceGradientSum::make_buffers(const std::vector<Tensor>& params) {
  // Parameters first, then the statistics, each in the buffer of its dtype.
  std::vector<Slot> order;
  for (std::size_t i = 0; i < params.size(); ++i) order.push_back({Tensor(), i, params[i]});
  for (const Tensor& s : statistics_) order.push_back({s, 0, s});
  for (const Slot& s : order) {
    const DType dt = s.view.dtype();
    if (dt != DType::Float32 && dt != DType::Float64)
      throw Error("fit", "a weight is " + dtype_name(dt) + "; expected float32 or float64 under a strategy");
    auto it = std::find_if(flats_.begin(), flats_.end(), [dt](const Flat& f) { return f.dtype == dt; });
    if (it == flats_.end()) it = flats_.insert(flats_.end(), Flat{dt, Tensor(), {}});
    it->slots.push_back(s);
  }
  for (Flat& f : flats_) {
    int64_t total = 0;
    for (const Slot& s : f.slots) total += s.view.numel();
    f.buffer = Tensor::zeros({total}, f.dtype, params.front().device());
    int64_t at = 0;
    for (Slot& s : f.slots) {
      const int64_t n = s.view.numel();
      s.view = f.buffer.slice_rows(at, at + n).reshape(s.view.shape());
      at += n;
    }
  }
  has_grad_.resize(params.size());
  for (std::size_t i = 0; i < params.size(); ++i) has_grad_[i] = params[i].grad().defined();
}

void DeviceGradientSum::run(std::vector<Tensor>& params, int64_t rows, int64_t global_rows, int ranks_with_rows) {
  if (params.empty() && statistics_.empty()) return;
  if (flats_.empty()) {
    if (rows == 0)
      throw Error("fit", "the first step's shard is empty; expected every replica to train on rows of its first batch");
    make_buffers(params);
  }
  auto& be = backend::get(flats_.front().buffer.device());
  // This replica's mean loss covers `rows` of `global_rows`: its share of the global mean.
  const double scale = global_rows > 0 ? static_cast<double>(rows) / static_cast<double>(global_rows) : 0.0;
  // One multi-part copy per buffer each way: a kernel per gradient would cost more than the sum
  // itself on one GPU (bench/README.md).
  std::vector<backend::ScaledCopy> copies;
  for (Flat& f : flats_) {
    copies.clear();
    for (Slot& s : f.slots) {
      // A replica without rows did not update its statistics: it adds zeros and is not counted.
      const bool statistic = s.statistic.defined();
      const Tensor src = statistic ? (rows > 0 ? s.statistic : Tensor()) : params[s.param].grad();
      copies.push_back(
          {src.defined() ? src.raw_data() : nullptr, s.view.raw_data(), s.view.numel(), statistic ? 1.0 : scale});
    }
    be.scaled_copy_multi(f.dtype, copies.data(), static_cast<int>(copies.size()));
    group_.all_reduce(f.dtype, f.buffer.raw_data(), f.buffer.numel(), /*max=*/false);
  }
  // A replica with an empty shard did not advance its random layers' counters: take the furthest.
  if (ranks_with_rows < replicas_)
    for (Tensor& c : counters_) group_.all_reduce(DType::Int64, c.raw_data(), c.numel(), /*max=*/true);
  for (Flat& f : flats_) {
    copies.clear();
    for (Slot& s : f.slots) {
      if (s.statistic.defined()) {
        Tensor dst = s.statistic;  // in place: a recorded step needs every weight's storage kept
        copies.push_back({s.view.raw_data(), dst.raw_data(), s.view.numel(), 1.0 / ranks_with_rows});
      } else if (has_grad_[s.param]) {
        params[s.param].impl()->grad = s.view;
      }
    }
    be.scaled_copy_multi(f.dtype, copies.data(), static_cast<int>(copies.size()));
  }
}

}  // namespace kiln::distribute
