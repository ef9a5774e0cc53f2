// The terms of a model's training loss.
#include "model/loss_terms.h"

#include "kiln/error.h"
#include "kiln/ops.h"

namespace kiln::model {

LossTerms loss_terms(const Model& model, const std::vector<Tensor>& y_true, const std::vector<Tensor>& y_pred) {
  const auto& losses = model.losses();
  if (y_true.size() != losses.size() || y_pred.size() != losses.size())
    throw Error("compute_loss", "got " + std::to_string(y_true.size()) + " targets and " +
                                    std::to_string(y_pred.size()) + " predictions; expected " +
                                    std::to_string(losses.size()) + " of each (one per output)");
  LossTerms terms;
  for (std::size_t i = 0; i < losses.size(); ++i) {
    terms.outputs.push_back((*losses[i])(y_true[i], y_pred[i]));
    const double w = model.loss_weights()[i];
    const Tensor weighted = w == 1.0 ? terms.outputs.back() : mul(terms.outputs.back(), w);
    terms.total = terms.total.defined() ? add(terms.total, weighted) : weighted;
  }
  for (const auto& layer : model.layers())
    for (const Tensor& penalty : layer->losses()) terms.total = add(terms.total, penalty.reshape(terms.total.shape()));
  return terms;
}

}  // namespace kiln::model
