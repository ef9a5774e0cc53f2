// The accuracy bound of FFT and Winograd engines (conv_accuracy.h).
#include "backend/cuda/conv_accuracy.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "backend/cuda/check.h"

namespace kiln::backend {

namespace {

// Half of the parity tests' float32 tolerance (4e-6 per term whose factors lie in [-2, 2], so 1e-6
// per unit of |a| * |b|), leaving the other half to the direct engine's own rounding against the
// CPU's order of summation: an engine kept by this bound passes those tests wherever a direct one
// does.
constexpr double kTransformSlackPerTerm = 5e-7;

// The products summed into one output: KH*KW*C forward, at most KH*KW*F for the data gradient (a
// stride leaves fewer), N*OH*OW for the filter gradient.
int64_t terms(ConvDirection d, const ConvEngineShape& s) {
  return d == ConvDirection::Forward        ? s.KH * s.KW * s.C
         : d == ConvDirection::BackwardData ? s.KH * s.KW * s.F
                                            : s.N * s.OH * s.OW;
}

}  // namespace

const void* conv_output(ConvDirection d, const void* x, const void* w, const void* y) {
  return d == ConvDirection::Forward ? y : d == ConvDirection::BackwardData ? x : w;
}

int64_t conv_output_count(ConvDirection d, const ConvEngineShape& s) {
  return d == ConvDirection::Forward        ? s.N * s.OH * s.OW * s.F
         : d == ConvDirection::BackwardData ? s.N * s.H * s.W * s.C
                                            : s.F * s.KH * s.KW * s.C;
}

double transform_allowance(ConvDirection d, const ConvEngineShape& s, const void* x, const void* w, const void* y,
                           cudaStream_t stream) {
  const int64_t xs = s.N * s.H * s.W * s.C, ws = s.F * s.KH * s.KW * s.C, ys = s.N * s.OH * s.OW * s.F;
  const double a = d == ConvDirection::BackwardData ? max_abs(to_host(y, ys, stream)) : max_abs(to_host(x, xs, stream));
  const double b =
      d == ConvDirection::BackwardFilter ? max_abs(to_host(y, ys, stream)) : max_abs(to_host(w, ws, stream));
  return kTransformSlackPerTerm * static_cast<double>(terms(d, s)) * a * b;
}

std::vector<float> to_host(const void* device, int64_t count, cudaStream_t stream) {
  std::vector<float> host(static_cast<std::size_t>(count));
  KILN_CUDA_CHECK(cudaMemcpyAsync(host.data(), device, host.size() * sizeof(float), cudaMemcpyDeviceToHost, stream));
  KILN_CUDA_CHECK(cudaStreamSynchronize(stream));
  return host;
}

double max_abs_difference(const std::vector<float>& got, const std::vector<float>& want) {
  constexpr double kInfinity = std::numeric_limits<double>::infinity();
  if (got.size() != want.size()) return kInfinity;
  double diff = 0.;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double d = std::fabs(static_cast<double>(got[i]) - static_cast<double>(want[i]));
    if (std::isnan(d)) return kInfinity;
    diff = std::max(diff, d);
  }
  return diff;
}

double max_abs(const std::vector<float>& v) {
  double m = 0.;
  for (const float f : v) m = std::max(m, std::fabs(static_cast<double>(f)));
  return m;
}

}  // namespace kiln::backend
