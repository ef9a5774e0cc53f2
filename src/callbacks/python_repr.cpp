// python_repr: std::to_chars gives the shortest round-trip digits; Python's layout rules place them.
#include "callbacks/python_repr.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>

namespace kiln::callbacks::detail {

std::string python_repr(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  // Scientific form of the shortest round trip: "-d.ddde+XX".
  const auto res = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
  const std::string sci(buf, res.ptr);
  const bool negative = sci.front() == '-';
  const auto e_at = sci.find('e');
  std::string digits;
  for (std::size_t i = negative ? 1 : 0; i < e_at; ++i)
    if (sci[i] != '.') digits += sci[i];
  const int exponent = std::atoi(sci.c_str() + e_at + 1);
  const int n = static_cast<int>(digits.size());

  std::string out = negative ? "-" : "";
  if (exponent >= -4 && exponent < 16) {
    if (exponent < 0) return out + "0." + std::string(static_cast<std::size_t>(-exponent - 1), '0') + digits;
    const int whole_digits = exponent + 1;  // digits before the point
    std::string whole = digits.substr(0, static_cast<std::size_t>(std::min(n, whole_digits)));
    whole += std::string(static_cast<std::size_t>(std::max(0, whole_digits - n)), '0');
    const std::string fraction = n > whole_digits ? digits.substr(static_cast<std::size_t>(whole_digits)) : "0";
    return out + whole + "." + fraction;
  }
  out += digits.substr(0, 1);
  if (n > 1) out += "." + digits.substr(1);
  const int mag = std::abs(exponent);
  return out + "e" + (exponent < 0 ? "-" : "+") + (mag < 10 ? "0" : "") + std::to_string(mag);
}

}  // namespace kiln::callbacks::detail
