// Loss and metric accumulation on the device.
#include "metrics/metrics.h"

#include "backend/backend.h"
#include "kiln/autograd.h"
#include "kiln/error.h"
#include "kiln/metrics.h"
#include "kiln/ops.h"

namespace kiln::metrics {

std::string canonical_name(const std::string& name) {
  if (!metric_registry().contains(name)) throw Error("compile", metric_registry().unknown(name));
  return get(name)->name();
}

Accumulator::Accumulator(const std::vector<std::string>& metric_names, Device device) : device_(device) {
  for (const auto& n : metric_names) {
    metrics_.push_back(get(n));
    names_.push_back(metrics_.back()->name());
  }
  reset();
}

void Accumulator::reset() {
  // Zeroed in place after the first time: a recorded training step adds into these addresses.
  if (loss_sum_.defined()) {
    auto& be = backend::get(device_);
    be.fill(loss_sum_.dtype(), loss_sum_.raw_data(), 1, 0.0);
    for (Tensor& t : metric_sums_) be.fill(t.dtype(), t.raw_data(), 1, 0.0);
    samples_ = 0;
    return;
  }
  // Float64 on the CPU keeps long epochs exact; the GPU kernels accumulate in float32.
  const DType dt = device_.is_cpu() ? DType::Float64 : DType::Float32;
  loss_sum_ = Tensor::zeros({}, dt, device_);
  metric_sums_.clear();
  for (std::size_t i = 0; i < names_.size(); ++i) metric_sums_.push_back(Tensor::zeros({}, DType::Float32, device_));
  samples_ = 0;
}

void Accumulator::add(const Tensor& loss, const Tensor& y_true, const Tensor& y_pred) {
  NoGradGuard no_grad;
  const int64_t n = y_pred.size(0);
  auto& be = backend::get(device_);
  const Tensor weighted = mul(loss.detach(), static_cast<double>(n)).astype(loss_sum_.dtype());
  be.binary(backend::BinaryOp::Add, loss_sum_.dtype(), loss_sum_.raw_data(), 1, weighted.raw_data(), 1,
            loss_sum_.raw_data(), 1);
  for (std::size_t i = 0; i < metrics_.size(); ++i) metrics_[i]->add_batch_sum(y_true, y_pred, metric_sums_[i]);
  samples_ += n;
}

double Accumulator::mean_loss() const { return samples_ ? loss_sum_.item() / static_cast<double>(samples_) : 0.0; }

std::vector<std::pair<std::string, double>> Accumulator::results() const {
  std::vector<std::pair<std::string, double>> out;
  for (std::size_t i = 0; i < names_.size(); ++i)
    out.emplace_back(names_[i], samples_ ? metric_sums_[i].item() / static_cast<double>(samples_) : 0.0);
  out.emplace_back("loss", mean_loss());
  return out;
}

}  // namespace kiln::metrics
