// NaN/Inf checks: fit's loss, and per layer for FitOptions::check_numerics.
#include "model/numerics.h"

#include <cmath>

#include "kiln/error.h"

namespace kiln::model {

namespace {

// Index of the first non-finite element, or -1.
int64_t first_non_finite(const Tensor& t) {
  const std::vector<double> v = t.to_vector<double>();
  for (std::size_t i = 0; i < v.size(); ++i)
    if (!std::isfinite(v[i])) return static_cast<int64_t>(i);
  return -1;
}

[[noreturn]] void fail(const std::string& what, const Tensor& t, int64_t index, const std::string& where) {
  const double v = t.to_vector<double>()[static_cast<std::size_t>(index)];
  throw NonFiniteError("check_numerics", what + " holds " + (std::isnan(v) ? "NaN" : "Inf") + " at element " +
                                             std::to_string(index) + " of " + t.shape().str() + " (" + where +
                                             "); expected finite values");
}

}  // namespace

std::vector<Tensor> forward_checked(const Graph& graph, const std::vector<Tensor>& x, bool training,
                                    const std::string& where) {
  for (std::size_t k = 0; k < x.size(); ++k)
    if (const int64_t i = first_non_finite(x[k]); i >= 0)
      fail(x.size() == 1 ? "the input batch" : "input batch " + graph.input_names()[k], x[k], i, where);
  return graph.run(x, training, [&](const Graph::Node& node, const Tensor& h) {
    if (const int64_t i = first_non_finite(h); i >= 0)
      fail("the output of layer " + node.layer->name() + " (" + node.layer->class_name() + ")", h, i, where);
  });
}

void check_gradients(const std::vector<std::shared_ptr<Layer>>& layers, const std::string& where) {
  for (auto it = layers.rbegin(); it != layers.rend(); ++it)
    for (const auto& [name, w] : (*it)->named_weights()) {
      const Tensor g = w.grad();
      if (!g.defined()) continue;
      if (const int64_t i = first_non_finite(g); i >= 0)
        fail("the gradient of " + (*it)->name() + "/" + name, g, i, where);
    }
}

void throw_non_finite_loss(double v, int epoch, int64_t first_step, int64_t last_step) {
  const std::string value = std::isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf");
  const std::string where = first_step == last_step
                                ? "step " + std::to_string(last_step)
                                : "a step between " + std::to_string(first_step) + " and " + std::to_string(last_step);
  throw NonFiniteError("fit", "the loss became " + value + " at epoch " + std::to_string(epoch) + ", " + where +
                                  "; expected finite values (lower the learning rate, or check x and y for NaN/Inf)");
}

}  // namespace kiln::model
