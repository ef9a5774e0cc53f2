// Layer configs as JSON through the layer registry: {"class_name": "Dense", "name": "dense_1",
// "config": {...the class's get_config()..., "trainable": true, "input_shape": [...]}}.
#include "io/layer_config.h"

#include "io/json_fields.h"
#include "kiln/error.h"

namespace kiln::io {

using nlohmann::json;

json layer_to_json(const Layer& layer) {
  const std::string class_name = layer.class_name();
  if (!layer_registry().contains(class_name))
    throw Error("save", "layer '" + layer.name() + "' is a " + class_name +
                            ", which is not a registered layer class, so load_model could not rebuild it; expected "
                            "a registered class (declare kiln::RegisterLayer<" +
                            class_name + "> registered(\"" + class_name + "\") in its .cpp)");
  json config = layer.get_config();
  if (!config.is_object())
    throw Error("save", "layer '" + layer.name() + "' (" + class_name +
                            ") gave a get_config() that is not a JSON "
                            "object; expected an object of its arguments");
  config["trainable"] = layer.trainable();
  // Written only where it is not the default, so float32 models' files stay as they were.
  if (layer.dtype_policy().name() != "float32") config["dtype"] = layer.dtype_policy().name();
  if (!layer.declared_input_shape().empty()) config["input_shape"] = layer.declared_input_shape();
  return {{"class_name", class_name}, {"name", layer.name()}, {"config", config}};
}

std::shared_ptr<Layer> layer_from_json(const json& j, const std::string& where) {
  const JsonFields top(j, where);
  const std::string class_name = top.string("class_name");
  const std::string name = top.string("name");
  if (name.empty() || name.size() > 256 || name.find('/') != std::string::npos)
    top.fail("the name \"" + name.substr(0, 60) + "\" is not a layer name; expected 1 to 256 characters without '/'");
  const JsonFields f(top.at("config"), where + " config");
  const std::vector<int64_t> input_shape = f.extents("input_shape");
  const bool trainable = f.has("trainable") ? f.boolean("trainable") : true;
  const std::string dtype_policy = f.has("dtype") ? f.string("dtype") : "float32";
  if (!layer_registry().contains(class_name)) {
    std::string known;
    for (const auto& n : layer_registry().names()) known += (known.empty() ? "" : ", ") + n;
    top.fail("class_name \"" + class_name.substr(0, 60) + "\" is not a registered layer class; expected one of " +
             known + " (register a class of your own before load_model)");
  }
  std::shared_ptr<Layer> layer;
  try {
    json class_config = top.at("config");
    if (class_config.is_object()) class_config.erase("dtype");  // the base's field, not the class's
    layer = layer_registry().make(class_name, class_config);
  } catch (const Error& e) {
    if (e.op() == "load_model") throw;
    // The class's own check, with the file's context; a config field's error needs no op tag.
    top.fail(e.op() == "from_config" ? e.message() : std::string(e.what()));
  } catch (const std::exception& e) {  // a user's from_config reading the JSON itself
    top.fail(class_name + "::from_config failed: " + e.what());
  }
  if (!layer) top.fail(class_name + "::from_config returned no layer; expected one");
  layer->set_name(name);
  layer->set_declared_input_shape(input_shape);
  layer->set_trainable(trainable);
  try {
    layer->set_dtype_policy(dtype_policy);
  } catch (const Error& e) {
    f.fail(e.message());
  }
  return layer;
}

int64_t weight_count(Layer& layer, const Shape& in) {
  int64_t n = 0;
  for (const LayerWeight& w : layer.weight_specs(in)) {
    int64_t numel = 1;
    for (int64_t d : w.shape.dims())
      if (__builtin_mul_overflow(numel, d, &numel)) return INT64_MAX;
    if (__builtin_add_overflow(n, numel, &n)) return INT64_MAX;
  }
  return n;
}

}  // namespace kiln::io
