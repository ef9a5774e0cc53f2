// Images from folders, Keras style: writes a folder of synthetic 32x32 PNGs (two classes,
// horizontal and vertical stripes of random period, phase, colors and noise, one sub-folder per
// class), reads it back with image_dataset_from_directory (validation_split 0.2, subset "both"),
// trains a small CNN (Rescaling, Conv2D, MaxPooling2D, Dense) on the CPU and prints the validation
// accuracy. A kiln built without libpng cannot write or read the images: the example then prints
// that it needs libpng and exits with status 0 (there is nothing to show, and nothing failed).
#include <kiln/kiln.h>

#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <random>
#include <string>

namespace {

namespace fs = std::filesystem;

// One 32x32x3 stripe image: vertical stripes vary along x, horizontal ones along y.
kiln::Tensor stripes(bool vertical, std::mt19937& gen) {
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  const float period = 4.0f + 8.0f * unit(gen);
  const float phase = 6.2831853f * unit(gen);
  float dark[3], light[3];
  for (int c = 0; c < 3; ++c) {
    dark[c] = 60.0f * unit(gen);
    light[c] = 150.0f + 100.0f * unit(gen);
  }
  std::normal_distribution<float> noise(0.0f, 20.0f);
  std::vector<float> px(32 * 32 * 3);
  for (int y = 0; y < 32; ++y)
    for (int x = 0; x < 32; ++x) {
      const float t = 0.5f + 0.5f * std::sin(6.2831853f * static_cast<float>(vertical ? x : y) / period + phase);
      for (int c = 0; c < 3; ++c)
        px[(y * 32 + x) * 3 + c] = std::clamp(dark[c] + (light[c] - dark[c]) * t + noise(gen), 0.0f, 255.0f);
    }
  return kiln::Tensor::from_vector(px, kiln::Shape{32, 32, 3});
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kiln image-folder example: image_dataset_from_directory and a small CNN"};
  int per_class = 150;
  int epochs = 5;
  uint32_t seed = 1337;
  std::string dir = (fs::temp_directory_path() / "kiln_image_folder").string();
  app.add_option("--per-class", per_class, "images written per class")->check(CLI::Range(5, 100000));
  app.add_option("--epochs", epochs, "training epochs")->check(CLI::PositiveNumber);
  app.add_option("--seed", seed, "seed of the images, the split and the initial weights");
  app.add_option("--dir", dir, "folder the images are written to (replaced)");
  CLI11_PARSE(app, argc, argv);

  try {
    fs::remove_all(dir);
    std::mt19937 gen(seed);
    try {
      for (const char* cls : {"horizontal", "vertical"}) {
        fs::create_directories(fs::path(dir) / cls);
        for (int i = 0; i < per_class; ++i)
          kiln::utils::save_img((fs::path(dir) / cls / ("img" + std::to_string(i) + ".png")).string(),
                                stripes(std::string(cls) == "vertical", gen), {.scale = false});
      }
    } catch (const kiln::Error& e) {
      if (std::string(e.what()).find("kiln was built without") == std::string::npos) throw;
      std::cout << "image_folder needs kiln built with libpng (" << e.what() << ")\n";
      return 0;
    }

    auto [train, val] = kiln::utils::image_dataset_from_directory_both(
        dir, {.image_size = {32, 32}, .seed = seed, .validation_split = 0.2, .subset = "both"});
    std::cout << "classes:";
    for (const std::string& name : train.class_names) std::cout << ' ' << name;
    std::cout << "; training images " << train.images.shape().str() << ", validation " << val.images.shape().str()
              << '\n';

    kiln::utils::set_random_seed(seed);
    kiln::Sequential model({kiln::layers::Rescaling(1.0 / 255, {.input_shape = {32, 32, 3}}),
                            kiln::layers::Conv2D(8, {3, 3}, {.activation = "relu"}), kiln::layers::MaxPooling2D({2, 2}),
                            kiln::layers::Conv2D(16, {3, 3}, {.activation = "relu"}),
                            kiln::layers::MaxPooling2D({2, 2}), kiln::layers::Flatten(), kiln::layers::Dense(2)});
    model.compile(kiln::optimizers::Adam(), kiln::losses::SparseCategoricalCrossentropy({.from_logits = true}),
                  {"accuracy"});
    // fit batches and reshuffles the training set every epoch (tf.data's job in Keras).
    const kiln::History history = model.fit(train.images, train.labels,
                                            {.batch_size = train.batch_size,
                                             .epochs = epochs,
                                             .verbose = 2,
                                             .validation_data = {{val.images, val.labels}}});
    std::printf("validation accuracy after %d epochs: %.4f\n", epochs, history.history.at("val_accuracy").back());
    fs::remove_all(dir);
  } catch (const kiln::Error& e) {
    std::cerr << e.what() << '\n';
    return 1;
  }
  return 0;
}
