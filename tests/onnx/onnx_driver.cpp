// ONNX export check, kiln's side: builds the models of the check (the seed models, a
// BatchNormalization/Dropout model, a residual functional model and one using every exporter),
// exports each to <dir>/<case>.onnx and writes its inputs and kiln's predictions as .npy files,
// listed in <dir>/manifest.json for check_onnx.py.
//
// Usage: kiln_onnx_driver DIR
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "kiln/io/numpy.h"
#include "kiln/kiln.h"
#include "kiln/onnx.h"

namespace {

using namespace kiln;
namespace L = kiln::layers;

// Every array the check exchanges goes through this one function.
void save_array(const std::string& path, const Tensor& t) { io::save_npy(path, t); }

Tensor uniform(const Shape& shape, double low, double high, Generator& gen) {
  return Tensor::uniform(shape, low, high, gen);
}

// Moving statistics and affine factors away from their initial 0 and 1, so that the exported
// BatchNormalization (or its folding) has something to get wrong.
void randomize_batch_norms(Model& model, Generator& gen) {
  for (const auto& layer : model.layers()) {
    if (layer->class_name() != "BatchNormalization") continue;
    for (const auto& w : layer->all_weights()) {
      const bool variance = w.name == "moving_variance", gamma = w.name == "gamma";
      layer->set_weight(w.name, uniform(w.shape, variance || gamma ? 0.5 : -0.5, variance || gamma ? 2.0 : 0.5, gen));
    }
  }
}

struct Case {
  std::string name;
  Model* model;
  std::vector<Tensor> x;
  OnnxOptions options = {};
};

nlohmann::json run_case(const std::string& dir, const Case& c) {
  const std::vector<Tensor> y = c.model->predict(c.x);
  export_onnx(*c.model, dir + "/" + c.name + ".onnx", c.options);
  nlohmann::json entry = {{"name", c.name}, {"model", c.name + ".onnx"}, {"opset", c.options.opset}};
  // The inputs in the model's order (the ONNX graph's inputs have the same order).
  for (std::size_t i = 0; i < c.x.size(); ++i) {
    const std::string file = c.name + "_x" + std::to_string(i) + ".npy";
    save_array(dir + "/" + file, c.x[i]);
    entry["inputs"].push_back(file);
  }
  const auto outputs = c.model->output_names();
  for (std::size_t k = 0; k < y.size(); ++k) {
    const std::string file = c.name + "_y" + std::to_string(k) + ".npy";
    save_array(dir + "/" + file, y[k]);
    entry["outputs"].push_back(nlohmann::json{{"name", outputs[k]}, {"file", file}});
  }
  std::printf("onnx driver: %s exported (%zu layers)\n", c.name.c_str(), c.model->layers().size());
  return entry;
}

// examples/house_price.cpp's model, trained as there (fewer epochs: the weights only need to be
// something other than their initial values).
Sequential house_price() {
  Sequential model({L::Dense(1, {.input_shape = {1}})});
  model.compile("sgd", "mean_squared_error");
  const Tensor xs = Tensor::from_vector(std::vector<float>{1, 2, 3, 4, 5, 6}, Shape{6, 1});
  const Tensor ys = Tensor::from_vector(std::vector<float>{5.0, 6.5, 8.0, 9.5, 11.0, 12.5}, Shape{6, 1});
  model.fit(xs, ys, {.epochs = 100, .verbose = 0});
  return model;
}

// examples/cifar10.cpp's model (with its augmentation layers, which export as nothing).
Sequential cifar10() {
  return Sequential({L::RandomFlip("horizontal", {.input_shape = {32, 32, 3}}),
                     L::RandomTranslation(0.125, 0.125, {.fill_mode = "constant", .interpolation = "nearest"}),
                     L::Conv2D(32, {3, 3}, {.activation = "relu"}), L::MaxPooling2D({2, 2}), L::Flatten(),
                     L::Dense(64, {.activation = "relu"}), L::Dense(10)});
}

Sequential batch_norm_dropout() {
  return Sequential({L::Conv2D(8, {3, 3}, {.input_shape = {10, 10, 3}}), L::BatchNormalization(), L::Activation("relu"),
                     L::Dropout(0.5), L::MaxPooling2D({2, 2}), L::Flatten(), L::Dense(16),
                     L::BatchNormalization({.epsilon = 1e-2}), L::Dropout(0.25),
                     L::Dense(4, {.activation = "softmax"})});
}

Model residual() {
  auto x = Input({16, 16, 3}, "image");
  auto r = L::Rescaling(2.0)(x);
  auto c1 = L::Conv2D(8, {3, 3}, {.padding = "same", .activation = "relu"})(r);
  auto c2 = L::Conv2D(8, {3, 3}, {.padding = "same"})(c1);
  auto s = L::Add()({c1, L::BatchNormalization()(c2)});
  auto p = L::MaxPooling2D()(L::Activation("relu")(s));
  auto y = L::Dense(10)(L::GlobalAveragePooling2D()(p));
  return Model(x, y, "residual");
}

// Every exporter: preprocessing, both paddings, strides, every activation, every merge layer (with
// channels_first inputs), Concatenate on two axes, both global poolings, Permute, Reshape, softmax
// on rank 3 and channels_first rank 4, and two outputs.
Model all_layers(Generator& gen) {
  auto x = Input({12, 12, 3}, "image");
  auto r = L::Rescaling(1.0 / 255.0, {.offset = -0.5})(x);
  auto n = L::Normalization({.axis = {-1}, .mean = {{0.1, -0.1, 0.0}}, .variance = {{0.5, 2.0, 1.0}}})(r);
  auto t = L::RandomTranslation(0.1, 0.1)(L::RandomFlip("horizontal")(n));
  auto p = L::ZeroPadding2D(L::Sides2D({1, 2}, {0, 1}))(t);
  auto c1 = L::Conv2D(8, {3, 3}, {.strides = {2, 2}, .padding = "same", .activation = "gelu"})(p);
  auto a1 = L::AveragePooling2D({3, 3}, {.strides = {1, 1}, .padding = "same"})(c1);
  auto k = L::Cropping2D(L::Sides2D({1, 0}, {0, 1}))(a1);
  auto c2 = L::Conv2D(8, {3, 3}, {.padding = "same", .activation = "elu"})(k);
  auto lr = L::Activation("leaky_relu")(L::BatchNormalization()(c2));
  auto m = L::MaxPooling2D({2, 2}, {.padding = "same"})(lr);
  auto s1 = L::Activation("silu")(m), s2 = L::Activation("swish")(m), th = L::Activation("tanh")(m);
  auto sg = L::Activation("sigmoid")(m), re = L::Activation("relu")(m), li = L::Activation("linear")(m);
  auto sum = L::Add()({s1, s2, th});
  auto diff = L::Subtract()({sum, sg});
  auto prod = L::Multiply()({diff, re});
  auto avg = L::Average()({prod, th, li});
  auto mx = L::Maximum()({avg, sg, L::Activation("softmax")(m)});
  auto cat = L::Concatenate()({mx, m});
  auto cat_h = L::Concatenate({.axis = 1})({mx, avg});
  auto gmp = L::GlobalMaxPooling2D({.keepdims = true})(cat);
  auto gap = L::GlobalAveragePooling2D()(cat_h);
  auto perm = L::Permute({2, 1, 3})(cat);
  auto rs = L::Reshape({12, -1})(perm);
  auto adapted = std::make_shared<L::Normalization>();
  adapted->adapt(uniform(Shape{20, 12, 16}, -1.0, 3.0, gen));
  auto d3 = L::Activation("softmax")((*adapted)(rs));
  auto cat3 = L::Concatenate()({L::Flatten()(gmp), L::Flatten()(d3), gap});
  auto y1 = L::Dense(10, {.activation = "softmax"})(L::Dropout(0.3)(cat3));
  auto y2 = L::Dense(3, {.use_bias = false})(gap);
  return Model({x}, {y1, y2}, "all_layers");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: kiln_onnx_driver DIR\n");
    return 2;
  }
  const std::string dir = argv[1];
  try {
    set_default_device(Device::cpu());
    utils::set_random_seed(7);
    Generator gen(11);
    Sequential house = house_price();
    Sequential cifar = cifar10();
    Sequential bn = batch_norm_dropout();
    randomize_batch_norms(bn, gen);
    Model res = residual();
    randomize_batch_norms(res, gen);
    Model all = all_layers(gen);
    randomize_batch_norms(all, gen);

    const Tensor house_x = Tensor::from_vector(std::vector<float>{7.0F, -2.5F, 0.0F, 100.0F}, Shape{4, 1});
    const Tensor cifar_x = uniform(Shape{6, 32, 32, 3}, 0.0, 1.0, gen);
    const Tensor bn_x = uniform(Shape{5, 10, 10, 3}, -1.0, 1.0, gen);
    const Tensor res_x = uniform(Shape{4, 16, 16, 3}, -1.0, 1.0, gen);
    const Tensor all_x = uniform(Shape{5, 12, 12, 3}, 0.0, 255.0, gen);
    // One case a line: the comment after the last keeps clang-format from packing them in pairs.
    const std::vector<Case> cases = {
        {"house_price", &house, {house_x}},
        {"cifar10", &cifar, {cifar_x}},
        {"batch_norm_dropout", &bn, {bn_x}},
        {"batch_norm_dropout_folded", &bn, {bn_x}, {.fold_batch_norm = true}},
        {"residual", &res, {res_x}},
        {"residual_folded", &res, {res_x}, {.fold_batch_norm = true}},
        {"all_layers", &all, {all_x}},
        {"all_layers_opset13", &all, {all_x}, {.opset = 13}},
        {"all_layers_opset20", &all, {all_x}, {.opset = 20}},
        {"all_layers_opset21", &all, {all_x}, {.opset = 21}},  //
    };
    nlohmann::json manifest = nlohmann::json::array();
    for (const auto& c : cases) manifest.push_back(run_case(dir, c));
    std::ofstream(dir + "/manifest.json") << manifest.dump(1) << "\n";
  } catch (const std::exception& e) {
    std::fprintf(stderr, "onnx driver: %s\n", e.what());
    return 1;
  }
  return 0;
}
