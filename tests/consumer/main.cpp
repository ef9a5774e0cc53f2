// Trains the house-price model through the installed kiln package; exits non-zero unless the
// prediction for 7.0 is within 0.1 of 14.0.
#include <kiln/kiln.h>

#include <cmath>
#include <cstdio>

int main() {
  kiln::utils::set_random_seed(0);
  kiln::Sequential model({kiln::layers::Dense(1, {.input_shape = {1}})});
  model.compile(kiln::optimizers::SGD(), kiln::losses::MeanSquaredError());
  const auto xs = kiln::Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {6, 1});
  const auto ys = kiln::Tensor::from_vector<float>({5.0f, 6.5f, 8.0f, 9.5f, 11.0f, 12.5f}, {6, 1});
  model.fit(xs, ys, {.epochs = 1000, .verbose = 0});
  const double p = model.predict(kiln::Tensor::from_vector<float>({7.0f}, {1, 1})).item();
  std::printf("consumer: kiln %s, prediction for 7.0 = %.4f\n", kiln::version().c_str(), p);
  return std::fabs(p - 14.0) < 0.1 ? 0 : 1;
}
