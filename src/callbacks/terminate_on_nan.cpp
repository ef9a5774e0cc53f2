// TerminateOnNaN: Keras' check of the loss, at the granularity fit's callbacks have (the epoch).
#include <cmath>
#include <iostream>

#include "callbacks/python_repr.h"
#include "kiln/callbacks.h"
#include "kiln/error.h"

namespace kiln::callbacks {

bool TerminateOnNaN::on_epoch_end(Model& /*model*/, int epoch, const Logs& logs) {
  const auto it = logs.find("loss");
  if (it == logs.end() || std::isfinite(it->second)) return true;
  if (options_.raise_error)
    throw NonFiniteError("TerminateOnNaN", "NaN or Inf loss encountered at epoch " + std::to_string(epoch + 1) +
                                               ". Loss value: " + detail::python_repr(it->second) +
                                               ". Terminating training immediately.");
  std::cout << "Epoch " << epoch + 1 << ": Invalid loss, terminating training" << std::endl;
  return false;
}

}  // namespace kiln::callbacks
