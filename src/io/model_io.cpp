// Model::save/save_weights/load_weights, load_model and checkpoint_epoch: weights as
// "<layer>/<weight>", optimizer slots as "optimizer/<index>/<slot>", the config in __metadata__.
#include "io/model_io.h"

#include <charconv>
#include <cmath>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "io/generator_state.h"
#include "io/json_fields.h"
#include "io/keras_format/keras_file.h"
#include "io/model_config.h"
#include "io/safetensors.h"
#include "kiln/callbacks.h"
#include "kiln/error.h"
#include "kiln/optimizers.h"
#include "kiln/random.h"

namespace kiln {

namespace {

constexpr const char* kFormatKey = "format";
constexpr const char* kFormat = "kiln";
constexpr const char* kConfigKey = "kiln_config";
constexpr const char* kEpochKey = "epoch";
constexpr const char* kSlotPrefix = "optimizer/";

using Named = std::vector<std::pair<std::string, Tensor>>;

std::string slot_tensor_name(std::size_t param, const std::string& slot) {
  return kSlotPrefix + std::to_string(param) + "/" + slot;
}

// An optimizer's state variables (Optimizer::state_variables: loss scaling's), beside its slots.
std::string state_tensor_name(const std::string& variable) { return "optimizer/" + variable; }

std::string describe(DType dtype, const Shape& shape) { return io::safetensors_dtype_name(dtype) + " " + shape.str(); }

// Up to eight tensor names of the file, for "which names are there" hints.
std::string some_names(const io::SafetensorsView& view) {
  std::string s;
  std::size_t n = 0;
  for (const auto& t : view.tensors) {
    if (n++ == 8) return s + ", ...";
    s += (s.empty() ? "" : ", ") + t.name;
  }
  return s.empty() ? "no tensors" : s;
}

// The entry `name`, checked against the model's tensor of that role.
const io::SafetensorsEntry& expect_entry(const io::SafetensorsView& view, const std::string& name, const Tensor& like,
                                         const std::string& op, const std::string& source) {
  const io::SafetensorsEntry* e = view.find(name);
  if (!e)
    throw Error(op, source + ": no tensor '" + name + "'; expected one for every weight of the model (the file holds " +
                        some_names(view) + ")");
  if (e->dtype != like.dtype() || e->shape != like.shape())
    throw Error(op, source + ": tensor '" + name + "' is " + describe(e->dtype, e->shape) + "; expected " +
                        describe(like.dtype(), like.shape()) + " as in the model");
  return *e;
}

// Copies every weight from `view` after checking them all, so a bad file changes nothing.
void assign_weights(Model& model, const io::SafetensorsView& view, const std::string& op, const std::string& source,
                    std::set<std::string>& used) {
  if (!model.built())
    throw Error(op, source +
                        ": the model is not built; expected a first layer with input_shape, or build(input_shape), "
                        "before loading weights");
  std::vector<std::pair<std::pair<Layer*, std::string>, const io::SafetensorsEntry*>> plan;
  for (const auto& layer : model.layers())
    for (const auto& [name, w] : layer->named_weights()) {
      const std::string full = layer->name() + "/" + name;
      plan.push_back({{layer.get(), name}, &expect_entry(view, full, w, op, source)});
      used.insert(full);
    }
  for (const auto& [target, entry] : plan) target.first->set_weight(target.second, io::to_tensor(*entry));
}

void refuse_unused(const io::SafetensorsView& view, const std::set<std::string>& used, bool allow_slots,
                   const std::string& op, const std::string& source) {
  for (const auto& t : view.tensors) {
    if (used.count(t.name) || (allow_slots && t.name.starts_with(kSlotPrefix))) continue;
    throw Error(op, source + ": tensor '" + t.name +
                        "' matches no weight of the model; expected only \"<layer>/<weight>\" names of its layers");
  }
}

int parse_epoch_text(const std::string& text, const std::string& source) {
  int epoch = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), epoch);
  if (ec != std::errc() || end != text.data() + text.size() || epoch < -1)
    throw Error("checkpoint_epoch", source + ": __metadata__ epoch \"" + text.substr(0, 40) +
                                        "\" is not an epoch number; expected an integer >= -1");
  return epoch;
}

// Optimizer slots drive the next updates: a NaN or infinite slot, or a negative Adam velocity (a
// running mean of squared gradients, taken under a square root), would turn every weight it meets
// NaN at the first step of fit. Weights themselves load as saved: any finite or non-finite value
// is a model someone had, and check_numerics names the layer it poisons.
template <typename T>
void check_slot_values(const Tensor& t, const std::string& name, bool non_negative, const std::string& source) {
  const T* v = t.data<T>();
  for (int64_t i = 0; i < t.numel(); ++i) {
    if (std::isfinite(v[i]) && (!non_negative || v[i] >= T(0))) continue;
    std::ostringstream value;
    value << v[i];
    throw Error("load_model", source + ": tensor '" + name + "' holds " + value.str() + " at element " +
                                  std::to_string(i) + "; expected " +
                                  (non_negative ? "finite values >= 0 (Adam's velocity is a running mean of squared "
                                                  "gradients)"
                                                : "finite values (an optimizer slot)"));
  }
}

void check_slot(const Tensor& t, const std::string& name, bool non_negative, const std::string& source) {
  if (t.dtype() == DType::Float32)
    check_slot_values<float>(t, name, non_negative, source);
  else if (t.dtype() == DType::Float64)
    check_slot_values<double>(t, name, non_negative, source);
}

// Gives `opt` its state variables from the file, each checked against the optimizer's own.
void load_state_variables(Optimizer& opt, const io::SafetensorsView& view, const std::string& source,
                          std::set<std::string>& used) {
  std::vector<std::pair<std::string, Tensor>> values;
  for (const auto& [variable, like] : opt.state_variables()) {
    const std::string name = state_tensor_name(variable);
    const io::SafetensorsEntry* e = view.find(name);
    if (!e)
      throw Error("load_model", source + ": no tensor '" + name + "'; expected the " + opt.class_name() + "'s state (" +
                                    describe(like.dtype(), like.shape()) + ")");
    if (e->dtype != like.dtype() || e->shape != like.shape())
      throw Error("load_model", source + ": tensor '" + name + "' is " + describe(e->dtype, e->shape) + "; expected " +
                                    describe(like.dtype(), like.shape()));
    values.emplace_back(variable, io::to_tensor(*e));
    used.insert(name);
  }
  try {
    opt.restore_state_variables(values);
  } catch (const Error& err) {
    throw Error("load_model", source + ": " + err.what());
  }
}

const std::string& config_text(const io::SafetensorsView& view, const std::string& source) {
  const auto format = view.metadata.find(kFormatKey);
  const auto config = view.metadata.find(kConfigKey);
  if (format == view.metadata.end() || format->second != kFormat || config == view.metadata.end())
    throw Error("load_model", source +
                                  ": the file has no kiln model config in its __metadata__; expected a file "
                                  "written by Model::save (use load_weights for weights-only files)");
  return config->second;
}

}  // namespace

Model io::build_model(const ModelConfig& cfg, const std::string& source) {
  // Constructing the model takes a generator from the global one; keep the global's state out of it.
  const std::string rng_before = io::generator_state(global_generator());
  Model model = [&]() -> Model {
    if (cfg.functional) return Model(cfg.graph.inputs, cfg.graph.outputs, cfg.name);
    std::vector<LayerRef> refs(cfg.layers.begin(), cfg.layers.end());
    Sequential seq(refs, cfg.name);
    for (std::size_t i = 0; i < cfg.layers.size(); ++i) seq.layers()[i]->set_name(cfg.layers[i]->name());
    if (cfg.input_shape && !seq.built()) seq.build(*cfg.input_shape);
    return seq;
  }();
  io::set_generator_state(global_generator(), rng_before, source);
  return model;
}

void io::save_weights(const Model& model, const std::string& path, int epoch) {
  Named tensors;
  for (const auto& layer : model.layers())
    for (const auto& [name, w] : layer->named_weights()) tensors.emplace_back(layer->name() + "/" + name, w);
  std::map<std::string, std::string> metadata{{kFormatKey, kFormat}};
  if (epoch >= 0) metadata[kEpochKey] = std::to_string(epoch);
  write_safetensors(path, tensors, metadata);
}

void io::save_model(const Model& model, const std::string& path, int epoch) {
  // Loss scaling counts skipped steps on the device: read back, iterations() is exact.
  if (Optimizer* opt = model.optimizer()) opt->synchronize();
  Named tensors;
  for (const auto& layer : model.layers())
    for (const auto& [name, w] : layer->named_weights()) tensors.emplace_back(layer->name() + "/" + name, w);
  const std::string config = model_config_json(model, epoch);  // also refuses what cannot be rebuilt
  if (const Optimizer* opt = model.optimizer()) {
    // Slots pair with the trainable weights by position; after a layer is frozen or unfrozen the
    // pairing is gone, and load_model would refuse the file.
    const std::size_t trainable = model.trainable_weights().size();
    if (!opt->slots().empty() && opt->slots().size() != trainable)
      throw Error("save", "the optimizer holds slots for " + std::to_string(opt->slots().size()) +
                              " weights but the model has " + std::to_string(trainable) +
                              " trainable weights (a layer was frozen or unfrozen since compile); expected compile() "
                              "again before save, as after changing trainable in Keras");
    const auto names = opt->slot_names();
    for (std::size_t i = 0; i < opt->slots().size(); ++i)
      for (std::size_t s = 0; s < names.size(); ++s)
        tensors.emplace_back(slot_tensor_name(i, names[s]), opt->slots()[i][s]);
  }
  if (const Optimizer* opt = model.optimizer())
    for (const auto& [variable, value] : opt->state_variables())
      tensors.emplace_back(state_tensor_name(variable), value);
  write_safetensors(path, tensors, {{kFormatKey, kFormat}, {kConfigKey, config}});
}

// The one place where a path's extension chooses Keras' format (".keras", ".weights.h5") over
// kiln's own; checkpoints (io::save_model with an epoch) always use kiln's.
void Model::save_weights(const std::string& path) const {
  if (io::keras::is_keras_weights_path(path)) return io::keras::save_keras_weights(*this, path);
  io::save_weights(*this, path, -1);
}

void Model::save(const std::string& path) const {
  if (io::keras::is_keras_path(path)) return io::keras::save_keras_model(*this, path);
  if (io::keras::is_keras_weights_path(path))
    throw Error("save", "'" + path +
                            "' names a weights file (.weights.h5); expected save_weights for it, or a "
                            ".keras path for the whole model");
  io::save_model(*this, path, -1);
}

void Model::load_weights(const std::string& path) {
  if (io::keras::is_keras_weights_path(path)) return io::keras::load_keras_weights(*this, path);
  const io::SafetensorsFile file = io::read_safetensors(path, "load_weights");
  std::set<std::string> used;
  // Refuse strangers before touching a weight; a full checkpoint's optimizer slots are allowed.
  for (const auto& layer : layers())
    for (const auto& [name, w] : layer->named_weights()) used.insert(layer->name() + "/" + name);
  refuse_unused(file.view, used, true, "load_weights", path);
  assign_weights(*this, file.view, "load_weights", path, used);
}

Model load_model(const std::string& path) {
  if (io::keras::is_keras_path(path)) return io::keras::load_keras_model(path);
  const io::SafetensorsFile file = io::read_safetensors(path, "load_model");
  io::ModelConfig cfg = io::parse_model_config(config_text(file.view, path), path);
  // Every weight is a float32 tensor of the file, so a config describing more weights than the
  // file could hold is refused before anything that size is allocated.
  if (static_cast<uint64_t>(cfg.weight_count) > file.bytes.size() / sizeof(float))
    throw Error("load_model", path + ": the config describes " + std::to_string(cfg.weight_count) +
                                  " weights but the file is " + std::to_string(file.bytes.size()) +
                                  " bytes; expected a file holding every weight (truncated?)");

  Model model = io::build_model(cfg, path);

  std::set<std::string> used;
  if (model.built()) assign_weights(model, file.view, "load_model", path, used);

  if (cfg.optimizer) {
    std::vector<LossRef> losses;
    for (const auto& l : cfg.losses) losses.emplace_back(*l);
    model.compile(*cfg.optimizer, losses, cfg.metrics, cfg.loss_weights);
    const std::vector<Tensor> params = model.trainable_weights();
    if (cfg.slot_groups != 0 && static_cast<std::size_t>(cfg.slot_groups) != params.size())
      throw Error("load_model", path + ": optimizer_state has slots for " + std::to_string(cfg.slot_groups) +
                                    " parameters; expected " + std::to_string(params.size()) + " (one per weight)");
    const auto names = cfg.optimizer->slot_names();
    std::vector<std::vector<Tensor>> slots(static_cast<std::size_t>(cfg.slot_groups));
    for (std::size_t i = 0; i < slots.size(); ++i)
      for (const auto& slot : names) {
        const std::string name = slot_tensor_name(i, slot);
        slots[i].push_back(io::to_tensor(expect_entry(file.view, name, params[i], "load_model", path)));
        check_slot(slots[i].back(), name, slot == "velocity", path);
        used.insert(name);
      }
    model.optimizer()->restore(std::move(slots), cfg.iterations);
    load_state_variables(*model.optimizer(), file.view, path, used);
  }
  refuse_unused(file.view, used, false, "load_model", path);
  // Last, so a file refused above leaves the global generator as it was. A file without the model's
  // generator gets a fresh one, as a model constructed now would.
  if (!cfg.rng_state.empty())
    io::set_generator_state(model.generator(), cfg.rng_state, path);
  else
    model.generator() = global_generator().split();
  return model;
}

int checkpoint_epoch(const std::string& path) {
  const io::SafetensorsFile file = io::read_safetensors(path, "checkpoint_epoch");
  const auto& meta = file.view.metadata;
  if (const auto config = meta.find(kConfigKey); config != meta.end()) {
    nlohmann::json j = nlohmann::json::parse(config->second, nullptr, false);
    if (j.is_discarded())
      throw Error("checkpoint_epoch", path + ": the model config is not valid JSON; expected a kiln file");
    return static_cast<int>(
        io::JsonFields(j, path + ": the model config", "checkpoint_epoch").integer("epoch", -1, INT32_MAX));
  }
  if (const auto epoch = meta.find(kEpochKey); epoch != meta.end()) return parse_epoch_text(epoch->second, path);
  if (const auto format = meta.find(kFormatKey); format == meta.end() || format->second != kFormat)
    throw Error("checkpoint_epoch", path + ": the file has no kiln metadata; expected a file written by kiln");
  return -1;
}

}  // namespace kiln
