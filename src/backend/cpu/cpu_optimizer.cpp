// CPU optimizer updates, written exactly as Keras writes them so the rounding matches.
#include <cmath>
#include <cstddef>
#include <type_traits>

#include "backend/cpu/cpu_backend.h"
#include "backend/optimizer_math.h"

namespace kiln::backend {

namespace {

// A rule whose switches are compile-time constants hiding RuleConstants' runtime ones: the element
// loop then holds no branch on them and vectorises (the generic loop, which tests them for every
// element, ran scalar: bench/README.md has the measurement). No clipping.
template <typename T, UpdateKind K, bool kMomentum, bool kNesterov, bool kDecay>
struct FixedRule : math::RuleConstants<T> {
  static constexpr UpdateKind kind = K;
  static constexpr ClipKind clip = ClipKind::None;
  static constexpr bool has_momentum = kMomentum, nesterov = kNesterov, decay = kDecay;
};

// A tensor without a moving average of its weights, known at compile time.
struct TensorWithoutAverage : UpdateTensor {
  static constexpr std::nullptr_t average = nullptr;
};

// Calls body(rule): `r` as a FixedRule where it is SGD (plain, momentum or nesterov) or Adam without
// clipping, the common rules; else `r` itself.
template <typename T, typename Body>
void with_fixed_rule(const math::RuleConstants<T>& r, Body&& body) {
  using std::bool_constant;
  const auto fixed = [&](auto kind, auto momentum, auto nesterov) {
    if (r.decay)
      body(FixedRule<T, decltype(kind)::value, decltype(momentum)::value, decltype(nesterov)::value, true>{r});
    else
      body(FixedRule<T, decltype(kind)::value, decltype(momentum)::value, decltype(nesterov)::value, false>{r});
  };
  using Kind = UpdateKind;
  const bool unclipped = r.clip == ClipKind::None;
  if (unclipped && r.kind == Kind::Adam)
    fixed(std::integral_constant<Kind, Kind::Adam>{}, bool_constant<false>{}, bool_constant<false>{});
  else if (unclipped && r.kind == Kind::Sgd && !r.has_momentum)
    fixed(std::integral_constant<Kind, Kind::Sgd>{}, bool_constant<false>{}, bool_constant<false>{});
  else if (unclipped && r.kind == Kind::Sgd && r.nesterov)
    fixed(std::integral_constant<Kind, Kind::Sgd>{}, bool_constant<true>{}, bool_constant<true>{});
  else if (unclipped && r.kind == Kind::Sgd)
    fixed(std::integral_constant<Kind, Kind::Sgd>{}, bool_constant<true>{}, bool_constant<false>{});
  else
    body(r);
}

// Elements [i0, i1) of `t`; the arguments are copies, so that no store through the tensors' pointers
// can be taken to change them and the loop keeps them in registers.
template <typename T, typename Rule, typename Tensor>
void update_range(const Rule r, const math::StepConstants<T> s, const T clip, const Tensor t, int64_t i0, int64_t i1) {
  for (int64_t i = i0; i < i1; ++i) math::update_element(r, s, clip, t, i);
}

}  // namespace

void CpuBackend::sgd_step(DType dtype, void* w, const void* g, void* v, int64_t n, double lr, double momentum,
                          bool nesterov) {
  with_float_type(dtype, "sgd", [&](auto tag) {
    using T = decltype(tag);
    T* ws = static_cast<T*>(w);
    const T* gs = static_cast<const T*>(g);
    T* vs = static_cast<T*>(v);
    const T lr_t = static_cast<T>(lr), m = static_cast<T>(momentum);
    if (momentum == 0.0) {
      parallel_for_work(n, n, [&](int64_t i0, int64_t i1) {
        for (int64_t i = i0; i < i1; ++i) ws[i] -= lr_t * gs[i];
      });
      return;
    }
    parallel_for_work(n, n, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        vs[i] = m * vs[i] - lr_t * gs[i];
        ws[i] += nesterov ? m * vs[i] - lr_t * gs[i] : vs[i];
      }
    });
  });
}

namespace {
// m += (g - m)(1 - b1); v += (g^2 - v)(1 - b2); w -= alpha m / (sqrt(v) + eps).
template <typename T>
void adam_update(T* ws, const T* gs, T* ms, T* vs, int64_t n, T alpha, T b1, T b2, T e) {
  parallel_for_work(n, n, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      ms[i] += (gs[i] - ms[i]) * (T(1) - b1);
      vs[i] += (gs[i] * gs[i] - vs[i]) * (T(1) - b2);
      ws[i] -= alpha * ms[i] / (std::sqrt(vs[i]) + e);
    }
  });
}
}  // namespace

void CpuBackend::adam_step(DType dtype, void* w, const void* g, void* m, void* v, int64_t n, double lr, double beta1,
                           double beta2, double eps, int64_t step) {
  with_float_type(dtype, "adam", [&](auto tag) {
    using T = decltype(tag);
    // Keras computes the bias correction in the variable's dtype: float32 powers for float32.
    const T b1 = static_cast<T>(beta1), b2 = static_cast<T>(beta2);
    const T t = static_cast<T>(step);
    const T alpha = static_cast<T>(lr) * std::sqrt(T(1) - std::pow(b2, t)) / (T(1) - std::pow(b1, t));
    adam_update(static_cast<T*>(w), static_cast<const T*>(g), static_cast<T*>(m), static_cast<T*>(v), n, alpha, b1, b2,
                static_cast<T>(eps));
  });
}

void CpuBackend::adam_step_multi(DType dtype, const ParamSlots* params, int count, double beta1, double beta2,
                                 double eps, const void* alpha_table, const int64_t* index) {
  with_float_type(dtype, "adam", [&](auto tag) {
    using T = decltype(tag);
    const T alpha = static_cast<const T*>(alpha_table)[*index];
    for (int i = 0; i < count; ++i)
      adam_update(static_cast<T*>(params[i].w), static_cast<const T*>(params[i].g), static_cast<T*>(params[i].m),
                  static_cast<T*>(params[i].v), params[i].n, alpha, static_cast<T>(beta1), static_cast<T>(beta2),
                  static_cast<T>(eps));
  });
}

}  // namespace kiln::backend

namespace kiln::backend {

void CpuBackend::grad_sum_squares(DType dtype, const UpdateTensor* tensors, int count, void* out, bool total) {
  with_float_type(dtype, "grad_sum_squares", [&](auto tag) {
    using T = decltype(tag);
    T* sums = static_cast<T*>(out);
    for (int k = 0; k < count; ++k) {
      // In index order, one accumulator: the same sum every run.
      const T* g = static_cast<const T*>(tensors[k].g);
      T acc = T(0);
      if (g != nullptr)
        for (int64_t i = 0; i < tensors[k].n; ++i) acc += g[i] * g[i];
      sums[k] = acc;
    }
    if (!total) return;
    T acc = T(0);
    for (int k = 0; k < count; ++k) acc += sums[k];
    sums[count] = acc;
  });
}

void CpuBackend::optimizer_update(DType dtype, const UpdateRule& rule, const UpdateTensor* tensors, int count,
                                  const void* sum_squares, const void* step_table, const int64_t* index,
                                  const double* host_step, const int32_t* skip) {
  if (skip != nullptr && *skip != 0) return;
  with_float_type(dtype, "optimizer_update", [&](auto tag) {
    using T = decltype(tag);
    const auto r = math::constants_of<T>(rule);
    const auto s = step_table != nullptr ? math::step_of<T>(static_cast<const T*>(step_table) + *index * kStepValues)
                                         : math::step_of<T>(host_step);
    const T* sums = static_cast<const T*>(sum_squares);
    for (int k = 0; k < count; ++k) {
      const UpdateTensor& t = tensors[k];
      const T clip = sums != nullptr
                         ? math::clip_scalar_of(r, sums[k], r.clip == ClipKind::GlobalNorm ? sums[count] : T(0))
                         : T(1);
      with_fixed_rule(r, [&](const auto& rule) {
        parallel_for_work(t.n, t.n, [&](int64_t i0, int64_t i1) {
          if (t.average == nullptr)
            update_range(rule, s, clip, TensorWithoutAverage{t}, i0, i1);
          else
            update_range(rule, s, clip, t, i0, i1);
        });
      });
    }
  });
}

void CpuBackend::unscale_gradients(DType dtype, const UpdateTensor* tensors, int count, const float* scale,
                                   int32_t* nonfinite) {
  with_float_type(dtype, "unscale_gradients", [&](auto tag) {
    using T = decltype(tag);
    const T s = static_cast<T>(*scale);
    bool found = false;
    for (int k = 0; k < count; ++k) {
      // Written through: the gradients belong to the step that unscales them.
      T* g = static_cast<T*>(const_cast<void*>(tensors[k].g));
      if (g == nullptr) continue;
      for (int64_t i = 0; i < tensors[k].n; ++i) {
        if (!math::is_finite_value(g[i])) found = true;
        g[i] = g[i] / s;
      }
    }
    *nonfinite = found ? 1 : 0;
  });
}

void CpuBackend::update_loss_scale(const int32_t* nonfinite, float* scale, int64_t* counter, int64_t* applied,
                                   int64_t growth_steps) {
  math::update_loss_scale(*nonfinite, *scale, *counter, *applied, growth_steps);
}

}  // namespace kiln::backend
