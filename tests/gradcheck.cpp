// Central-difference gradient checking.
#include "gradcheck.h"

#include <cmath>
#include <sstream>

namespace kiln::testing {

Tensor random_input(const Shape& shape, uint64_t seed, double lo, double hi) {
  Generator gen(seed);
  Tensor t = Tensor::uniform(shape, lo, hi, gen, DType::Float64);
  t.set_requires_grad(true);
  return t;
}

::testing::AssertionResult gradcheck(const TensorFn& fn, const std::vector<Tensor>& inputs, double eps, double atol,
                                     double rtol) {
  for (const Tensor& t : inputs)
    if (t.dtype() != DType::Float64 || !t.device().is_cpu())
      return ::testing::AssertionFailure() << "gradcheck needs float64 CPU inputs";
  Tensor probe;
  {
    NoGradGuard no_grad;
    probe = fn(inputs);
  }
  Generator gen(12345);
  const Tensor projection = Tensor::uniform(probe.shape(), 0.5, 1.5, gen, DType::Float64);
  auto scalar = [&](const std::vector<Tensor>& in) { return sum(mul(fn(in), projection)); };

  for (const Tensor& t : inputs) const_cast<Tensor&>(t).zero_grad();
  scalar(inputs).backward();

  double worst = 0;
  std::ostringstream report;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    Tensor x = inputs[i];
    if (!x.requires_grad()) continue;
    const Tensor analytic = x.grad();
    if (!analytic.defined()) return ::testing::AssertionFailure() << "input " << i << " received no gradient";
    double* data = x.data<double>();
    const std::vector<double> a = analytic.to_vector<double>();
    for (int64_t j = 0; j < x.numel(); ++j) {
      const double saved = data[j];
      NoGradGuard no_grad;
      data[j] = saved + eps;
      const double plus = scalar(inputs).item();
      data[j] = saved - eps;
      const double minus = scalar(inputs).item();
      data[j] = saved;
      const double numeric = (plus - minus) / (2 * eps);
      const double err = std::fabs(numeric - a[j]);
      worst = std::max(worst, err);
      if (err > atol + rtol * std::fabs(numeric))
        return ::testing::AssertionFailure() << "input " << i << " element " << j << ": analytic " << a[j]
                                             << " vs numeric " << numeric << " (error " << err << ")";
    }
  }
  return ::testing::AssertionSuccess() << "worst absolute error " << worst;
}

}  // namespace kiln::testing
