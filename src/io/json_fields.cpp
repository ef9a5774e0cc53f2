// JsonFields: checked reads of config fields; every defect becomes one kiln::Error sentence.
#include "io/json_fields.h"

#include <cmath>

#include "kiln/error.h"

namespace kiln::io {

namespace {
// A value as it appears in a message: short, and safe for any bytes.
std::string shown(const nlohmann::json& v) {
  std::string s = v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return s.size() > 60 ? s.substr(0, 57) + "..." : s;
}
}  // namespace

JsonFields::JsonFields(const nlohmann::json& object, std::string where, std::string op)
    : object_(object), where_(std::move(where)), op_(std::move(op)) {
  if (!object_.is_object()) fail("is JSON " + std::string(object_.type_name()) + "; expected a JSON object");
}

void JsonFields::fail(const std::string& message) const { throw Error(op_, where_ + ": " + message); }

bool JsonFields::has(const std::string& key) const {
  const auto it = object_.find(key);
  return it != object_.end() && !it->is_null();
}

const nlohmann::json& JsonFields::at(const std::string& key) const {
  const auto it = object_.find(key);
  if (it == object_.end()) fail("\"" + key + "\" is missing; expected it to be present");
  return *it;
}

int64_t JsonFields::integer(const std::string& key, int64_t min, int64_t max) const {
  const auto& v = at(key);
  const std::string expected = "; expected an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "]";
  if (!v.is_number_integer()) fail("\"" + key + "\" is " + shown(v) + expected);
  if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
    fail("\"" + key + "\" is " + shown(v) + expected);
  const int64_t i = v.get<int64_t>();
  if (i < min || i > max) fail("\"" + key + "\" is " + shown(v) + expected);
  return i;
}

double JsonFields::number(const std::string& key) const {
  const auto& v = at(key);
  if (!v.is_number() || !std::isfinite(v.get<double>())) fail("\"" + key + "\" is " + shown(v) + "; expected a number");
  return v.get<double>();
}

bool JsonFields::boolean(const std::string& key) const {
  const auto& v = at(key);
  if (!v.is_boolean()) fail("\"" + key + "\" is " + shown(v) + "; expected true or false");
  return v.get<bool>();
}

std::string JsonFields::string(const std::string& key) const {
  const auto& v = at(key);
  if (!v.is_string()) fail("\"" + key + "\" is " + shown(v) + "; expected a string");
  return v.get<std::string>();
}

namespace {
bool extent(const nlohmann::json& v, int64_t& out) {
  if (!v.is_number_integer()) return false;
  if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(kMaxExtent)) return false;
  out = v.get<int64_t>();
  return out >= 1 && out <= kMaxExtent;
}
}  // namespace

std::array<int64_t, 2> JsonFields::pair(const std::string& key) const {
  const auto& v = at(key);
  std::array<int64_t, 2> p{};
  if (!v.is_array() || v.size() != 2 || !extent(v[0], p[0]) || !extent(v[1], p[1]))
    fail("\"" + key + "\" is " + shown(v) + "; expected two integers in [1, " + std::to_string(kMaxExtent) + "]");
  return p;
}

std::vector<int64_t> JsonFields::extents(const std::string& key) const {
  if (!has(key)) return {};
  const auto& v = at(key);
  std::vector<int64_t> out;
  const std::string expected = "; expected a list of integers in [1, " + std::to_string(kMaxExtent) + "]";
  if (!v.is_array() || v.size() > 8) fail("\"" + key + "\" is " + shown(v) + expected + ", at most 8 of them");
  for (const auto& d : v) {
    int64_t e = 0;
    if (!extent(d, e)) fail("\"" + key + "\" is " + shown(v) + expected);
    out.push_back(e);
  }
  return out;
}

std::vector<std::string> JsonFields::strings(const std::string& key) const {
  const auto& v = at(key);
  std::vector<std::string> out;
  if (!v.is_array()) fail("\"" + key + "\" is " + shown(v) + "; expected a list of strings");
  for (const auto& s : v) {
    if (!s.is_string()) fail("\"" + key + "\" is " + shown(v) + "; expected a list of strings");
    out.push_back(s.get<std::string>());
  }
  return out;
}

}  // namespace kiln::io
