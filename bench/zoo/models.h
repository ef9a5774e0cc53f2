// The model zoo of bench_zoo: six CIFAR-10-shaped networks (32x32x3 input, 10 logits) built with
// kiln's public API, each compiled with its recipe. zoo_torch.py defines the same networks in
// PyTorch; the two files change together.
#pragma once

#include <kiln/kiln.h>

#include <memory>
#include <string>
#include <vector>

namespace zoo {

/// The zoo's model names, in the order of bench/zoo.py's table: seed, conv4, vgg, resnet20, mlp, wide.
const std::vector<std::string>& model_names();

/// "adam" for the recipes that use Adam (seed, conv4), "sgd" (momentum 0.9) for the others.
std::string optimizer_name(const std::string& model);

/// Builds `model` on kiln::model_device() and compiles it with its optimizer (Keras' defaults:
/// Adam(1e-3), or SGD(0.01, momentum 0.9)), SparseCategoricalCrossentropy(from_logits) and the
/// accuracy metric. Its layers take the global dtype policy (kiln::mixed_precision), except the
/// last Dense, which stays float32 under a mixed policy (Keras' advice for a model's logits layer).
/// Throws kiln::Error naming the known models when `model` is not one of them.
std::unique_ptr<kiln::Model> build(const std::string& model);

}  // namespace zoo
