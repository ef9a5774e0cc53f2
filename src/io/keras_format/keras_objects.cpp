// Keras' object wrappers and name conversions (see keras_objects.h).
#include "io/keras_format/keras_objects.h"

#include <cctype>

namespace kiln::io::keras {

using nlohmann::json;

bool is_wrapped(const json& j) {
  return j.is_object() && j.contains("class_name") && j["class_name"].is_string() && j.contains("config");
}

json wrap(const std::string& module, const std::string& class_name, json config) {
  return {{"module", module}, {"class_name", class_name}, {"config", std::move(config)}, {"registered_name", nullptr}};
}

json float32_policy() { return wrap("keras", "DTypePolicy", {{"name", "float32"}}); }

std::string camel_case(const std::string& snake) {
  std::string out;
  bool upper = true;
  for (char c : snake) {
    if (c == '_') {
      upper = true;
      continue;
    }
    out += upper ? static_cast<char>(std::toupper(static_cast<unsigned char>(c))) : c;
    upper = false;
  }
  return out;
}

}  // namespace kiln::io::keras
