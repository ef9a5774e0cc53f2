/// Sequential: the Keras model API (compile, fit, evaluate, predict, summary).
#pragma once

#include <iosfwd>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "kiln/layers.h"
#include "kiln/losses.h"
#include "kiln/optimizers.h"
#include "kiln/random.h"
#include "kiln/tensor.h"

namespace kiln {

class Sequential;
namespace model {
class RecordedEvaluation;
}

/// Per-epoch values recorded by fit: "loss", metric names, and "val_" versions.
struct History {
  std::map<std::string, std::vector<double>> history;  ///< name -> one value per epoch
  std::vector<int> epoch;                              ///< 0-based epoch numbers, as Keras records them
};

/// Hooks called by fit.
class Callback {
 public:
  virtual ~Callback() = default;
  /// After each epoch with that epoch's logs (loss, metrics, val_*). Return false to stop training.
  virtual bool on_epoch_end(Sequential& /*model*/, int /*epoch*/, const std::map<std::string, double>& /*logs*/) {
    return true;
  }
};

/// Options of fit, with Keras' defaults.
struct FitOptions {
  int64_t batch_size = 32;  ///< samples per training step
  int epochs = 1;           ///< passes over the data (up to this epoch number when resuming)
  int verbose = 1;          ///< 0 silent, 1 progress bar (one line per epoch when not a terminal), 2 one line per epoch
  bool shuffle = true;      ///< shuffles the samples before every epoch
  std::optional<std::pair<Tensor, Tensor>> validation_data = std::nullopt;  ///< (x_val, y_val)
  /// Batch size of the validation pass; 0 means batch_size (as Keras). Evaluation does not train,
  /// so a larger one changes only the speed (and float rounding), not what is computed.
  int64_t validation_batch_size = 0;
  int initial_epoch = 0;  ///< to resume training
  /// Checks every layer's output and every weight's gradient at every step and stops at the first
  /// NaN or Inf, naming the layer (slow: it reads each tensor back; for debugging).
  bool check_numerics = false;
  std::vector<std::shared_ptr<Callback>> callbacks = {};  ///< called after every epoch, in order
  /// On a CUDA device, records one full training step as a CUDA graph after two eager warm-up steps
  /// and replays it for every full batch (the last partial batch runs eagerly); results equal the
  /// eager ones. The validation pass gets the same value (EvaluateOptions::cuda_graphs: its
  /// recording is kept across epochs). False keeps every step eager. Ignored on the CPU and with
  /// check_numerics.
  bool cuda_graphs = true;
};

/// Options of evaluate.
struct EvaluateOptions {
  int64_t batch_size = 32;  ///< samples per evaluation batch
  int verbose = 1;          ///< 0 silent, 1 progress bar
  /// On a CUDA device, records one full evaluation batch as a CUDA graph after an eager warm-up
  /// batch and replays it for every full batch (the last partial batch runs eagerly); results equal
  /// the eager ones. The model keeps the recording and reuses it in later calls with data of the
  /// same shapes and the same batch_size, as long as its layers, loss, metrics and the storage of its
  /// weights are unchanged (training and load_weights write the weights in place and keep it; to(),
  /// add() or a compile() with another loss or metrics make the next call record again). Meanwhile
  /// it holds a device copy of the data and the memory of one batch's intermediate results (for
  /// the seed CIFAR-10 model, 10,000 test images at batch 1000: 118 MiB and about 155 MiB), until the
  /// model dies or records another evaluation. False keeps every batch eager and leaves a kept
  /// recording alone. Ignored on the CPU.
  bool cuda_graphs = true;
};

/// Options of predict.
struct PredictOptions {
  int64_t batch_size = 32;  ///< samples per batch
  int verbose = 0;          ///< 0 silent, 1 progress bar
};

/// How fit or evaluate ran its steps: full batches replaying a recorded step (CUDA graphs), or
/// eagerly, and why. Warm-up steps and a last partial batch always run eagerly.
struct StepReport {
  bool recorded = false;  ///< true when full batches replayed a recording
  /// Why they ran eagerly ("cuda_graphs is false", "the device cpu cannot record work ...",
  /// "recording the step failed: ..."); when recorded, what ran eagerly beside the recording
  /// (an optimizer without a device-side update), else "".
  std::string reason;
};

/// A linear stack of layers.
class Sequential {
 public:
  /// A model of `layers` on model_device() (the first usable GPU, else the CPU); built at once when
  /// the first layer declares input_shape.
  explicit Sequential(const std::vector<LayerRef>& layers = {}, std::string name = "sequential");
  /// Appends a layer (Keras' model.add).
  void add(const LayerRef& layer);
  /// Creates every layer's weights for per-sample `input_shape`.
  void build(const Shape& input_shape);
  /// True once every layer has its weights (after build or the first call).
  bool built() const { return built_; }

  /// Sets optimizer, loss and metrics ("accuracy").
  void compile(const Optimizer& optimizer, const Loss& loss, std::vector<std::string> metrics = {});
  /// Shorthand with Keras names: compile("sgd", "mean_squared_error").
  void compile(const std::string& optimizer, const std::string& loss, std::vector<std::string> metrics = {});

  /// Trains on x [N, ...] and y [N, ...]; returns per-epoch loss and metrics.
  History fit(const Tensor& x, const Tensor& y, const FitOptions& options = {});
  /// Loss and metrics on (x, y), batch-size-weighted means.
  std::map<std::string, double> evaluate(const Tensor& x, const Tensor& y, const EvaluateOptions& options = {});
  /// Outputs for x [N, ...], computed batch by batch without gradients, on the model's device.
  Tensor predict(const Tensor& x, const PredictOptions& options = {});
  /// Forward pass recording gradients (for custom training loops); `training` as in Keras'
  /// model(x, training=...): true makes Dropout drop and BatchNormalization use batch statistics.
  Tensor operator()(const Tensor& x, bool training = false);
  /// The compiled loss of predictions `y_pred` against prepared targets `y_true`, plus every
  /// layer's regularization penalties (Keras' Model.compute_loss); fit trains on it.
  Tensor compute_loss(const Tensor& y_true, const Tensor& y_pred) const;

  /// Prints Keras' layer table: names, output shapes, parameter counts and totals.
  void summary(std::ostream& os) const;
  /// summary() to std::cout.
  void summary() const;

  /// Every trainable weight, layer by layer (none of a frozen layer).
  std::vector<Tensor> trainable_weights() const;
  /// Every other weight (moving statistics, a frozen layer's weights), layer by layer.
  std::vector<Tensor> non_trainable_weights() const;
  /// Number of scalars of every weight, trainable or not (Keras' count_params).
  int64_t count_params() const;
  /// The layers, first to last.
  const std::vector<std::shared_ptr<Layer>>& layers() const { return layers_; }
  /// The model's name ("sequential" unless given).
  const std::string& name() const { return name_; }
  /// Per-sample input shape (after build).
  const Shape& input_shape() const { return input_shape_; }

  // ---- saving (src/io/) ----
  /// Writes the weights as safetensors, named "<layer>/<weight>" (e.g. "dense/kernel"), atomically.
  void save_weights(const std::string& path) const;
  /// Reads weights written by save_weights (or by Python tools with the same names); shapes must agree.
  void load_weights(const std::string& path);
  /// Writes config (JSON), weights (safetensors) and optimizer state to `path`, atomically; the
  /// previous checkpoint at `path` stays loadable if the process dies mid-save.
  void save(const std::string& path) const;

  /// Moves the weights (and future work) to `device`.
  void to(Device device);
  /// The device holding the weights.
  Device device() const { return device_; }

  /// The compiled optimizer (null before compile).
  Optimizer* optimizer() const { return optimizer_.get(); }
  /// The compiled loss (null before compile).
  const Loss* loss() const { return loss_.get(); }
  /// The compiled metrics' names.
  const std::vector<std::string>& metrics() const { return metrics_; }

  /// The model's own random generator: the initial weights of its layers and fit's shuffles. The
  /// constructor takes it from the global generator (Generator::split), so set_random_seed(n) before
  /// building a model reproduces that model, whatever other models do meanwhile; checkpoints save it.
  Generator& generator() { return generator_; }
  /// The model's own random generator (read-only).
  const Generator& generator() const { return generator_; }

  /// How the last fit ran its training steps: recorded, or eagerly and why.
  StepReport last_fit_execution() const;
  /// How the last evaluate (or fit's validation pass) ran its batches: recorded, or eagerly and why.
  StepReport last_evaluate_execution() const;

 private:
  std::vector<std::shared_ptr<Layer>> layers_;
  std::string name_;
  Shape input_shape_;
  bool built_ = false;
  Device device_;
  Generator generator_;
  std::unique_ptr<Optimizer> optimizer_;
  std::unique_ptr<Loss> loss_;
  std::vector<std::string> metrics_;
  /// evaluate's recorded batch, kept for the next call of the same geometry (src/model/
  /// recorded_evaluation.h); shared_ptr because the type is incomplete here.
  std::shared_ptr<model::RecordedEvaluation> recorded_evaluation_;
  StepReport last_fit_execution_, last_evaluate_execution_;  ///< see last_fit_execution()

  void require_compiled(const std::string& op) const;
  void build_for(const Tensor& x, const std::string& op);
  /// evaluate; `report` prints why recording failed (fit passes its own verbosity for validation).
  std::map<std::string, double> evaluate_batches(const Tensor& x, const Tensor& y, const EvaluateOptions& options,
                                                 bool report);
  /// The kept recording for (x, y) as prepared by evaluate, made anew when the key changed and
  /// loaded with the data; nullptr where evaluation stays eager.
  model::RecordedEvaluation* recorded_evaluation_for(const Tensor& x, const Tensor& y, int64_t batch_size);
};

/// Rebuilds a model saved with Sequential::save: layers, weights, compile settings, optimizer state
/// and the model's random generator, so fit(..., {.initial_epoch = ...}) repeats the shuffles of
/// uninterrupted training. The global generator is left as it was.
Sequential load_model(const std::string& path);

}  // namespace kiln
