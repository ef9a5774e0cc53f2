// Layer config JSON for Dense, Conv2D, MaxPooling2D and Flatten, with Keras' field names.
#include "io/layer_config.h"

#include "io/json_fields.h"
#include "kiln/error.h"

namespace kiln::io {

using nlohmann::json;
namespace L = kiln::layers;

namespace {

json pair_json(std::array<int64_t, 2> p) { return json::array({p[0], p[1]}); }

void put_input_shape(json& config, const Layer& layer) {
  if (!layer.declared_input_shape().empty()) config["input_shape"] = layer.declared_input_shape();
}

}  // namespace

json layer_to_json(const Layer& layer) {
  json config = json::object();
  if (const auto* d = dynamic_cast<const L::Dense*>(&layer)) {
    config = {{"units", d->units()}, {"activation", d->options().activation}, {"use_bias", d->options().use_bias}};
  } else if (const auto* c = dynamic_cast<const L::Conv2D*>(&layer)) {
    config = {{"filters", c->filters()},
              {"kernel_size", pair_json(c->kernel_size())},
              {"strides", pair_json(c->options().strides)},
              {"padding", c->options().padding},
              {"activation", c->options().activation},
              {"use_bias", c->options().use_bias}};
  } else if (const auto* p = dynamic_cast<const L::MaxPooling2D*>(&layer)) {
    config = {{"pool_size", pair_json(p->pool_size())},
              {"strides", pair_json(p->strides())},
              {"padding", p->options().padding}};
  } else if (dynamic_cast<const L::Flatten*>(&layer) == nullptr) {
    throw Error("save", "layer '" + layer.name() + "' is a " + layer.class_name() +
                            ", which kiln cannot save; expected Dense, Conv2D, MaxPooling2D or Flatten");
  }
  put_input_shape(config, layer);
  return {{"class_name", layer.class_name()}, {"name", layer.name()}, {"config", config}};
}

std::shared_ptr<Layer> layer_from_json(const json& j, const std::string& where) {
  const JsonFields top(j, where);
  const std::string class_name = top.string("class_name");
  const std::string name = top.string("name");
  if (name.empty() || name.size() > 256 || name.find('/') != std::string::npos)
    top.fail("the name \"" + name.substr(0, 60) + "\" is not a layer name; expected 1 to 256 characters without '/'");
  const JsonFields f(top.at("config"), where + " config");
  const std::vector<int64_t> input_shape = f.extents("input_shape");
  std::shared_ptr<Layer> layer;
  try {
    if (class_name == "Dense") {
      layer = std::make_shared<L::Dense>(
          f.integer("units", 1, kMaxExtent),
          L::DenseOptions{
              .activation = f.string("activation"), .use_bias = f.boolean("use_bias"), .input_shape = input_shape});
    } else if (class_name == "Conv2D") {
      layer = std::make_shared<L::Conv2D>(f.integer("filters", 1, kMaxExtent), f.pair("kernel_size"),
                                          L::Conv2DOptions{.strides = f.pair("strides"),
                                                           .padding = f.string("padding"),
                                                           .activation = f.string("activation"),
                                                           .use_bias = f.boolean("use_bias"),
                                                           .input_shape = input_shape});
    } else if (class_name == "MaxPooling2D") {
      layer =
          std::make_shared<L::MaxPooling2D>(f.pair("pool_size"), L::MaxPooling2DOptions{.strides = f.pair("strides"),
                                                                                        .padding = f.string("padding"),
                                                                                        .input_shape = input_shape});
    } else if (class_name == "Flatten") {
      layer = std::make_shared<L::Flatten>(L::FlattenOptions{.input_shape = input_shape});
    } else {
      top.fail("class_name \"" + class_name.substr(0, 60) +
               "\" is not a layer kiln knows; expected Dense, Conv2D, MaxPooling2D or Flatten");
    }
  } catch (const Error& e) {
    if (e.op() == "load_model") throw;
    top.fail(e.what());  // a constructor's own check (activation, padding), with the file's context
  }
  layer->set_name(name);
  return layer;
}

int64_t weight_count(const Layer& layer, const Shape& in) {
  // Extents are at most kMaxExtent, so a sum of one product and one extent cannot overflow.
  if (const auto* d = dynamic_cast<const L::Dense*>(&layer)) {
    int64_t n = 0;
    if (__builtin_mul_overflow(in[0], d->units(), &n)) return INT64_MAX;
    return n + (d->options().use_bias ? d->units() : 0);
  }
  if (const auto* c = dynamic_cast<const L::Conv2D*>(&layer)) {
    const auto k = c->kernel_size();
    int64_t n = 0;
    if (__builtin_mul_overflow(k[0] * k[1], in[2], &n) || __builtin_mul_overflow(n, c->filters(), &n)) return INT64_MAX;
    return n + (c->options().use_bias ? c->filters() : 0);
  }
  return 0;
}

bool creates_weights(const Layer& layer) {
  return dynamic_cast<const L::Dense*>(&layer) != nullptr || dynamic_cast<const L::Conv2D*>(&layer) != nullptr;
}

}  // namespace kiln::io
