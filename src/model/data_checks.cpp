// Input validation for the model API.
#include "model/data_checks.h"

#include "kiln/error.h"

namespace kiln::model {

void check_xy(const std::string& op, const Tensor& x, const Tensor& y, const std::string& context) {
  if (!x.defined()) throw Error(op, context + "x is an undefined tensor; expected samples [N, ...]");
  if (!y.defined()) throw Error(op, context + "y is an undefined tensor; expected one target per sample");
  if (x.ndim() == 0 || x.size(0) == 0)
    throw Error(op, context + "x is empty (shape " + x.shape().str() + "); expected at least one sample");
  if (y.ndim() == 0 || y.size(0) != x.size(0))
    throw Error(op, context + "x has " + std::to_string(x.size(0)) + " samples but y has " +
                        (y.ndim() == 0 ? std::string("a scalar") : std::to_string(y.size(0))) +
                        "; expected the same number (one target per sample)");
}

void check_xy(const std::string& op, const std::vector<Tensor>& x, const std::vector<Tensor>& y,
              const std::string& context) {
  if (x.empty()) throw Error(op, context + "x holds no tensors; expected one per model input");
  if (y.empty()) throw Error(op, context + "y holds no tensors; expected one per model output");
  if (x.size() == 1 && y.size() == 1) return check_xy(op, x[0], y[0], context);
  // Several inputs or outputs: every tensor names its place and holds the first x's samples.
  const auto name = [](const char* what, std::size_t i) { return std::string(what) + "[" + std::to_string(i) + "]"; };
  for (std::size_t i = 0; i < x.size(); ++i) check_xy(op, x[i], y[0], context + name("x", i) + " against y[0]: ");
  for (std::size_t i = 1; i < y.size(); ++i) check_xy(op, x[0], y[i], context + "x[0] against " + name("y", i) + ": ");
}

void check_batch_size(const std::string& op, int64_t batch_size) {
  if (batch_size <= 0) throw Error(op, "batch_size is " + std::to_string(batch_size) + "; expected a positive number");
}

void check_verbose(const std::string& op, int verbose) {
  if (verbose < 0 || verbose > 2)
    throw Error(op,
                "verbose is " + std::to_string(verbose) + "; expected 0 (silent), 1 (progress bar) or 2 (one line)");
}

}  // namespace kiln::model
