// Keras' config.json -> kiln's model config: layers (wrappers, dtype policies and initializer
// objects removed, options kiln lacks refused), InputLayers as input shapes, inbound nodes as
// kiln's ordered layer calls, and compile_config as kiln's compile settings.
#include <algorithm>
#include <map>
#include <set>

#include "io/json_fields.h"
#include "io/keras_format/keras_config.h"
#include "io/keras_format/keras_objects.h"
#include "io/model_config.h"
#include "kiln/constraints.h"
#include "kiln/error.h"
#include "kiln/initializers.h"
#include "kiln/losses.h"
#include "kiln/mixed_precision.h"
#include "kiln/optimizers.h"
#include "model/graph.h"

namespace kiln::io::keras {

using nlohmann::json;

namespace {

constexpr const char* kOp = "load_model";

std::string names_of(const std::vector<std::string>& names) {
  std::string s;
  for (const auto& n : names) s += (s.empty() ? "" : ", ") + n;
  return s;
}

[[noreturn]] void fail(const std::string& where, const std::string& what) { throw Error(kOp, where + ": " + what); }

// Keras' options that kiln's layers do not have, with the value that means "not used".
bool neutral_value(const std::string& key, const json& v) {
  if (v.is_null() || v == false) return true;
  if (key == "data_format") return v == "channels_last";
  if (key == "dilation_rate") return v == 1 || v == json::array({1, 1});
  if (key == "groups") return v == 1;
  if (key == "renorm_momentum" || key == "renorm_clipping") return true;  // used only with renorm
  return false;
}

// The dtype policy name of a layer's "dtype" (a name, or Keras' wrapped DTypePolicy), one that
// mixed_precision::DTypePolicy accepts.
std::string layer_policy(const json& dtype, const std::string& where) {
  if (dtype.is_null()) return "float32";
  json name = dtype;
  if (is_wrapped(dtype) && dtype["config"].is_object()) name = dtype["config"].value("name", json());
  const auto& known = mixed_precision::policy_names();
  if (name.is_string() && std::find(known.begin(), known.end(), name.get<std::string>()) != known.end())
    return name.get<std::string>();
  std::string expected;
  for (std::size_t i = 0; i < known.size(); ++i)
    expected += (i == 0 ? "" : i + 1 == known.size() ? " or " : ", ") + known[i];
  fail(where, "dtype " + dtype.dump().substr(0, 120) + " is not a policy kiln loads; expected " + expected);
}

void check_dtype(const json& dtype, const std::string& where) {
  if (dtype.is_null() || dtype == "float32") return;
  if (is_wrapped(dtype) && dtype["config"].is_object() && dtype["config"].value("name", json()) == "float32") return;
  fail(where, "dtype " + dtype.dump().substr(0, 120) + " is not float32; expected float32 inputs");
}

// Removes Keras' wrappers from a layer's (or optimizer's, loss's) config values: initializers
// become kiln's names, regularizers, constraints and schedules {"class_name", "config"}, others are
// refused.
json unwrap_value(const std::string& key, const json& v, const std::string& where) {
  if (!is_wrapped(v)) return v;
  const std::string class_name = v["class_name"].get<std::string>();
  if (key.ends_with("_initializer")) {
    const std::string name = model::snake_case(class_name);
    if (!initializer_registry().contains(name))
      fail(where, "\"" + key + "\" is the initializer " + class_name.substr(0, 60) +
                      ", which kiln does not have; expected one of " + names_of(initializer_registry().names()));
    return name;
  }
  if (key.ends_with("_constraint") && !constraint_registry().contains(class_name))
    fail(where, "\"" + key + "\" is the constraint " + class_name.substr(0, 60) +
                    ", which kiln does not have; expected one of " + names_of(constraint_registry().names()));
  json config = json::object();
  if (v["config"].is_object())
    for (const auto& [k, x] : v["config"].items()) config[k] = unwrap_value(k, x, where);
  return {{"class_name", class_name}, {"config", config}};
}

// One Keras layer entry -> kiln's {"class_name", "name", "config"}.
json layer_from_keras(const json& entry, const std::string& where) {
  const JsonFields top(entry, where);
  const std::string class_name = top.string("class_name");
  if (!layer_registry().contains(class_name))
    top.fail("layer class \"" + class_name.substr(0, 60) +
             "\" is not a kiln layer (a custom or unsupported class); expected one of " +
             names_of(layer_registry().names()));
  const JsonFields f(top.at("config"), where + " config");
  const std::string name = f.string("name");
  const std::string at = where + " ('" + name.substr(0, 60) + "', " + class_name + ")";
  json config = json::object();
  std::string policy = "float32";
  for (const auto& [key, value] : top.at("config").items()) {
    if (key == "name") continue;
    if (key == "dtype") {
      policy = layer_policy(value, at);
      continue;
    }
    if (key == "activity_regularizer" && !value.is_null())
      fail(at, "\"activity_regularizer\" is set; kiln has no activity regularizers (expected null)");
    if (key == "activation" && !value.is_string())
      fail(at, "\"activation\" is " + value.dump().substr(0, 80) + "; expected the name of a built-in activation");
    config[key] = unwrap_value(key, value, at);
  }
  // Build the layer now to learn which options kiln reads; every other Keras option must be unused.
  json kiln = {{"class_name", class_name}, {"name", name}, {"config", config}};
  std::shared_ptr<Layer> layer;
  try {
    layer = layer_registry().make(class_name, config);
  } catch (const Error& e) {
    fail(at, e.what());
  }
  const Config own = layer->get_config();
  for (const auto& [key, value] : config.items()) {
    if (key == "trainable" || own.contains(key) || neutral_value(key, value)) continue;
    fail(at, "\"" + key + "\" is " + value.dump().substr(0, 80) + "; kiln's " + class_name +
                 " has no such option (expected it unset)");
  }
  if (policy != "float32") kiln["config"]["dtype"] = policy;
  return kiln;
}

// The per-sample shape of a Keras batch shape [null, d1, ...], every d known.
std::vector<int64_t> sample_shape(const json& batch_shape, const std::string& where) {
  if (!batch_shape.is_array() || batch_shape.size() < 2)
    fail(where, "the batch shape " + batch_shape.dump().substr(0, 80) + " is not [batch, d1, ...]; expected a list");
  std::vector<int64_t> dims;
  for (std::size_t i = 1; i < batch_shape.size(); ++i) {
    const json& d = batch_shape[i];
    if (!d.is_number_integer() || d.get<int64_t>() < 1 || d.get<int64_t>() > kMaxExtent)
      fail(where, "the batch shape " + batch_shape.dump().substr(0, 80) +
                      " has an unknown or invalid dimension; expected every dimension but the batch known");
    dims.push_back(d.get<int64_t>());
  }
  return dims;
}

// An InputLayer entry: its name and per-sample shape.
std::pair<std::string, std::vector<int64_t>> input_layer(const json& entry, const std::string& where) {
  const JsonFields c(JsonFields(entry, where).at("config"), where + " (InputLayer) config");
  if (c.has("dtype")) check_dtype(c.at("dtype"), where);
  if (c.has("sparse") && c.boolean("sparse")) c.fail("\"sparse\" is true; expected dense inputs");
  if (c.has("ragged") && c.boolean("ragged")) c.fail("\"ragged\" is true; expected dense inputs");
  const json& shape = c.has("batch_shape") ? c.at("batch_shape") : c.at("batch_input_shape");
  return {c.string("name"), sample_shape(shape, where)};
}

bool is_input_layer(const json& entry) {
  return entry.is_object() && entry.value("class_name", json()) == "InputLayer";
}

json sequential_from_keras(const JsonFields& c, const std::string& source) {
  const json& layers = c.at("layers");
  if (!layers.is_array()) c.fail("\"layers\" is not a list; expected the layers");
  json out = {{"class_name", "Sequential"}, {"layers", json::array()}};
  std::optional<std::vector<int64_t>> input_shape;
  for (std::size_t i = 0; i < layers.size(); ++i) {
    const std::string where = source + ": config.json layer " + std::to_string(i);
    if (is_input_layer(layers[i])) {
      if (i != 0) fail(where, "an InputLayer is not the first layer; expected it first in a Sequential model");
      input_shape = input_layer(layers[i], where).second;
      continue;
    }
    out["layers"].push_back(layer_from_keras(layers[i], where));
  }
  if (!input_shape && c.has("build_input_shape"))
    input_shape = sample_shape(c.at("build_input_shape"), source + ": config.json build_input_shape");
  if (input_shape) out["input_shape"] = *input_shape;
  return out;
}

// A keras_history [layer, node, tensor] -> kiln's [maker, call].
json history_ref(const json& tensor, const std::string& where) {
  if (!tensor.is_object() || tensor.value("class_name", json()) != "__keras_tensor__" || !tensor.contains("config") ||
      !tensor["config"].is_object())
    fail(where, "a node argument is " + tensor.dump().substr(0, 80) + "; expected a __keras_tensor__");
  const json& h = tensor["config"].value("keras_history", json());
  if (!h.is_array() || h.size() != 3 || !h[0].is_string() || !h[1].is_number_integer() || !h[2].is_number_integer())
    fail(where, "a keras_history is " + h.dump().substr(0, 80) + "; expected [layer name, node index, tensor index]");
  if (h[2] != 0) fail(where, "a keras_history reads output " + h[2].dump() + " of a layer; expected 0 (one output)");
  return json::array({h[0], h[1]});
}

// input_layers / output_layers: one [name, node, tensor] or a list of them -> kiln's refs.
std::vector<json> endpoint_refs(const json& j, const std::string& where) {
  std::vector<json> out;
  const auto one = [&](const json& e) {
    if (!e.is_array() || e.size() != 3 || !e[0].is_string() || !e[1].is_number_integer() || e[2] != 0)
      fail(where, "an entry is " + e.dump().substr(0, 80) + "; expected [layer name, node index, 0]");
    out.push_back(json::array({e[0], e[1]}));
  };
  if (j.is_array() && !j.empty() && j[0].is_string())
    one(j);
  else if (j.is_array() && !j.empty())
    for (const json& e : j) one(e);
  else
    fail(where, "is " + j.dump().substr(0, 80) + "; expected [layer name, node index, 0] or a list of them");
  return out;
}

json functional_from_keras(const JsonFields& c, const std::string& source) {
  const json& layers = c.at("layers");
  if (!layers.is_array()) c.fail("\"layers\" is not a list; expected the layers");
  json out = {{"class_name", "Functional"}, {"layers", json::array()}, {"nodes", json::array()}};
  std::map<std::string, std::vector<int64_t>> inputs;
  struct Call {
    std::string layer;
    int64_t index;
    json reads;
  };
  std::vector<Call> pending;
  for (std::size_t i = 0; i < layers.size(); ++i) {
    const std::string where = source + ": config.json layer " + std::to_string(i);
    if (is_input_layer(layers[i])) {
      auto [name, shape] = input_layer(layers[i], where);
      inputs[name] = shape;
      continue;
    }
    const json kiln = layer_from_keras(layers[i], where);
    out["layers"].push_back(kiln);
    const std::string name = kiln["name"];
    const json& nodes = layers[i].value("inbound_nodes", json());
    if (!nodes.is_array()) fail(where, "\"inbound_nodes\" is not a list; expected the layer's calls");
    for (std::size_t n = 0; n < nodes.size(); ++n) {
      const std::string at = where + " ('" + name + "') node " + std::to_string(n);
      const json& node = nodes[n];
      if (!node.is_object() || !node.contains("args") || !node["args"].is_array() || node["args"].size() != 1)
        fail(at, "is not {\"args\": [tensor or [tensors]], ...}; expected one positional argument");
      if (node.contains("kwargs") && !(node["kwargs"].is_object() && node["kwargs"].empty()))
        fail(at, "passes keyword arguments " + node["kwargs"].dump().substr(0, 80) + "; expected none");
      const json& arg = node["args"][0];
      json reads = json::array();
      if (arg.is_array()) {
        for (const json& t : arg) reads.push_back(history_ref(t, at));
      } else {
        reads.push_back(history_ref(arg, at));
      }
      pending.push_back({name, static_cast<int64_t>(n), reads});
    }
  }
  // kiln wants the calls in an order where each reads only values already made, and a layer's
  // calls in their own order; Keras lists them per layer.
  std::set<std::pair<std::string, int64_t>> made;
  for (const auto& [name, shape] : inputs) made.insert({name, 0});
  std::map<std::string, int64_t> calls;
  std::vector<bool> done(pending.size(), false);
  for (bool progress = true; progress;) {
    progress = false;
    for (std::size_t k = 0; k < pending.size(); ++k) {
      if (done[k] || calls[pending[k].layer] != pending[k].index) continue;
      bool ready = true;
      for (const json& r : pending[k].reads)
        ready = ready && made.count({r[0].get<std::string>(), r[1].get<int64_t>()});
      if (!ready) continue;
      out["nodes"].push_back({{"layer", pending[k].layer}, {"inputs", pending[k].reads}});
      made.insert({pending[k].layer, calls[pending[k].layer]++});
      done[k] = progress = true;
    }
  }
  for (std::size_t k = 0; k < pending.size(); ++k)
    if (!done[k])
      fail(source + ": config.json layer '" + pending[k].layer + "' node " + std::to_string(pending[k].index),
           "reads " + pending[k].reads.dump().substr(0, 80) +
               ", which no input or other call makes; expected a graph from the inputs");
  json in = json::array();
  for (const json& r : endpoint_refs(c.at("input_layers"), source + ": config.json input_layers")) {
    const auto it = inputs.find(r[0].get<std::string>());
    if (it == inputs.end() || r[1] != 0)
      fail(source + ": config.json input_layers", "names " + r.dump().substr(0, 80) + ", which is not an InputLayer");
    in.push_back({{"name", it->first}, {"shape", it->second}});
  }
  out["inputs"] = in;
  out["outputs"] = endpoint_refs(c.at("output_layers"), source + ": config.json output_layers");
  return out;
}

// A loss or optimizer given as a name ("adam", "mse") or a Keras object -> {"class_name", "config"}.
template <typename Table>
json class_from_keras(const json& j, const Table& table, const char* family, const std::string& where) {
  if (j.is_string()) {
    const std::string name = j.get<std::string>();
    if (!table.contains(name))
      fail(where, std::string(family) + " \"" + name.substr(0, 60) + "\" is not one kiln has; expected one of " +
                      names_of(table.names()));
    auto object = table.make(name, json::object());
    return {{"class_name", object->class_name()}, {"config", object->get_config()}};
  }
  if (!is_wrapped(j))
    fail(where, std::string(family) + " is " + j.dump().substr(0, 80) + "; expected a name or a Keras object");
  const std::string class_name = j["class_name"];
  if (!table.contains(class_name))
    fail(where, std::string(family) + " class \"" + class_name.substr(0, 60) +
                    "\" is not one kiln has (a custom or unsupported class); expected one of " +
                    names_of(table.names()));
  return unwrap_value("", j, where);
}

json metric_name(const json& m, const std::string& where) {
  if (m.is_string()) return m;
  if (is_wrapped(m)) return model::snake_case(m["class_name"].get<std::string>());
  fail(where, "a metric is " + m.dump().substr(0, 80) + "; expected a name or a Keras metric object");
}

json compile_from_keras(const json& cc, const std::string& source) {
  const std::string where = source + ": config.json compile_config";
  const JsonFields c(cc, where);
  json out = {{"optimizer", class_from_keras(c.at("optimizer"), optimizer_registry(), "optimizer", where)}};
  const json& loss = c.at("loss");
  if (loss.is_array()) {
    json losses = json::array();
    for (const json& l : loss) losses.push_back(class_from_keras(l, loss_registry(), "loss", where));
    out["losses"] = losses;
    out["loss"] = losses.at(0);
  } else {
    out["loss"] = class_from_keras(loss, loss_registry(), "loss", where);
  }
  const std::size_t outputs = out.contains("losses") ? out["losses"].size() : 1;
  json metrics = json::array();
  if (c.has("metrics")) {
    const json& m = c.at("metrics");
    if (!m.is_array()) c.fail("\"metrics\" is " + m.dump().substr(0, 80) + "; expected a list");
    for (const json& x : m) {
      if (x.is_array()) {
        json inner = json::array();
        for (const json& y : x) inner.push_back(metric_name(y, where));
        metrics.push_back(inner);
      } else {
        metrics.push_back(metric_name(x, where));
      }
    }
  }
  if (c.has("weighted_metrics")) c.fail("\"weighted_metrics\" is set; kiln has no weighted metrics (expected null)");
  if (outputs > 1) {
    json per_output = json::array();
    for (std::size_t i = 0; i < outputs; ++i)
      per_output.push_back(metrics.size() == outputs && metrics[i].is_array() ? metrics[i] : json::array());
    out["output_metrics"] = per_output;
    out["metrics"] = per_output[0];
  } else {
    out["metrics"] = metrics;
  }
  if (c.has("loss_weights")) out["loss_weights"] = c.at("loss_weights");
  return out;
}

}  // namespace

json kiln_config_from_keras(const json& keras, const std::string& source) {
  const JsonFields top(keras, source + ": config.json", kOp);
  const std::string class_name = top.string("class_name");
  if (top.has("registered_name") && top.at("registered_name") != class_name && !top.at("registered_name").is_null())
    top.fail("the model is the custom class \"" + top.at("registered_name").dump().substr(0, 60) +
             "\"; expected a Sequential or Functional model");
  if (class_name != "Sequential" && class_name != "Functional" && class_name != "Model")
    top.fail("the model class is \"" + class_name.substr(0, 60) +
             "\"; expected Sequential or Functional (subclassed models have no config kiln can rebuild)");
  const JsonFields c(top.at("config"), source + ": config.json config", kOp);
  if (c.has("dtype")) check_dtype(c.at("dtype"), source + ": config.json");
  json out = class_name == "Sequential" ? sequential_from_keras(c, source) : functional_from_keras(c, source);
  out["format_version"] = kCheckpointFormatVersion;
  out["name"] =
      c.has("name") ? c.string("name") : std::string(class_name == "Sequential" ? "sequential" : "functional");
  out["epoch"] = -1;
  if (top.has("compile_config")) {
    out["compile"] = compile_from_keras(top.at("compile_config"), source);
    out["optimizer_state"] = {{"iterations", 0}, {"slot_groups", 0}};
  }
  return out;
}

}  // namespace kiln::io::keras
