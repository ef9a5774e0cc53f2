// safetensors reader and writer. The reader trusts nothing: each length, offset and field of the
// header is checked against the bytes actually present before any tensor byte is touched.
#include "io/safetensors.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "io/atomic_file.h"
#include "io/file_read.h"
#include "kiln/error.h"

namespace kiln::io {

static_assert(std::endian::native == std::endian::little,
              "safetensors stores little-endian bytes; kiln copies them as is");

namespace {

using json = nlohmann::json;

[[noreturn]] void fail(const std::string& source, const std::string& message) {
  throw Error("safetensors", source + ": " + message);
}

bool parse_dtype(const std::string& s, DType& out) {
  if (s == "F32")
    out = DType::Float32;
  else if (s == "F64")
    out = DType::Float64;
  else if (s == "I32")
    out = DType::Int32;
  else if (s == "U8")
    out = DType::UInt8;
  else if (s == "I64")
    out = DType::Int64;
  else if (s == "F16")
    out = DType::Float16;
  else if (s == "BF16")
    out = DType::BFloat16;
  else
    return false;
  return true;
}

// A JSON value as a non-negative integer (refusing floats, negatives and booleans).
bool as_count(const json& v, uint64_t& out) {
  if (!v.is_number_integer()) return false;
  if (v.is_number_unsigned()) {
    out = v.get<uint64_t>();
    return true;
  }
  const int64_t s = v.get<int64_t>();
  if (s < 0) return false;
  out = static_cast<uint64_t>(s);
  return true;
}

std::string shape_str(const std::vector<uint64_t>& dims) {
  std::string s = "[";
  for (std::size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

// JSON with every duplicate object key refused (nlohmann would keep the last one silently, so two
// entries of one tensor name could disagree unnoticed).
json parse_header_json(std::span<const uint8_t> header, const std::string& source) {
  std::vector<std::set<std::string>> keys;
  std::string duplicate;
  const json::parser_callback_t track = [&](int, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start)
      keys.emplace_back();
    else if (event == json::parse_event_t::object_end && !keys.empty())
      keys.pop_back();
    else if (event == json::parse_event_t::key && !keys.empty() &&
             !keys.back().insert(parsed.get<std::string>()).second && duplicate.empty())
      duplicate = parsed.get<std::string>();
    return true;
  };
  json j;
  try {
    j = json::parse(header.begin(), header.end(), track);
  } catch (const json::exception& e) {
    fail(source, std::string("the header is not valid JSON (") + e.what() + "); expected a JSON object");
  }
  if (!duplicate.empty()) fail(source, "the header names '" + duplicate + "' twice; expected unique keys");
  if (!j.is_object()) fail(source, "the header is JSON " + std::string(j.type_name()) + "; expected a JSON object");
  return j;
}

struct Range {
  uint64_t begin, end;
  std::size_t index;
};

}  // namespace

std::string safetensors_dtype_name(DType dtype) {
  switch (dtype) {
    case DType::Float32:
      return "F32";
    case DType::Float64:
      return "F64";
    case DType::Int32:
      return "I32";
    case DType::UInt8:
      return "U8";
    case DType::Int64:
      return "I64";
    case DType::Float16:
      return "F16";
    case DType::BFloat16:
      return "BF16";
  }
  return "?";
}

const SafetensorsEntry* SafetensorsView::find(const std::string& name) const {
  for (const auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

SafetensorsView parse_safetensors(std::span<const uint8_t> bytes, const std::string& source) {
  if (bytes.size() < 8)
    fail(source, "the file is " + count_of(bytes.size(), "byte") +
                     ", too short for the 8-byte header length; expected a safetensors file");
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);  // little-endian, as the host (static_assert above)
  const uint64_t rest = bytes.size() - 8;
  if (n > kMaxSafetensorsHeader)
    fail(source, "the header length is " + std::to_string(n) + " bytes; expected at most " +
                     std::to_string(kMaxSafetensorsHeader) + " (is this a safetensors file?)");
  if (n > rest)
    fail(source, "the header length is " + count_of(n, "byte") + " but only " + count_of(rest, "byte") +
                     (rest == 1 ? " follows" : " follow") + "; expected a complete file (truncated?)");
  if (n < 2 || bytes[8] != '{')
    fail(source, "the header does not start with '{'; expected a JSON object (is this a safetensors file?)");
  const json header = parse_header_json(bytes.subspan(8, n), source);
  const std::span<const uint8_t> data = bytes.subspan(8 + n);

  SafetensorsView view;
  std::vector<Range> ranges;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) fail(source, "__metadata__ is not an object; expected {\"key\": \"value\", ...}");
      for (const auto& [k, v] : entry.items()) {
        if (!v.is_string()) fail(source, "__metadata__ value of '" + k + "' is not a string; expected strings only");
        view.metadata[k] = v.get<std::string>();
      }
      continue;
    }
    const std::string where = "tensor '" + name + "'";
    if (!entry.is_object()) fail(source, where + " is not an object; expected {dtype, shape, data_offsets}");
    const auto dtype_it = entry.find("dtype");
    if (dtype_it == entry.end() || !dtype_it->is_string())
      fail(source, where + " has no string \"dtype\"; expected one of F32, F64, F16, BF16, I32, U8, I64");
    SafetensorsEntry e{name, DType::Float32, Shape{}, {}};
    if (!parse_dtype(dtype_it->get<std::string>(), e.dtype))
      fail(source, where + " has dtype \"" + dtype_it->get<std::string>() +
                       "\"; expected one of F32, F64, F16, BF16, I32, U8, I64");
    const auto shape_it = entry.find("shape");
    if (shape_it == entry.end() || !shape_it->is_array())
      fail(source, where + " has no \"shape\" array; expected a list of non-negative integers");
    std::vector<uint64_t> dims;
    uint64_t numel = 1;
    bool overflow = false;
    for (const json& d : *shape_it) {
      uint64_t v = 0;
      if (!as_count(d, v) || v > static_cast<uint64_t>(INT64_MAX))
        fail(source, where + " has a shape entry " + d.dump() + "; expected non-negative integers");
      dims.push_back(v);
      overflow = overflow || __builtin_mul_overflow(numel, v, &numel);
    }
    const auto offsets_it = entry.find("data_offsets");
    uint64_t begin = 0, end = 0;
    if (offsets_it == entry.end() || !offsets_it->is_array() || offsets_it->size() != 2 ||
        !as_count((*offsets_it)[0], begin) || !as_count((*offsets_it)[1], end))
      fail(source, where + " has no valid \"data_offsets\"; expected [begin, end] as non-negative integers");
    if (begin > end)
      fail(source, where + " has data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                       "]; expected begin <= end");
    if (end > data.size())
      fail(source, where + " has data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                       "] beyond the data section of " + count_of(data.size(), "byte") +
                       "; expected offsets inside it (truncated?)");
    uint64_t nbytes = 0;
    if (overflow || __builtin_mul_overflow(numel, static_cast<uint64_t>(dtype_size(e.dtype)), &nbytes) ||
        nbytes != end - begin)
      fail(source, where + " is " + dtype_it->get<std::string>() + " " + shape_str(dims) + " but spans " +
                       count_of(end - begin, "byte") + "; expected shape product x " +
                       count_of(dtype_size(e.dtype), "byte"));
    std::vector<int64_t> sdims(dims.begin(), dims.end());
    e.shape = Shape(std::move(sdims));
    e.bytes = data.subspan(begin, end - begin);
    ranges.push_back({begin, end, view.tensors.size()});
    view.tensors.push_back(std::move(e));
  }

  // The ranges must tile the data section: no overlap, no hole, nothing after the last tensor.
  std::sort(ranges.begin(), ranges.end(),
            [](const Range& a, const Range& b) { return a.begin != b.begin ? a.begin < b.begin : a.end < b.end; });
  uint64_t covered = 0;
  const Range* prev = nullptr;
  for (const Range& r : ranges) {
    if (r.begin < covered)
      fail(source, "tensor '" + view.tensors[r.index].name + "' [" + std::to_string(r.begin) + ", " +
                       std::to_string(r.end) + ") overlaps tensor '" + view.tensors[prev->index].name + "' [" +
                       std::to_string(prev->begin) + ", " + std::to_string(prev->end) +
                       "); expected disjoint byte ranges");
    if (r.begin > covered)
      fail(source, "bytes [" + std::to_string(covered) + ", " + std::to_string(r.begin) +
                       ") of the data section belong to no tensor; expected tensors to cover it contiguously");
    covered = r.end;
    prev = &r;
  }
  if (covered != data.size())
    fail(source, "bytes [" + std::to_string(covered) + ", " + std::to_string(data.size()) +
                     ") of the data section belong to no tensor; expected tensors to cover it exactly");
  std::vector<SafetensorsEntry> ordered;
  ordered.reserve(ranges.size());
  for (const Range& r : ranges) ordered.push_back(std::move(view.tensors[r.index]));
  view.tensors = std::move(ordered);
  return view;
}

SafetensorsFile read_safetensors(const std::string& path, const std::string& op) {
  SafetensorsFile file;
  file.bytes = read_regular_file(path, op, "a safetensors file");
  file.view = parse_safetensors(file.bytes, path);
  return file;
}

Tensor to_tensor(const SafetensorsEntry& entry) {
  Tensor t = Tensor::empty(entry.shape, entry.dtype);
  if (!entry.bytes.empty()) std::memcpy(t.raw_data(), entry.bytes.data(), entry.bytes.size());
  return t;
}

namespace {

struct Layout {
  std::string header;        // padded JSON
  std::vector<Tensor> host;  // contiguous CPU copies, in data order
};

Layout layout(const std::vector<std::pair<std::string, Tensor>>& tensors,
              const std::map<std::string, std::string>& metadata) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  Layout out;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    if (name == "__metadata__" || header.contains(name))
      throw Error("safetensors", "tensor name '" + name + "' is reserved or used twice; expected unique names");
    if (!t.defined()) throw Error("safetensors", "tensor '" + name + "' is undefined; expected a tensor");
    Tensor host = t.detach().cpu();
    const uint64_t n = host.nbytes();
    header[name] = {{"dtype", safetensors_dtype_name(host.dtype())},
                    {"shape", host.shape().dims()},
                    {"data_offsets", {offset, offset + n}}};
    offset += n;
    out.host.push_back(std::move(host));
  }
  out.header = header.dump();
  out.header.append((8 - out.header.size() % 8) % 8, ' ');
  return out;
}

std::array<uint8_t, 8> length_prefix(uint64_t n) {
  std::array<uint8_t, 8> b{};
  std::memcpy(b.data(), &n, 8);
  return b;
}

std::span<const uint8_t> bytes_of(const Tensor& t) { return {static_cast<const uint8_t*>(t.raw_data()), t.nbytes()}; }

}  // namespace

std::vector<uint8_t> serialize_safetensors(const std::vector<std::pair<std::string, Tensor>>& tensors,
                                           const std::map<std::string, std::string>& metadata) {
  const Layout l = layout(tensors, metadata);
  std::size_t total = 8 + l.header.size();
  for (const Tensor& t : l.host) total += t.nbytes();
  std::vector<uint8_t> out(total);
  uint8_t* p = out.data();
  const auto prefix = length_prefix(l.header.size());
  std::memcpy(p, prefix.data(), 8);
  std::copy(l.header.begin(), l.header.end(), p + 8);
  p += 8 + l.header.size();
  for (const Tensor& t : l.host) {
    if (t.nbytes()) std::memcpy(p, t.raw_data(), t.nbytes());
    p += t.nbytes();
  }
  return out;
}

void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  const Layout l = layout(tensors, metadata);
  AtomicFile file(path);
  const auto prefix = length_prefix(l.header.size());
  file.write(prefix);
  file.write({reinterpret_cast<const uint8_t*>(l.header.data()), l.header.size()});
  for (const Tensor& t : l.host) file.write(bytes_of(t));
  file.commit();
}

}  // namespace kiln::io
