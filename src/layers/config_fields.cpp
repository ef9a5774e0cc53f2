// Config fields shared by layer classes.
#include "layers/config_fields.h"

#include <sstream>

namespace kiln::layers {

std::string number_text(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

}  // namespace kiln::layers
