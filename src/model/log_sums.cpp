// LogSums: the total loss, and per-output losses and metrics for a model of several outputs.
#include "model/log_sums.h"

#include "model/loss_terms.h"

namespace kiln::model {

LogSums::LogSums(const std::vector<std::vector<std::string>>& metrics, std::vector<std::string> output_names,
                 Device device)
    : total_(metrics.size() == 1 ? metrics[0] : std::vector<std::string>{}, device),
      output_names_(std::move(output_names)) {
  if (metrics.size() > 1)
    for (const auto& list : metrics) outputs_.emplace_back(list, device);
}

void LogSums::reset() {
  total_.reset();
  for (auto& o : outputs_) o.reset();
}

void LogSums::add(const Tensor& total, const std::vector<Tensor>& output_losses, const std::vector<Tensor>& y_true,
                  const std::vector<Tensor>& y_pred) {
  // Metrics run in float32, as losses do (loss_terms.h).
  total_.add(total, y_true[0], in_float32(y_pred[0]));
  for (std::size_t i = 0; i < outputs_.size(); ++i) outputs_[i].add(output_losses[i], y_true[i], in_float32(y_pred[i]));
}

void LogSums::add_samples(int64_t n) {
  total_.add_samples(n);
  for (auto& o : outputs_) o.add_samples(n);
}

std::vector<std::pair<std::string, double>> LogSums::results() const {
  if (outputs_.empty()) return total_.results();
  std::vector<std::pair<std::string, double>> out;
  for (std::size_t i = 0; i < outputs_.size(); ++i)
    for (const auto& [name, value] : outputs_[i].results()) out.emplace_back(output_names_[i] + "_" + name, value);
  out.emplace_back("loss", total_.mean_loss());
  return out;
}

}  // namespace kiln::model
