// The Keras "hello world": learn y = 1.5 x + 3.5 (house prices in units of 100k) with one Dense
// unit, SGD and mean squared error, then predict the price of a 7-bedroom house (about 14.0).
// --csv FILE trains on x,y pairs read from a CSV file (a header row, then one pair per row)
// instead of the six built-in points.
#include <kiln/kiln.h>
#include <kiln/utils/csv.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>

int main(int argc, char** argv) {
  CLI::App app{"kiln house-price example: Dense(1), SGD, mean squared error"};
  int epochs = 1000;
  int verbose = 0;
  uint64_t seed = 0;
  std::string csv;
  app.add_option("--epochs", epochs, "training epochs")->check(CLI::PositiveNumber);
  app.add_option("--verbose", verbose, "0 silent, 1 progress bar, 2 one line per epoch")->check(CLI::Range(0, 2));
  app.add_option("--seed", seed, "seed of the initial weights");
  app.add_option("--csv", csv, "train on x,y pairs from this CSV file (a header row, then x,y per row)")
      ->check(CLI::ExistingFile);
  CLI11_PARSE(app, argc, argv);

  try {
    const auto start = std::chrono::steady_clock::now();
    kiln::utils::set_random_seed(seed);
    kiln::Sequential model({kiln::layers::Dense(1, {.input_shape = {1}})});
    model.compile("sgd", "mean_squared_error");

    auto xs = kiln::Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {6, 1});
    auto ys = kiln::Tensor::from_vector<float>({5.0f, 6.5f, 8.0f, 9.5f, 11.0f, 12.5f}, {6, 1});
    if (!csv.empty()) {
      // Column 0 is x, column 1 is y; further columns are ignored.
      kiln::utils::CsvData data = kiln::utils::load_csv(csv, {.columns = {0}, .label_column = 1});
      xs = data.features;
      ys = data.labels;
    }
    const kiln::History history = model.fit(xs, ys, {.epochs = epochs, .verbose = verbose});

    const kiln::Tensor prediction = model.predict(kiln::Tensor::from_vector<float>({7.0f}, {1, 1}));
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("final loss: %.6f\n", history.history.at("loss").back());
    std::printf("prediction for 7.0: %.4f (expected about 14.0)\n", prediction.item());
    std::printf("trained %d epochs on %s in %.3f s\n", epochs, model.device().str().c_str(), seconds);
  } catch (const kiln::Error& e) {
    std::cerr << e.what() << '\n';
    return 1;
  }
  return 0;
}
