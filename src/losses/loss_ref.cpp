// LossRef: a loss by value or by Keras name.
#include "kiln/losses.h"

namespace kiln {

LossRef::LossRef(const std::string& name) : ptr_(losses::get(name)) {}

}  // namespace kiln
