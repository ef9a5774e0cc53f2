// What a Tensor handle points to: storage, geometry and autograd links.
#pragma once

#include <memory>
#include <string>

#include "autograd/node.h"
#include "kiln/tensor.h"
#include "tensor/storage.h"

namespace kiln {

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  std::size_t offset = 0;  // bytes from storage->data to the first element
  Shape shape;
  DType dtype = DType::Float32;

  bool requires_grad = false;               // a leaf parameter, or the output of a tracked op
  Tensor grad;                              // accumulated by backward() on leaves
  std::shared_ptr<autograd::Node> grad_fn;  // the op that produced this tensor, if tracked
  // Set by the softmax and sigmoid activations to their input, as Keras sets `_keras_logits`: a
  // cross-entropy then works from the logits, stably and without clipping, as Keras does.
  Tensor keras_logits;
  // A trainable weight's multiple of the optimizer's learning rate (Layer::set_learning_rate_multiplier),
  // read by the built-in optimizers' update.
  double learning_rate_multiplier = 1.0;
  // A layer weight's Keras variable path, "<layer name>/<weight name>" ("dense_1/kernel"), kept by
  // its layer; optimizers that choose a rule by name read it (Muon's exclude_layers).
  std::string variable_path;

  void* data() const { return static_cast<char*>(storage->data) + offset; }
  Device device() const { return storage->device; }
};

/// A new tensor of fresh storage (uninitialised) on `device`.
Tensor make_tensor(const Shape& shape, DType dtype, Device device);

}  // namespace kiln
