// Loss and metric accumulation on the device.
#include "metrics/metrics.h"

#include "backend/backend.h"
#include "kiln/autograd.h"
#include "kiln/error.h"
#include "kiln/ops.h"

namespace kiln::metrics {

std::string canonical_name(const std::string& name) {
  if (name == "accuracy" || name == "acc" || name == "sparse_categorical_accuracy") return "accuracy";
  throw Error("compile", "unknown metric '" + name + "'; expected \"accuracy\" (sparse categorical accuracy)");
}

Accumulator::Accumulator(const std::vector<std::string>& metric_names, Device device) : device_(device) {
  for (const auto& n : metric_names) names_.push_back(canonical_name(n));
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
  for (std::size_t i = 0; i < names_.size(); ++i) {
    // accuracy: argmax of the prediction row equals the integer label
    const Tensor pred = y_pred.dtype() == DType::Float32 ? y_pred.detach() : y_pred.detach().astype(DType::Float32);
    const Tensor labels = y_true.reshape({n});
    if (labels.dtype() != DType::Int32 || pred.ndim() != 2)
      throw Error("accuracy", "needs integer class labels [N] and predictions [N, classes]; got labels " +
                                  labels.shape().str() + " " + dtype_name(labels.dtype()) + " and predictions " +
                                  pred.shape().str());
    be.accuracy_sum(DType::Float32, pred.raw_data(), static_cast<const int32_t*>(labels.raw_data()),
                    metric_sums_[i].raw_data(), n, pred.size(1));
  }
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
