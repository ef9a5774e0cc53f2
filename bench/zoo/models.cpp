// The zoo's networks, each written once as a user of kiln's Keras-style API would write it; under
// a mixed precision policy as Keras' guide writes it (the logits layer float32, `dtype = "float32"`).
#include "models.h"

#include "resnet20.h"

namespace zoo {
namespace {

namespace layers = kiln::layers;
const std::vector<int64_t> kInput = {32, 32, 3};

// The seed: the Keras CIFAR-10 getting-started CNN (examples/cifar10.cpp).
std::unique_ptr<kiln::Model> seed() {
  return std::make_unique<kiln::Sequential>(
      std::vector<kiln::LayerRef>{layers::Conv2D(32, {3, 3}, {.activation = "relu", .input_shape = kInput}),
                                  layers::MaxPooling2D({2, 2}), layers::Flatten(),
                                  layers::Dense(64, {.activation = "relu"}), layers::Dense(10, {.dtype = "float32"})},
      "seed");
}

// The four-convolution network of issue 18's first table: 'same' then 'valid' 3x3 convolutions at
// 32 and 64 filters, a pooling after each pair, Dense(256) head.
std::unique_ptr<kiln::Model> conv4() {
  return std::make_unique<kiln::Sequential>(
      std::vector<kiln::LayerRef>{
          layers::Conv2D(32, {3, 3}, {.padding = "same", .activation = "relu", .input_shape = kInput}),
          layers::Conv2D(32, {3, 3}, {.activation = "relu"}), layers::MaxPooling2D({2, 2}),
          layers::Conv2D(64, {3, 3}, {.padding = "same", .activation = "relu"}),
          layers::Conv2D(64, {3, 3}, {.activation = "relu"}), layers::MaxPooling2D({2, 2}), layers::Flatten(),
          layers::Dense(256, {.activation = "relu"}), layers::Dense(10, {.dtype = "float32"})},
      "conv4");
}

// VGG-style: pairs of 3x3 'same' conv-BN-ReLU at 64, 128 and 256 filters, each pair pooled, then a
// Flatten -> Dense(256, relu) -> Dense(10) head. The convolutions have no bias, as BN follows.
std::unique_ptr<kiln::Model> vgg() {
  std::vector<kiln::LayerRef> stack;
  bool first = true;
  for (const int64_t filters : {64, 128, 256}) {
    for (int i = 0; i < 2; ++i) {
      stack.emplace_back(layers::Conv2D(
          filters, {3, 3},
          {.padding = "same", .use_bias = false, .input_shape = first ? kInput : std::vector<int64_t>{}}));
      stack.emplace_back(layers::BatchNormalization());
      stack.emplace_back(layers::Activation("relu"));
      first = false;
    }
    stack.emplace_back(layers::MaxPooling2D({2, 2}));
  }
  stack.emplace_back(layers::Flatten());
  stack.emplace_back(layers::Dense(256, {.activation = "relu"}));
  stack.emplace_back(layers::Dense(10, {.dtype = "float32"}));
  return std::make_unique<kiln::Sequential>(stack, "vgg");
}

// A deeper MLP on the flattened image: 3072 -> 1024 -> 1024 -> 10.
std::unique_ptr<kiln::Model> mlp() {
  return std::make_unique<kiln::Sequential>(
      std::vector<kiln::LayerRef>{layers::Flatten({.input_shape = kInput}), layers::Dense(1024, {.activation = "relu"}),
                                  layers::Dense(1024, {.activation = "relu"}), layers::Dense(10, {.dtype = "float32"})},
      "mlp");
}

// A wide, shallow CNN: one 5x5 'same' convolution at 128 filters, pooling, a linear classifier.
std::unique_ptr<kiln::Model> wide() {
  return std::make_unique<kiln::Sequential>(
      std::vector<kiln::LayerRef>{
          layers::Conv2D(128, {5, 5}, {.padding = "same", .activation = "relu", .input_shape = kInput}),
          layers::MaxPooling2D({2, 2}), layers::Flatten(), layers::Dense(10, {.dtype = "float32"})},
      "wide");
}

// All-CNN-C (Springenberg et al. 2014, "Striving for simplicity"): no pooling layers, 3x3
// convolutions at 96 and 192 filters with stride-2 ones in place of pooling, a 'valid' 3x3, two 1x1
// convolutions and a global average for the logits. ReLU throughout; no dropout.
std::unique_ptr<kiln::Model> allconv() {
  auto conv = [](int64_t filters, int64_t k, int64_t stride, const std::string& padding, const std::string& act,
                 std::vector<int64_t> input = {}) {
    return layers::Conv2D(filters, {k, k},
                          {.strides = {stride, stride}, .padding = padding, .activation = act, .input_shape = input});
  };
  return std::make_unique<kiln::Sequential>(
      std::vector<kiln::LayerRef>{
          conv(96, 3, 1, "same", "relu", kInput), conv(96, 3, 1, "same", "relu"), conv(96, 3, 2, "same", "relu"),
          conv(192, 3, 1, "same", "relu"), conv(192, 3, 1, "same", "relu"), conv(192, 3, 2, "same", "relu"),
          conv(192, 3, 1, "valid", "relu"), conv(192, 1, 1, "valid", "relu"), conv(10, 1, 1, "valid", "linear"),
          layers::GlobalAveragePooling2D({.dtype = "float32"})},
      "allconv");
}

// LeNet-5 as Keras' examples write it for 32x32 input: 5x5 'valid' convolutions at 6 and 16 filters
// with tanh, each followed by a 2x2 average pooling, then Dense 120 and 84 (tanh) and the logits.
std::unique_ptr<kiln::Model> lenet5() {
  return std::make_unique<kiln::Sequential>(
      std::vector<kiln::LayerRef>{layers::Conv2D(6, {5, 5}, {.activation = "tanh", .input_shape = kInput}),
                                  layers::AveragePooling2D({2, 2}), layers::Conv2D(16, {5, 5}, {.activation = "tanh"}),
                                  layers::AveragePooling2D({2, 2}), layers::Flatten(),
                                  layers::Dense(120, {.activation = "tanh"}), layers::Dense(84, {.activation = "tanh"}),
                                  layers::Dense(10, {.dtype = "float32"})},
      "lenet5");
}

// A small DenseNet (Huang et al. 2017) with the functional API: a 3x3 convolution at 24 filters,
// three dense blocks of four BN-ReLU-Conv(3x3, 12 filters) layers, each layer's output concatenated
// to its input (the channels grow by 12 per layer: 24 to 72, 36 to 84, 42 to 90), transitions of
// BN-ReLU-Conv(1x1, half the channels)-AveragePooling(2) between the blocks, then BN-ReLU, a global
// average and Dense(10). Convolutions without bias (BN follows). Channel counts that are no multiple
// of 8 or 16, concatenations and 1x1 convolutions: shapes nothing in kiln was tuned for.
std::unique_ptr<kiln::Model> densenet() {
  const auto bn_relu = [](const kiln::SymbolicTensor& x) {
    return layers::Activation("relu")(layers::BatchNormalization()(x));
  };
  const auto conv = [](int64_t filters, int64_t k) {
    return layers::Conv2D(filters, {k, k}, {.padding = "same", .use_bias = false});
  };
  const kiln::SymbolicTensor input = kiln::Input({32, 32, 3});
  kiln::SymbolicTensor h = conv(24, 3)(input);
  for (int block = 0; block < 3; ++block) {
    for (int layer = 0; layer < 4; ++layer) h = layers::Concatenate()({h, conv(12, 3)(bn_relu(h))});
    if (block < 2) h = layers::AveragePooling2D({2, 2})(conv(h.shape()[-1] / 2, 1)(bn_relu(h)));
  }
  h = layers::GlobalAveragePooling2D()(bn_relu(h));
  return std::make_unique<kiln::Model>(input, layers::Dense(10, {.dtype = "float32"})(h), "densenet");
}

}  // namespace

const std::vector<std::string>& model_names() {
  static const std::vector<std::string> names = {"seed", "conv4",   "vgg",    "resnet20", "mlp",
                                                 "wide", "allconv", "lenet5", "densenet"};
  return names;
}

std::string optimizer_name(const std::string& model) { return model == "seed" || model == "conv4" ? "adam" : "sgd"; }

std::unique_ptr<kiln::Model> build(const std::string& model) {
  std::unique_ptr<kiln::Model> m;
  if (model == "seed")
    m = seed();
  else if (model == "conv4")
    m = conv4();
  else if (model == "vgg")
    m = vgg();
  else if (model == "resnet20")
    m = std::make_unique<kiln::Model>(examples::resnet20());
  else if (model == "mlp")
    m = mlp();
  else if (model == "wide")
    m = wide();
  else if (model == "allconv")
    m = allconv();
  else if (model == "lenet5")
    m = lenet5();
  else if (model == "densenet")
    m = densenet();
  else {
    std::string known;
    for (const auto& n : model_names()) known += (known.empty() ? "" : ", ") + n;
    throw kiln::Error("bench_zoo", "unknown model '" + model + "'; expected one of " + known);
  }
  const auto loss = kiln::losses::SparseCategoricalCrossentropy({.from_logits = true});
  if (optimizer_name(model) == "adam")
    m->compile(kiln::optimizers::Adam(), loss, {"accuracy"});
  else
    m->compile(kiln::optimizers::SGD({.learning_rate = 0.01, .momentum = 0.9}), loss, {"accuracy"});
  return m;
}

}  // namespace zoo
