// Batch normalization in training over x [R, C] (channels last): the statistics in two column-sum
// passes (the mean, then the mean squared deviation from it: no cancellation when the mean is
// large), per-channel coefficients, and one elementwise pass; the backward in one column-sum pass
// (sum dy and sum dy * (x - mean) together), coefficients and one elementwise pass. Five launches
// forward and three backward, where the same formulas composed of generic ops take about twenty
// full-size passes. Column sums are tiled as sum_rows' (reduce.cu): 32-column tiles by row slices, the
// slices' partial sums added in slice order by the coefficient kernels, no atomics, so every result
// is the same run to run. float16 and bfloat16 are read into float (accumulate_t), the statistics'
// type; y and dx are rounded once. An activation after the normalization runs in the same passes: on
// the normalized value in the forward's elementwise pass, and in the backward's sums pass, which
// recomputes the activation's input from x, takes dy through it and writes that (dy') to dx for the
// input-gradient pass to read. Against the layers apart: the normalized value is never written and
// read back (two passes forward), and the activation's own backward pass (reading its input, dy and
// its output, writing dy') becomes one write more in the sums pass.
// Shape letters: R rows (N*H*W), C channels, S row slices.
#include <algorithm>
#include <cmath>
#include <type_traits>

#include "backend/batch_norm_math.h"
#include "backend/cuda/check.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/kernels.h"
#include "backend/dtype_dispatch.h"
#include "backend/elementwise_math.h"
#include "device_math.cuh"
#include "map.cuh"

namespace kiln::backend {

namespace {

using kernels::load_value;
using kernels::store_value;

// What a column-sum pass adds up per element: x; (x - mean)^2; dy and dy * (x - mean).
enum class SumTerm { X, SquaredDeviation, Gradient };

// v as the layers apart store it: rounded to T.
template <typename T, typename A>
__device__ A rounded_to(A v) {
  return load_value(store_value<T>(v));
}

// The backward of an activation Act fused after the normalization, for the Gradient sums: from x,
// its input z recomputed as the forward computed it (the statistics, gamma and beta; null ones are
// ones and zeros) and rounded to T, then dy' = dy * Act'(z, y) rounded to T, as the activation's
// own backward stores it; dy' is written to dz for the input-gradient pass.
template <typename T>
struct ThroughActivation {
  using A = accumulate_t<T>;
  const T* y;
  T* dz;
  const A* variance;
  const A* gamma;
  const A* beta;
  A epsilon, param;
};

template <SumTerm term>
constexpr int kTerms = term == SumTerm::Gradient ? 2 : 1;

// Block (32, 32) over a 32-column tile (blockIdx.x) and one slice of rows_per_slice rows
// (blockIdx.y); partial[(s * K + k) * C + c] receives slice s's sum of term k of column c.
// Act (the Gradient term only): dy is first taken through that activation (ThroughActivation).
// The launch bound keeps 1024 threads launchable when an activation's derivative (float64 GELU's
// erfc and exp) would want more than 64 registers a thread. With a costlier derivative than ReLU's
// inside, the loop is not unrolled: four rows' derivatives in flight need more than 32 registers a
// thread, and then an SM holds one block instead of two.
template <typename Act>
__host__ __device__ constexpr int sums_unroll() {
  return gradient_is_cheap<Act>() ? 4 : 1;
}

template <typename T, SumTerm term, typename Act = NoActivation>
__global__ void __launch_bounds__(32 * 32)
    batch_norm_sums_kernel(const T* x, const T* dy, const accumulate_t<T>* mean, ThroughActivation<T> act,
                           accumulate_t<T>* partial, int64_t R, int64_t C, int64_t rows_per_slice) {
  constexpr bool activated = !std::is_same_v<Act, NoActivation>;
  using A = accumulate_t<T>;
  constexpr int K = kTerms<term>;
  __shared__ A part[K][32][33];
  const int64_t c = int64_t(blockIdx.x) * 32 + threadIdx.x;
  const int64_t r0 = int64_t(blockIdx.y) * rows_per_slice;
  const int64_t r1 = min(R, r0 + rows_per_slice);
  A acc[K] = {};
  if (c < C) {
    const A m = term == SumTerm::X ? A(0) : mean[c];
    NormalizeCoefficients<A> k{};
    if constexpr (activated)
      k = normalize_coefficients(m, act.variance[c], act.gamma ? act.gamma[c] : A(1), act.beta ? act.beta[c] : A(0),
                                 act.epsilon);
#pragma unroll(sums_unroll <Act>())
    for (int64_t r = r0 + threadIdx.y; r < r1; r += 32) {
      const A v = load_value(x[r * C + c]);
      if constexpr (term == SumTerm::X) {
        acc[0] += v;
      } else if constexpr (term == SumTerm::SquaredDeviation) {
        acc[0] += (v - m) * (v - m);
      } else {
        A g = load_value(dy[r * C + c]);
        if constexpr (activated) {
          const A z = rounded_to<T>(normalized(v, k));
          g = rounded_to<T>(g * math::derivative<Act::value>(z, load_value(act.y[r * C + c]), act.param));
          act.dz[r * C + c] = store_value<T>(g);
        }
        acc[0] += g;
        acc[K - 1] += g * (v - m);
      }
    }
  }
  for (int k = 0; k < K; ++k) part[k][threadIdx.y][threadIdx.x] = acc[k];
  __syncthreads();
  for (int stride = 16; stride > 0; stride /= 2) {
    if (threadIdx.y < stride)
      for (int k = 0; k < K; ++k) part[k][threadIdx.y][threadIdx.x] += part[k][threadIdx.y + stride][threadIdx.x];
    __syncthreads();
  }
  if (threadIdx.y == 0 && c < C)
    for (int k = 0; k < K; ++k) partial[(int64_t(blockIdx.y) * K + k) * C + c] = part[k][0][threadIdx.x];
}

// Sum of term k of column c over the S slices, by one warp: lane l adds slices l, l + 32, ... in
// order, then the lanes' sums meet in a fixed butterfly; every lane gets the same total, and the
// order never depends on scheduling.
template <typename A>
__device__ A slice_total(const A* partial, int64_t S, int K, int k, int64_t C, int64_t c, int lane) {
  A total = A(0);
  for (int64_t s = lane; s < S; s += 32) total += partial[(s * K + k) * C + c];
  for (int offset = 16; offset > 0; offset /= 2) total += __shfl_xor_sync(0xffffffffu, total, offset);
  return total;
}

// The coefficient kernels run a warp per channel, kWarpsPerBlock channels per block.
constexpr int kWarpsPerBlock = kBlock / 32;
unsigned channel_blocks(int64_t C) { return static_cast<unsigned>((C + kWarpsPerBlock - 1) / kWarpsPerBlock); }
__device__ int64_t channel_of_warp() { return int64_t(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32; }

template <typename A>
__global__ void batch_norm_mean_kernel(const A* partial, int64_t S, A* mean, int64_t R, int64_t C) {
  const int64_t c = channel_of_warp();
  const int lane = threadIdx.x % 32;
  if (c >= C) return;  // the whole warp
  const A total = slice_total(partial, S, 1, 0, C, c, lane);
  if (lane == 0) mean[c] = total / A(R);
}

// variance, and y = x * coef[c] + coef[C + c] (normalize_coefficients: scale, shift).
template <typename A>
__global__ void batch_norm_variance_kernel(const A* partial, int64_t S, const A* mean, const A* gamma, const A* beta,
                                           A epsilon, A* variance, A* coef, int64_t R, int64_t C) {
  const int64_t c = channel_of_warp();
  const int lane = threadIdx.x % 32;
  if (c >= C) return;
  const A v = slice_total(partial, S, 1, 0, C, c, lane) / A(R);
  if (lane != 0) return;
  variance[c] = v;
  const NormalizeCoefficients<A> k =
      normalize_coefficients(mean[c], v, gamma ? gamma[c] : A(1), beta ? beta[c] : A(0), epsilon);
  coef[c] = k.scale;
  coef[C + c] = k.shift;
}

// dx = coef[c] * dy + coef[C + c] * (x - mean) + coef[2C + c]; dgamma and dbeta when wanted.
template <typename A>
__global__ void batch_norm_backward_coef_kernel(const A* partial, int64_t S, const A* variance, const A* gamma,
                                                A epsilon, A* coef, A* dgamma, A* dbeta, int64_t R, int64_t C) {
  const int64_t c = channel_of_warp();
  const int lane = threadIdx.x % 32;
  if (c >= C) return;
  const A sum_dy = slice_total(partial, S, 2, 0, C, c, lane);
  const A sum_dy_dev = slice_total(partial, S, 2, 1, C, c, lane);
  if (lane != 0) return;
  const A invstd = A(1) / sqrt(variance[c] + epsilon);
  const A k1 = (gamma ? gamma[c] : A(1)) * invstd;
  coef[c] = k1;
  coef[C + c] = -k1 * invstd * invstd * sum_dy_dev / A(R);
  coef[2 * C + c] = -k1 * sum_dy / A(R);
  if (dgamma) dgamma[c] = sum_dy_dev * invstd;
  if (dbeta) dbeta[c] = sum_dy;
}

// The elementwise passes: out = rule(c, x, dy) at every element, c its channel. With an activation
// Act, the normalized value is rounded to T and goes through it, as the layers apart compute it.
template <typename T, typename Act>
struct NormalizeRule {
  using A = accumulate_t<T>;
  const A* coef;
  int64_t C;
  A param;
  __device__ A operator()(int64_t c, A x, A) const {
    const A z = normalized(x, NormalizeCoefficients<A>{coef[c], coef[C + c]});
    if constexpr (std::is_same_v<Act, NoActivation>)
      return z;
    else
      return math::apply_unary<Act::value>(rounded_to<T>(z), param);
  }
};
template <typename A>
struct InputGradientRule {
  const A* coef;
  const A* mean;
  int64_t C;
  __device__ A operator()(int64_t c, A x, A dy) const {
    return coef[c] * dy + coef[C + c] * (x - mean[c]) + coef[2 * C + c];
  }
};

// A thread per element, or per pair of adjacent elements (Pairs: 16-bit T, even C, 4-byte aligned
// arrays: one 4-byte load per array, both elements in one row). Index is 32-bit where the element
// count allows: the channel is the index modulo C, cheaper in 32 bits. dy may be out (each element
// is read before it is written, by the same thread).
template <typename T, typename Index, bool Pairs, typename Rule>
__global__ void batch_norm_map_kernel(Rule rule, const T* x, const T* dy, T* out, Index n, Index C) {
  using A = accumulate_t<T>;
  constexpr Index step = Pairs ? 2 : 1;
  for (Index i = (Index(blockIdx.x) * blockDim.x + threadIdx.x) * step; i < n;
       i += Index(gridDim.x) * blockDim.x * step) {
    const Index c = i % C;
    if constexpr (Pairs) {
      using Pair = typename kernels::PairOf<T>::type;
      const Pair xv = *reinterpret_cast<const Pair*>(x + i);
      Pair g{};
      if (dy) g = *reinterpret_cast<const Pair*>(dy + i);
      Pair o;
      o.x = store_value<T>(rule(c, load_value(xv.x), dy ? load_value(g.x) : A(0)));
      o.y = store_value<T>(rule(c + 1, load_value(xv.y), dy ? load_value(g.y) : A(0)));
      *reinterpret_cast<Pair*>(out + i) = o;
    } else {
      out[i] = store_value<T>(rule(c, load_value(x[i]), dy ? load_value(dy[i]) : A(0)));
    }
  }
}

template <typename T, typename Rule>
void launch_batch_norm_map(const Rule& rule, const T* x, const T* dy, T* out, int64_t n, int64_t C, cudaStream_t s) {
  // 32-bit indices while i plus a whole grid's stride cannot wrap.
  const bool narrow = n < (int64_t(1) << 31);
  if constexpr (kernels::is_half_v<T>) {
    if (C % 2 == 0 && kernels::pair_aligned({x, dy, out})) {
      if (narrow)
        batch_norm_map_kernel<T, uint32_t, true>
            <<<grid_for(n / 2), kBlock, 0, s>>>(rule, x, dy, out, uint32_t(n), uint32_t(C));
      else
        batch_norm_map_kernel<T, int64_t, true><<<grid_for(n / 2), kBlock, 0, s>>>(rule, x, dy, out, n, C);
      return;
    }
  }
  if (narrow)
    batch_norm_map_kernel<T, uint32_t, false>
        <<<grid_for(n), kBlock, 0, s>>>(rule, x, dy, out, uint32_t(n), uint32_t(C));
  else
    batch_norm_map_kernel<T, int64_t, false><<<grid_for(n), kBlock, 0, s>>>(rule, x, dy, out, n, C);
}

// Row slices of at least kSliceRows rows, at most kMaxSlices and about 4 * kMaxSlices blocks in
// all (sum_rows' policy); a function of the shape alone, so the summation order is too.
constexpr int64_t kSliceRows = 512, kMaxSlices = 1024;

int64_t slices_for(int64_t R, int64_t C) {
  const int64_t tiles = (C + 31) / 32;
  const int64_t cap = std::max<int64_t>(1, std::min<int64_t>(kMaxSlices, kMaxSlices * 4 / tiles));
  return std::max<int64_t>(1, std::min<int64_t>((R + kSliceRows - 1) / kSliceRows, cap));
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// the backend's entries

void CudaBackend::batch_norm_forward(DType dtype, const void* x, const void* gamma, const void* beta, double epsilon,
                                     const std::optional<UnaryFn>& activation, void* y, void* mean, void* variance,
                                     int64_t rows, int64_t C) {
  DeviceGuard guard(device_);
  if (rows <= 0 || C <= 0) return;
  const int64_t S = slices_for(rows, C);
  const dim3 grid(static_cast<unsigned>((C + 31) / 32), static_cast<unsigned>(S));
  const int64_t per_slice = (rows + S - 1) / S;
  kernels::with_cuda_compute_type(dtype, "batch_norm", [&](auto tag) {
    using T = decltype(tag);
    using A = accumulate_t<T>;
    // From the caching allocator, so a recording's pool serves them and replays see the same
    // addresses.
    Scratch partial(allocator_, static_cast<std::size_t>(S * C) * sizeof(A));
    Scratch coef(allocator_, static_cast<std::size_t>(2 * C) * sizeof(A));
    auto* p = static_cast<A*>(partial.get());
    auto* k = static_cast<A*>(coef.get());
    auto* mu = static_cast<A*>(mean);
    const T* xs = static_cast<const T*>(x);
    batch_norm_sums_kernel<T, SumTerm::X>
        <<<grid, dim3(32, 32), 0, stream_>>>(xs, nullptr, nullptr, {}, p, rows, C, per_slice);
    batch_norm_mean_kernel<<<channel_blocks(C), kBlock, 0, stream_>>>(p, S, mu, rows, C);
    batch_norm_sums_kernel<T, SumTerm::SquaredDeviation>
        <<<grid, dim3(32, 32), 0, stream_>>>(xs, nullptr, mu, {}, p, rows, C, per_slice);
    batch_norm_variance_kernel<<<channel_blocks(C), kBlock, 0, stream_>>>(
        p, S, mu, static_cast<const A*>(gamma), static_cast<const A*>(beta), static_cast<A>(epsilon),
        static_cast<A*>(variance), k, rows, C);
    const A param = activation ? static_cast<A>(activation->param) : A(0);
    with_batch_norm_activation(activation, [&](auto act) {
      launch_batch_norm_map<T>(NormalizeRule<T, decltype(act)>{k, C, param}, xs, nullptr, static_cast<T*>(y), rows * C,
                               C, stream_);
    });
  });
  KILN_LAUNCH_CHECK("batch_norm_kernel");
}

void CudaBackend::batch_norm_backward(DType dtype, const void* x, const void* dy,
                                      const std::optional<UnaryFn>& activation, const void* y, const void* mean,
                                      const void* variance, const void* gamma, const void* beta, double epsilon,
                                      void* dx, void* dgamma, void* dbeta, int64_t rows, int64_t C) {
  DeviceGuard guard(device_);
  if (rows <= 0 || C <= 0) return;
  const int64_t S = slices_for(rows, C);
  const dim3 grid(static_cast<unsigned>((C + 31) / 32), static_cast<unsigned>(S));
  const int64_t per_slice = (rows + S - 1) / S;
  kernels::with_cuda_compute_type(dtype, "batch_norm_backward", [&](auto tag) {
    using T = decltype(tag);
    using A = accumulate_t<T>;
    Scratch partial(allocator_, static_cast<std::size_t>(2 * S * C) * sizeof(A));
    Scratch coef(allocator_, static_cast<std::size_t>(3 * C) * sizeof(A));
    auto* p = static_cast<A*>(partial.get());
    auto* k = static_cast<A*>(coef.get());
    const auto* mu = static_cast<const A*>(mean);
    const auto* var = static_cast<const A*>(variance);
    const T* xs = static_cast<const T*>(x);
    T* dxs = static_cast<T*>(dx);
    const ThroughActivation<T> through{static_cast<const T*>(y),
                                       dxs,
                                       var,
                                       static_cast<const A*>(gamma),
                                       static_cast<const A*>(beta),
                                       static_cast<A>(epsilon),
                                       activation ? static_cast<A>(activation->param) : A(0)};
    with_batch_norm_activation(activation, [&](auto act) {
      batch_norm_sums_kernel<T, SumTerm::Gradient, decltype(act)>
          <<<grid, dim3(32, 32), 0, stream_>>>(xs, static_cast<const T*>(dy), mu, through, p, rows, C, per_slice);
    });
    batch_norm_backward_coef_kernel<<<channel_blocks(C), kBlock, 0, stream_>>>(
        p, S, var, static_cast<const A*>(gamma), static_cast<A>(epsilon), k, static_cast<A*>(dgamma),
        static_cast<A*>(dbeta), rows, C);
    // With an activation the sums pass wrote dy' to dx: the input gradient reads it there.
    const T* dys = activation ? dxs : static_cast<const T*>(dy);
    launch_batch_norm_map<T>(InputGradientRule<A>{k, mu, C}, xs, dys, dxs, rows * C, C, stream_);
  });
  KILN_LAUNCH_CHECK("batch_norm_backward_kernel");
}

}  // namespace kiln::backend
