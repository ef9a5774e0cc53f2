// Callbacks of the CIFAR-10 examples: EpochReporter prints each epoch's test accuracy and rewrites
// the history files (CSV, SVG chart) after every epoch, so an interrupted run keeps what it learned;
// EpochTimer times each epoch.
#pragma once

#include <kiln/kiln.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "history_files.h"

namespace examples {

class EpochReporter : public kiln::Callback {
 public:
  /// Prints "epoch e/epochs: ..."; writes `csv` and `svg` when not empty.
  EpochReporter(int epochs, std::string csv, std::string svg)
      : epochs_(epochs), csv_(std::move(csv)), svg_(std::move(svg)) {}
  bool on_epoch_end(kiln::Model&, int epoch, const std::map<std::string, double>& logs) override {
    if (logs.count("val_accuracy"))
      std::printf("epoch %d/%d: test accuracy %.4f (train accuracy %.4f, loss %.4f)\n", epoch + 1, epochs_,
                  logs.at("val_accuracy"), logs.at("accuracy"), logs.at("loss"));
    else
      std::printf("epoch %d/%d: train accuracy %.4f, loss %.4f\n", epoch + 1, epochs_, logs.at("accuracy"),
                  logs.at("loss"));
    std::fflush(stdout);
    history_.epoch.push_back(epoch);
    for (const auto& [k, v] : logs) history_.history[k].push_back(v);
    if (!csv_.empty()) write_history_csv(history_, csv_);
    if (!svg_.empty()) write_history_svg(history_, svg_);
    return true;
  }

 private:
  int epochs_;
  std::string csv_, svg_;
  kiln::History history_;
};

// Wall time of each epoch's training (fit reads the epoch's loss back at its end, so the GPU's work
// is done when on_epoch_end runs). The time includes an evaluation of validation_data, if given.
class EpochTimer : public kiln::Callback {
 public:
  void on_epoch_begin(kiln::Model&, int) override { start_ = std::chrono::steady_clock::now(); }
  bool on_epoch_end(kiln::Model&, int, const std::map<std::string, double>&) override {
    seconds_.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
    return true;
  }
  // The median epoch after the first (which records the step and picks cuDNN's algorithms).
  double median_after_first() const {
    std::vector<double> s(seconds_.begin() + (seconds_.size() > 1 ? 1 : 0), seconds_.end());
    std::sort(s.begin(), s.end());
    return s.empty() ? 0.0 : s[s.size() / 2];
  }

 private:
  std::chrono::steady_clock::time_point start_;
  std::vector<double> seconds_;
};

}  // namespace examples
