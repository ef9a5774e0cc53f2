// NHWC <-> NCHW copies around an NCHW engine (conv_nchw.h). Every tensor is a batch of [spatial,
// channels] matrices in NHWC (the filter KRSC: F matrices [KH*KW, C]) and of their transposes in
// NCHW, so one batched transpose moves each.
#include "backend/cuda/conv_nchw.h"

#include "backend/cuda/kernels.h"

namespace kiln::backend {

namespace {

constexpr std::size_t kAlign = 256;

std::size_t aligned(std::size_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }

std::size_t floats(int64_t count) { return static_cast<std::size_t>(count) * sizeof(float); }

char* at(void* workspace, std::size_t offset) { return static_cast<char*>(workspace) + offset; }
const char* at(const void* workspace, std::size_t offset) { return static_cast<const char*>(workspace) + offset; }

}  // namespace

NchwCopies nchw_copies(const ConvEngineShape& s, std::size_t engine_bytes) {
  NchwCopies c;
  c.x = aligned(engine_bytes);
  c.w = c.x + aligned(floats(s.N * s.H * s.W * s.C));
  c.y = c.w + aligned(floats(s.F * s.KH * s.KW * s.C));
  c.end = c.y + aligned(floats(s.N * s.OH * s.OW * s.F));
  return c;
}

void to_nchw(ConvDirection d, const ConvEngineShape& s, const NchwCopies& c, const void* x, const void* w,
             const void* y, void* workspace, cudaStream_t stream) {
  const DType f32 = DType::Float32;
  if (d != ConvDirection::BackwardData)
    kernels::transpose_batch(f32, x, at(workspace, c.x), s.N, s.H * s.W, s.C, stream);
  if (d != ConvDirection::BackwardFilter)
    kernels::transpose_batch(f32, w, at(workspace, c.w), s.F, s.KH * s.KW, s.C, stream);
  if (d != ConvDirection::Forward) kernels::transpose_batch(f32, y, at(workspace, c.y), s.N, s.OH * s.OW, s.F, stream);
}

void from_nchw(ConvDirection d, const ConvEngineShape& s, const NchwCopies& c, const void* workspace, void* out,
               cudaStream_t stream) {
  const DType f32 = DType::Float32;
  switch (d) {
    case ConvDirection::Forward:
      kernels::transpose_batch(f32, at(workspace, c.y), out, s.N, s.F, s.OH * s.OW, stream);
      break;
    case ConvDirection::BackwardData:
      kernels::transpose_batch(f32, at(workspace, c.x), out, s.N, s.C, s.H * s.W, stream);
      break;
    case ConvDirection::BackwardFilter:
      kernels::transpose_batch(f32, at(workspace, c.w), out, s.F, s.C, s.KH * s.KW, stream);
      break;
  }
}

}  // namespace kiln::backend
