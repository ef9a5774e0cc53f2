// Keras' weights layout in HDF5: "layers/<slot>/vars/<i>" per layer, where <slot> is the layer's
// class in snake_case numbered per class in model order ("dense", "dense_1"); "optimizer/vars/<i>"
// for iterations, the learning rate (absent with a schedule) and the slots, in Keras' creation order.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/keras_format/keras_h5.h"
#include "kiln/model.h"

namespace kiln::io::keras {

/// The HDF5 image of `model`'s weights, and its optimizer's variables when `with_optimizer` and
/// the model is compiled.
std::vector<uint8_t> weights_h5(const Model& model, bool with_optimizer);

/// Reads every layer's variables from `h5` into `model` after checking them all (names, counts,
/// shapes, dtypes), so a file that does not fit changes nothing.
void read_layer_weights(Model& model, const H5Reader& h5, const std::string& op);

/// Restores the compiled optimizer's iterations, learning rate and slots from "optimizer/vars";
/// returns false when the file has no optimizer variables or only an unbuilt optimizer's.
bool read_optimizer_state(Model& model, const H5Reader& h5, const std::string& op);

}  // namespace kiln::io::keras
