/// Numeric CSV files as training data: `load_csv("houses.csv", {.label_column = "price"})` gives
/// the features and the labels as float32 tensors, ready for fit().
///
/// The format is RFC 4180: fields separated by commas, records by '\n' or "\r\n", a field may be
/// quoted ("1,5" is one field; "" inside quotes is a quote) and may then hold commas and line
/// breaks. A UTF-8 byte order mark, blank lines and spaces or tabs around a value are ignored.
/// Every value must be a number as C++'s std::from_chars reads it (with an optional leading '+'):
/// "3", "-2.5", "1e-3", "nan", "inf". An empty field is an error: kiln does not guess a value for
/// a missing one (fill it in the file, or drop the column with `columns`).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "kiln/tensor.h"

namespace kiln::utils {

/// A column of a CSV file: by its header name ("price") or by its 0-based position (2).
using CsvColumn = std::variant<std::string, int64_t>;

/// What load_csv reads, with pandas' defaults where they apply.
struct CsvOptions {
  /// The first record names the columns (and is not data).
  bool header = true;
  /// The feature columns, in this order; empty: every column except the label column. Names need
  /// header = true.
  std::vector<CsvColumn> columns = {};
  /// The column returned as labels; none by default (every selected column is a feature).
  std::optional<CsvColumn> label_column = std::nullopt;
};

/// A CSV file's numbers.
struct CsvData {
  /// float32 [rows, feature columns], row-major in file order.
  Tensor features;
  /// float32 [rows, 1] when a label column was given (the shape Keras' regression losses expect;
  /// cast to int32 for SparseCategoricalCrossentropy); undefined otherwise.
  Tensor labels;
  /// The features' column names (header) or their positions as text ("0", "1", ...).
  std::vector<std::string> feature_names;
  /// The label column's name or position; empty without one.
  std::string label_name;
};

/// Reads the numeric CSV file at `path`. Only the selected columns must hold numbers (others, such
/// as an id or a name, are skipped), but every record must have as many fields as the first.
/// Positions may be negative, counting from the last column (-1), as in Python. Throws kiln::Error
/// naming the file, the line (1-based, the line where the record starts) and the column (its
/// header name, or its 0-based position without a header):
/// "[load_csv] data.csv line 7, column 'price': 'abc' is not a number; expected ...". Also refused:
/// a record with another number of fields than the first, an unknown or ambiguous column name, a
/// column position past the last column, a label column that is also a feature column, no feature
/// column left, a stray or unclosed quote, and a file without data rows.
CsvData load_csv(const std::string& path, const CsvOptions& options = {});

}  // namespace kiln::utils
