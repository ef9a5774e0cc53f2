// Keras' L2 weight regularizer and the regularizer registry.
#include "kiln/regularizers.h"

#include <cmath>

#include "io/json_fields.h"
#include "kiln/error.h"
#include "kiln/ops.h"

namespace kiln {

Registry<std::shared_ptr<const Regularizer>>& regularizer_registry() {
  static Registry<std::shared_ptr<const Regularizer>> registry("regularizer");
  return registry;
}

namespace regularizers {

L2::L2(double l2) : l2_(l2) {
  if (!std::isfinite(l2) || l2 < 0)
    throw Error("l2", "factor is " + std::to_string(l2) + "; expected a finite number >= 0");
}

Tensor L2::operator()(const Tensor& w) const { return mul(sum(square(w)), l2_); }

L2 L2::from_config(const Config& config) {
  return L2(io::JsonFields(config, "the L2 config", "from_config").number("l2"));
}

std::shared_ptr<const Regularizer> l2(double factor) { return std::make_shared<L2>(factor); }

namespace {
const RegisterRegularizer<L2> registered("L2");
}

}  // namespace regularizers
}  // namespace kiln
