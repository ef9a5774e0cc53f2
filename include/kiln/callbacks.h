/// Callbacks for fit (Keras' keras.callbacks) and resuming training from a checkpoint.
#pragma once

#include <limits>
#include <map>
#include <string>

#include "kiln/model.h"

namespace kiln {

/// The last finished epoch (0-based) recorded in a file written by callbacks::ModelCheckpoint, or
/// -1 when the file records none (Model::save and save_weights called outside fit). Resume with
///   kiln::Model model = kiln::load_model(path);
///   model.fit(x, y, {.epochs = total, .initial_epoch = kiln::checkpoint_epoch(path) + 1});
/// load_model restores the weights, the optimizer state and the random generator that shuffles
/// batches, so the resumed run repeats the uninterrupted one exactly (on the same device and
/// thread count). Throws kiln::Error when `path` is missing or not a kiln file.
int checkpoint_epoch(const std::string& path);

namespace callbacks {

/// Options of ModelCheckpoint, with Keras' defaults.
struct ModelCheckpointOptions {
  std::string monitor = "val_loss";  ///< the log compared when save_best_only
  bool save_best_only = false;       ///< save only when `monitor` improves on the best so far
  bool save_weights_only = false;    ///< save_weights instead of save (no config, optimizer or generator)
  std::string mode = "auto";         ///< "min", "max", or "auto": "max" for accuracies, else "min"
  int verbose = 0;                   ///< 1: print a line on each save
};

/// Saves the model after each epoch of fit, atomically: killed at any moment, the file at `filepath`
/// is a complete earlier checkpoint. "{epoch}" in `filepath` becomes the 1-based epoch number
/// (Keras' convention), keeping one file per epoch. The epoch is recorded in the file
/// (see checkpoint_epoch).
class ModelCheckpoint : public Callback {
 public:
  /// Saves to `filepath` (Model::save format unless options.save_weights_only).
  explicit ModelCheckpoint(std::string filepath, ModelCheckpointOptions options = {});
  /// Saves after `epoch` (0-based) when due; always returns true (never stops training).
  bool on_epoch_end(Model& model, int epoch, const std::map<std::string, double>& logs) override;
  /// The path the checkpoint of `epoch` (0-based) goes to.
  std::string path_for(int epoch) const;
  /// The best value of `monitor` seen so far (±infinity before the first epoch).
  double best() const { return best_; }

 private:
  std::string filepath_;
  ModelCheckpointOptions options_;
  bool maximize_ = false;
  double best_ = std::numeric_limits<double>::infinity();
};

}  // namespace callbacks
}  // namespace kiln
