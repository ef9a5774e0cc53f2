// Readable tensor printing, numpy style: nested brackets, elided middles for long dimensions.
#include <iomanip>
#include <ostream>
#include <sstream>

#include "kiln/tensor.h"

namespace kiln {

namespace {

void print_block(std::ostringstream& os, const std::vector<double>& v, const std::vector<int64_t>& dims,
                 std::size_t dim, int64_t offset, int64_t stride, bool integral, int max_per_dim, int indent) {
  const int64_t n = dims[dim];
  const int64_t inner = dims.size() > dim + 1 ? stride / n : 1;
  os << '[';
  for (int64_t i = 0; i < n; ++i) {
    if (n > max_per_dim && i == max_per_dim / 2) {
      os << "...";
      i = n - max_per_dim / 2 - 1;
      if (dim + 1 < dims.size())
        os << ",\n" << std::string(indent + 1, ' ');
      else
        os << ", ";
      continue;
    }
    if (dim + 1 == dims.size()) {
      const double x = v[static_cast<std::size_t>(offset + i)];
      if (integral)
        os << static_cast<long long>(x);
      else
        os << std::setprecision(6) << x;
      if (i + 1 < n) os << ", ";
    } else {
      print_block(os, v, dims, dim + 1, offset + i * inner, inner, integral, max_per_dim, indent + 1);
      if (i + 1 < n) os << ",\n" << std::string(indent + 1, ' ');
    }
  }
  os << ']';
}

}  // namespace

std::string Tensor::str(int max_per_dim) const {
  if (!defined()) return "Tensor(undefined)";
  const std::vector<double> v = to_vector<double>();
  const bool integral = !is_floating(dtype());
  std::ostringstream os;
  if (ndim() == 0) {
    if (integral)
      os << static_cast<long long>(v[0]);
    else
      os << std::setprecision(6) << v[0];
  } else if (numel() == 0) {
    os << "[]";
  } else {
    print_block(os, v, shape().dims(), 0, 0, numel(), integral, std::max(max_per_dim, 2), 0);
  }
  return os.str();
}

std::ostream& operator<<(std::ostream& os, const Tensor& t) {
  if (!t.defined()) return os << "Tensor(undefined)";
  return os << "Tensor(" << t.str() << ", shape=" << t.shape().str() << ", dtype=" << dtype_name(t.dtype())
            << ", device=" << t.device().str() << ")";
}

}  // namespace kiln
