// BackupAndRestore: the training state saved after every epoch (io::save_model, atomic, with the
// epoch) and copied back into the model when fit starts again.
#include <filesystem>
#include <map>
#include <optional>

#include "io/model_io.h"
#include "kiln/callbacks.h"
#include "kiln/error.h"
#include "kiln/optimizers.h"

namespace kiln::callbacks {

namespace fs = std::filesystem;

namespace {

constexpr const char* kOp = "BackupAndRestore";
constexpr const char* kFile = "latest.kiln";

[[noreturn]] void mismatch(const std::string& path, const std::string& what) {
  throw Error(kOp, "the backup " + path + " does not fit the model: " + what +
                       "; expected the model that wrote it (remove the backup to start training afresh)");
}

// Whether a Keras optimizer's learning rate is a schedule (none for other optimizers).
std::optional<bool> rate_is_schedule(const Optimizer& opt) {
  const auto* keras = dynamic_cast<const optimizers::KerasOptimizer*>(&opt);
  if (!keras) return std::nullopt;
  return keras->common().learning_rate.is_schedule();
}

// Copies the training state of `saved` (the backup at `path`) into `model`: every weight, the
// optimizer's slots, iteration count and learning rate, and the model's generator. Everything is
// checked before anything is copied, so a backup that does not fit changes nothing.
void restore_training_state(Model& model, const Model& saved, const std::string& path) {
  std::map<std::string, const Layer*> saved_layers;
  for (const auto& layer : saved.layers()) saved_layers[layer->name()] = layer.get();
  if (saved_layers.size() != model.layers().size())
    mismatch(path, "it holds " + std::to_string(saved_layers.size()) + " layers, the model " +
                       std::to_string(model.layers().size()));
  std::vector<std::pair<Layer*, std::pair<std::string, Tensor>>> plan;
  for (const auto& layer : model.layers()) {
    const auto it = saved_layers.find(layer->name());
    if (it == saved_layers.end()) mismatch(path, "it has no layer " + layer->name());
    const auto mine = layer->named_weights(), theirs = it->second->named_weights();
    if (mine.size() != theirs.size())
      mismatch(path, "layer " + layer->name() + " has " + std::to_string(theirs.size()) + " weights there, " +
                         std::to_string(mine.size()) + " in the model");
    for (std::size_t i = 0; i < mine.size(); ++i) {
      if (mine[i].first != theirs[i].first || mine[i].second.shape() != theirs[i].second.shape())
        mismatch(path, "weight " + layer->name() + "/" + theirs[i].first + " " + theirs[i].second.shape().str() +
                           " there, " + layer->name() + "/" + mine[i].first + " " + mine[i].second.shape().str() +
                           " in the model");
      plan.push_back({layer.get(), theirs[i]});
    }
  }
  Optimizer& opt = *model.optimizer();
  const Optimizer* saved_opt = saved.optimizer();
  if (!saved_opt) mismatch(path, "it holds no optimizer");
  if (saved_opt->class_name() != opt.class_name())
    mismatch(path,
             "it was trained with " + saved_opt->class_name() + ", the model is compiled with " + opt.class_name());
  const std::vector<Tensor> params = model.trainable_weights();
  const auto& slots = saved_opt->slots();
  if (!slots.empty() && slots.size() != params.size())
    mismatch(path, "its optimizer holds slots for " + std::to_string(slots.size()) + " weights, the model has " +
                       std::to_string(params.size()) + " trainable weights");
  const auto schedule = rate_is_schedule(opt), saved_schedule = rate_is_schedule(*saved_opt);
  if (schedule && saved_schedule && *schedule != *saved_schedule)
    mismatch(path, std::string("its learning rate is ") + (*saved_schedule ? "a schedule" : "a number") +
                       ", the model's " + (*schedule ? "a schedule" : "a number"));
  // A number may have been changed by ReduceLROnPlateau or LearningRateScheduler; a schedule
  // follows the restored iteration count by itself.
  const bool set_rate = schedule && saved_schedule && !*schedule;

  // Weights in place (a kept recording of evaluate still sees them); slots on the model's device.
  for (auto& [layer, weight] : plan) layer->set_weight(weight.first, weight.second);
  std::vector<std::vector<Tensor>> own_slots;
  for (const auto& group : slots) {
    own_slots.emplace_back();
    for (const Tensor& s : group) own_slots.back().push_back(s.to(model.device()));
  }
  opt.synchronize();  // its own count settled first (loss scaling's), so the restored one replaces it
  opt.restore(std::move(own_slots), saved_opt->iterations());
  opt.restore_state_variables(saved_opt->state_variables());
  if (set_rate) opt.set_learning_rate(saved_opt->learning_rate());
  model.generator() = saved.generator();
}

}  // namespace

BackupAndRestore::BackupAndRestore(std::string backup_dir, BackupAndRestoreOptions options)
    : dir_(std::move(backup_dir)), options_(std::move(options)) {
  if (dir_.empty()) throw Error(kOp, "backup_dir is empty; expected a directory to keep the backup in");
  if (options_.save_freq != "epoch")
    throw Error(kOp, "save_freq \"" + options_.save_freq +
                         "\" is not supported; expected \"epoch\" (fit calls callbacks at epoch ends only, so "
                         "backups every n batches are not possible)");
}

std::string BackupAndRestore::backup_path() const { return (fs::path(dir_) / kFile).string(); }

void BackupAndRestore::on_train_begin(Model& model) {
  resume_epoch_ = -1;
  const std::string path = backup_path();
  std::error_code ec;
  if (!fs::exists(path, ec)) return;
  int epoch = -1;
  {
    // The saved model lives only while its state is copied.
    Model saved = [&] {
      try {
        epoch = checkpoint_epoch(path);
        return load_model(path);
      } catch (const Error& e) {
        throw Error(kOp, "the backup " + path + " cannot be read (" + e.what() +
                             "); expected a file written by BackupAndRestore (remove it to start training afresh)");
      }
    }();
    if (epoch < 0) mismatch(path, "it records no epoch");
    restore_training_state(model, saved, path);
  }
  resume_epoch_ = epoch + 1;
}

bool BackupAndRestore::on_epoch_end(Model& model, int epoch, const Logs& /*logs*/) {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec)
    throw Error(kOp, "cannot create the backup directory " + dir_ + " (" + ec.message() +
                         "); expected a path where a directory can be made");
  io::save_model(model, backup_path(), epoch);
  return true;
}

void BackupAndRestore::on_train_end(Model& /*model*/) {
  if (!options_.delete_checkpoint) return;
  std::error_code ec;
  fs::remove(backup_path(), ec);
  if (ec)
    throw Error(kOp, "cannot remove the backup " + backup_path() + " (" + ec.message() +
                         "); expected a file this callback may delete");
  // Only an empty directory goes: backup_dir may be a user's folder holding other things.
  if (fs::is_directory(dir_, ec) && fs::is_empty(dir_, ec)) fs::remove(dir_, ec);
}

int BackupAndRestore::resume_epoch(Model& /*model*/) { return resume_epoch_; }

}  // namespace kiln::callbacks
