// ONNX export: the written file read back with ONNX's protobuf classes (node types, opset, the
// dynamic batch dimension, initializers equal to the weights, the layers left out, BatchNormalization
// folding), and every error message. tests/onnx runs the exports in onnxruntime.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "kiln/kiln.h"
#include "kiln/onnx.h"
#include "test_support.h"

#if KILN_WITH_ONNX
#include <onnx/onnx_pb.h>
#endif

using namespace kiln;
namespace fs = std::filesystem;
namespace L = kiln::layers;
using kiln::testing::message_of;

namespace {

// A fresh directory per test; models on the CPU.
class OnnxExportTest : public kiln::testing::CpuTestInFolder {};

// A layer of the user's own without an ONNX exporter.
class Doubler : public Layer {
 public:
  Doubler() { name_ = "doubler"; }
  std::string class_name() const override { return "Doubler"; }
  Shape compute_output_shape(const Shape& input_shape) const override { return input_shape; }
  Tensor call(const Tensor& x, bool) override { return mul(x, 2.0); }
};

// A class of the user's own that calls itself "Dense": the Dense exporter cannot read it.
class NotDense : public Layer {
 public:
  NotDense() { name_ = "not_dense"; }
  std::string class_name() const override { return "Dense"; }
  Shape compute_output_shape(const Shape& input_shape) const override { return input_shape; }
  Tensor call(const Tensor& x, bool) override { return x; }
};

// Sorted after the built-in activations, so that lists of them other tests check stay contiguous.
const RegisterActivation cube("x_cubed", [](const Tensor& x) { return mul(mul(x, x), x); });

}  // namespace

#if KILN_WITH_ONNX

namespace {

std::string read_text(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

onnx::ModelProto read_model(const std::string& p) {
  onnx::ModelProto model;
  EXPECT_TRUE(model.ParseFromString(read_text(p))) << p;
  return model;
}

std::vector<std::string> op_types(const onnx::ModelProto& m) {
  std::vector<std::string> ops;
  for (const auto& n : m.graph().node()) ops.push_back(n.op_type());
  return ops;
}

const onnx::TensorProto& initializer(const onnx::ModelProto& m, const std::string& name) {
  for (const auto& t : m.graph().initializer())
    if (t.name() == name) return t;
  ADD_FAILURE() << "no initializer " << name;
  static const onnx::TensorProto none;
  return none;
}

std::vector<float> floats(const onnx::TensorProto& t) {
  std::vector<float> v(t.raw_data().size() / sizeof(float));
  std::memcpy(v.data(), t.raw_data().data(), v.size() * sizeof(float));
  return v;
}

std::vector<int64_t> dims(const onnx::TensorProto& t) { return {t.dims().begin(), t.dims().end()}; }

const onnx::NodeProto& node_of(const onnx::ModelProto& m, const std::string& op) {
  for (const auto& n : m.graph().node())
    if (n.op_type() == op) return n;
  ADD_FAILURE() << "no " << op << " node";
  static const onnx::NodeProto none;
  return none;
}

const onnx::AttributeProto* attr(const onnx::NodeProto& n, const std::string& name) {
  for (const auto& a : n.attribute())
    if (a.name() == name) return &a;
  return nullptr;
}

std::vector<int64_t> ints(const onnx::NodeProto& n, const std::string& name) {
  const auto* a = attr(n, name);
  if (a == nullptr) return {};
  return {a->ints().begin(), a->ints().end()};
}

const Tensor& weight_of(const Model& model, const std::string& layer, const std::string& weight) {
  for (const auto& w : model.get_layer(layer)->all_weights())
    if (w.name == weight) return w.value;
  throw Error("test", "no weight " + weight);
}

}  // namespace

TEST_F(OnnxExportTest, DenseModelHasOpsetDynamicBatchAndTheWeights) {
  Sequential model({L::Dense(3, {.activation = "relu", .input_shape = {4}}), L::Dense(2)});
  export_onnx(model, path("m.onnx"));
  const auto m = read_model(path("m.onnx"));
  ASSERT_EQ(m.opset_import_size(), 1);
  EXPECT_EQ(m.opset_import(0).domain(), "");
  EXPECT_EQ(m.opset_import(0).version(), 17);
  EXPECT_EQ(m.ir_version(), 8);
  EXPECT_EQ(m.producer_name(), "kiln");
  EXPECT_EQ(op_types(m), (std::vector<std::string>{"Gemm", "Relu", "Gemm"}));
  ASSERT_EQ(m.graph().input_size(), 1);
  const auto& in = m.graph().input(0);
  EXPECT_EQ(in.name(), "input_layer");
  EXPECT_EQ(in.type().tensor_type().elem_type(), onnx::TensorProto::FLOAT);
  ASSERT_EQ(in.type().tensor_type().shape().dim_size(), 2);
  EXPECT_EQ(in.type().tensor_type().shape().dim(0).dim_param(), "batch");
  EXPECT_EQ(in.type().tensor_type().shape().dim(1).dim_value(), 4);
  ASSERT_EQ(m.graph().output_size(), 1);
  EXPECT_EQ(m.graph().output(0).name(), "dense_1");
  EXPECT_EQ(m.graph().output(0).type().tensor_type().shape().dim(0).dim_param(), "batch");
  EXPECT_EQ(m.graph().output(0).type().tensor_type().shape().dim(1).dim_value(), 2);
  // The last node makes the output under the layer's name, so no Identity is needed.
  EXPECT_EQ(m.graph().node(2).output(0), "dense_1");
  for (const char* layer : {"dense", "dense_1"})
    for (const char* w : {"kernel", "bias"}) {
      const std::string name = std::string(layer) + "/" + w;
      const Tensor& value = weight_of(model, layer, w);
      EXPECT_EQ(floats(initializer(m, name)), value.to_vector<float>()) << name;
      EXPECT_EQ(dims(initializer(m, name)), value.shape().dims()) << name;
    }
}

TEST_F(OnnxExportTest, CnnRunsChannelsFirstBetweenTwoTransposesAndFlattensChannelsLast) {
  Sequential model({L::RandomFlip("horizontal", {.input_shape = {8, 8, 3}}),
                    L::Conv2D(4, {3, 3}, {.activation = "relu"}), L::MaxPooling2D({2, 2}), L::Conv2D(5, {2, 2}),
                    L::Flatten(), L::Dense(2)});
  export_onnx(model, path("cnn.onnx"));
  const auto m = read_model(path("cnn.onnx"));
  // RandomFlip writes nothing; the second Conv reads the MaxPool's channels_first output directly.
  EXPECT_EQ(op_types(m),
            (std::vector<std::string>{"Transpose", "Conv", "Relu", "MaxPool", "Conv", "Transpose", "Flatten", "Gemm"}));
  EXPECT_EQ(ints(m.graph().node(0), "perm"), (std::vector<int64_t>{0, 3, 1, 2}));
  EXPECT_EQ(ints(m.graph().node(5), "perm"), (std::vector<int64_t>{0, 2, 3, 1}));
  const auto& conv = m.graph().node(1);
  EXPECT_EQ(ints(conv, "kernel_shape"), (std::vector<int64_t>{3, 3}));
  EXPECT_EQ(ints(conv, "pads"), (std::vector<int64_t>{0, 0, 0, 0}));
  // Keras' [KH, KW, C, F] kernel as ONNX's [F, C, KH, KW].
  const auto& k = initializer(m, "conv2d/kernel");
  EXPECT_EQ(dims(k), (std::vector<int64_t>{4, 3, 3, 3}));
  const std::vector<float> hwio = weight_of(model, "conv2d", "kernel").to_vector<float>();
  const std::vector<float> oihw = floats(k);
  for (int o = 0; o < 4; ++o)
    for (int c = 0; c < 3; ++c)
      for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j)
          ASSERT_EQ(oihw[static_cast<std::size_t>(((o * 3 + c) * 3 + i) * 3 + j)],
                    hwio[static_cast<std::size_t>(((i * 3 + j) * 3 + c) * 4 + o)]);
}

TEST_F(OnnxExportTest, SamePaddingIsTensorFlowsAndAveragePoolingExcludesIt) {
  Sequential model({L::Conv2D(4, {3, 3}, {.strides = {2, 2}, .padding = "same", .input_shape = {8, 7, 2}}),
                    L::AveragePooling2D({3, 3}, {.strides = {1, 1}, .padding = "same"}),
                    L::MaxPooling2D({2, 2}, {.padding = "same"})});
  export_onnx(model, path("same.onnx"));
  const auto m = read_model(path("same.onnx"));
  // Height 8, stride 2: out 4, total max(3 * 2 + 3 - 8, 0) = 1, after the input; width 7: out 4,
  // total 2, one on each side.
  EXPECT_EQ(ints(node_of(m, "Conv"), "pads"), (std::vector<int64_t>{0, 1, 1, 1}));
  EXPECT_EQ(ints(node_of(m, "Conv"), "strides"), (std::vector<int64_t>{2, 2}));
  const auto& avg = node_of(m, "AveragePool");
  EXPECT_EQ(ints(avg, "pads"), (std::vector<int64_t>{1, 1, 1, 1}));
  ASSERT_NE(attr(avg, "count_include_pad"), nullptr);
  EXPECT_EQ(attr(avg, "count_include_pad")->i(), 0);
  // MaxPool on 4x4 with a 2x2 window: nothing to pad.
  EXPECT_EQ(ints(node_of(m, "MaxPool"), "pads"), (std::vector<int64_t>{0, 0, 0, 0}));
}

TEST_F(OnnxExportTest, DropoutIsLeftOutAndBatchNormalizationKeepsItsEpsilon) {
  Sequential model(
      {L::Dense(3, {.input_shape = {4}}), L::Dropout(0.5), L::BatchNormalization({.epsilon = 0.01}), L::Dropout(0.2)});
  export_onnx(model, path("bn.onnx"));
  const auto m = read_model(path("bn.onnx"));
  EXPECT_EQ(op_types(m), (std::vector<std::string>{"Gemm", "BatchNormalization", "Identity"}));
  const auto& bn = node_of(m, "BatchNormalization");
  ASSERT_NE(attr(bn, "epsilon"), nullptr);
  EXPECT_FLOAT_EQ(attr(bn, "epsilon")->f(), 0.01F);
  EXPECT_EQ(bn.input(0), "dense");
  EXPECT_EQ(bn.input(3), "batch_normalization/moving_mean");
  // The output is the BatchNormalization's value, under the last layer's name (the Dropout's).
  ASSERT_EQ(m.graph().output_size(), 1);
  EXPECT_EQ(m.graph().output(0).name(), "dropout_1");
  EXPECT_EQ(m.graph().node(2).input(0), "batch_normalization");
}

TEST_F(OnnxExportTest, FoldingScalesTheKernelAndBiasOfTheLayerBefore) {
  Sequential model({L::Conv2D(2, {1, 1}, {.input_shape = {3, 3, 2}}), L::BatchNormalization({.epsilon = 0.5})});
  auto bn = model.get_layer("batch_normalization");
  bn->set_weight("gamma", Tensor::from_vector(std::vector<float>{2.0F, 3.0F}));
  bn->set_weight("beta", Tensor::from_vector(std::vector<float>{0.25F, -1.0F}));
  bn->set_weight("moving_mean", Tensor::from_vector(std::vector<float>{1.0F, -2.0F}));
  bn->set_weight("moving_variance", Tensor::from_vector(std::vector<float>{3.5F, 0.5F}));
  model.get_layer("conv2d")->set_weight("bias", Tensor::from_vector(std::vector<float>{0.5F, 1.5F}));
  export_onnx(model, path("folded.onnx"), {.fold_batch_norm = true});
  const auto m = read_model(path("folded.onnx"));
  EXPECT_EQ(op_types(m), (std::vector<std::string>{"Transpose", "Conv", "Transpose"}));
  // inv = gamma / sqrt(variance + 0.5) = {1, 3}; bias' = bias * inv + beta - mean * inv.
  const std::vector<float> k = weight_of(model, "conv2d", "kernel").to_vector<float>();  // [1, 1, C=2, F=2]
  const std::vector<float> folded = floats(initializer(m, "conv2d/kernel"));             // [F, C, 1, 1]
  EXPECT_FLOAT_EQ(folded[0], k[0] * 1.0F);
  EXPECT_FLOAT_EQ(folded[1], k[2] * 1.0F);
  EXPECT_FLOAT_EQ(folded[2], k[1] * 3.0F);
  EXPECT_FLOAT_EQ(folded[3], k[3] * 3.0F);
  EXPECT_EQ(floats(initializer(m, "conv2d/bias")), (std::vector<float>{0.5F + 0.25F - 1.0F, 4.5F - 1.0F + 6.0F}));
  // The unfolded export keeps the layer and the original weights.
  export_onnx(model, path("plain.onnx"));
  const auto plain = read_model(path("plain.onnx"));
  EXPECT_EQ(op_types(plain), (std::vector<std::string>{"Transpose", "Conv", "BatchNormalization", "Transpose"}));
  EXPECT_EQ(floats(initializer(plain, "conv2d/bias")), (std::vector<float>{0.5F, 1.5F}));
}

TEST_F(OnnxExportTest, FoldingNeedsTheLayersOutputToBeReadByTheBatchNormalizationAlone) {
  auto x = Input({4});
  auto d = L::Dense(3, {.activation = "relu"})(x);  // an activation between: not foldable
  auto e = L::Dense(3)(d);
  auto y = L::Add()({L::BatchNormalization()(e), e});  // e read twice: not foldable
  Model model(x, L::BatchNormalization()(d));
  export_onnx(model, path("a.onnx"), {.fold_batch_norm = true});
  EXPECT_EQ(op_types(read_model(path("a.onnx"))), (std::vector<std::string>{"Gemm", "Relu", "BatchNormalization"}));
  Model twice(x, y);
  export_onnx(twice, path("b.onnx"), {.fold_batch_norm = true});
  EXPECT_EQ(op_types(read_model(path("b.onnx"))),
            (std::vector<std::string>{"Gemm", "Relu", "Gemm", "BatchNormalization", "Add"}));
}

TEST_F(OnnxExportTest, SharedLayerWritesItsWeightsOnceAndOutputsKeepTheirNames) {
  auto a = Input({3}, "a");
  auto b = Input({3}, "b");
  auto shared = std::make_shared<L::Dense>(3);
  auto ya = (*shared)(a);
  auto yb = (*shared)(b);
  Model model({a, b}, {L::Add()({ya, yb}), L::Dropout(0.5)(yb)});
  export_onnx(model, path("shared.onnx"), {.batch_dim = "N"});
  const auto m = read_model(path("shared.onnx"));
  EXPECT_EQ(op_types(m), (std::vector<std::string>{"Gemm", "Gemm", "Add", "Identity"}));
  EXPECT_EQ(m.graph().initializer_size(), 2);
  EXPECT_EQ(m.graph().node(0).input(1), m.graph().node(1).input(1));
  EXPECT_EQ(m.graph().node(0).output(0), "dense");
  EXPECT_EQ(m.graph().node(1).output(0), "dense_1");  // the second call
  ASSERT_EQ(m.graph().input_size(), 2);
  EXPECT_EQ(m.graph().input(1).name(), "b");
  EXPECT_EQ(m.graph().input(1).type().tensor_type().shape().dim(0).dim_param(), "N");
  ASSERT_EQ(m.graph().output_size(), 2);
  EXPECT_EQ(m.graph().output(0).name(), "add");
  // The Dropout's output is the shared Dense's second value: an Identity names it.
  EXPECT_EQ(m.graph().output(1).name(), "dropout");
  EXPECT_EQ(m.graph().node(3).input(0), "dense_1");
}

TEST_F(OnnxExportTest, GeluIsErfBeforeOpset20AndGeluFromIt) {
  Sequential model({L::Dense(2, {.activation = "gelu", .input_shape = {2}})});
  export_onnx(model, path("17.onnx"));
  EXPECT_EQ(op_types(read_model(path("17.onnx"))),
            (std::vector<std::string>{"Gemm", "Mul", "Erf", "Add", "Mul", "Mul"}));
  export_onnx(model, path("20.onnx"), {.opset = 20});
  const auto m = read_model(path("20.onnx"));
  EXPECT_EQ(op_types(m), (std::vector<std::string>{"Gemm", "Gelu"}));
  EXPECT_EQ(m.opset_import(0).version(), 20);
  EXPECT_EQ(m.ir_version(), 9);
  // The lowest IR version that allows the opset, so that older runtimes read the file.
  export_onnx(model, path("13.onnx"), {.opset = 13});
  EXPECT_EQ(read_model(path("13.onnx")).ir_version(), 8);
  export_onnx(model, path("21.onnx"), {.opset = 21});
  EXPECT_EQ(read_model(path("21.onnx")).ir_version(), 10);
}

TEST_F(OnnxExportTest, ChannelsFirstValuesKeepTheirLayoutThroughSoftmaxMergeAndPadding) {
  auto x = Input({6, 6, 2});
  auto c = L::Conv2D(3, {3, 3}, {.padding = "same"})(x);
  auto s = L::Activation("softmax")(c);
  auto p = L::ZeroPadding2D(L::Sides2D({1, 2}, {3, 4}))(L::Concatenate({.axis = 2})({s, c}));
  Model model(x, L::Cropping2D(L::Sides2D({1, 0}, {0, 2}))(p));
  export_onnx(model, path("cf.onnx"));
  const auto m = read_model(path("cf.onnx"));
  EXPECT_EQ(op_types(m),
            (std::vector<std::string>{"Transpose", "Conv", "Softmax", "Concat", "Pad", "Slice", "Transpose"}));
  const auto* axis = attr(node_of(m, "Softmax"), "axis");
  ASSERT_NE(axis, nullptr);
  EXPECT_EQ(axis->i(), 1);                                // the channels, channels_first
  EXPECT_EQ(attr(node_of(m, "Concat"), "axis")->i(), 3);  // Keras' width axis
  const auto& pads = initializer(m, node_of(m, "Pad").input(1));
  EXPECT_EQ(std::vector<int64_t>(pads.int64_data().begin(), pads.int64_data().end()),
            (std::vector<int64_t>{0, 0, 1, 3, 0, 0, 2, 4}));
  const auto& ends = initializer(m, node_of(m, "Slice").input(2));
  EXPECT_EQ(std::vector<int64_t>(ends.int64_data().begin(), ends.int64_data().end()), (std::vector<int64_t>{9, 17}));
}

TEST_F(OnnxExportTest, ReplacesAnExistingFile) {
  { std::ofstream(path("m.onnx")) << "old"; }
  export_onnx(Sequential({L::Dense(1, {.input_shape = {1}})}), path("m.onnx"));
  EXPECT_NE(read_text(path("m.onnx")), "old");
  EXPECT_EQ(op_types(read_model(path("m.onnx"))), (std::vector<std::string>{"Gemm"}));
}

TEST_F(OnnxExportTest, ALayerWithoutExporterIsNamedWithTheClassesThatExport) {
  { std::ofstream(path("m.onnx")) << "old"; }
  Sequential model({L::Dense(2, {.input_shape = {2}}), LayerRef(std::make_shared<Doubler>())});
  const std::string msg = message_of([&] { export_onnx(model, path("m.onnx")); });
  EXPECT_NE(msg.find("[export_onnx] layer 'doubler' of class Doubler has no ONNX exporter; expected layers of the "
                     "classes Activation, Add, Average, AveragePooling2D, BatchNormalization,"),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find("ZeroPadding2D"), std::string::npos) << msg;
  EXPECT_EQ(read_text(path("m.onnx")), "old");  // refused before anything is written
}

TEST_F(OnnxExportTest, AClassUsingABuiltInNameIsRefused) {
  Sequential model({LayerRef(std::make_shared<NotDense>())});
  model.build({3});
  EXPECT_EQ(message_of([&] { export_onnx(model, path("m.onnx")); }),
            "[export_onnx] layer 'not_dense' says it is a Dense but is another C++ class; expected kiln's own Dense");
  EXPECT_FALSE(fs::exists(path("m.onnx")));
}

TEST_F(OnnxExportTest, AnActivationWithoutOnnxFormIsNamed) {
  Sequential model({L::Dense(2, {.activation = "x_cubed", .input_shape = {2}})});
  EXPECT_EQ(message_of([&] { export_onnx(model, path("m.onnx")); }),
            "[export_onnx] layer 'dense' (Dense) uses activation 'x_cubed', which has no ONNX form; expected "
            "one of linear, elu, gelu, leaky_relu, relu, sigmoid, silu, softmax, swish, tanh");
  EXPECT_FALSE(fs::exists(path("m.onnx")));
}

TEST_F(OnnxExportTest, BadOptionsAndUnbuiltModelsAreRefused) {
  Sequential model({L::Dense(1, {.input_shape = {1}})});
  EXPECT_EQ(message_of([&] { export_onnx(model, path("m.onnx"), {.opset = 12}); }),
            "[export_onnx] opset 12 is not supported; expected 13 to 21");
  EXPECT_EQ(message_of([&] { export_onnx(model, path("m.onnx"), {.opset = 22}); }),
            "[export_onnx] opset 22 is not supported; expected 13 to 21");
  EXPECT_EQ(message_of([&] { export_onnx(model, path("m.onnx"), {.batch_dim = ""}); }),
            "[export_onnx] batch_dim is empty; expected a name for the batch dimension, such as \"batch\"");
  Sequential unbuilt({L::Dense(1)});
  EXPECT_EQ(message_of([&] { export_onnx(unbuilt, path("m.onnx")); }),
            "[export_onnx] model 'sequential' is not built; expected a built model (give input_shape, call build() or "
            "fit/predict once)");
  EXPECT_NE(message_of([&] { export_onnx(model, path("no_such_dir/m.onnx")); }).find("no_such_dir"), std::string::npos);
  EXPECT_FALSE(fs::exists(path("m.onnx")));
}

#else  // KILN_WITH_ONNX

TEST_F(OnnxExportTest, BuiltWithoutOnnxSaysSo) {
  Sequential model({L::Dense(1, {.input_shape = {1}})});
  EXPECT_EQ(message_of([&] { export_onnx(model, path("m.onnx")); }),
            "[export_onnx] kiln was built without ONNX; rebuild with libonnx-dev (and libprotobuf-dev) installed");
  EXPECT_FALSE(fs::exists(path("m.onnx")));
}

#endif  // KILN_WITH_ONNX
