// Model config JSON: writing from a Sequential and its compile settings, and parsing untrusted
// text back into layers, optimizer and loss with every field range-checked.
#include "io/model_config.h"

#include <nlohmann/json.hpp>

#include "io/generator_state.h"
#include "io/json_fields.h"
#include "io/layer_config.h"
#include "kiln/error.h"
#include "kiln/random.h"

#ifndef KILN_VERSION
#define KILN_VERSION "unknown"
#endif

namespace kiln::io {

using nlohmann::json;

namespace {

json optimizer_json(const Optimizer& opt) {
  if (const auto* s = dynamic_cast<const optimizers::SGD*>(&opt))
    return {{"class_name", "SGD"},
            {"config",
             {{"learning_rate", s->options().learning_rate},
              {"momentum", s->options().momentum},
              {"nesterov", s->options().nesterov}}}};
  if (const auto* a = dynamic_cast<const optimizers::Adam*>(&opt))
    return {{"class_name", "Adam"},
            {"config",
             {{"learning_rate", a->options().learning_rate},
              {"beta_1", a->options().beta_1},
              {"beta_2", a->options().beta_2},
              {"epsilon", a->options().epsilon}}}};
  throw Error("save", "the optimizer is a " + opt.name() + ", which kiln cannot save; expected SGD or Adam");
}

json loss_json(const Loss& loss) {
  if (dynamic_cast<const losses::MeanSquaredError*>(&loss))
    return {{"class_name", "MeanSquaredError"}, {"config", json::object()}};
  if (const auto* s = dynamic_cast<const losses::SparseCategoricalCrossentropy*>(&loss))
    return {{"class_name", "SparseCategoricalCrossentropy"}, {"config", {{"from_logits", s->from_logits()}}}};
  throw Error("save", "the loss is " + loss.name() +
                          ", which kiln cannot save; expected MeanSquaredError or SparseCategoricalCrossentropy");
}

std::unique_ptr<Optimizer> optimizer_from_json(const json& j, const std::string& where) {
  const JsonFields top(j, where);
  const std::string class_name = top.string("class_name");
  const JsonFields f(top.at("config"), where + " config");
  try {
    if (class_name == "SGD")
      return std::make_unique<optimizers::SGD>(optimizers::SGDOptions{.learning_rate = f.number("learning_rate"),
                                                                      .momentum = f.number("momentum"),
                                                                      .nesterov = f.boolean("nesterov")});
    if (class_name == "Adam")
      return std::make_unique<optimizers::Adam>(optimizers::AdamOptions{.learning_rate = f.number("learning_rate"),
                                                                        .beta_1 = f.number("beta_1"),
                                                                        .beta_2 = f.number("beta_2"),
                                                                        .epsilon = f.number("epsilon")});
  } catch (const Error& e) {
    if (e.op() == "load_model") throw;
    top.fail(e.what());  // the optimizer's own option check, with the file's context
  }
  top.fail("class_name \"" + class_name.substr(0, 60) + "\" is not an optimizer kiln knows; expected SGD or Adam");
}

std::unique_ptr<Loss> loss_from_json(const json& j, const std::string& where) {
  const JsonFields top(j, where);
  const std::string class_name = top.string("class_name");
  const JsonFields f(top.at("config"), where + " config");
  if (class_name == "MeanSquaredError") return std::make_unique<losses::MeanSquaredError>();
  if (class_name == "SparseCategoricalCrossentropy")
    return std::make_unique<losses::SparseCategoricalCrossentropy>(
        losses::SparseCategoricalCrossentropyOptions{.from_logits = f.boolean("from_logits")});
  top.fail("class_name \"" + class_name.substr(0, 60) +
           "\" is not a loss kiln knows; expected MeanSquaredError or SparseCategoricalCrossentropy");
}

std::string layer_where(const std::string& source, std::size_t i, const Layer* layer) {
  return source + ": layer " + std::to_string(i) + (layer ? " ('" + layer->name() + "')" : "");
}

}  // namespace

std::vector<std::string> slot_names(const Optimizer& optimizer) {
  if (const auto* s = dynamic_cast<const optimizers::SGD*>(&optimizer))
    return s->options().momentum != 0.0 ? std::vector<std::string>{"momentum"} : std::vector<std::string>{};
  if (dynamic_cast<const optimizers::Adam*>(&optimizer)) return {"momentum", "velocity"};
  throw Error("save", "the optimizer is a " + optimizer.name() + ", which kiln cannot save; expected SGD or Adam");
}

std::string model_config_json(const Sequential& model, int epoch) {
  // parse_model_config refuses an unbuilt model with weights (they would not be in the file), so
  // such a model is refused here rather than written to a file that cannot be loaded.
  if (!model.built())
    for (const auto& layer : model.layers())
      if (creates_weights(*layer))
        throw Error("save", "layer '" + layer->name() +
                                "' has no weights yet (the model is not built), so the file "
                                "could not be loaded; expected build(input_shape), fit() or an input_shape on layer 0 "
                                "before save");
  json layers = json::array();
  for (const auto& layer : model.layers()) layers.push_back(layer_to_json(*layer));
  json config = {{"format_version", kCheckpointFormatVersion},
                 {"kiln_version", KILN_VERSION},
                 {"class_name", "Sequential"},
                 {"name", model.name()},
                 {"layers", layers},
                 {"input_shape", model.built() ? json(model.input_shape().dims()) : json(nullptr)},
                 {"epoch", epoch},
                 {"rng_state", generator_state(model.generator())}};
  if (model.optimizer() && model.loss()) {
    const Optimizer& opt = *model.optimizer();
    const std::size_t per_param = slot_names(opt).size();
    for (const auto& group : opt.slots())
      if (group.size() != per_param)
        throw Error("save", "the optimizer keeps " + std::to_string(group.size()) +
                                " slots for a parameter; expected " + std::to_string(per_param) + " for " + opt.name());
    config["compile"] = {
        {"optimizer", optimizer_json(opt)}, {"loss", loss_json(*model.loss())}, {"metrics", model.metrics()}};
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
  if (top.string("class_name") != "Sequential")
    top.fail("class_name is not \"Sequential\"; expected a Sequential model");

  ModelConfig cfg;
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
    if (i > 0 && !layer.declared_input_shape().empty())
      throw Error("load_model", layer_where(source, i, &layer) +
                                    ": declares input_shape but is not the first layer; "
                                    "expected it only on layer 0");
  }

  if (top.has("input_shape")) {
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
      const Layer& layer = *cfg.layers[i];
      Shape out;
      try {
        out = layer.compute_output_shape(shape);
      } catch (const Error& e) {
        throw Error("load_model", layer_where(source, i, &layer) + ": " + e.what());
      }
      const int64_t w = weight_count(layer, shape);
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
    for (std::size_t i = 0; i < cfg.layers.size(); ++i)
      if (creates_weights(*cfg.layers[i]))
        throw Error("load_model", layer_where(source, i, cfg.layers[i].get()) +
                                      ": the config has no \"input_shape\", so this layer would create weights the "
                                      "file does not hold; expected a model saved after it was built (an input_shape "
                                      "on layer 0, build() or fit() before save)");
  }

  if (top.has("compile")) {
    const JsonFields c(top.at("compile"), source + ": compile");
    cfg.optimizer = optimizer_from_json(c.at("optimizer"), source + ": compile optimizer");
    cfg.loss = loss_from_json(c.at("loss"), source + ": compile loss");
    cfg.metrics = c.strings("metrics");
    for (const auto& m : cfg.metrics)
      if (m != "accuracy" && m != "acc" && m != "sparse_categorical_accuracy")
        c.fail("metric \"" + m.substr(0, 60) + "\" is not one kiln knows; expected \"accuracy\"");
    const JsonFields s(top.at("optimizer_state"), source + ": optimizer_state");
    cfg.iterations = s.integer("iterations", 0, INT64_MAX);
    cfg.slot_groups = s.integer("slot_groups", 0, kMaxExtent);
  }
  return cfg;
}

}  // namespace kiln::io
