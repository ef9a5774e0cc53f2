// The terms of a model's training loss.
#include "model/loss_terms.h"

#include "kiln/error.h"
#include "kiln/ops.h"

namespace kiln::model {

Tensor in_float32(const Tensor& t) {
  return t.defined() && is_floating(t.dtype()) && !is_compute_floating(t.dtype()) ? cast(t, DType::Float32) : t;
}

LossTerms loss_terms(const Model& model, const std::vector<Tensor>& y_true, const std::vector<Tensor>& y_pred) {
  const auto& losses = model.losses();
  if (y_true.size() != losses.size() || y_pred.size() != losses.size())
    throw Error("compute_loss", "got " + std::to_string(y_true.size()) + " targets and " +
                                    std::to_string(y_pred.size()) + " predictions; expected " +
                                    std::to_string(losses.size()) + " of each (one per output)");
  LossTerms terms;
  for (std::size_t i = 0; i < losses.size(); ++i) {
    // Losses run in float32 (Keras' loss dtype): a model computing in 16 bits hands its outputs over
    // in float32, so the log and the sums of the loss keep float32's range and precision.
    terms.outputs.push_back((*losses[i])(y_true[i], in_float32(y_pred[i])));
    const double w = model.loss_weights()[i];
    const Tensor weighted = w == 1.0 ? terms.outputs.back() : mul(terms.outputs.back(), w);
    terms.total = terms.total.defined() ? add(terms.total, weighted) : weighted;
  }
  for (const auto& layer : model.layers())
    for (const Tensor& penalty : layer->losses()) terms.total = add(terms.total, penalty.reshape(terms.total.shape()));
  return terms;
}

}  // namespace kiln::model
