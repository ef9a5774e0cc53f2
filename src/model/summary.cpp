// Model::summary: Keras 3's table of layers, output shapes and parameter counts.
#include <algorithm>
#include <iomanip>
#include <ostream>
#include <sstream>

#include "kiln/model.h"
#include "model/graph.h"

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

// One row of the table: each cell holds one or more lines.
using Row = std::vector<std::vector<std::string>>;

void print_rule(std::ostream& os, const std::vector<std::size_t>& widths, const char* left, const char* fill,
                const char* mid, const char* right) {
  os << left;
  for (std::size_t c = 0; c < widths.size(); ++c)
    os << repeat(fill, widths[c]) << (c + 1 < widths.size() ? mid : right);
  os << '\n';
}

// Column 2 (Param #) is right-aligned, as in Keras.
void print_row(std::ostream& os, const std::vector<std::size_t>& widths, const Row& row, const char* bar) {
  std::size_t lines = 1;
  for (const auto& cell : row) lines = std::max(lines, cell.size());
  for (std::size_t l = 0; l < lines; ++l) {
    for (std::size_t c = 0; c < widths.size(); ++c) {
      const std::string text = l < row[c].size() ? row[c][l] : "";
      os << bar << ' ' << (c == 2 ? pad(text, widths[c] - 2, true) + " " : pad(text, widths[c] - 1));
    }
    os << bar << '\n';
  }
}

int64_t param_count(const Layer& layer) {
  int64_t params = 0;
  for (const Tensor& w : layer.weights()) params += w.numel();
  return params;
}

}  // namespace

void Model::summary(std::ostream& os) const {
  const bool functional = !is_sequential();
  std::vector<std::size_t> widths = {33, 24, 15};
  Row header = {{"Layer (type)"}, {"Output Shape"}, {"Param #"}};
  if (functional) {
    widths = {31, 22, 12, 24};
    header.push_back({"Connected to"});
  }
  std::vector<Row> rows;
  if (!built()) {
    for (const auto& layer : layers_)
      rows.push_back({{layer->name() + " (" + layer->class_name() + ")"}, {"?"}, {"0 (unbuilt)"}});
  } else {
    const model::Graph& g = graph();
    if (functional)
      for (int i = 0; i < g.input_count(); ++i)
        rows.push_back({{g.input_names()[static_cast<std::size_t>(i)] + " (InputLayer)"},
                        {output_shape_str(g.shape(i))},
                        {"0"},
                        {"-"}});
    for (const auto& layer : layers_) {
      Row row = {{layer->name() + " (" + layer->class_name() + ")"}, {}, {with_commas(param_count(*layer))}, {}};
      for (const auto& node : g.nodes()) {
        if (node.layer != layer) continue;
        if (row[1].empty()) row[1].push_back(output_shape_str(g.shape(node.output)));
        for (int v : node.inputs) row[3].push_back(g.value_name(v));
      }
      if (!functional) row.pop_back();
      rows.push_back(std::move(row));
    }
  }
  // Columns grow to their longest entry (Keras wraps long names instead).
  for (const Row& row : rows)
    for (std::size_t c = 0; c < row.size(); ++c)
      for (const std::string& line : row[c]) widths[c] = std::max(widths[c], line.size() + 2);
  os << "Model: \"" << name_ << "\"\n";
  print_rule(os, widths, "\u250f", "\u2501", "\u2533", "\u2513");
  print_row(os, widths, header, "\u2503");
  print_rule(os, widths, "\u2521", "\u2501", "\u2547", "\u2529");
  for (std::size_t r = 0; r < rows.size(); ++r) {
    print_row(os, widths, rows[r], "\u2502");
    if (r + 1 < rows.size()) print_rule(os, widths, "\u251c", "\u2500", "\u253c", "\u2524");
  }
  print_rule(os, widths, "\u2514", "\u2500", "\u2534", "\u2518");
  int64_t trainable = 0, non_trainable = 0;
  for (const Tensor& w : trainable_weights()) trainable += w.numel();
  for (const Tensor& w : non_trainable_weights()) non_trainable += w.numel();
  const int64_t total = trainable + non_trainable;
  os << " Total params: " << with_commas(total) << " (" << bytes_str(total) << ")\n";
  os << " Trainable params: " << with_commas(trainable) << " (" << bytes_str(trainable) << ")\n";
  os << " Non-trainable params: " << with_commas(non_trainable) << " (" << bytes_str(non_trainable) << ")\n";
}

}  // namespace kiln
