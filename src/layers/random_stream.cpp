// Where a layer's random stream starts, and where a replica's shard starts in a step's draw.
#include "layers/random_stream.h"

#include "distribute/replica_context.h"
#include "kiln/random.h"

namespace kiln::layers {

Tensor CounterStart::operator()(const Shape& shape, Generator& gen, Device device) const {
  const int64_t start = seeded_ ? 0 : static_cast<int64_t>(gen.below(uint64_t{1} << 62));
  return Tensor::from_vector<int64_t>({start}, shape, device);
}

int64_t shard_draw_offset(int64_t leading, int64_t per_entry) {
  const distribute::ReplicaContext* context = distribute::ReplicaContext::current();
  if (!context) return 0;
  const distribute::ShardPosition& shard = context->shard();
  if (shard.rows <= 0 || leading % shard.rows != 0) return 0;
  return shard.first_row * (leading / shard.rows) * per_entry;
}

}  // namespace kiln::layers
