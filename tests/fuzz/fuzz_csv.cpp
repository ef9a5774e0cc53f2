// libFuzzer target for load_csv's parser: the first byte picks the options (header or not, a label
// column or not), the rest is the CSV text. A malformed input must end in kiln::Error; an accepted
// one must give float32 tensors whose shapes agree.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "kiln/error.h"
#include "utils/csv_parse.h"

namespace utils = kiln::utils;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  utils::CsvOptions options;
  options.header = (data[0] & 1) != 0;
  if (data[0] & 2) options.label_column = static_cast<int64_t>((data[0] >> 2) & 3) - 1;  // -1, 0, 1, 2
  if (data[0] & 32) options.columns = {int64_t{0}};
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  utils::CsvData d;
  try {
    d = utils::parse_csv(text, "fuzz input", options);
  } catch (const kiln::Error&) {
    return 0;
  }
  const int64_t rows = d.features.size(0);
  if (d.features.dtype() != kiln::DType::Float32 || d.features.ndim() != 2 || rows < 1) std::abort();
  if (static_cast<std::size_t>(d.features.size(1)) != d.feature_names.size()) std::abort();
  if (options.label_column && (!d.labels.defined() || d.labels.shape() != kiln::Shape{rows, 1})) std::abort();
  if (!options.label_column && d.labels.defined()) std::abort();
  return 0;
}
