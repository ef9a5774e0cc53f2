/// Classes by name: layers, losses, optimizers, metrics, activations and initializers register a
/// factory from their own .cpp, so that saving, loading and summaries work for every registered
/// class, a user's own included (Keras' get_config / from_config and register_keras_serializable).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "kiln/error.h"

namespace kiln {

/// Keras' get_config() dictionary: the arguments that rebuild an object, as JSON.
using Config = nlohmann::json;

/// The name -> factory table of one family of classes (layers, losses, ...). Thread-safe.
template <typename Ptr>
class Registry {
 public:
  /// Makes an object from its config; may throw kiln::Error for a bad config.
  using Factory = std::function<Ptr(const Config&)>;

  /// A table for `family` ("layer", "loss", ...), the word used in its error messages.
  explicit Registry(std::string family) : family_(std::move(family)) {}

  /// Registers `factory` under `class_name`; throws when the name is already registered.
  void add(const std::string& class_name, Factory factory) {
    std::lock_guard lock(mutex_);
    if (class_name.empty()) throw Error("register", "a " + family_ + " class name is empty; expected a name");
    if (!factories_.emplace(class_name, std::move(factory)).second)
      throw Error("register", family_ + " class '" + class_name + "' is registered twice; expected unique names");
  }
  /// Whether `class_name` is registered.
  bool contains(const std::string& class_name) const {
    std::lock_guard lock(mutex_);
    return factories_.count(class_name) != 0;
  }
  /// A new object of `class_name` from `config`; throws naming the registered classes when the
  /// name is unknown.
  Ptr make(const std::string& class_name, const Config& config) const {
    Factory factory;
    {
      std::lock_guard lock(mutex_);
      auto it = factories_.find(class_name);
      if (it == factories_.end()) throw Error(family_, unknown(class_name));
      factory = it->second;
    }
    return factory(config);
  }
  /// The registered names, sorted.
  std::vector<std::string> names() const {
    std::lock_guard lock(mutex_);
    std::vector<std::string> out;
    for (const auto& entry : factories_) out.push_back(entry.first);
    return out;
  }
  /// "unknown <family> 'x'; expected one of a, b, c", for messages of callers.
  std::string unknown(const std::string& class_name) const {
    std::string known;
    for (const auto& entry : factories_) known += (known.empty() ? "" : ", ") + entry.first;
    return "unknown " + family_ + " '" + class_name.substr(0, 60) + "'; expected one of " + known;
  }

 private:
  std::string family_;
  mutable std::recursive_mutex mutex_;
  std::map<std::string, Factory> factories_;
};

}  // namespace kiln
