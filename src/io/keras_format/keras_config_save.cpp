// kiln model -> Keras' config.json: kiln's own config (model_config_json, which also refuses
// unregistered classes) with Keras' object wrappers, float32 dtype policies, InputLayer entries,
// inbound nodes and build configs added, and compile settings as Keras' compile_config.
#include <map>

#include "io/keras_format/keras_config.h"
#include "io/keras_format/keras_objects.h"
#include "io/model_config.h"
#include "kiln/error.h"
#include "kiln/optimizers.h"
#include "model/graph.h"

namespace kiln::io::keras {

using nlohmann::json;

namespace {

json batch_shape(const Shape& sample) {
  json s = json::array({nullptr});
  for (int64_t d : sample.dims()) s.push_back(d);
  return s;
}

// kiln's layer config -> Keras' layer config: wrappers around initializers, regularizers and
// constraints.
json keras_layer_config(const json& kiln_layer) {
  json config = {{"name", kiln_layer["name"]}, {"trainable", true}, {"dtype", float32_policy()}};
  for (const auto& [key, value] : kiln_layer["config"].items()) {
    if (key == "input_shape") continue;  // an InputLayer carries it
    if (key == "dtype") {                // kiln writes a policy's name; Keras a DTypePolicy
      config[key] = wrap("keras", "DTypePolicy", {{"name", value}});
      continue;
    }
    if (key.ends_with("_initializer") && value.is_string()) {
      config[key] = wrap("keras.initializers", camel_case(value.get<std::string>()), json::object());
    } else if (key.ends_with("_regularizer") && value.is_object()) {
      config[key] = wrap("keras.regularizers", value["class_name"], value["config"]);
    } else if (key.ends_with("_constraint") && value.is_object()) {
      config[key] = wrap("keras.constraints", value["class_name"], value["config"]);
    } else {
      config[key] = value;
    }
  }
  return config;
}

json input_layer(const std::string& name, const Shape& sample) {
  return wrap("keras.layers", "InputLayer",
              {{"batch_shape", batch_shape(sample)}, {"dtype", "float32"}, {"sparse", false}, {"name", name}});
}

json keras_tensor(const Shape& sample, const std::string& maker, int call) {
  return {{"class_name", "__keras_tensor__"},
          {"config", {{"shape", batch_shape(sample)}, {"dtype", "float32"}, {"keras_history", {maker, call, 0}}}}};
}

// Keras' loss classes take fewer options than kiln's: label_smoothing is kiln's extra for the
// sparse loss and must be 0 to mean the same.
json keras_loss(const Loss& loss) {
  json config = loss.get_config();
  if (loss.class_name() == "SparseCategoricalCrossentropy") {
    if (config.value("label_smoothing", 0.0) != 0.0)
      throw Error("save", "the loss SparseCategoricalCrossentropy has label_smoothing " +
                              config["label_smoothing"].dump() +
                              ", which Keras' class does not have; expected 0 to save as .keras");
    config.erase("label_smoothing");
  }
  config["name"] = loss.name();
  config["reduction"] = "sum_over_batch_size";
  return wrap("keras.losses", loss.class_name(), config);
}

json keras_optimizer(const Optimizer& opt) {
  json config = opt.get_config();
  config["name"] = opt.name();
  if (const auto* scaling = dynamic_cast<const optimizers::LossScaleOptimizer*>(&opt))
    config["inner_optimizer"] = keras_optimizer(scaling->inner_optimizer());
  if (config.contains("learning_rate") && is_wrapped(config["learning_rate"]))
    config["learning_rate"] =
        wrap("keras.optimizers.schedules", config["learning_rate"]["class_name"], config["learning_rate"]["config"]);
  return wrap("keras.optimizers", opt.class_name(), config);
}

json compile_config(const Model& model) {
  json losses = json::array();
  for (const auto& l : model.losses()) losses.push_back(keras_loss(*l));
  bool unit_weights = true;
  for (double w : model.loss_weights()) unit_weights = unit_weights && w == 1.0;
  json metrics = json::array();
  if (model.losses().size() == 1) {
    for (const auto& m : model.metrics()) metrics.push_back(m);
  } else {
    for (const auto& list : model.output_metrics()) metrics.push_back(list);
  }
  return {{"optimizer", keras_optimizer(*model.optimizer())},
          {"loss", model.losses().size() == 1 ? losses[0] : losses},
          {"loss_weights", unit_weights ? json(nullptr) : json(model.loss_weights())},
          {"metrics", metrics.empty() ? json(nullptr) : metrics},
          {"weighted_metrics", nullptr},
          {"run_eagerly", false},
          {"steps_per_execution", 1},
          {"jit_compile", false}};
}

}  // namespace

json keras_config_from_model(const Model& model) {
  const json kiln = json::parse(model_config_json(model, -1));  // refuses what cannot be rebuilt
  const model::Graph& g = model.graph();
  // The input shapes of each layer's first call, for Keras' build_config.
  std::map<std::string, std::vector<Shape>> first_inputs;
  for (const auto& node : g.nodes()) {
    auto& shapes = first_inputs[node.layer->name()];
    if (!shapes.empty()) continue;
    for (int v : node.inputs) shapes.push_back(g.shape(v));
  }
  const auto build_config = [&](const std::string& name) {
    const auto& shapes = first_inputs[name];
    if (shapes.size() == 1) return json{{"input_shape", batch_shape(shapes[0])}};
    json list = json::array();
    for (const auto& s : shapes) list.push_back(batch_shape(s));
    return json{{"input_shape", list}};
  };

  json config = {{"name", model.name()}, {"trainable", true}, {"dtype", float32_policy()}};
  json layers = json::array();
  json out;
  if (model.is_sequential()) {
    layers.push_back(input_layer("input_layer", model.input_shape()));
    for (const json& l : kiln["layers"]) {
      json entry = wrap("keras.layers", l["class_name"], keras_layer_config(l));
      entry["build_config"] = build_config(l["name"]);
      layers.push_back(entry);
    }
    config["layers"] = layers;
    config["build_input_shape"] = batch_shape(model.input_shape());
    out = wrap("keras", "Sequential", config);
    out["build_config"] = {{"input_shape", batch_shape(model.input_shape())}};
  } else {
    for (int i = 0; i < g.input_count(); ++i) {
      json entry = input_layer(g.input_names()[static_cast<std::size_t>(i)], g.shape(i));
      entry["name"] = g.input_names()[static_cast<std::size_t>(i)];
      entry["inbound_nodes"] = json::array();
      layers.push_back(entry);
    }
    // Each layer's calls, in call order, as Keras' inbound nodes.
    std::vector<int> call_of_value(static_cast<std::size_t>(g.input_count()), 0);
    std::map<std::string, int> calls;
    std::map<std::string, json> nodes_of;
    for (const auto& node : g.nodes()) {
      json args = json::array();
      for (int v : node.inputs)
        args.push_back(keras_tensor(g.shape(v), g.maker_name(v), call_of_value[static_cast<std::size_t>(v)]));
      // A merge layer takes its inputs as one list argument.
      const json arg = node.inputs.size() == 1 ? args[0] : args;
      nodes_of[node.layer->name()].push_back({{"args", json::array({arg})}, {"kwargs", json::object()}});
      call_of_value.push_back(calls[node.layer->name()]++);
    }
    for (const json& l : kiln["layers"]) {
      json entry = wrap("keras.layers", l["class_name"], keras_layer_config(l));
      entry["build_config"] = build_config(l["name"]);
      entry["name"] = l["name"];
      entry["inbound_nodes"] = nodes_of[l["name"].get<std::string>()];
      layers.push_back(entry);
    }
    config["layers"] = layers;
    json inputs = json::array(), outputs = json::array();
    for (int i = 0; i < g.input_count(); ++i) inputs.push_back({g.input_names()[static_cast<std::size_t>(i)], 0, 0});
    for (const json& r : kiln["outputs"]) outputs.push_back({r[0], r[1], 0});
    config["input_layers"] = inputs.size() == 1 ? inputs[0] : inputs;
    config["output_layers"] = outputs.size() == 1 ? outputs[0] : outputs;
    out = wrap("keras.src.models.functional", "Functional", config);
    out["registered_name"] = "Functional";
    out["build_config"] = {{"input_shape", nullptr}};
  }
  if (model.optimizer() && model.loss()) out["compile_config"] = compile_config(model);
  return out;
}

}  // namespace kiln::io::keras
