// CSVLogger: the bytes Keras' CSVLogger writes (Python's csv module, excel dialect): sorted keys,
// Keras' val_ columns, repr numbers, minimal quoting, "\r\n" rows, a flush per row.
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "callbacks/python_repr.h"
#include "kiln/callbacks.h"
#include "kiln/error.h"

namespace kiln::callbacks {

namespace {

// Python's csv QUOTE_MINIMAL: a field holding the separator, a quote or a line break is quoted,
// its quotes doubled.
std::string csv_field(const std::string& s, char sep) {
  if (s.find_first_of(std::string{sep, '"', '\r', '\n'}) == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

bool starts_with_val(const std::string& k) { return k.starts_with("val_"); }

}  // namespace

CSVLogger::CSVLogger(std::string filename, CSVLoggerOptions options)
    : filename_(std::move(filename)), options_(std::move(options)) {
  if (filename_.empty()) throw Error("CSVLogger", "filename is empty; expected a file name");
  const std::string& sep = options_.separator;
  if (sep.size() != 1 || sep == "\"" || sep == "\r" || sep == "\n")
    throw Error("CSVLogger", "separator \"" + sep +
                                 "\" is not usable; expected one character other than '\"', "
                                 "'\\r' and '\\n' (as Python's csv module)");
}

void CSVLogger::on_train_begin(Model& /*model*/) {
  if (file_.is_open()) file_.close();
  write_header_ = true;
  if (options_.append) {
    // Keras: the header is written unless the file's first line has something in it.
    std::error_code ec;
    write_header_ = !std::filesystem::exists(filename_, ec) || std::filesystem::file_size(filename_, ec) == 0;
  }
  errno = 0;
  file_.open(filename_, std::ios::binary | (options_.append ? std::ios::app : std::ios::trunc));
  if (!file_)
    throw Error("CSVLogger", "cannot open " + filename_ + " for writing (" +
                                 (errno ? std::strerror(errno) : "unknown reason") +
                                 "); expected a writable file in an existing directory");
  keys_.clear();
  started_ = false;
}

bool CSVLogger::on_epoch_end(Model& /*model*/, int epoch, const Logs& logs) {
  if (!file_.is_open())
    throw Error("CSVLogger", "the file " + filename_ + " is not open; expected fit to call on_train_begin first");
  const char sep = options_.separator[0];
  if (!started_) {
    for (const auto& [k, v] : logs) keys_.push_back(k);  // a std::map: sorted, as Keras sorts them
    if (!keys_.empty() && std::none_of(keys_.begin(), keys_.end(), starts_with_val)) {
      const std::size_t n = keys_.size();
      for (std::size_t i = 0; i < n; ++i) keys_.push_back("val_" + keys_[i]);
    }
    if (write_header_) {
      std::string header = "epoch";
      for (const auto& k : keys_) header += sep + csv_field(k, sep);
      file_ << header << "\r\n";
    }
    started_ = true;
  }
  std::string row = csv_field(std::to_string(epoch), sep);
  for (const auto& k : keys_) {
    const auto it = logs.find(k);
    row += sep + csv_field(it == logs.end() ? std::string("NA") : detail::python_repr(it->second), sep);
  }
  file_ << row << "\r\n";
  file_.flush();
  if (!file_) throw Error("CSVLogger", "writing to " + filename_ + " failed; expected a writable file (disk full?)");
  return true;
}

void CSVLogger::on_train_end(Model& /*model*/) {
  if (file_.is_open()) file_.close();
}

}  // namespace kiln::callbacks
