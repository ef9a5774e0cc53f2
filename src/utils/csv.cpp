// load_csv: records from CsvRecordReader, columns resolved by name or position against the first
// record, and each selected field read as float32 by std::from_chars (no number parser of our own).
#include "kiln/utils/csv.h"

#include <charconv>
#include <cmath>
#include <string_view>

#include "io/file_read.h"
#include "kiln/error.h"
#include "utils/csv_parse.h"

namespace kiln::utils {

namespace {

std::string_view trim(std::string_view s) {
  const std::size_t a = s.find_first_not_of(" \t");
  if (a == std::string_view::npos) return {};
  return s.substr(a, s.find_last_not_of(" \t") - a + 1);
}

// The value of `text` as float32, or an error message. from_chars<float> rounds correctly; a value
// it calls out of range is read again as double to tell underflow (kept as 0 or a subnormal) from
// overflow (refused).
std::string parse_float(std::string_view text, float& out) {
  if (text.empty()) return "the field is empty; expected a number (kiln does not fill in missing values)";
  std::string_view digits = text;
  if (digits.size() > 1 && digits[0] == '+' && digits[1] != '-') digits.remove_prefix(1);
  const char* first = digits.data();
  const char* last = first + digits.size();
  const std::string quoted = "'" + std::string(text) + "'";
  const auto [ptr, ec] = std::from_chars(first, last, out);
  if (ec == std::errc::result_out_of_range) {
    double wide = 0;
    const auto [wptr, wec] = std::from_chars(first, last, wide);
    if (wec == std::errc() && wptr == last && std::fabs(wide) < 1.0) {
      out = static_cast<float>(wide);
      return {};
    }
    return quoted + " is out of float32's range; expected a magnitude below 3.4e38";
  }
  if (ec != std::errc() || ptr != last)
    return quoted + " is not a number; expected a decimal number such as 3, -2.5, 1e-3, nan or inf";
  return {};
}

}  // namespace

CsvData parse_csv(std::string_view text, const std::string& source, const CsvOptions& options) {
  CsvRecordReader reader(text, source);
  CsvRecord record;
  if (!reader.next(record))
    throw Error("load_csv", source + " has no records; expected " + (options.header ? "a header row and " : "") +
                                "at least one row of numbers");
  const std::size_t ncols = record.fields.size();
  const std::size_t first_line = record.line;
  std::vector<std::string> names(ncols);
  for (std::size_t c = 0; c < ncols; ++c)
    names[c] = options.header ? std::string(trim(record.fields[c])) : std::to_string(c);
  const auto column_label = [&](std::size_t c) {
    return options.header ? "column '" + names[c] + "'" : "column " + std::to_string(c);
  };

  const auto resolve = [&](const CsvColumn& column, const std::string& role) -> std::size_t {
    if (const auto* index = std::get_if<int64_t>(&column)) {
      const auto n = static_cast<int64_t>(ncols);
      if (*index < -n || *index >= n)
        throw Error("load_csv", role + " " + std::to_string(*index) + " is past the columns of " + source + " (" +
                                    std::to_string(ncols) + "); expected -" + std::to_string(ncols) + " to " +
                                    std::to_string(ncols - 1));
      return static_cast<std::size_t>(*index < 0 ? *index + n : *index);
    }
    const std::string& name = std::get<std::string>(column);
    if (!options.header)
      throw Error("load_csv", role + " '" + name + "' is a name, but " + source +
                                  " is read without a header (header = false); expected a 0-based position");
    std::size_t found = ncols;
    std::size_t matches = 0;
    for (std::size_t c = 0; c < ncols; ++c) {
      if (names[c] == name) {
        found = c;
        ++matches;
      }
    }
    if (matches > 1)
      throw Error("load_csv", source + " has " + std::to_string(matches) + " columns named '" + name + "' (" + role +
                                  "); expected a unique name, or a 0-based position");
    if (matches == 0) {
      std::string known;
      for (const std::string& n : names) known += (known.empty() ? "'" : ", '") + n + "'";
      throw Error("load_csv", source + " has no column '" + name + "' (" + role + "); expected one of " + known);
    }
    return found;
  };

  CsvData out;
  std::optional<std::size_t> label;
  if (options.label_column) {
    label = resolve(*options.label_column, "label_column");
    out.label_name = names[*label];
  }
  std::vector<std::size_t> features;
  if (options.columns.empty()) {
    for (std::size_t c = 0; c < ncols; ++c)
      if (c != label) features.push_back(c);
  } else {
    for (const CsvColumn& column : options.columns) {
      const std::size_t c = resolve(column, "columns entry");
      if (c == label)
        throw Error("load_csv", column_label(c) + " of " + source +
                                    " is both the label column and a feature column; expected it in one of them");
      features.push_back(c);
    }
  }
  if (features.empty())
    throw Error("load_csv", source + " has no feature column besides the label " + column_label(*label) +
                                "; expected at least one");
  for (const std::size_t c : features) out.feature_names.push_back(names[c]);

  std::vector<float> x;
  std::vector<float> y;
  int64_t rows = 0;
  bool have = !options.header;  // without a header the first record is data
  while (have || reader.next(record)) {
    have = false;
    if (record.fields.size() != ncols)
      throw Error("load_csv", source + " line " + std::to_string(record.line) + " has " +
                                  std::to_string(record.fields.size()) + " fields; expected " + std::to_string(ncols) +
                                  " (as line " + std::to_string(first_line) + ")");
    const auto number = [&](std::size_t c) {
      float v = 0;
      const std::string problem = parse_float(trim(record.fields[c]), v);
      if (!problem.empty())
        throw Error("load_csv",
                    source + " line " + std::to_string(record.line) + ", " + column_label(c) + ": " + problem);
      return v;
    };
    for (const std::size_t c : features) x.push_back(number(c));
    if (label) y.push_back(number(*label));
    ++rows;
  }
  if (rows == 0)
    throw Error("load_csv", source + " has a header but no data rows; expected at least one row of numbers");
  out.features = Tensor::from_vector(x, Shape{rows, static_cast<int64_t>(features.size())});
  if (label) out.labels = Tensor::from_vector(y, Shape{rows, 1});
  return out;
}

CsvData load_csv(const std::string& path, const CsvOptions& options) {
  const std::vector<uint8_t> bytes = io::read_regular_file(path, "load_csv", "a CSV file");
  return parse_csv(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), path, options);
}

}  // namespace kiln::utils
