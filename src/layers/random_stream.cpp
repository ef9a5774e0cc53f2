// Where a layer's random stream starts.
#include "layers/random_stream.h"

#include "kiln/random.h"

namespace kiln::layers {

Tensor CounterStart::operator()(const Shape& shape, Generator& gen, Device device) const {
  const int64_t start = seeded_ ? 0 : static_cast<int64_t>(gen.below(uint64_t{1} << 62));
  return Tensor::from_vector<int64_t>({start}, shape, device);
}

}  // namespace kiln::layers
