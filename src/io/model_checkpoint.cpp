// ModelCheckpoint: saves after each epoch of fit, recording the epoch so training can resume.
#include <cmath>
#include <iostream>

#include "io/model_io.h"
#include "kiln/callbacks.h"
#include "kiln/error.h"

namespace kiln::callbacks {

ModelCheckpoint::ModelCheckpoint(std::string filepath, ModelCheckpointOptions options)
    : filepath_(std::move(filepath)), options_(std::move(options)) {
  if (filepath_.empty()) throw Error("ModelCheckpoint", "filepath is empty; expected a file name");
  if (options_.mode == "auto")
    maximize_ = options_.monitor.find("acc") != std::string::npos;  // Keras' rule
  else if (options_.mode == "max")
    maximize_ = true;
  else if (options_.mode != "min")
    throw Error("ModelCheckpoint", "mode \"" + options_.mode + "\" is unknown; expected \"auto\", \"min\" or \"max\"");
  best_ = maximize_ ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity();
}

std::string ModelCheckpoint::path_for(int epoch) const {
  std::string path = filepath_;
  const std::string key = "{epoch}";
  for (auto p = path.find(key); p != std::string::npos; p = path.find(key, p))
    path.replace(p, key.size(), std::to_string(epoch + 1));
  return path;
}

bool ModelCheckpoint::on_epoch_end(Model& model, int epoch, const std::map<std::string, double>& logs) {
  // load_model and checkpoint_epoch refuse a negative epoch, so it is never written.
  if (epoch < 0)
    throw Error("ModelCheckpoint",
                "epoch is " + std::to_string(epoch) + "; expected >= 0 (fit's 0-based epoch number)");
  const std::string path = path_for(epoch);
  std::string why;
  if (options_.save_best_only) {
    const auto it = logs.find(options_.monitor);
    if (it == logs.end()) {
      std::string names;
      for (const auto& [k, v] : logs) names += (names.empty() ? "" : ", ") + k;
      throw Error("ModelCheckpoint", "monitor \"" + options_.monitor + "\" is not among the epoch's logs (" + names +
                                         "); expected one of them (val_* logs need validation_data)");
    }
    const double v = it->second;
    const bool better = maximize_ ? v > best_ : v < best_;
    if (!better) {
      if (options_.verbose)
        std::cout << "\nEpoch " << epoch + 1 << ": " << options_.monitor << " did not improve from " << best_ << '\n';
      return true;
    }
    why = options_.monitor + " improved from " + std::to_string(best_) + " to " + std::to_string(v) + ", ";
    best_ = v;
  }
  if (options_.save_weights_only)
    io::save_weights(model, path, epoch);
  else
    io::save_model(model, path, epoch);
  if (options_.verbose) std::cout << "\nEpoch " << epoch + 1 << ": " << why << "saving model to " << path << '\n';
  return true;
}

}  // namespace kiln::callbacks
