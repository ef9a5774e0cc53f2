// CPU batch normalization in training over x [rows, C]: the statistics in two passes (the mean, then
// the mean squared deviation from it: no cancellation when the mean is large), the normalization in
// a third; the backward in one reducing pass and one elementwise pass. Sums run in fixed blocks of
// rows added in block order, so no result depends on the thread count. 16-bit x is read into float,
// the statistics' type, and y and dx are rounded once. An activation after the normalization runs in
// the forward pass. In the backward, ReLU's derivative (a comparison on its input, recomputed from x)
// is taken inside the reducing and the elementwise pass; the other activations' derivatives cost more
// than a pass of their own, which goes first and writes the gradient into dx for the two to read.
#include <algorithm>
#include <array>
#include <cmath>
#include <type_traits>
#include <vector>

#include "backend/batch_norm_math.h"
#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_half.h"
#include "backend/cpu/cpu_vector_math.h"
#include "backend/elementwise_math.h"

namespace kiln::backend {

namespace {

constexpr int64_t kRowBlock = 256;
constexpr int64_t kChannelTile = 16;       // channels whose sums stay in registers over a block's rows
constexpr int64_t kMaxTiledChannels = 32;  // tiles only up to this many channels

// sums[k * C + c] = sum over rows r of term(r, c)[k] for k < K, in kRowBlock blocks added in order.
// With few channels (rows of at most kMaxTiledChannels), each tile of kChannelTile channels is
// summed over all of a block's rows before the next: the running sums then live in registers
// instead of being loaded and stored for every row of a few values; each sum still adds its rows
// in order. Wider rows are summed row by row, which streams through memory better than tiles that
// each read a part of every row (bench/README.md has both measured).
template <typename A, int K, typename Term>
std::vector<A> column_sums(int64_t rows, int64_t C, Term term) {
  const int64_t blocks = (rows + kRowBlock - 1) / kRowBlock;
  std::vector<A> partial(static_cast<std::size_t>(blocks * K * C), A(0));
  parallel_for_work(blocks, rows * C * K, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      A* __restrict acc = partial.data() + b * K * C;
      const int64_t r0 = b * kRowBlock, r1 = std::min(rows, (b + 1) * kRowBlock);
      int64_t c0 = 0;
      for (; C <= kMaxTiledChannels && c0 + kChannelTile <= C; c0 += kChannelTile) {
        A tile[K][kChannelTile] = {};
        for (int64_t r = r0; r < r1; ++r)
          for (int64_t j = 0; j < kChannelTile; ++j) {
            const std::array<A, K> t = term(r, c0 + j);
            for (int k = 0; k < K; ++k) tile[k][j] += t[k];
          }
        for (int k = 0; k < K; ++k)
          for (int64_t j = 0; j < kChannelTile; ++j) acc[k * C + c0 + j] = tile[k][j];
      }
      for (int64_t r = r0; r < r1; ++r)  // the channels after the last whole tile
        for (int64_t c = c0; c < C; ++c) {
          const std::array<A, K> t = term(r, c);
          for (int k = 0; k < K; ++k) acc[k * C + c] += t[k];
        }
    }
  });
  std::vector<A> sums(static_cast<std::size_t>(K * C), A(0));
  for (int64_t b = 0; b < blocks; ++b)
    for (int64_t i = 0; i < K * C; ++i) sums[i] += partial[b * K * C + i];
  return sums;
}

// The per-channel coefficients of batch_norm_forward's y (null gamma: ones, null beta: zeros).
template <typename A>
std::vector<NormalizeCoefficients<A>> coefficients(const A* mean, const A* variance, const void* gamma,
                                                   const void* beta, double epsilon, int64_t C) {
  std::vector<NormalizeCoefficients<A>> k(static_cast<std::size_t>(C));
  for (int64_t c = 0; c < C; ++c)
    k[c] = normalize_coefficients(mean[c], variance[c], gamma ? static_cast<const A*>(gamma)[c] : A(1),
                                  beta ? static_cast<const A*>(beta)[c] : A(0), static_cast<A>(epsilon));
  return k;
}

// The fused activation's input for element x with its channel's coefficients k: the normalized
// value rounded to T, as the activation layer apart reads it from the normalization's output.
template <typename T, typename A>
A activation_input(T x, const NormalizeCoefficients<A>& k) {
  return convert_element<A>(convert_element<T>(normalized(convert_element<A>(x), k)));
}

// For elements [r0 * C, r1 * C) in blocks of kStage: z[j] = z_of(i, c) for element i = i0 + j of
// channel c, then f(z, i0, count). The fused activation's packet forms (cpu_vector_math.h) take
// these blocks, so that the fused layer's values stay those of the activation layer apart, which
// runs the same forms.
constexpr int64_t kStage = 256;
template <typename ZOf, typename F>
void by_float_blocks(int64_t r0, int64_t r1, int64_t C, ZOf z_of, F f) {
  float z[kStage];
  const int64_t end = r1 * C;
  int64_t c = 0;
  for (int64_t i0 = r0 * C; i0 < end; i0 += kStage) {
    const int64_t count = std::min(kStage, end - i0);
    for (int64_t j = 0; j < count; ++j) {
      z[j] = z_of(i0 + j, c);
      if (++c == C) c = 0;
    }
    f(z, i0, count);
  }
}

// The gradient at the normalization's output for the element at x, y, dy of a channel with
// coefficients k: dy without an activation, else dy times the activation's derivative at its input
// z, recomputed from x, rounded to T as the activation layer apart writes its gradient.
template <typename Act, typename T, typename A>
A output_gradient(Act /*act*/, const T* x, const T* y, const T* dy, const NormalizeCoefficients<A>& k, A param) {
  if constexpr (std::is_same_v<Act, NoActivation>)
    return convert_element<A>(*dy);
  else
    return convert_element<A>(
        convert_element<T>(convert_element<A>(*dy) *
                           math::derivative<Act::value>(activation_input(*x, k), convert_element<A>(*y), param)));
}

// One row of the elementwise pass: dx = k1 * g + k2 * (x - mean) + k3 per channel. kInPlace: dy is
// dx itself, read through dx. Every pointer is restrict-qualified: otherwise GCC checks per row that
// dx overlaps none of the others and, since an in-place dx does overlap dy's row, ran those rows
// scalar.
template <bool kInPlace, typename Act, typename T, typename A>
void backward_dx_row(Act act, int64_t C, const T* __restrict x, const T* __restrict y, const T* __restrict dy,
                     T* __restrict dx, const NormalizeCoefficients<A>* __restrict k, const A* __restrict k1,
                     const A* __restrict k2, const A* __restrict k3, const A* __restrict mean, A param) {
  const T* g = kInPlace ? dx : dy;
  for (int64_t c = 0; c < C; ++c) {
    const A out = output_gradient(act, x + c, y + c, g + c, k[c], param);
    dx[c] = convert_element<T>(k1[c] * out + k2[c] * (convert_element<A>(x[c]) - mean[c]) + k3[c]);
  }
}

}  // namespace

void CpuBackend::batch_norm_forward(DType dtype, const void* x, const void* gamma, const void* beta, double epsilon,
                                    const std::optional<UnaryFn>& activation, void* y, void* mean, void* variance,
                                    int64_t rows, int64_t C) {
  with_cpu_compute_type(dtype, "batch_norm", [&](auto tag) {
    using T = decltype(tag);
    using A = accumulate_t<T>;
    const T* xs = static_cast<const T*>(x);
    A* mu = static_cast<A*>(mean);
    A* var = static_cast<A*>(variance);
    const auto at = [&](int64_t r, int64_t c) { return convert_element<A>(xs[r * C + c]); };
    // Means as kiln::mean takes them (the sum times the rounded reciprocal of the count, the sums
    // in the same row blocks), so that the statistics and y equal moments + batch_normalization's
    // bit for bit.
    const A inv_count = static_cast<A>(1.0 / static_cast<double>(rows));
    const std::vector<A> sums =
        column_sums<A, 1>(rows, C, [&](int64_t r, int64_t c) { return std::array<A, 1>{at(r, c)}; });
    for (int64_t c = 0; c < C; ++c) mu[c] = inv_count * sums[c];
    const std::vector<A> squares = column_sums<A, 1>(rows, C, [&](int64_t r, int64_t c) {
      const A d = at(r, c) - mu[c];
      return std::array<A, 1>{d * d};
    });
    for (int64_t c = 0; c < C; ++c) var[c] = inv_count * squares[c];
    const std::vector<NormalizeCoefficients<A>> k = coefficients(mu, var, gamma, beta, epsilon, C);
    T* ys = static_cast<T*>(y);
    const A param = activation ? static_cast<A>(activation->param) : A(0);
    if constexpr (std::is_same_v<A, float>)
      if (activation && cpu_vector::applies(activation->op))
        return parallel_for_work(rows, rows * C, [&](int64_t r0, int64_t r1) {
          const auto z_of = [&](int64_t i, int64_t c) { return activation_input(xs[i], k[c]); };
          by_float_blocks(r0, r1, C, z_of, [&](const float* z, int64_t i0, int64_t count) {
            float out[kStage];
            cpu_vector::apply(activation->op, param, z, out, count);
            for (int64_t j = 0; j < count; ++j) ys[i0 + j] = convert_element<T>(out[j]);
          });
        });
    with_batch_norm_activation(activation, [&](auto act) {
      parallel_for_work(rows, rows * C, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r)
          for (int64_t c = 0; c < C; ++c) {
            const int64_t i = r * C + c;
            if constexpr (std::is_same_v<decltype(act), NoActivation>)
              ys[i] = convert_element<T>(normalized(at(r, c), k[c]));
            else
              ys[i] = convert_element<T>(math::apply_unary<decltype(act)::value>(activation_input(xs[i], k[c]), param));
          }
      });
    });
  });
}

void CpuBackend::batch_norm_backward(DType dtype, const void* x, const void* dy,
                                     const std::optional<UnaryFn>& activation, const void* y, const void* mean,
                                     const void* variance, const void* gamma, const void* beta, double epsilon,
                                     void* dx, void* dgamma, void* dbeta, int64_t rows, int64_t C) {
  with_batch_norm_activation(activation, [&](auto act) {
    with_cpu_compute_type(dtype, "batch_norm_backward", [&](auto tag) {
      using T = decltype(tag);
      using A = accumulate_t<T>;
      // y is read only by an activation's derivative; without an activation (y null) x stands in for
      // it, so that every row's pointers are valid ones.
      const T *xs = static_cast<const T*>(x), *ys = y != nullptr ? static_cast<const T*>(y) : xs,
              *dys = static_cast<const T*>(dy);
      T* dxs = static_cast<T*>(dx);
      const A* mu = static_cast<const A*>(mean);
      const A* var = static_cast<const A*>(variance);
      const std::vector<NormalizeCoefficients<A>> k = coefficients(mu, var, gamma, beta, epsilon, C);
      const A param = activation ? static_cast<A>(activation->param) : A(0);
      // A cheap gradient (gradient_is_cheap: none, or ReLU's comparison) is recomputed inside the two
      // passes below, which costs less than writing it out and reading it twice. A costlier one goes
      // first, in a pass of its own that writes the output gradient into dx; the passes read it there.
      constexpr bool inside = gradient_is_cheap<decltype(act)>();
      if constexpr (!inside) {
        bool done = false;
        if constexpr (std::is_same_v<A, float>)
          if (cpu_vector::differentiates(activation->op)) {
            const auto z_of = [&](int64_t i, int64_t c) { return activation_input(xs[i], k[c]); };
            parallel_for_work(rows, rows * C, [&](int64_t r0, int64_t r1) {
              by_float_blocks(r0, r1, C, z_of, [&](const float* z, int64_t i0, int64_t count) {
                float g[kStage], out[kStage];
                for (int64_t j = 0; j < count; ++j) g[j] = convert_element<A>(dys[i0 + j]);
                cpu_vector::derivative_times(activation->op, param, z, g, out, count);
                for (int64_t j = 0; j < count; ++j) dxs[i0 + j] = convert_element<T>(out[j]);
              });
            });
            done = true;
          }
        if (!done)
          parallel_for_work(rows, rows * C, [&](int64_t r0, int64_t r1) {
            for (int64_t i = r0 * C; i < r1 * C; i += C)
              for (int64_t c = 0; c < C; ++c)
                dxs[i + c] = convert_element<T>(output_gradient(act, xs + i + c, ys + i + c, dys + i + c, k[c], param));
          });
        dys = dxs;
      }
      using Gradient = std::conditional_t<inside, decltype(act), NoActivation>;
      // sums[c]: sum of the output gradient g; sums[C + c]: sum of g * (x - mean).
      const std::vector<A> sums = column_sums<A, 2>(rows, C, [&](int64_t r, int64_t c) {
        const int64_t i = r * C + c;
        const A g = output_gradient(Gradient{}, xs + i, ys + i, dys + i, k[c], param);
        return std::array<A, 2>{g, g * (convert_element<A>(xs[i]) - mu[c])};
      });
      // dx = k1 * g + k2 * (x - mean) + k3 per channel: the gradient through y's direct path and
      // through the batch mean and variance.
      std::vector<A> k1(static_cast<std::size_t>(C)), k2(static_cast<std::size_t>(C)), k3(static_cast<std::size_t>(C));
      const A count = static_cast<A>(rows);
      for (int64_t c = 0; c < C; ++c) {
        const A invstd = A(1) / std::sqrt(var[c] + static_cast<A>(epsilon));
        const A g = gamma ? static_cast<const A*>(gamma)[c] : A(1);
        k1[c] = g * invstd;
        k2[c] = -k1[c] * invstd * invstd * sums[C + c] / count;
        k3[c] = -k1[c] * sums[c] / count;
        if (dgamma) static_cast<A*>(dgamma)[c] = sums[C + c] * invstd;
        if (dbeta) static_cast<A*>(dbeta)[c] = sums[c];
      }
      // dy is dx after the activation's own pass, or where a caller passed them so.
      const bool in_place = dys == dxs;
      parallel_for_work(rows, rows * C, [&](int64_t r0, int64_t r1) {
        for (int64_t i = r0 * C; i < r1 * C; i += C) {
          if (in_place)
            backward_dx_row<true>(Gradient{}, C, xs + i, ys + i, static_cast<const T*>(nullptr), dxs + i, k.data(),
                                  k1.data(), k2.data(), k3.data(), mu, param);
          else
            backward_dx_row<false>(Gradient{}, C, xs + i, ys + i, dys + i, dxs + i, k.data(), k1.data(), k2.data(),
                                   k3.data(), mu, param);
        }
      });
    });
  });
}

}  // namespace kiln::backend
