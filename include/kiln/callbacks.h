/// Callbacks for fit (Keras' keras.callbacks): checkpoints, early stopping, learning-rate control,
/// CSV logs, stopping on NaN, and backups that a killed run resumes from.
#pragma once

#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <vector>

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

/// The logs fit passes to Callback::on_epoch_end: "loss", metrics, "val_" versions.
using Logs = std::map<std::string, double>;

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

/// Keras' MonitorCallback: which log a callback watches, which way is better, and by how much a
/// value must beat the best one to count as an improvement.
class Monitor {
 public:
  /// Watches log `monitor`; `mode` is "min", "max" or "auto" (Keras' rule: "min" for losses, "max"
  /// for accuracies, "min" for errors; any other name needs "min" or "max"). `min_delta` is taken
  /// as its absolute value, as Keras does. `op` names the callback in errors.
  Monitor(std::string op, std::string monitor, const std::string& mode, double min_delta);
  /// The monitored value of `logs`; throws kiln::Error naming the logs there are when it is
  /// missing (a val_* log without validation_data, a metric not compiled).
  double value(const Logs& logs) const;
  /// Keras' _is_improvement: `current` beats `reference` by more than min_delta in the monitored
  /// direction; true when there is no reference yet. A NaN never improves on a reference.
  bool is_improvement(double current, std::optional<double> reference) const;
  /// The log watched.
  const std::string& name() const { return monitor_; }
  /// True when larger values are better.
  bool maximize() const { return maximize_; }

 private:
  std::string op_, monitor_;
  bool maximize_ = false;
  double min_delta_ = 0.0;
};

/// Options of EarlyStopping, with Keras' defaults.
struct EarlyStoppingOptions {
  std::string monitor = "val_loss";  ///< the log watched
  double min_delta = 0.0;            ///< an improvement must exceed this (absolute value taken)
  int patience = 0;                  ///< epochs without improvement before stopping (>= 0)
  int verbose = 0;                   ///< 1: print when stopping and when restoring weights
  std::string mode = "auto";         ///< "min", "max" or "auto" (see Monitor)
  /// Training stops unless `monitor` beats this within `patience` epochs; the best epoch's weights
  /// are still restored with restore_best_weights, even when none beat it.
  std::optional<double> baseline = std::nullopt;
  /// At the end of training, copy back every weight (trainable or not) of the epoch where `monitor`
  /// was best. As in Keras 3 this happens whenever training ends normally, stopped or not (Keras 2
  /// restored only after stopping); not when fit throws.
  bool restore_best_weights = false;
  int start_from_epoch = 0;  ///< 0-based epochs before this one are not watched (warm-up; >= 0)
};

/// Stops training when `monitor` has not improved for `patience` epochs (Keras' EarlyStopping):
/// after each epoch from start_from_epoch on, an improvement resets the wait (only when it also
/// beats `baseline`), else the wait grows, and on_epoch_end returns false once wait >= patience
/// (never at epoch 0, as Keras).
class EarlyStopping : public Callback {
 public:
  /// Throws kiln::Error for a negative patience or start_from_epoch, a non-finite min_delta or
  /// baseline, an unknown mode, or an "auto" mode that cannot tell the direction of `monitor`.
  explicit EarlyStopping(EarlyStoppingOptions options = {});
  /// Resets the wait, the best value and the kept weights, so one object serves several fits.
  void on_train_begin(Model& model) override;
  /// Watches `monitor`; false stops training. Throws naming the logs when `monitor` is missing.
  bool on_epoch_end(Model& model, int epoch, const Logs& logs) override;
  /// Prints the stop (verbose) and restores the best weights (restore_best_weights).
  void on_train_end(Model& model) override;
  /// The 0-based epoch after which training was stopped, 0 when it was not (Keras' stopped_epoch).
  int stopped_epoch() const { return stopped_epoch_; }
  /// The 0-based epoch with the best value so far (0 before any).
  int best_epoch() const { return best_epoch_; }
  /// The best value so far (none before the first watched epoch).
  std::optional<double> best() const { return best_; }
  /// Epochs since the last improvement (Keras' wait).
  int wait() const { return wait_; }

 private:
  EarlyStoppingOptions options_;
  Monitor monitor_;
  int wait_ = 0, stopped_epoch_ = 0, best_epoch_ = 0;
  std::optional<double> best_;
  std::vector<std::vector<Tensor>> best_weights_;  // per layer, named_weights() order; empty: none
};

/// Options of ReduceLROnPlateau, with Keras' defaults.
struct ReduceLROnPlateauOptions {
  std::string monitor = "val_loss";  ///< the log watched
  double factor = 0.1;               ///< new learning rate = rate * factor (0 <= factor < 1)
  int patience = 10;                 ///< epochs without improvement before reducing (>= 0)
  int verbose = 0;                   ///< 1: print each reduction
  std::string mode = "auto";         ///< "min", "max" or "auto" (see Monitor)
  double min_delta = 1e-4;           ///< an improvement must exceed this (absolute value taken)
  /// Epochs of cooldown after a reduction (>= 0). Keras counts it down at the start of each
  /// epoch's check, so the next cooldown - 1 epochs count nothing (cooldown 1 changes nothing).
  int cooldown = 0;
  double min_lr = 0.0;  ///< the learning rate never goes below this (>= 0)
};

/// Multiplies the optimizer's learning rate by `factor` when `monitor` has not improved for
/// `patience` epochs (Keras' ReduceLROnPlateau), through Optimizer::set_learning_rate, so the
/// next epoch's steps use the new rate. The rate is read as Keras reads its float32 variable
/// (rounded to float32), which makes the printed rates and the min_lr test Keras'.
///
/// Keras also writes the rate into the epoch's logs ("learning_rate", hence into History and
/// CSVLogger); kiln's on_epoch_end gets the logs read-only, so the rate is not logged: read it with
/// model.optimizer()->learning_rate().
class ReduceLROnPlateau : public Callback {
 public:
  /// Throws kiln::Error for factor outside [0, 1), a negative patience, cooldown or min_lr, an
  /// unknown mode, or an "auto" mode that cannot tell the direction of `monitor`.
  explicit ReduceLROnPlateau(ReduceLROnPlateauOptions options = {});
  /// Resets the best value, the wait and the cooldown; throws when the optimizer's learning rate
  /// cannot be set (a schedule, or an optimizer without one).
  void on_train_begin(Model& model) override;
  /// Watches `monitor` and reduces the rate when due; always returns true. Throws naming the logs
  /// when `monitor` is missing.
  bool on_epoch_end(Model& model, int epoch, const Logs& logs) override;
  /// The best value so far (none before the first epoch).
  std::optional<double> best() const { return best_; }
  /// Epochs without improvement counted so far (Keras' wait).
  int wait() const { return wait_; }
  /// Epochs of cooldown left (Keras' cooldown_counter).
  int cooldown_counter() const { return cooldown_counter_; }

 private:
  ReduceLROnPlateauOptions options_;
  Monitor monitor_;
  std::optional<double> best_;
  int wait_ = 0, cooldown_counter_ = 0;
};

/// Sets the learning rate at the beginning of every epoch to schedule(epoch, rate) (Keras'
/// LearningRateScheduler), where `epoch` is 0-based and `rate` is the current rate (as Keras'
/// float32 variable holds it). Keras' "learning_rate" log is not written (see ReduceLROnPlateau).
class LearningRateScheduler : public Callback {
 public:
  /// The schedule of (epoch, current rate); `verbose` 1 prints each rate set. Throws kiln::Error
  /// for an empty schedule or a negative verbose.
  explicit LearningRateScheduler(std::function<double(int epoch, double lr)> schedule, int verbose = 0);
  /// A schedule of the epoch alone (Keras' older form).
  explicit LearningRateScheduler(std::function<double(int epoch)> schedule, int verbose = 0);
  /// Throws when the optimizer's learning rate cannot be set (a schedule, or none).
  void on_train_begin(Model& model) override;
  /// Sets the rate; throws kiln::Error when the schedule returns a NaN, an infinity or a negative
  /// number.
  void on_epoch_begin(Model& model, int epoch) override;

 private:
  std::function<double(int, double)> schedule_;
  int verbose_;
};

/// Options of CSVLogger, with Keras' defaults.
struct CSVLoggerOptions {
  std::string separator = ",";  ///< one character, not a double quote or a line break
  bool append = false;          ///< append to an existing file (its header is kept) instead of replacing it
};

/// Writes one CSV row per epoch (Keras' CSVLogger), flushed after each row so a killed run keeps
/// every finished epoch. The header is "epoch" then the first epoch's log names, sorted; when those
/// hold no val_* name, a val_ column is added for each (Keras' rule) and filled with "NA", as is any
/// log missing from a later epoch. Numbers are written as Python's repr writes them (shortest
/// round trip: 0.5, 1e-05, nan) and rows end with CR LF (Python's csv module), so the file equals
/// Keras'. With append, the header is written only when the file is new or empty.
class CSVLogger : public Callback {
 public:
  /// Logs to `filename`; throws kiln::Error for an empty name or a bad separator.
  explicit CSVLogger(std::string filename, CSVLoggerOptions options = {});
  /// Opens (append) or replaces the file; throws naming the path and the system's reason.
  void on_train_begin(Model& model) override;
  /// Writes the epoch's row (0-based epoch number) and flushes it; always returns true.
  bool on_epoch_end(Model& model, int epoch, const Logs& logs) override;
  /// Closes the file.
  void on_train_end(Model& model) override;

 private:
  std::string filename_;
  CSVLoggerOptions options_;
  std::ofstream file_;
  std::vector<std::string> keys_;  // the columns after "epoch"; empty until the first row
  bool write_header_ = true;
  bool started_ = false;  // keys_ chosen and the header written (when due)
};

/// Options of TerminateOnNaN, with Keras' defaults.
struct TerminateOnNaNOptions {
  bool raise_error = false;  ///< throw kiln::NonFiniteError instead of stopping training
};

/// Stops training when the epoch's "loss" log is NaN or infinite (Keras' TerminateOnNaN), printing
/// Keras' "Invalid loss, terminating training". Keras checks after every batch; kiln checks the
/// loss fit hands to on_epoch_end.
///
/// fit itself stops at the first non-finite training loss by throwing kiln::NonFiniteError (at its
/// step on the CPU, where reading the loss costs nothing; at the next progress update or epoch end
/// on a GPU), which is what raise_error asks for. So with today's fit a non-finite loss ends fit
/// with that exception before any callback sees it, and this callback stops nothing; it acts on
/// logs handed to it directly, and once fit hands a non-finite loss to its callbacks (see
/// stops_on_non_finite_loss) it turns the exception into Keras' graceful stop.
class TerminateOnNaN : public Callback {
 public:
  /// Keras' TerminateOnNaN(raise_error).
  explicit TerminateOnNaN(TerminateOnNaNOptions options = {}) : options_(options) {}
  /// False (stop) when logs["loss"] is NaN or infinite; with raise_error, throws
  /// kiln::NonFiniteError instead.
  bool on_epoch_end(Model& model, int epoch, const Logs& logs) override;
  /// True unless raise_error: fit should end the epoch at a non-finite loss and pass it to the
  /// callbacks instead of throwing (a hook fit does not ask yet).
  bool stops_on_non_finite_loss() const { return !options_.raise_error; }

 private:
  TerminateOnNaNOptions options_;
};

/// Options of BackupAndRestore, with Keras' defaults.
struct BackupAndRestoreOptions {
  /// When to back up: "epoch", at every epoch's end. Keras' integer (every n batches) is refused:
  /// fit calls callbacks per epoch only.
  std::string save_freq = "epoch";
  /// Remove the backup when training ends normally (also after a callback stopped it), so the next
  /// fit starts afresh; a fit that throws or is killed keeps it.
  bool delete_checkpoint = true;
};

/// Fault tolerance (Keras' BackupAndRestore): after every epoch saves the whole training state to
/// `backup_dir`/latest.kiln (Model::save's format, written atomically, with the epoch recorded);
/// when fit starts and a backup is there, loads the weights (trainable or not), the optimizer's
/// slots, iterations and learning rate, and the model's random generator into the model, and fit
/// goes on with the epoch after the backup's. Rerunning the same fit call after a crash or a kill
/// therefore finishes the training as an uninterrupted run would have, bit for bit (the History it
/// returns holds the epochs it ran).
///
/// The backup replaces Keras' latest.weights.h5 + training_metadata.json: one file holds both, so
/// they cannot disagree, and Keras' double_checkpoint is not needed. The model must be one that
/// Model::save can write (a registered class for every layer, a saveable learning rate). The
/// backup belongs to the model that wrote it: a model whose layers, weights or optimizer class
/// differ is refused.
///
/// fit starts at the epoch resume_epoch() returns (see there); callbacks' states other than the
/// model's (EarlyStopping's wait, ...) start afresh, as in Keras.
class BackupAndRestore : public Callback {
 public:
  /// Backs up into `backup_dir` (created when needed). Throws kiln::Error for an empty directory
  /// name or a save_freq other than "epoch".
  explicit BackupAndRestore(std::string backup_dir, BackupAndRestoreOptions options = {});
  /// Restores the backup, when there is one, into `model`; throws kiln::Error when it cannot be
  /// read or does not fit the model (nothing of the model is changed then).
  void on_train_begin(Model& model) override;
  /// Saves the model and `epoch`; always returns true.
  bool on_epoch_end(Model& model, int epoch, const Logs& logs) override;
  /// Removes the backup (delete_checkpoint), and `backup_dir` when nothing else is in it (Keras
  /// removes the whole directory).
  void on_train_end(Model& model) override;
  /// The 0-based epoch fit must start at: the one after the restored backup's, or -1 when
  /// on_train_begin found no backup. fit asks it after every callback's on_train_begin and starts
  /// there instead of at FitOptions::initial_epoch (Keras: model._initial_epoch).
  int resume_epoch(Model& model) override;
  /// The backup file: `backup_dir`/latest.kiln.
  std::string backup_path() const;

 private:
  std::string dir_;
  BackupAndRestoreOptions options_;
  int resume_epoch_ = -1;
};

}  // namespace callbacks
}  // namespace kiln
