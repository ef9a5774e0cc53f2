// Monitor: Keras' MonitorCallback (the watched log, its direction, min_delta).
#include <cmath>

#include "callbacks/python_repr.h"
#include "kiln/callbacks.h"
#include "kiln/error.h"

namespace kiln::callbacks {

namespace {

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// Keras' "auto": the direction of the metric without its "val_" prefix: down for "loss", up for
// the accuracies, down for the errors (Keras' metric _direction). Multi-output logs carry the
// output's name in front ("dense_1_loss", "dense_1_accuracy"), so the ending decides.
std::optional<bool> auto_maximize(const std::string& monitor) {
  const std::string name = monitor.starts_with("val_") ? monitor.substr(4) : monitor;
  if (name == "loss" || ends_with(name, "_loss")) return false;
  if (name == "acc" || ends_with(name, "_acc") || ends_with(name, "accuracy")) return true;
  for (const char* error : {"mae", "mse", "MAE", "MSE", "error"})
    if (name == error || ends_with(name, std::string("_") + error)) return false;
  return std::nullopt;
}

}  // namespace

Monitor::Monitor(std::string op, std::string monitor, const std::string& mode, double min_delta)
    : op_(std::move(op)), monitor_(std::move(monitor)), min_delta_(std::abs(min_delta)) {
  if (monitor_.empty()) throw Error(op_, "monitor is empty; expected the name of a log, e.g. \"val_loss\"");
  if (!std::isfinite(min_delta))
    throw Error(op_, "min_delta is " + detail::python_repr(min_delta) + "; expected a finite number");
  if (mode == "min" || mode == "max") {
    maximize_ = mode == "max";
  } else if (mode == "auto") {
    const auto direction = auto_maximize(monitor_);
    if (!direction)
      throw Error(op_, "mode \"auto\" cannot tell whether monitor \"" + monitor_ +
                           "\" should be minimized or maximized; expected mode \"min\" or \"max\"");
    maximize_ = *direction;
  } else {
    throw Error(op_, "mode \"" + mode + "\" is unknown; expected \"auto\", \"min\" or \"max\"");
  }
}

double Monitor::value(const Logs& logs) const {
  const auto it = logs.find(monitor_);
  if (it != logs.end()) return it->second;
  std::string names;
  for (const auto& [k, v] : logs) names += (names.empty() ? "" : ", ") + k;
  throw Error(op_, "monitor \"" + monitor_ + "\" is not among the epoch's logs (" + names +
                       "); expected one of them (val_* logs need validation_data)");
}

bool Monitor::is_improvement(double current, std::optional<double> reference) const {
  if (!reference) return true;
  // Keras: monitor_op(current - min_delta, reference), min_delta negated for "min".
  return maximize_ ? current - min_delta_ > *reference : current + min_delta_ < *reference;
}

}  // namespace kiln::callbacks
