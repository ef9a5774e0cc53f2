// Model weights and optimizer variables <-> Keras' HDF5 layout (see keras_weights.h). Keras names
// a layer's group by its class and position, and records the layer's own name in the group's
// "name" attribute; reading matches by that name first, so a file whose layer order differs from
// kiln's still loads, and falls back to the position-based name.
#include "io/keras_format/keras_weights.h"

#include <cmath>
#include <map>
#include <set>

#include "kiln/error.h"
#include "kiln/optimizers.h"
#include "model/graph.h"

namespace kiln::io::keras {

namespace {

// Keras' group name of each layer ("layers/dense_1"), inputs of a functional model first (Keras
// lists its InputLayers among the layers; Sequential's is not).
struct LayerGroup {
  std::string path;
  std::shared_ptr<Layer> layer;  // null for an input
  std::string name;              // the layer's or the input's name
};
std::vector<LayerGroup> layer_groups(const Model& model) {
  std::map<std::string, int> used;
  const auto next = [&](const std::string& base) {
    const int n = used[base]++;
    return "layers/" + (n == 0 ? base : base + "_" + std::to_string(n));
  };
  std::vector<LayerGroup> out;
  if (!model.is_sequential())
    for (const std::string& name : model.graph().input_names()) out.push_back({next("input_layer"), nullptr, name});
  for (const auto& layer : model.layers())
    out.push_back({next(model::snake_case(layer->class_name())), layer, layer->name()});
  return out;
}

// A layer's variables as Keras saves them: trainable ones, then the others (Layer.save_own_variables);
// state Keras keeps outside the layer's weights (a random stream's counter) is not in the file.
std::vector<const LayerWeight*> keras_variables(const Layer& layer) {
  std::vector<const LayerWeight*> out;
  for (bool trainable : {true, false})
    for (const LayerWeight& w : layer.all_weights())
      if (w.in_weights && w.trainable == trainable) out.push_back(&w);
  return out;
}

bool has_learning_rate_variable(const Optimizer& opt) {
  const Config config = opt.get_config();
  return !config.contains("learning_rate") || config["learning_rate"].is_number();
}

std::string var_path(const std::string& group, std::size_t i) { return group + "/vars/" + std::to_string(i); }

// Keras' LossScaleOptimizer saves its own variables before the inner optimizer's: an iteration
// count it never advances, a learning rate of 0, step_counter and dynamic_scale.
constexpr std::size_t kLossScaleVariables = 4;

}  // namespace

std::vector<uint8_t> weights_h5(const Model& model, bool with_optimizer) {
  H5Writer h5("save");
  h5.group("layers");
  for (const auto& [path, layer, name] : layer_groups(model)) {
    h5.group(path);
    h5.group(path + "/vars", {{"name", name}});
    if (!layer) continue;
    const auto weights = keras_variables(*layer);
    for (std::size_t i = 0; i < weights.size(); ++i) {
      const std::vector<float> values = weights[i]->value.cpu().to_vector<float>();
      h5.floats(var_path(path, i), weights[i]->value.shape().dims(), values.data());
    }
  }
  const Optimizer* opt = model.optimizer();
  if (with_optimizer && opt) {
    h5.group("optimizer");
    h5.group("optimizer/vars", {{"name", opt->name()}});
    std::size_t i = 0;
    auto* scaling = dynamic_cast<optimizers::LossScaleOptimizer*>(model.optimizer());
    if (scaling) {
      scaling->synchronize();  // skipped steps are counted on the device
      const float zero = 0.0f, scale = static_cast<float>(scaling->dynamic_scale());
      h5.integer_scalar("optimizer/vars/" + std::to_string(i++), 0);
      h5.floats("optimizer/vars/" + std::to_string(i++), {}, &zero);
      h5.integer_scalar("optimizer/vars/" + std::to_string(i++), scaling->step_counter());
      h5.floats("optimizer/vars/" + std::to_string(i++), {}, &scale);
    }
    // The rule's layout is the inner optimizer's under loss scaling; the state is the wrapper's.
    const Optimizer& rule = scaling ? scaling->inner_optimizer() : *opt;
    h5.integer_scalar("optimizer/vars/" + std::to_string(i++), opt->iterations());
    if (has_learning_rate_variable(rule)) {
      const float lr = static_cast<float>(opt->learning_rate());
      h5.floats("optimizer/vars/" + std::to_string(i++), {}, &lr);
    }
    const auto& slots = opt->slots();
    for (const SlotPlace& place : rule.keras_variable_order(model.trainable_weights())) {
      const Tensor& t = slots[place.param][place.slot];
      const std::vector<float> values = t.cpu().to_vector<float>();
      h5.floats("optimizer/vars/" + std::to_string(i++), t.shape().dims(), values.data());
    }
  }
  h5.group("vars", {{"name", model.name()}});
  return h5.finish();
}

void read_layer_weights(Model& model, const H5Reader& h5, const std::string& op) {
  // The file's layer groups by the layer name they record.
  std::map<std::string, std::string> by_name;
  std::set<std::string> groups;
  for (const std::string& child : h5.children("layers")) {
    const std::string path = "layers/" + child;
    groups.insert(path);
    const std::string name = h5.string_attribute(path + "/vars", "name");
    if (!name.empty()) by_name.emplace(name, path);
  }
  std::vector<std::tuple<Layer*, std::string, Tensor>> plan;
  std::set<std::string> claimed;
  for (const auto& [slot_path, layer, layer_name] : layer_groups(model)) {
    if (!layer) {
      claimed.insert(slot_path);
      continue;
    }
    const auto named = by_name.find(layer->name());
    const std::string path = named != by_name.end() ? named->second : slot_path;
    claimed.insert(path);
    const auto weights = keras_variables(*layer);
    if (!weights.empty() && !h5.is_group(path + "/vars"))
      throw Error(op, h5.source() + " has no group '" + path + "/vars' for layer '" + layer->name() + "' (" +
                          layer->class_name() + "); expected its " + std::to_string(weights.size()) +
                          " variables there (a weights file for another model?)");
    const std::vector<std::string> vars = h5.children(path + "/vars");
    if (vars.size() != weights.size())
      throw Error(op, h5.group_where(path + "/vars") + " holds " + std::to_string(vars.size()) +
                          " variables; expected " + std::to_string(weights.size()) + " for layer '" + layer->name() +
                          "' (" + layer->class_name() + ") of the model (a weights file for another model?)");
    for (std::size_t i = 0; i < weights.size(); ++i) {
      const std::string p = var_path(path, i);
      const Shape& shape = weights[i]->value.shape();
      plan.emplace_back(layer.get(), weights[i]->name, Tensor::from_vector(h5.read_floats(p, shape), shape));
    }
  }
  for (const std::string& g : groups)
    if (!claimed.count(g) && !h5.children(g + "/vars").empty())
      throw Error(op, h5.group_where(g) + " holds variables of layer '" + h5.string_attribute(g + "/vars", "name") +
                          "', which the model does not have; expected a weights file of this model's layers");
  for (auto& [layer, name, value] : plan) layer->set_weight(name, value);
}

bool read_optimizer_state(Model& model, const H5Reader& h5, const std::string& op) {
  Optimizer* opt = model.optimizer();
  if (!opt || !h5.is_group("optimizer/vars")) return false;
  const std::vector<Tensor> params = model.trainable_weights();
  auto* scaling = dynamic_cast<optimizers::LossScaleOptimizer*>(opt);
  const Optimizer& rule = scaling ? scaling->inner_optimizer() : *opt;
  const std::size_t own = scaling ? kLossScaleVariables : 0;  // the inner optimizer's variables start here
  const bool has_lr = has_learning_rate_variable(rule);
  const std::size_t base = own + (has_lr ? 2 : 1);
  const std::vector<SlotPlace> order = rule.keras_variable_order(params);
  const std::size_t count = h5.children("optimizer/vars").size();
  if (count != base && count != base + order.size())
    throw Error(op, h5.group_where("optimizer/vars") + " holds " + std::to_string(count) + " variables; expected " +
                        std::to_string(base) + " or " + std::to_string(base + order.size()) + " for " +
                        opt->class_name() + " over " + std::to_string(params.size()) + " trainable weights");
  const auto var = [](std::size_t i) { return "optimizer/vars/" + std::to_string(i); };
  std::optional<std::pair<float, int64_t>> loss_scale;
  if (scaling) {
    const int64_t counter = h5.read_integer_scalar(var(2));
    if (counter < 0)
      throw Error(op, h5.where(var(2)) + " is " + std::to_string(counter) +
                          "; expected the LossScaleOptimizer's step_counter, >= 0");
    const float scale = h5.read_floats(var(3), Shape(std::vector<int64_t>{})).at(0);
    if (!(std::isfinite(scale) && scale > 0))
      throw Error(op, h5.where(var(3)) + " is " + std::to_string(scale) +
                          "; expected the LossScaleOptimizer's dynamic_scale, finite and > 0");
    loss_scale = {scale, counter};
  }
  const int64_t iterations = h5.read_integer_scalar(var(own));
  if (iterations < 0)
    throw Error(op,
                h5.where(var(own)) + " is " + std::to_string(iterations) + "; expected the number of updates, >= 0");
  std::optional<float> lr;
  if (has_lr) {
    lr = h5.read_floats(var(own + 1), Shape(std::vector<int64_t>{})).at(0);
    if (!std::isfinite(*lr) || *lr < 0)
      throw Error(op, h5.where(var(own + 1)) + " is " + std::to_string(*lr) + "; expected a finite learning rate >= 0");
  }
  std::vector<std::vector<Tensor>> slots;
  // An optimizer without slots (SGD without momentum) keeps an empty list per weight once it ran.
  if (opt->slot_names().empty() && iterations > 0) slots.assign(params.size(), {});
  if (count > base) {
    const std::vector<std::string> names = opt->slot_names();
    slots.assign(params.size(), std::vector<Tensor>(names.size()));
    for (std::size_t k = 0; k < order.size(); ++k) {
      const std::string path = "optimizer/vars/" + std::to_string(base + k);
      const SlotPlace& place = order[k];
      const Shape& shape = params[place.param].shape();
      std::vector<float> values = h5.read_floats(path, shape);
      for (float v : values)
        if (!std::isfinite(v) || (names[place.slot] == "velocity" && v < 0))
          throw Error(op, h5.where(path) + " holds " + std::to_string(v) + "; expected finite values" +
                              (names[place.slot] == "velocity" ? " >= 0 (a running mean of squared gradients)" : ""));
      slots[place.param][place.slot] = Tensor::from_vector(values, shape).to(model.device());
    }
    // Slots the file does not hold (a Muon-stepped weight's velocity) start at zero.
    for (std::size_t p = 0; p < params.size(); ++p)
      for (Tensor& slot : slots[p])
        if (!slot.defined()) slot = Tensor::zeros(params[p].shape(), params[p].dtype(), model.device());
  }
  if (lr) opt->set_learning_rate(*lr);
  opt->restore(std::move(slots), iterations);
  if (loss_scale) scaling->restore_loss_scale(loss_scale->first, loss_scale->second);
  return true;
}

}  // namespace kiln::io::keras
