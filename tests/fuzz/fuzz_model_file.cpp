// libFuzzer target for model files as users load them: the input is written to a file and read
// back through kiln::load_model, checkpoint_epoch and load_weights, so the path-opening code runs
// as well as the parsers. A malformed file must end in kiln::Error; a loaded model must accept its
// own file's weights, predict, and survive a save and a second load unchanged.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>

#include "kiln/kiln.h"

namespace fs = std::filesystem;

namespace {

// Per-sample inputs larger than this are not predicted (the layers' outputs would be as large).
constexpr int64_t kMaxPredictInput = 1 << 14;

// Two file names private to this process, in memory-backed /dev/shm when there is one.
struct TempPaths {
  std::string input, resaved;
  TempPaths() {
    const fs::path dir = fs::is_directory("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path();
    const std::string stem = (dir / ("kiln_fuzz_model_file_" + std::to_string(::getpid()))).string();
    input = stem + ".kiln";
    resaved = stem + ".resaved.kiln";
  }
  ~TempPaths() {
    std::error_code ec;
    fs::remove(input, ec);
    fs::remove(resaved, ec);
  }
};

void write_all(const std::string& path, const uint8_t* data, std::size_t size) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  if (size > 0 && std::fwrite(data, 1, size, f) != size) std::abort();
  if (std::fclose(f) != 0) std::abort();
}

bool same_weights(const kiln::Sequential& a, const kiln::Sequential& b) {
  const auto wa = a.trainable_weights(), wb = b.trainable_weights();
  if (wa.size() != wb.size()) return false;
  for (std::size_t i = 0; i < wa.size(); ++i)
    if (wa[i].shape() != wb[i].shape() || std::memcmp(wa[i].raw_data(), wb[i].raw_data(), wa[i].nbytes()) != 0)
      return false;
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  static const TempPaths paths;
  kiln::set_default_device(kiln::Device::cpu());
  write_all(paths.input, data, size);
  try {
    kiln::checkpoint_epoch(paths.input);
  } catch (const kiln::Error&) {
  }
  std::optional<kiln::Sequential> loaded;
  try {
    loaded.emplace(kiln::load_model(paths.input));
  } catch (const kiln::Error&) {
    return 0;  // the expected answer to a malformed file
  }
  kiln::Sequential& model = *loaded;
  try {
    if (model.built()) {
      model.load_weights(paths.input);  // the weights load_model just took
      if (model.input_shape().numel() <= kMaxPredictInput) {
        std::vector<int64_t> dims{1};
        for (int64_t d : model.input_shape().dims()) dims.push_back(d);
        model.predict(kiln::Tensor::zeros(kiln::Shape(dims)), {.verbose = 0});
      }
    }
    model.save(paths.resaved);
    const kiln::Sequential again = kiln::load_model(paths.resaved);
    if (again.layers().size() != model.layers().size() || again.built() != model.built() || !same_weights(model, again))
      std::abort();
  } catch (const kiln::Error&) {
    std::abort();  // a model load_model accepted must run, save and load again
  }
  return 0;
}
