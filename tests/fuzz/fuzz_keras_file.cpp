// libFuzzer target for Keras .keras files as load_model reads them, from bytes in memory. An input
// that starts with "PK" is a whole archive (zip, config.json translated to kiln's config,
// model.weights.h5 through libhdf5's in-memory reader). libzip checks each entry's CRC, so mutations
// inside an entry rarely get past the zip; any other input is therefore split into the entries
// directly: a 4-byte little-endian length, that many bytes of config.json, then model.weights.h5.
// A malformed input must end in kiln::Error; a loaded model must predict, and its weights written
// back to HDF5 must read back into it.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <vector>

#include "io/keras_format/keras_file.h"
#include "io/keras_format/keras_h5.h"
#include "io/keras_format/keras_weights.h"
#include "kiln/kiln.h"

namespace {

// Per-sample inputs larger than this are not predicted (the layers' outputs would be as large).
constexpr int64_t kMaxPredictInput = 1 << 14;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  kiln::set_default_device(kiln::Device::cpu());
  std::optional<kiln::Model> loaded;
  try {
    if (size >= 2 && data[0] == 'P' && data[1] == 'K') {
      loaded.emplace(kiln::io::keras::load_keras_archive(std::vector<uint8_t>(data, data + size), "fuzz.keras"));
    } else {
      if (size < 4) return 0;
      const std::size_t n =
          std::min<std::size_t>(size - 4, std::size_t{data[0]} | std::size_t{data[1]} << 8 |
                                              std::size_t{data[2]} << 16 | std::size_t{data[3]} << 24);
      std::vector<kiln::io::ZipEntry> entries = {{"config.json", {data + 4, data + 4 + n}},
                                                 {"model.weights.h5", {data + 4 + n, data + size}}};
      loaded.emplace(kiln::io::keras::load_keras_entries(entries, "fuzz entries"));
    }
  } catch (const kiln::Error&) {
    return 0;  // the expected answer to a malformed archive
  }
  kiln::Model& model = *loaded;
  try {
    const auto shapes = model.input_shapes();
    std::vector<kiln::Tensor> x;
    int64_t numel = 0;
    for (const auto& s : shapes) {
      std::vector<int64_t> dims{1};
      for (int64_t d : s.dims()) dims.push_back(d);
      numel += s.numel();
      x.push_back(kiln::Tensor::zeros(kiln::Shape(dims)));
    }
    if (numel <= kMaxPredictInput) model.predict(x, {.verbose = 0});
    const kiln::io::keras::H5Reader h5(kiln::io::keras::weights_h5(model, true), "fuzz", "resaved");
    kiln::io::keras::read_layer_weights(model, h5, "fuzz");
    kiln::io::keras::read_optimizer_state(model, h5, "fuzz");
  } catch (const kiln::Error&) {
    std::abort();  // a model load_model accepted must run and take back its own weights
  }
  return 0;
}
