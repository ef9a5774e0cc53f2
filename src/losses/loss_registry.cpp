// The loss registry and losses by Keras name.
#include "kiln/losses.h"

namespace kiln {

Registry<std::unique_ptr<Loss>>& loss_registry() {
  static Registry<std::unique_ptr<Loss>> registry("loss");
  return registry;
}

std::unique_ptr<Loss> losses::get(const std::string& name) { return loss_registry().make(name, Config::object()); }

}  // namespace kiln
