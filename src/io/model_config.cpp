// Model config JSON: writing from a Sequential and its compile settings, and parsing untrusted
// text back into layers, optimizer and loss with every field range-checked.
#include "io/model_config.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "io/generator_state.h"
#include "io/json_fields.h"
#include "io/layer_config.h"
#include "kiln/error.h"
#include "kiln/random.h"
#include "metrics/metrics.h"

#ifndef KILN_VERSION
#define KILN_VERSION "unknown"
#endif

namespace kiln::io {

using nlohmann::json;

namespace {

// {"class_name": ..., "config": ...} of a registered optimizer or loss; anything else is refused
// now rather than written to a file that load_model could not read.
template <typename T, typename Table>
json class_json(const T& object, const Table& table, const char* family) {
  const std::string class_name = object.class_name();
  if (!table.contains(class_name))
    throw Error("save", std::string("the ") + family + " is a " + class_name + ", which is not a registered " + family +
                            " class, so load_model could not rebuild it; expected a registered class");
  return {{"class_name", class_name}, {"config", object.get_config()}};
}

// A registered class from {"class_name": ..., "config": ...}, errors with the file's context.
template <typename Table>
auto class_from_json(const json& j, const std::string& where, const Table& table, const char* family) {
  const JsonFields top(j, where);
  const std::string class_name = top.string("class_name");
  if (!table.contains(class_name)) {
    std::string known;
    for (const auto& n : table.names()) known += (known.empty() ? "" : ", ") + n;
    top.fail("class_name \"" + class_name.substr(0, 60) + "\" is not a registered " + family +
             " class; expected one of " + known);
  }
  try {
    return table.make(class_name, top.has("config") ? top.at("config") : json::object());
  } catch (const Error& e) {
    if (e.op() == "load_model") throw;
    // The class's own check, with the file's context; a config field's error needs no op tag.
    top.fail(e.op() == "from_config" ? e.message() : std::string(e.what()));
  } catch (const std::exception& e) {
    top.fail(class_name + "::from_config failed: " + e.what());
  }
}

std::string layer_where(const std::string& source, std::size_t i, const Layer* layer) {
  return source + ": layer " + std::to_string(i) + (layer ? " ('" + layer->name() + "')" : "");
}

}  // namespace

std::string model_config_json(const Model& model, int epoch) {
  // parse_model_config refuses an unbuilt model with weights (they would not be in the file), so
  // such a model is refused here rather than written to a file that cannot be loaded.
  if (!model.built() && !model.layers().empty())
    throw Error("save",
                "the model is not built, so its layers have no weights yet and the file could not be loaded; "
                "expected build(input_shape), fit() or an input_shape on layer 0 before save");
  json layers = json::array();
  for (const auto& layer : model.layers()) layers.push_back(layer_to_json(*layer));
  json config = {{"format_version", kCheckpointFormatVersion},
                 {"kiln_version", KILN_VERSION},
                 {"class_name", model.is_sequential() ? "Sequential" : "Functional"},
                 {"name", model.name()},
                 {"layers", layers},
                 {"epoch", epoch},
                 {"rng_state", generator_state(model.generator())}};
  if (model.is_sequential())
    config["input_shape"] = model.built() ? json(model.input_shape().dims()) : json(nullptr);
  else
    config.update(functional_graph_json(model));
  if (model.optimizer() && model.loss()) {
    const Optimizer& opt = *model.optimizer();
    const std::size_t per_param = opt.slot_names().size();
    for (const auto& group : opt.slots())
      if (group.size() != per_param)
        throw Error("save", "the optimizer keeps " + std::to_string(group.size()) +
                                " slots for a parameter; expected " + std::to_string(per_param) + " for " + opt.name());
    config["compile"] = {{"optimizer", class_json(opt, optimizer_registry(), "optimizer")},
                         {"loss", class_json(*model.loss(), loss_registry(), "loss")},
                         {"metrics", model.metrics()}};
    if (model.losses().size() > 1) {  // several outputs; "loss" and "metrics" keep the first's
      json losses = json::array();
      for (const auto& l : model.losses()) losses.push_back(class_json(*l, loss_registry(), "loss"));
      config["compile"]["losses"] = losses;
      config["compile"]["output_metrics"] = model.output_metrics();
      config["compile"]["loss_weights"] = model.loss_weights();
    } else if (model.loss_weights().front() != 1.0) {
      config["compile"]["loss_weights"] = model.loss_weights();
    }
    config["optimizer_state"] = {{"iterations", opt.iterations()}, {"slot_groups", opt.slots().size()}};
  } else {
    config["compile"] = nullptr;
  }
  return config.dump();
}

ModelConfig parse_model_config(std::string_view text, const std::string& source) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw Error("load_model",
                source + ": the model config is not valid JSON (" + e.what() + "); expected a JSON object");
  }
  const JsonFields top(j, source + ": the model config");
  const int64_t version = top.integer("format_version", 1, INT32_MAX);
  if (version > kCheckpointFormatVersion)
    top.fail("format_version " + std::to_string(version) + " is newer than this kiln reads; expected at most " +
             std::to_string(kCheckpointFormatVersion) + " (upgrade kiln)");
  const std::string model_class = top.string("class_name");
  if (model_class != "Sequential" && model_class != "Functional")
    top.fail("class_name is \"" + model_class.substr(0, 60) + "\"; expected \"Sequential\" or \"Functional\"");
  ModelConfig cfg;
  cfg.functional = model_class == "Functional";
  cfg.name = top.string("name");
  cfg.epoch = static_cast<int>(top.integer("epoch", -1, INT32_MAX));
  if (top.has("rng_state")) {
    cfg.rng_state = top.string("rng_state");
    Generator probe;  // checked now, so load_model cannot fail after it has built the model
    set_generator_state(probe, cfg.rng_state, source);
  }

  const json& layers = top.at("layers");
  if (!layers.is_array()) top.fail("\"layers\" is not a list; expected a list of layer configs");
  for (std::size_t i = 0; i < layers.size(); ++i) {
    cfg.layers.push_back(layer_from_json(layers[i], layer_where(source, i, nullptr)));
    const Layer& layer = *cfg.layers.back();
    for (std::size_t k = 0; k < i; ++k)
      if (cfg.layers[k]->name() == layer.name())
        throw Error("load_model", layer_where(source, i, &layer) + ": the name is used by layer " + std::to_string(k) +
                                      " too; expected unique layer names");
    if (i > 0 && !cfg.functional && !layer.declared_input_shape().empty())
      throw Error("load_model", layer_where(source, i, &layer) +
                                    ": declares input_shape but is not the first layer; "
                                    "expected it only on layer 0");
  }

  if (cfg.functional) {
    cfg.graph = parse_functional_graph(j, cfg.layers, source);
    cfg.weight_count = cfg.graph.weight_count;
  } else if (top.has("input_shape")) {
    const std::vector<int64_t> dims = top.extents("input_shape");
    if (dims.empty()) top.fail("\"input_shape\" is empty; expected the per-sample shape, e.g. [32, 32, 3]");
    int64_t numel = 1;
    for (int64_t d : dims)
      if (__builtin_mul_overflow(numel, d, &numel) || numel > kMaxInputNumel)
        top.fail("\"input_shape\" has more than " + std::to_string(kMaxInputNumel) +
                 " scalars; expected a smaller input");
    if (cfg.layers.empty()) top.fail("\"input_shape\" is given but there are no layers; expected at least one layer");
    const auto& declared = cfg.layers.front()->declared_input_shape();
    if (!declared.empty() && declared != dims)
      top.fail("\"input_shape\" " + Shape(dims).str() + " disagrees with layer 0's input_shape " +
               Shape(declared).str() + "; expected the same shape");
    // Walk the shapes now so a config that could never build fails before anything is allocated.
    Shape shape(dims);
    for (std::size_t i = 0; i < cfg.layers.size(); ++i) {
      Layer& layer = *cfg.layers[i];
      Shape out;
      try {
        out = layer.compute_output_shape(shape);
      } catch (const Error& e) {
        throw Error("load_model", layer_where(source, i, &layer) + ": " + e.what());
      }
      int64_t w = 0;
      try {
        w = weight_count(layer, shape);
      } catch (const Error& e) {
        throw Error("load_model", layer_where(source, i, &layer) + ": " + e.what());
      }
      if (__builtin_add_overflow(cfg.weight_count, w, &cfg.weight_count) || cfg.weight_count > kMaxInputNumel)
        throw Error("load_model", layer_where(source, i, &layer) + ": the model would have more than " +
                                      std::to_string(kMaxInputNumel) + " weights; expected a smaller model");
      if (out.numel() > kMaxInputNumel)
        throw Error("load_model", layer_where(source, i, &layer) + ": outputs more than " +
                                      std::to_string(kMaxInputNumel) + " scalars per sample; expected a smaller model");
      shape = out;
    }
    cfg.input_shape = Shape(dims);
  } else if (!cfg.layers.empty() && !cfg.layers.front()->declared_input_shape().empty()) {
    top.fail("\"input_shape\" is missing although layer 0 declares one; expected the model's input shape");
  } else {
    // Unbuilt, the model would create weights at its first predict or fit, of a size only the
    // config decides (units: 2147483648 asks for hundreds of GiB) and checked against nothing in
    // the file. Every weight of a loaded model must come from the file, so such a config is refused.
    // Unbuilt, the model would create weights at its first predict or fit, of a size only the
    // config decides (units: 2147483648 asks for hundreds of GiB) and checked against nothing in
    // the file. Every weight of a loaded model must come from the file, so such a config is refused.
    if (!cfg.layers.empty())
      throw Error("load_model", layer_where(source, 0, cfg.layers[0].get()) +
                                    ": the config has no \"input_shape\", so the model was never built and no layer "
                                    "weights are in the file; expected a model saved after it was built (an "
                                    "input_shape on layer 0, build() or fit() before save)");
  }

  if (top.has("compile")) {
    const JsonFields c(top.at("compile"), source + ": compile");
    cfg.optimizer =
        class_from_json(c.at("optimizer"), source + ": compile optimizer", optimizer_registry(), "optimizer");
    if (c.has("losses")) {
      const json& losses = c.at("losses");
      if (!losses.is_array() || losses.empty()) c.fail("\"losses\" is not a non-empty list; expected one per output");
      for (std::size_t i = 0; i < losses.size(); ++i)
        cfg.losses.push_back(class_from_json(losses[i], source + ": compile losses[" + std::to_string(i) + "]",
                                             loss_registry(), "loss"));
      const json& lists = c.at("output_metrics");
      if (!lists.is_array() || lists.size() != losses.size())
        c.fail("\"output_metrics\" is not a list of one list per output");
      for (std::size_t i = 0; i < lists.size(); ++i)
        cfg.metrics.push_back(JsonFields(json{{"m", lists[i]}}, c.where() + " output_metrics").strings("m"));
    } else {
      cfg.losses.push_back(class_from_json(c.at("loss"), source + ": compile loss", loss_registry(), "loss"));
      cfg.metrics.push_back(c.strings("metrics"));
    }
    if (c.has("loss_weights")) {
      const json& w = c.at("loss_weights");
      if (!w.is_array() || w.size() != cfg.losses.size())
        c.fail("\"loss_weights\" is not a list of one number per output");
      for (const json& v : w) {
        if (!v.is_number() || !std::isfinite(v.get<double>())) c.fail("a loss weight is not a finite number");
        cfg.loss_weights.push_back(v.get<double>());
      }
    } else {
      cfg.loss_weights.assign(cfg.losses.size(), 1.0);
    }
    for (const auto& list : cfg.metrics)
      for (const auto& m : list) try {
          metrics::canonical_name(m);
        } catch (const Error& e) {
          c.fail(e.message());
        }
    const JsonFields s(top.at("optimizer_state"), source + ": optimizer_state");
    cfg.iterations = s.integer("iterations", 0, INT64_MAX);
    cfg.slot_groups = s.integer("slot_groups", 0, kMaxExtent);
  }
  return cfg;
}

}  // namespace kiln::io
