// The CSV reader's two halves: CsvRecordReader splits text into records (RFC 4180 quoting) one at
// a time, and parse_csv turns the records into tensors. load_csv reads a file and calls parse_csv;
// the fuzz target calls it on bytes.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/utils/csv.h"

namespace kiln::utils {

/// One record: its fields (unquoted, quotes undoubled) and the line it starts on.
struct CsvRecord {
  std::size_t line = 0;             ///< 1-based
  std::vector<std::string> fields;  ///< at least one
};

/// Splits CSV text into records. Blank lines are skipped; a UTF-8 byte order mark at the start is
/// dropped. Errors are kiln::Error("load_csv", "<source> line N: ...").
class CsvRecordReader {
 public:
  /// Reads `text`; `source` names it in errors (the path).
  CsvRecordReader(std::string_view text, std::string source);
  /// The next record into `out`; false at the end of the text.
  bool next(CsvRecord& out);

 private:
  std::string_view text_;
  std::string source_;
  std::size_t pos_ = 0;
  std::size_t line_ = 1;

  // Consumes a line break at pos_ ("\n", "\r\n" or "\r") if there is one.
  bool take_line_break();
  // One field starting at pos_ into `out`; leaves pos_ on the separator, a line break or the end.
  // True when the field was quoted.
  bool read_field(std::string& out, std::size_t field_index);
};

/// The numbers of CSV `text` as load_csv returns them; `source` names it in errors.
CsvData parse_csv(std::string_view text, const std::string& source, const CsvOptions& options);

}  // namespace kiln::utils
