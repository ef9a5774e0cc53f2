// RFC 4180 records: fields split at commas, records at line breaks, and a field that starts with a
// quote runs to the matching closing quote (commas and line breaks inside it are data, "" is one
// quote). A quote anywhere else is refused rather than guessed at.
#include <utility>

#include "kiln/error.h"
#include "utils/csv_parse.h"

namespace kiln::utils {

namespace {
bool is_blank(char c) { return c == ' ' || c == '\t'; }
}  // namespace

CsvRecordReader::CsvRecordReader(std::string_view text, std::string source) : text_(text), source_(std::move(source)) {
  if (text_.starts_with("\xEF\xBB\xBF")) pos_ = 3;  // the byte order mark spreadsheets write
}

bool CsvRecordReader::take_line_break() {
  if (pos_ >= text_.size()) return false;
  if (text_[pos_] == '\n') {
    ++pos_;
  } else if (text_[pos_] == '\r') {
    ++pos_;
    if (pos_ < text_.size() && text_[pos_] == '\n') ++pos_;
  } else {
    return false;
  }
  ++line_;
  return true;
}

bool CsvRecordReader::read_field(std::string& out, std::size_t field_index) {
  out.clear();
  const auto where = [&](std::size_t line) {
    return source_ + " line " + std::to_string(line) + ", field " + std::to_string(field_index) + ": ";
  };
  std::size_t start = pos_;
  while (start < text_.size() && is_blank(text_[start])) ++start;
  if (start < text_.size() && text_[start] == '"') {
    const std::size_t first_line = line_;
    pos_ = start + 1;
    for (;;) {
      if (pos_ >= text_.size())
        throw Error("load_csv", where(first_line) +
                                    "a quoted field is not closed before the end of the file; "
                                    "expected a closing '\"'");
      const char c = text_[pos_];
      if (c == '"') {
        if (pos_ + 1 < text_.size() && text_[pos_ + 1] == '"') {
          out += '"';
          pos_ += 2;
          continue;
        }
        ++pos_;
        break;
      }
      if (c == '\n' || c == '\r') {
        // A line break inside quotes is data; count it so later messages name the right line.
        const std::size_t before = pos_;
        take_line_break();
        out.append(text_.substr(before, pos_ - before));
        continue;
      }
      out += c;
      ++pos_;
    }
    while (pos_ < text_.size() && is_blank(text_[pos_])) ++pos_;
    if (pos_ < text_.size() && text_[pos_] != ',' && text_[pos_] != '\n' && text_[pos_] != '\r')
      throw Error("load_csv", where(line_) + "'" + std::string(1, text_[pos_]) +
                                  "' after a closing quote; expected a comma or the end of the line");
    return true;
  }
  while (pos_ < text_.size() && text_[pos_] != ',' && text_[pos_] != '\n' && text_[pos_] != '\r') {
    if (text_[pos_] == '"')
      throw Error("load_csv", where(line_) +
                                  "a quote inside an unquoted field; expected the whole field in quotes, "
                                  "with each quote in it doubled");
    out += text_[pos_++];
  }
  return false;
}

bool CsvRecordReader::next(CsvRecord& out) {
  for (;;) {
    if (pos_ >= text_.size()) return false;
    out.line = line_;
    std::size_t n = 0;
    bool quoted = false;
    for (;;) {
      if (out.fields.size() <= n) out.fields.emplace_back();
      quoted = read_field(out.fields[n], n) || quoted;
      ++n;
      if (pos_ < text_.size() && text_[pos_] == ',') {
        ++pos_;
        continue;
      }
      take_line_break();
      break;
    }
    out.fields.resize(n);
    // A line of nothing but blanks is no record (pandas' skip_blank_lines); "" is an empty field.
    const bool blank = n == 1 && !quoted && out.fields[0].find_first_not_of(" \t") == std::string::npos;
    if (!blank) return true;
  }
}

}  // namespace kiln::utils
