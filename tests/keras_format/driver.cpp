// kiln's side of the Keras .keras check: loads a model Keras saved, writes its predictions, saves
// it back as .keras for Keras to load, then takes one training step on the same batch and writes
// the predictions after it (the optimizer state Keras saved drives that step). Keras' weights file
// IN.keras.weights.h5 is loaded over the model first, and kiln's is written as OUT.keras.weights.h5.
//
// Usage: kiln_keras_format_driver IN.keras X.npy Y.npy OUT.keras PRED.npy PRED_AFTER_STEP.npy
#include <kiln/io/numpy.h>
#include <kiln/kiln.h>

#include <cstdio>
#include <exception>
#include <string>

int main(int argc, char** argv) {
  if (argc != 7) {
    std::fprintf(stderr, "usage: %s IN.keras X.npy Y.npy OUT.keras PRED.npy PRED_AFTER_STEP.npy\n", argv[0]);
    return 2;
  }
  try {
    kiln::set_default_device(kiln::Device::cpu());
    kiln::Model model = kiln::load_model(argv[1]);
    // Keras' weights file of the same model (IN.keras.weights.h5) must load over the same weights.
    model.load_weights(std::string(argv[1]) + ".weights.h5");
    const kiln::Tensor x = kiln::io::load_npy(argv[2]);
    const kiln::Tensor y = kiln::io::load_npy(argv[3]);
    kiln::io::save_npy(argv[5], model.predict(x, {.batch_size = x.shape()[0]}));
    model.save(argv[4]);
    model.save_weights(std::string(argv[4]) + ".weights.h5");
    // One step on the whole batch, in order: the same update Keras' train_on_batch applies.
    model.fit(x, y, {.batch_size = x.shape()[0], .epochs = 1, .verbose = 0, .shuffle = false});
    kiln::io::save_npy(argv[6], model.predict(x, {.batch_size = x.shape()[0]}));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kiln: %s\n", e.what());
    return 1;
  }
  return 0;
}
