// Sequential::evaluate and Sequential::predict: batch by batch, in order, without gradients.
#include <iostream>

#include "backend/backend.h"
#include "kiln/autograd.h"
#include "kiln/error.h"
#include "kiln/model.h"
#include "metrics/metrics.h"
#include "model/data_checks.h"
#include "model/progress.h"

namespace kiln {

std::map<std::string, double> Sequential::evaluate(const Tensor& x_in, const Tensor& y_in, const EvaluateOptions& opt) {
  require_compiled("evaluate");
  model::check_xy("evaluate", x_in, y_in);
  model::check_batch_size("evaluate", opt.batch_size);
  build_for(x_in, "evaluate");
  Shape out_shape = input_shape_;
  for (const auto& layer : layers_) out_shape = layer->compute_output_shape(out_shape);
  NoGradGuard no_grad;
  const Tensor x = (is_floating(x_in.dtype()) ? x_in : x_in.astype(DType::Float32)).to(device_);
  const Tensor y = loss_->prepare_targets(y_in, out_shape, "evaluate").to(device_);
  const int64_t n = x.size(0), steps = (n + opt.batch_size - 1) / opt.batch_size;
  metrics::Accumulator sums(metrics_, device_);
  model::ProgressBar bar(std::cout, steps, opt.verbose, model::stdout_is_terminal());
  for (int64_t s = 0; s < steps; ++s) {
    const int64_t b0 = s * opt.batch_size, b1 = std::min(n, b0 + opt.batch_size);
    const Tensor yb = y.slice_rows(b0, b1);
    const Tensor pred = (*this)(x.slice_rows(b0, b1));
    sums.add((*loss_)(yb, pred), yb, pred);
    if (bar.wants_update(s + 1)) bar.update(s + 1, sums.results());
  }
  const auto results = sums.results();
  bar.finish(results);
  return {results.begin(), results.end()};
}

Tensor Sequential::predict(const Tensor& x_in, const PredictOptions& opt) {
  if (!x_in.defined() || x_in.ndim() == 0 || x_in.size(0) == 0)
    throw Error("predict", "x is empty or undefined; expected at least one sample [N, ...]");
  model::check_batch_size("predict", opt.batch_size);
  build_for(x_in, "predict");
  NoGradGuard no_grad;
  const Tensor x = (is_floating(x_in.dtype()) ? x_in : x_in.astype(DType::Float32)).to(device_);
  const int64_t n = x.size(0), steps = (n + opt.batch_size - 1) / opt.batch_size;
  Tensor out;
  model::ProgressBar bar(std::cout, steps, opt.verbose, model::stdout_is_terminal());
  for (int64_t s = 0; s < steps; ++s) {
    const int64_t b0 = s * opt.batch_size, b1 = std::min(n, b0 + opt.batch_size);
    const Tensor pred = (*this)(x.slice_rows(b0, b1));
    if (!out.defined()) out = Tensor::empty(pred.shape().drop_front().prepend(n), pred.dtype(), device_);
    backend::get(device_).copy(out.slice_rows(b0, b1).raw_data(), pred.raw_data(), pred.nbytes());
    if (bar.wants_update(s + 1)) bar.update(s + 1, {});
  }
  bar.finish({});
  return out.cpu();  // like Keras' NumPy result: on the host
}

}  // namespace kiln
