// CPU elementwise kernels: unary functions and their derivatives, broadcasting binary ops; the
// per-element math is backend/elementwise_math.h, shared with the CUDA kernels. Elements of a 16-bit
// type are read into float (accumulate_t), computed on as the float32 kernel does, and rounded once
// when stored; for float and double the conversions are no-ops. In float, the functions made of exp,
// expm1 or tanh run through cpu_vector_math.h's packet forms instead of one libm call per element.
#include <algorithm>
#include <cmath>
#include <type_traits>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_half.h"
#include "backend/cpu/cpu_vector_math.h"
#include "backend/elementwise_math.h"

namespace kiln::backend {

namespace {

using math::apply_binary;
using math::apply_unary;
using math::derivative;
using math::with_binary_op;
using math::with_unary_op;

template <BinaryOp op, typename T>
void binary_typed(const T* a, int64_t na, const T* b, int64_t nb, T* out, int64_t n) {
  using A = accumulate_t<T>;
  const auto f = [](T u, T v) {
    return convert_element<T>(apply_binary<op>(convert_element<A>(u), convert_element<A>(v)));
  };
  if (na == n && nb == n) {
    parallel_for_work(n, n, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) out[i] = f(a[i], b[i]);
    });
  } else if (na == n) {  // b repeats every nb elements: a row broadcast (or a scalar)
    const int64_t rows = n / nb;
    parallel_for_work(rows, n, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t c = 0; c < nb; ++c) out[r * nb + c] = f(a[r * nb + c], b[c]);
    });
  } else if (nb == n) {
    const int64_t rows = n / na;
    parallel_for_work(rows, n, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t c = 0; c < na; ++c) out[r * na + c] = f(a[c], b[r * na + c]);
    });
  } else {
    for (int64_t i = 0; i < n; ++i) out[i] = f(a[i % na], b[i % nb]);
  }
}

// Runs f(x, out, count), or f(x, dy, out, count) for a derivative, over [i0, i1) in float: on the
// elements themselves where T is float, else on float copies of blocks of them, rounded to T once
// when stored (as the scalar loops do).
template <typename T, typename F>
void in_float(int64_t i0, int64_t i1, F&& f, T* out, const T* x, const T* dy = nullptr) {
  constexpr bool kWithDy = !std::is_invocable_v<F, const float*, float*, int64_t>;
  if constexpr (std::is_same_v<T, float>) {
    if constexpr (kWithDy)
      f(x + i0, dy + i0, out + i0, i1 - i0);
    else
      f(x + i0, out + i0, i1 - i0);
  } else {
    constexpr int64_t kStage = 256;
    const auto widen = [](T v) { return convert_element<float>(v); };
    for (int64_t b0 = i0; b0 < i1; b0 += kStage) {
      const int64_t count = std::min(kStage, i1 - b0);
      float xs[kStage], dys[kStage], ys[kStage];
      std::transform(x + b0, x + b0 + count, xs, widen);
      if constexpr (kWithDy) {
        std::transform(dy + b0, dy + b0 + count, dys, widen);
        f(xs, dys, ys, count);
      } else {
        f(xs, ys, count);
      }
      std::transform(ys, ys + count, out + b0, [](float v) { return convert_element<T>(v); });
    }
  }
}

}  // namespace

void CpuBackend::unary(UnaryFn fn, DType dtype, const void* x, void* y, int64_t n) {
  with_cpu_compute_type(dtype, "unary", [&](auto tag) {
    using T = decltype(tag);
    const T* xs = static_cast<const T*>(x);
    T* ys = static_cast<T*>(y);
    using A = accumulate_t<T>;
    const A p = static_cast<A>(fn.param);
    if constexpr (std::is_same_v<A, float>)
      if (cpu_vector::applies(fn.op))
        return parallel_for_work(n, n, [&](int64_t i0, int64_t i1) {
          in_float(
              i0, i1, [&](const float* a, float* b, int64_t count) { cpu_vector::apply(fn.op, p, a, b, count); }, ys,
              xs);
        });
    with_unary_op(fn.op, [&](auto op_c) {
      parallel_for_work(n, n, [&](int64_t i0, int64_t i1) {
        for (int64_t i = i0; i < i1; ++i)
          ys[i] = convert_element<T>(apply_unary<op_c.value>(convert_element<A>(xs[i]), p));
      });
    });
  });
}

void CpuBackend::unary_backward(UnaryFn fn, DType dtype, const void* x, const void* y, const void* dy, void* dx,
                                int64_t n) {
  with_cpu_compute_type(dtype, "unary_backward", [&](auto tag) {
    using T = decltype(tag);
    const T* xs = static_cast<const T*>(x);
    const T* ys = static_cast<const T*>(y);
    const T* dys = static_cast<const T*>(dy);
    T* dxs = static_cast<T*>(dx);
    using A = accumulate_t<T>;
    const A p = static_cast<A>(fn.param);
    if constexpr (std::is_same_v<A, float>)
      if (cpu_vector::differentiates(fn.op))
        return parallel_for_work(n, n, [&](int64_t i0, int64_t i1) {
          in_float(
              i0, i1,
              [&](const float* a, const float* g, float* b, int64_t count) {
                cpu_vector::derivative_times(fn.op, p, a, g, b, count);
              },
              dxs, xs, dys);
        });
    with_unary_op(fn.op, [&](auto op_c) {
      parallel_for_work(n, n, [&](int64_t i0, int64_t i1) {
        // The derivative first, then the product: written as one expression, GCC turns ReLU's
        // dy * (x <= 0 ? 0 : 1) into a branch around dy * 0 that it cannot vectorize.
        for (int64_t i = i0; i < i1; ++i) {
          const A d = derivative<op_c.value>(convert_element<A>(xs[i]), convert_element<A>(ys[i]), p);
          dxs[i] = convert_element<T>(convert_element<A>(dys[i]) * d);
        }
      });
    });
  });
}

void CpuBackend::binary(BinaryOp op, DType dtype, const void* a, int64_t na, const void* b, int64_t nb, void* out,
                        int64_t n) {
  with_cpu_compute_type(dtype, "binary", [&](auto tag) {
    using T = decltype(tag);
    with_binary_op(op, [&](auto op_c) {
      binary_typed<op_c.value>(static_cast<const T*>(a), na, static_cast<const T*>(b), nb, static_cast<T*>(out), n);
    });
  });
}

void CpuBackend::affine(DType dtype, const void* x, double alpha, double beta, void* y, int64_t n) {
  with_cpu_compute_type(dtype, "affine", [&](auto tag) {
    using T = decltype(tag);
    const T* xs = static_cast<const T*>(x);
    T* ys = static_cast<T*>(y);
    using A = accumulate_t<T>;
    const A a = static_cast<A>(alpha), b = static_cast<A>(beta);
    parallel_for_work(n, n, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) ys[i] = convert_element<T>(a * convert_element<A>(xs[i]) + b);
    });
  });
}

}  // namespace kiln::backend

namespace kiln::backend {

void CpuBackend::clip(DType dtype, const void* x, void* y, int64_t n, double lo, double hi) {
  with_cpu_compute_type(dtype, "clip", [&](auto tag) {
    using T = decltype(tag);
    const T* xs = static_cast<const T*>(x);
    T* ys = static_cast<T*>(y);
    using A = accumulate_t<T>;
    const A l = static_cast<A>(lo), h = static_cast<A>(hi);
    parallel_for_work(n, n, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) ys[i] = convert_element<T>(std::min(std::max(convert_element<A>(xs[i]), l), h));
    });
  });
}

void CpuBackend::clip_backward(DType dtype, const void* x, const void* dy, void* dx, int64_t n, double lo, double hi) {
  with_cpu_compute_type(dtype, "clip_backward", [&](auto tag) {
    using T = decltype(tag);
    const T* xs = static_cast<const T*>(x);
    const T* dys = static_cast<const T*>(dy);
    T* dxs = static_cast<T*>(dx);
    using A = accumulate_t<T>;
    const A l = static_cast<A>(lo), h = static_cast<A>(hi);
    parallel_for_work(n, n, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        const A v = convert_element<A>(xs[i]);
        dxs[i] = (v >= l && v <= h) ? dys[i] : T(0);
      }
    });
  });
}

}  // namespace kiln::backend
