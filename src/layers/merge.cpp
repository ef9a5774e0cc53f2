// Merge layers: the list checks they share (MergeLayer), the five elementwise ones and Concatenate.
#include "kiln/layers/merge.h"

#include "kiln/error.h"
#include "kiln/ops.h"
#include "layers/config_fields.h"

namespace kiln::layers {

namespace {

const RegisterLayer<Add> add_registered("Add");
const RegisterLayer<Subtract> subtract_registered("Subtract");
const RegisterLayer<Multiply> multiply_registered("Multiply");
const RegisterLayer<Average> average_registered("Average");
const RegisterLayer<Maximum> maximum_registered("Maximum");
const RegisterLayer<Concatenate> concatenate_registered("Concatenate");

constexpr std::size_t kAnyNumber = static_cast<std::size_t>(-1);

// "exactly 2 inputs" or "at least 2 inputs".
std::string count_str(std::size_t min_inputs, std::size_t max_inputs) {
  return (min_inputs == max_inputs ? "exactly " : "at least ") + std::to_string(min_inputs) + " inputs";
}

// inputs[0] op inputs[1] op ..., left to right (Keras' order).
template <typename Op>
Tensor fold(const std::vector<Tensor>& inputs, Op op) {
  Tensor out = inputs[0];
  for (std::size_t i = 1; i < inputs.size(); ++i) out = op(out, inputs[i]);
  return out;
}

}  // namespace

// ---- MergeLayer ----

MergeLayer::MergeLayer(const std::string& op, std::size_t min_inputs, std::size_t max_inputs)
    : min_inputs_(min_inputs), max_inputs_(max_inputs) {
  name_ = op;
}

std::string MergeLayer::shapes_str(const std::vector<Shape>& shapes) {
  std::string out;
  for (std::size_t i = 0; i < shapes.size(); ++i) {
    if (i > 0) out += i + 1 == shapes.size() ? " and " : ", ";
    out += shapes[i].batch_str();
  }
  return out;
}

Shape MergeLayer::compute_output_shape(const Shape& input_shape) const {
  throw Error(name_, "called on a single input of shape " + input_shape.batch_str() + "; expected a list of " +
                         count_str(min_inputs_, max_inputs_) + " (a merge layer)");
}

Tensor MergeLayer::call(const Tensor& x, bool) {
  throw Error(name_, "called on a single tensor" + (x.defined() ? " of shape " + x.shape().str() : std::string()) +
                         "; expected a list of " + count_str(min_inputs_, max_inputs_) + " (a merge layer)");
}

Shape MergeLayer::compute_output_shape_inputs(const std::vector<Shape>& input_shapes) const {
  const std::size_t n = input_shapes.size();
  if (n < min_inputs_ || n > max_inputs_)
    throw Error(name_, "got " + std::to_string(n) + (n == 1 ? " input" : " inputs") +
                           (n ? " (" + shapes_str(input_shapes) + ")" : std::string()) + "; expected a list of " +
                           count_str(min_inputs_, max_inputs_));
  return merged_shape(input_shapes);
}

Tensor MergeLayer::call_inputs(const std::vector<Tensor>& inputs, bool) {
  std::vector<Shape> per_sample;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& x = inputs[i];
    if (!x.defined() || x.ndim() < 1)
      throw Error(name_, "input " + std::to_string(i) + " is " + (x.defined() ? "a scalar" : "an undefined tensor") +
                             "; expected a batch [N, ...]");
    if (x.size(0) != inputs[0].size(0))
      throw Error(name_, "inputs have batch sizes " + std::to_string(inputs[0].size(0)) + " (input 0) and " +
                             std::to_string(x.size(0)) + " (input " + std::to_string(i) + "); expected equal ones");
    per_sample.push_back(x.shape().drop_front());
  }
  compute_output_shape_inputs(per_sample);
  return merge(inputs);
}

Shape MergeLayer::merged_shape(const std::vector<Shape>& input_shapes) const {
  for (const Shape& s : input_shapes)
    if (s != input_shapes[0])
      throw Error(name_, "inputs have shapes " + shapes_str(input_shapes) + "; expected equal shapes");
  return input_shapes[0];
}

// ---- the elementwise layers ----

Add::Add() : MergeLayer("add", 2, kAnyNumber) {}
Tensor Add::merge(const std::vector<Tensor>& inputs) const {
  return fold(inputs, [](const Tensor& a, const Tensor& b) { return add(a, b); });
}
Add Add::from_config(const Config& config) {
  config_fields(config, "Add");  // must be an object
  return Add();
}

Subtract::Subtract() : MergeLayer("subtract", 2, 2) {}
Tensor Subtract::merge(const std::vector<Tensor>& inputs) const { return sub(inputs[0], inputs[1]); }
Subtract Subtract::from_config(const Config& config) {
  config_fields(config, "Subtract");
  return Subtract();
}

Multiply::Multiply() : MergeLayer("multiply", 2, kAnyNumber) {}
Tensor Multiply::merge(const std::vector<Tensor>& inputs) const {
  return fold(inputs, [](const Tensor& a, const Tensor& b) { return mul(a, b); });
}
Multiply Multiply::from_config(const Config& config) {
  config_fields(config, "Multiply");
  return Multiply();
}

Average::Average() : MergeLayer("average", 2, kAnyNumber) {}
Tensor Average::merge(const std::vector<Tensor>& inputs) const {
  const Tensor sum = fold(inputs, [](const Tensor& a, const Tensor& b) { return add(a, b); });
  return mul(sum, 1.0 / static_cast<double>(inputs.size()));
}
Average Average::from_config(const Config& config) {
  config_fields(config, "Average");
  return Average();
}

Maximum::Maximum() : MergeLayer("maximum", 2, kAnyNumber) {}
Tensor Maximum::merge(const std::vector<Tensor>& inputs) const {
  return fold(inputs, [](const Tensor& a, const Tensor& b) { return maximum(a, b); });
}
Maximum Maximum::from_config(const Config& config) {
  config_fields(config, "Maximum");
  return Maximum();
}

// ---- Concatenate ----

Concatenate::Concatenate(const ConcatenateOptions& options)
    : MergeLayer("concatenate", 2, kAnyNumber), axis_(options.axis) {
  declare({}, options.dtype);
}

Shape Concatenate::merged_shape(const std::vector<Shape>& input_shapes) const {
  // Keras counts the axis with the batch dimension: per-sample rank r gives r + 1 axes.
  const int64_t rank = input_shapes[0].ndim();
  const int64_t axis = axis_ < 0 ? axis_ + rank + 1 : axis_;
  if (axis < 1 || axis > rank)
    throw Error(name_, "axis " + std::to_string(axis_) + " does not fit inputs of shapes " + shapes_str(input_shapes) +
                           "; expected -" + std::to_string(rank) + " <= axis <= " + std::to_string(rank) +
                           ", other than the batch axis 0");
  std::vector<int64_t> out = input_shapes[0].dims();
  out[axis - 1] = 0;
  for (const Shape& s : input_shapes) {
    bool fits = s.ndim() == rank;
    for (int64_t d = 0; fits && d < rank; ++d) fits = d == axis - 1 || s[d] == input_shapes[0][d];
    if (!fits)
      throw Error(name_, "inputs have shapes " + shapes_str(input_shapes) + "; expected equal shapes except on axis " +
                             std::to_string(axis_));
    out[axis - 1] += s[axis - 1];
  }
  return Shape(out);
}

Tensor Concatenate::merge(const std::vector<Tensor>& inputs) const { return concatenate(inputs, axis_); }

Config Concatenate::get_config() const { return {{"axis", axis_}}; }

Concatenate Concatenate::from_config(const Config& config) {
  const auto f = config_fields(config, "Concatenate");
  return Concatenate({.axis = f.has("axis") ? f.integer("axis", -io::kMaxExtent, io::kMaxExtent) : -1});
}

}  // namespace kiln::layers
