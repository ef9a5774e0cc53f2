// Sequential::summary: Keras 3's table of layers, output shapes and parameter counts.
#include <iomanip>
#include <ostream>
#include <sstream>

#include "kiln/model.h"

namespace kiln {

namespace {

std::string with_commas(int64_t n) {
  const std::string digits = std::to_string(n);
  std::string s;  // built forwards: inserting into the middle trips GCC 12's false -Wrestrict
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && digits[i - 1] != '-' && (digits.size() - i) % 3 == 0) s += ',';
    s += digits[i];
  }
  return s;
}

std::string bytes_str(int64_t params) {
  const double bytes = static_cast<double>(params) * 4;  // float32
  std::ostringstream os;
  os << std::fixed << std::setprecision(2);
  if (bytes < 1024)
    os << bytes << " B";
  else if (bytes < 1024 * 1024)
    os << bytes / 1024 << " KB";
  else
    os << bytes / (1024 * 1024) << " MB";
  return os.str();
}

std::string output_shape_str(const Shape& s) {
  std::string out = "(None";
  for (int64_t d : s.dims()) out += ", " + std::to_string(d);
  return out + ")";
}

// Pads `s` to `width` display columns (the box characters are multi-byte UTF-8).
std::string pad(const std::string& s, std::size_t width, bool right = false) {
  const std::string fill(width > s.size() ? width - s.size() : 0, ' ');
  return right ? fill + s : s + fill;
}

std::string repeat(const char* glyph, std::size_t n) {
  std::string out;
  for (std::size_t i = 0; i < n; ++i) out += glyph;
  return out;
}

}  // namespace

void Sequential::summary(std::ostream& os) const {
  constexpr std::size_t w0 = 33, w1 = 24, w2 = 15;
  os << "Model: \"" << name_ << "\"\n";
  os << "\u250f" << repeat("\u2501", w0) << "\u2533" << repeat("\u2501", w1) << "\u2533" << repeat("\u2501", w2)
     << "\u2513\n";
  os << "\u2503 " << pad("Layer (type)", w0 - 1) << "\u2503 " << pad("Output Shape", w1 - 1) << "\u2503 "
     << pad("Param #", w2 - 2, true) << " \u2503\n";
  os << "\u2521" << repeat("\u2501", w0) << "\u2547" << repeat("\u2501", w1) << "\u2547" << repeat("\u2501", w2)
     << "\u2529\n";
  Shape shape = input_shape_;
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    const Layer& layer = *layers_[i];
    std::string out = "?";
    if (built_) {
      shape = layer.compute_output_shape(shape);
      out = output_shape_str(shape);
    }
    int64_t params = 0;
    for (const Tensor& w : layer.weights()) params += w.numel();
    os << "\u2502 " << pad(layer.name() + " (" + layer.class_name() + ")", w0 - 1) << "\u2502 " << pad(out, w1 - 1)
       << "\u2502 " << pad(built_ ? with_commas(params) : "0 (unbuilt)", w2 - 2, true) << " \u2502\n";
    if (i + 1 < layers_.size())
      os << "\u251c" << repeat("\u2500", w0) << "\u253c" << repeat("\u2500", w1) << "\u253c" << repeat("\u2500", w2)
         << "\u2524\n";
  }
  os << "\u2514" << repeat("\u2500", w0) << "\u2534" << repeat("\u2500", w1) << "\u2534" << repeat("\u2500", w2)
     << "\u2518\n";
  int64_t trainable = 0, non_trainable = 0;
  for (const Tensor& w : trainable_weights()) trainable += w.numel();
  for (const Tensor& w : non_trainable_weights()) non_trainable += w.numel();
  const int64_t total = trainable + non_trainable;
  os << " Total params: " << with_commas(total) << " (" << bytes_str(total) << ")\n";
  os << " Trainable params: " << with_commas(trainable) << " (" << bytes_str(trainable) << ")\n";
  os << " Non-trainable params: " << with_commas(non_trainable) << " (" << bytes_str(non_trainable) << ")\n";
}

}  // namespace kiln
