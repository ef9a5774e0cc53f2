// Numbers as Python's repr writes a float, for the text Keras' callbacks print and log.
#pragma once

#include <string>

namespace kiln::callbacks::detail {

/// `v` as Python's repr(float) writes it: the shortest digits that read back as `v`, in fixed
/// notation for exponents -4..15 ("0.001", "123.0") and scientific otherwise ("1e-05", "1.5e+16");
/// "nan", "inf", "-inf".
std::string python_repr(double v);

}  // namespace kiln::callbacks::detail
