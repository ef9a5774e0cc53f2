/// Model and Sequential: the Keras model API (functional models, compile, fit, evaluate, predict,
/// summary, saving).
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
#include "kiln/symbolic_tensor.h"
#include "kiln/tensor.h"

namespace kiln {

class Model;
namespace distribute {
class Strategy;
}  // namespace distribute
namespace model {
class Graph;
class RecordedEvaluation;
}  // namespace model

/// Per-epoch values recorded by fit: "loss", metric names, and "val_" versions.
struct History {
  std::map<std::string, std::vector<double>> history;  ///< name -> one value per epoch
  std::vector<int> epoch;                              ///< 0-based epoch numbers, as Keras records them
};

/// Hooks called by fit (Keras' keras.callbacks.Callback), in the order the callbacks are given.
class Callback {
 public:
  virtual ~Callback() = default;
  /// Before the first epoch.
  virtual void on_train_begin(Model& /*model*/) {}
  /// After every callback's on_train_begin, before the first epoch: the 0-based epoch fit starts at
  /// instead of FitOptions::initial_epoch (callbacks::BackupAndRestore after restoring a backup;
  /// Keras' model._initial_epoch), or -1 to leave it.
  virtual int resume_epoch(Model& /*model*/) { return -1; }
  /// Before each epoch (0-based).
  virtual void on_epoch_begin(Model& /*model*/, int /*epoch*/) {}
  /// After each epoch with that epoch's logs (loss, metrics, val_*). Return false to stop training
  /// (Keras' model.stop_training = True): the epochs after this one do not run.
  virtual bool on_epoch_end(Model& /*model*/, int /*epoch*/, const std::map<std::string, double>& /*logs*/) {
    return true;
  }
  /// After the last epoch, also when a callback stopped training; not when fit throws.
  virtual void on_train_end(Model& /*model*/) {}
};

/// Validation data of fit: one tensor per model input and one target tensor per output.
struct ValidationData {
  /// For a model of one input and one output.
  ValidationData(Tensor x_, Tensor y_) : x{std::move(x_)}, y{std::move(y_)} {}
  /// (x, y) as a pair.
  ValidationData(std::pair<Tensor, Tensor> xy) : x{std::move(xy.first)}, y{std::move(xy.second)} {}
  /// For a model of several inputs or outputs.
  ValidationData(std::vector<Tensor> x_, std::vector<Tensor> y_) : x(std::move(x_)), y(std::move(y_)) {}
  std::vector<Tensor> x;  ///< one per model input
  std::vector<Tensor> y;  ///< one per model output
};

/// Options of fit, with Keras' defaults.
struct FitOptions {
  int64_t batch_size = 32;  ///< samples per training step
  int epochs = 1;           ///< passes over the data (up to this epoch number when resuming)
  int verbose = 1;          ///< 0 silent, 1 progress bar (one line per epoch when not a terminal), 2 one line per epoch
  bool shuffle = true;      ///< shuffles the samples before every epoch
  std::optional<ValidationData> validation_data = std::nullopt;  ///< (x_val, y_val)
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
  /// Trains data-parallel over the strategy's replicas: distribute::MultiWorkerMirroredStrategy
  /// (one process each, launched by mpirun or srun, every one calling fit with the same data and
  /// options) or distribute::MirroredStrategy (one process, one replica per local GPU, this model
  /// being replica 0). batch_size is then the global batch: each replica computes its shard of every
  /// global batch of the shuffle one process would make, the gradients are summed so every replica
  /// applies the update of the whole batch, and the logs, History and validation are over all
  /// replicas. Only replica 0 prints and writes checkpoints. Null (the default): this process alone.
  std::shared_ptr<distribute::Strategy> strategy = nullptr;
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

/// A model: layers called on each other's outputs, from one or more inputs to one or more
/// outputs (Keras' functional keras.Model). Sequential is the special case of a chain.
///
///   auto x = kiln::Input({32, 32, 3});
///   auto h = kiln::layers::Conv2D(16, {3, 3}, {.padding = "same"})(x);
///   auto y = kiln::layers::Dense(10)(kiln::layers::GlobalAveragePooling2D()(h));
///   kiln::Model model(x, y);
class Model {
 public:
  /// The model computing `outputs` from `inputs` (symbolic tensors from kiln::Input and layer
  /// calls), on model_device(); every layer is built now, drawing from the model's generator.
  Model(const std::vector<SymbolicTensor>& inputs, const std::vector<SymbolicTensor>& outputs,
        std::string name = "functional");
  /// One input, one output.
  Model(const SymbolicTensor& input, const SymbolicTensor& output, std::string name = "functional");
  /// Takes over `other`'s layers, weights, compile settings and generator.
  Model(Model&& other) noexcept;
  /// Takes over `other`'s layers, weights, compile settings and generator.
  Model& operator=(Model&& other) noexcept;
  virtual ~Model();

  /// True once every layer has its weights (a functional model always; a Sequential one after
  /// build or the first call).
  bool built() const { return graph_ != nullptr; }

  /// Sets optimizer, loss and metrics ("accuracy"); a model of several outputs applies the loss
  /// and the metrics to each output (Keras' single loss for all outputs).
  void compile(const Optimizer& optimizer, const Loss& loss, std::vector<std::string> metrics = {});
  /// Shorthand with Keras names: compile("sgd", "mean_squared_error").
  void compile(const std::string& optimizer, const std::string& loss, std::vector<std::string> metrics = {});
  /// One loss per output, each output's metrics and the weights of the losses in the total
  /// (Keras' loss=[...], metrics=[[...], ...], loss_weights=[...]; empty metrics: none; empty
  /// loss_weights: 1 each).
  void compile(const Optimizer& optimizer, const std::vector<LossRef>& losses,
               std::vector<std::vector<std::string>> metrics = {}, std::vector<double> loss_weights = {});

  /// Trains on x [N, ...] and y [N, ...] (a model of one input and one output); returns per-epoch
  /// loss and metrics.
  History fit(const Tensor& x, const Tensor& y, const FitOptions& options = {});
  /// Trains on one tensor per input and one target tensor per output, all of N samples.
  History fit(const std::vector<Tensor>& x, const std::vector<Tensor>& y, const FitOptions& options = {});
  /// Loss and metrics on (x, y), batch-size-weighted means.
  std::map<std::string, double> evaluate(const Tensor& x, const Tensor& y, const EvaluateOptions& options = {});
  /// Loss and metrics on one tensor per input and per output.
  std::map<std::string, double> evaluate(const std::vector<Tensor>& x, const std::vector<Tensor>& y,
                                         const EvaluateOptions& options = {});
  /// Outputs for x [N, ...] (a model of one input and one output), computed batch by batch without
  /// gradients, on the model's device; returned on the host.
  Tensor predict(const Tensor& x, const PredictOptions& options = {});
  /// One output tensor per model output, for one tensor per input.
  std::vector<Tensor> predict(const std::vector<Tensor>& x, const PredictOptions& options = {});
  /// Forward pass recording gradients (for custom training loops); `training` as in Keras'
  /// model(x, training=...): true makes Dropout drop and BatchNormalization use batch statistics.
  Tensor operator()(const Tensor& x, bool training = false);
  /// The same for a model of several inputs or outputs.
  std::vector<Tensor> operator()(const std::vector<Tensor>& x, bool training = false);
  /// The compiled loss of predictions `y_pred` against prepared targets `y_true`, plus every
  /// layer's regularization penalties (Keras' Model.compute_loss); fit trains on it.
  Tensor compute_loss(const Tensor& y_true, const Tensor& y_pred) const;
  /// The same with one target and one prediction per output: the weighted sum of the outputs'
  /// losses plus the penalties.
  Tensor compute_loss(const std::vector<Tensor>& y_true, const std::vector<Tensor>& y_pred) const;

  /// Prints Keras' layer table: names, output shapes, parameter counts (and, for a functional
  /// model, the inputs of each layer: "Connected to") and totals.
  void summary(std::ostream& os) const;
  /// summary() to std::cout.
  void summary() const;

  /// Every trainable weight, layer by layer (none of a frozen layer); a shared layer's once.
  std::vector<Tensor> trainable_weights() const;
  /// Projects every layer's constrained weights (Layer::apply_constraints). fit does this after each
  /// update, as Keras' optimizer does; a training loop of one's own calls it after optimizer->step().
  void apply_constraints();
  /// Every other weight (moving statistics, a frozen layer's weights), layer by layer.
  std::vector<Tensor> non_trainable_weights() const;
  /// Number of scalars of every weight, trainable or not (Keras' count_params).
  int64_t count_params() const;
  /// The layers, each once, in the order of their first call (Sequential: first to last).
  const std::vector<std::shared_ptr<Layer>>& layers() const { return layers_; }
  /// The layer called `name`; throws naming the layers there are when none is.
  std::shared_ptr<Layer> get_layer(const std::string& name) const;
  /// The model's name ("functional" or "sequential" unless given).
  const std::string& name() const { return name_; }
  /// Per-sample shape of the (first) input (after build).
  const Shape& input_shape() const;
  /// Per-sample shapes of the inputs (after build).
  std::vector<Shape> input_shapes() const;
  /// Per-sample shapes of the outputs (after build).
  std::vector<Shape> output_shapes() const;
  /// Names of the outputs: the layers that make them (Keras' output_names), used in multi-output
  /// logs ("dense_1_loss").
  std::vector<std::string> output_names() const;
  /// The model's computation (after build).
  const model::Graph& graph() const;

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
  /// The compiled loss of the first output (null before compile).
  const Loss* loss() const { return losses_.empty() ? nullptr : losses_.front().get(); }
  /// The compiled losses, one per output.
  const std::vector<std::unique_ptr<Loss>>& losses() const { return losses_; }
  /// The weights of the outputs' losses in the total.
  const std::vector<double>& loss_weights() const { return loss_weights_; }
  /// The compiled metrics' names of the first output.
  const std::vector<std::string>& metrics() const;
  /// The compiled metrics' names, per output.
  const std::vector<std::vector<std::string>>& output_metrics() const { return metrics_; }

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

  /// True for a Sequential model (saved as one; kiln::Sequential s = load_model(...) accepts it).
  bool is_sequential() const { return sequential_; }

 protected:
  /// A model without layers yet (Sequential's constructor).
  Model(std::string name, bool sequential);
  /// Uses `graph` from now on (Sequential after build or add) and builds its unbuilt layers.
  void set_graph(model::Graph graph);

  std::vector<std::shared_ptr<Layer>> layers_;  ///< every layer once

 private:
  std::string name_;
  bool sequential_ = false;
  std::shared_ptr<const model::Graph> graph_;  // null until built
  Device device_;
  Generator generator_;
  std::unique_ptr<Optimizer> optimizer_;
  std::vector<std::unique_ptr<Loss>> losses_;      // one per output
  std::vector<double> loss_weights_;               // one per output
  std::vector<std::vector<std::string>> metrics_;  // one list per output
  /// evaluate's recorded batch, kept for the next call of the same geometry (src/model/
  /// recorded_evaluation.h); shared_ptr because the type is incomplete here.
  std::shared_ptr<model::RecordedEvaluation> recorded_evaluation_;
  StepReport last_fit_execution_, last_evaluate_execution_;  ///< see last_fit_execution()

  void require_compiled(const std::string& op) const;
  // Builds a Sequential model for x's per-sample shapes, or checks them against the inputs.
  void build_for(const std::vector<Tensor>& x, const std::string& op);
  // Floating x on the model's device.
  std::vector<Tensor> prepare_inputs(const std::vector<Tensor>& x) const;
  // Each output's targets as its loss expects them (prepare_targets), checked.
  std::vector<Tensor> prepare_targets(const std::vector<Tensor>& y, const std::string& op) const;
  /// evaluate; `report` prints why recording failed (fit passes its own verbosity for validation).
  std::map<std::string, double> evaluate_batches(const std::vector<Tensor>& x, const std::vector<Tensor>& y,
                                                 const EvaluateOptions& options, bool report);
  /// The kept recording for (x, y) as prepared by evaluate, made anew when the key changed and
  /// loaded with the data; nullptr where evaluation stays eager.
  model::RecordedEvaluation* recorded_evaluation_for(const std::vector<Tensor>& x, const std::vector<Tensor>& y,
                                                     int64_t batch_size);
};

/// A linear stack of layers (Keras' keras.Sequential): a Model whose graph is the chain of its
/// layers, built when the input shape is known.
class Sequential : public Model {
 public:
  /// A model of `layers` on model_device() (the first usable GPU, else the CPU); built at once when
  /// the first layer declares input_shape.
  explicit Sequential(const std::vector<LayerRef>& layers = {}, std::string name = "sequential");
  /// A loaded model that is a Sequential (load_model's result); throws for a functional one.
  Sequential(Model&& model);  // NOLINT(google-explicit-constructor): `Sequential m = load_model(p)`
  /// Appends a layer (Keras' model.add).
  void add(const LayerRef& layer);
  /// Creates every layer's weights for per-sample `input_shape`.
  void build(const Shape& input_shape);
};

/// Rebuilds a model saved with Model::save (a Sequential or a functional model): layers, weights,
/// compile settings, optimizer state and the model's random generator, so fit(..., {.initial_epoch
/// = ...}) repeats the shuffles of uninterrupted training. The global generator is left as it was.
Model load_model(const std::string& path);

}  // namespace kiln
