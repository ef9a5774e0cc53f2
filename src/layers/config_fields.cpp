// Config fields shared by layer classes.
#include "layers/config_fields.h"

#include <sstream>

namespace kiln::layers {

Config regularizer_config(const std::shared_ptr<const Regularizer>& r) {
  if (!r) return nullptr;
  return {{"class_name", r->class_name()}, {"config", r->get_config()}};
}

std::shared_ptr<const Regularizer> regularizer_field(const io::JsonFields& f, const std::string& key) {
  if (!f.has(key)) return nullptr;
  const io::JsonFields r(f.at(key), f.where() + " " + key, "from_config");
  const std::string class_name = r.string("class_name");
  return regularizer_registry().make(class_name, r.has("config") ? r.at("config") : Config::object());
}

Config constraint_config(const std::shared_ptr<const Constraint>& c) {
  if (!c) return nullptr;
  return {{"class_name", c->class_name()}, {"config", c->get_config()}};
}

std::shared_ptr<const Constraint> constraint_field(const io::JsonFields& f, const std::string& key) {
  if (!f.has(key)) return nullptr;
  const io::JsonFields c(f.at(key), f.where() + " " + key, "from_config");
  const std::string class_name = c.string("class_name");
  return constraint_registry().make(class_name, c.has("config") ? c.at("config") : Config::object());
}

std::string number_text(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

}  // namespace kiln::layers
