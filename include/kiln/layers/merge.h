/// Merge layers (Keras' names): Add, Subtract, Multiply, Average, Maximum and Concatenate. Each
/// takes a list of inputs, in a functional model, and has no weights.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "kiln/layer.h"

namespace kiln::layers {

/// What the merge layers share: they take a list of inputs through compute_output_shape_inputs()
/// and call_inputs(), and check the list's length and shapes there. Called on one tensor
/// (compute_output_shape(), call()) they throw, as a Keras merge layer called on a tensor does.
class MergeLayer : public Layer {
 public:
  /// Throws: a merge layer takes a list of inputs.
  Shape compute_output_shape(const Shape& input_shape) const override;
  /// Throws: a merge layer takes a list of inputs.
  Tensor call(const Tensor& x, bool training) override;
  /// Checks the number of inputs and their per-sample shapes; returns the output's.
  Shape compute_output_shape_inputs(const std::vector<Shape>& input_shapes) const override;
  /// Checks the inputs (their batch sizes included) as compute_output_shape_inputs() does, then
  /// merges them.
  Tensor call_inputs(const std::vector<Tensor>& inputs, bool training) override;

 protected:
  /// `op` is the layer's default name; it takes `min_inputs` to `max_inputs` inputs.
  MergeLayer(const std::string& op, std::size_t min_inputs, std::size_t max_inputs);
  /// The per-sample output shape of a list of the right length; throws when the shapes do not
  /// fit. The default asks for equal shapes (the elementwise layers).
  virtual Shape merged_shape(const std::vector<Shape>& input_shapes) const;
  /// Combines inputs that merged_shape() accepted.
  virtual Tensor merge(const std::vector<Tensor>& inputs) const = 0;
  /// The shapes as Keras prints a batch of each, "[None, 8, 16] and [None, 8, 32]", for errors.
  static std::string shapes_str(const std::vector<Shape>& shapes);

 private:
  std::size_t min_inputs_;
  std::size_t max_inputs_;
};

/// The sum of its inputs (equal shapes), added left to right.
class Add : public MergeLayer {
 public:
  /// Sums two or more inputs.
  Add();
  std::string class_name() const override { return "Add"; }
  /// Rebuilds from get_config().
  static Add from_config(const Config& config);

 protected:
  Tensor merge(const std::vector<Tensor>& inputs) const override;
};

/// The first input minus the second (exactly two inputs of equal shape).
class Subtract : public MergeLayer {
 public:
  /// inputs[0] - inputs[1].
  Subtract();
  std::string class_name() const override { return "Subtract"; }
  /// Rebuilds from get_config().
  static Subtract from_config(const Config& config);

 protected:
  Tensor merge(const std::vector<Tensor>& inputs) const override;
};

/// The elementwise product of its inputs (equal shapes), multiplied left to right.
class Multiply : public MergeLayer {
 public:
  /// Multiplies two or more inputs.
  Multiply();
  std::string class_name() const override { return "Multiply"; }
  /// Rebuilds from get_config().
  static Multiply from_config(const Config& config);

 protected:
  Tensor merge(const std::vector<Tensor>& inputs) const override;
};

/// The elementwise mean of its inputs (equal shapes): their sum, left to right, times 1 / count.
class Average : public MergeLayer {
 public:
  /// Averages two or more inputs.
  Average();
  std::string class_name() const override { return "Average"; }
  /// Rebuilds from get_config().
  static Average from_config(const Config& config);

 protected:
  Tensor merge(const std::vector<Tensor>& inputs) const override;
};

/// The elementwise maximum of its inputs (equal shapes); a NaN wins. On ties the gradient goes to
/// the first of the tied inputs (TensorFlow's maximum, applied left to right).
class Maximum : public MergeLayer {
 public:
  /// The maximum of two or more inputs.
  Maximum();
  std::string class_name() const override { return "Maximum"; }
  /// Rebuilds from get_config().
  static Maximum from_config(const Config& config);

 protected:
  Tensor merge(const std::vector<Tensor>& inputs) const override;
};

/// Options of Concatenate, with Keras' default.
struct ConcatenateOptions {
  /// The axis to join along, counted with the batch dimension as in Keras (-1: the last; 0, the
  /// batch, is refused).
  int64_t axis = -1;
  std::string dtype = "";  ///< dtype policy (Keras' dtype=): "" takes the global one
};

/// Its inputs joined along one axis; all their other dimensions must agree.
class Concatenate : public MergeLayer {
 public:
  /// Joins two or more inputs along options.axis.
  explicit Concatenate(const ConcatenateOptions& options = {});
  std::string class_name() const override { return "Concatenate"; }
  Config get_config() const override;
  /// Rebuilds from get_config().
  static Concatenate from_config(const Config& config);
  /// The axis, as given (counted with the batch dimension).
  int64_t axis() const { return axis_; }

 protected:
  Shape merged_shape(const std::vector<Shape>& input_shapes) const override;
  Tensor merge(const std::vector<Tensor>& inputs) const override;

 private:
  int64_t axis_;
};

}  // namespace kiln::layers
