// float16 and bfloat16 products and convolutions on the GPU (cuBLAS, cuBLASLt's epilogues and
// cuDNN, summing in float on tensor cores) against the CPU backend on the same 16-bit inputs (the
// CPU stages them into float and rounds each output once); their determinism and their replay
// inside a CUDA graph. The GPU tests are skipped, with the reason, where no GPU is usable.
//
// Tolerance, the same rule for every op (expect_within): products of 16-bit values are exact in
// float (11 x 11 or 8 x 8 significant bits fit in float's 24), so the devices differ only in the
// order of their float sums and in the final rounding to 16 bits. For an output whose exact value
// is a sum of `terms` products with S = the sum of their absolute values (the same op run in
// float64 on the inputs' absolute values: abs_sums), each device's float sum lies within
// terms * 2^-24 * S of the exact sum (recursive summation's bound; blocked, pairwise and
// tensor-core sums stay inside it), and each rounding to 16 bits moves it by at most half an ulp
// of the 16-bit type at the output's magnitude, which allows one ulp at a binade edge:
//   |gpu - cpu| <= 2 ulp16(max(|gpu|, |cpu|)) + 2 * terms * 2^-24 * S,
// plus ulp16(S) where the GPU may round the product to 16 bits before it adds the bias (gemm_bias_act
// where cuBLASLt has no fused algorithm, a convolution cuDNN does not fuse): that product is at most
// S in magnitude, and its rounding costs at most half its ulp. ReLU is 1-Lipschitz, and the ReLU
// backward masks with the same y on both devices, so neither widens the bound.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "cuda_parity.h"
#include "kiln/kiln.h"
#include "test_support.h"

namespace kiln {
namespace {

using testing::cpu;
using testing::DevBuf;
using testing::gpu;
using testing::random_vec;

/// A host array of 16-bit floats, as their bit patterns.
using Bits = std::vector<uint16_t>;

/// Bytes of n 16-bit values.
std::size_t bytes16(int64_t n) { return static_cast<std::size_t>(n) * 2; }

constexpr DType kHalfTypes[] = {DType::Float16, DType::BFloat16};

class Determinism : public testing::ModeSetting {
 public:
  explicit Determinism(bool enabled)
      : ModeSetting(&config::enable_op_determinism, &config::op_determinism_enabled, enabled) {}
};

/// n values uniform in [lo, hi), rounded to `dtype` by the CPU backend's cast.
Bits random16(DType dtype, int64_t n, double lo = -1.0, double hi = 1.0) {
  const std::vector<float> f = random_vec(static_cast<std::size_t>(n), lo, hi);
  Bits out(f.size());
  cpu().cast(DType::Float32, f.data(), dtype, out.data(), n);
  return out;
}

/// The values of `b` (exactly) as doubles, or their absolute values.
std::vector<double> widen(DType dtype, const Bits& b, bool absolute = false) {
  std::vector<double> out(b.size());
  cpu().cast(dtype, b.data(), DType::Float64, out.data(), static_cast<int64_t>(b.size()));
  if (absolute)
    for (double& v : out) v = std::abs(v);
  return out;
}

/// The spacing of `dtype`'s values at magnitude |v|: 2^(e - 10) for float16, 2^(e - 7) for bfloat16,
/// e = floor(log2 |v|), never below the subnormal spacing (2^-24, 2^-133).
double ulp16(DType dtype, double v) {
  const int mantissa = dtype == DType::Float16 ? 10 : 7, min_exponent = dtype == DType::Float16 ? -14 : -126;
  const int e = v == 0.0 ? min_exponent : std::max(std::ilogb(std::abs(v)), min_exponent);
  return std::ldexp(1.0, e - mantissa);
}

/// Every output within the bound of the file's comment: `abs_sum[i]` is S of output i, `terms` the
/// number of products (and bias or beta terms) in each sum, `bias_rounding` adds ulp16(S). A NaN
/// on the CPU must be a NaN on the GPU, and the GPU must give no NaN or infinity elsewhere.
void expect_within(DType dtype, const Bits& want, const Bits& got, const std::vector<double>& abs_sum, int64_t terms,
                   bool bias_rounding, const std::string& what) {
  ASSERT_EQ(want.size(), got.size()) << what;
  ASSERT_EQ(want.size(), abs_sum.size()) << what;
  const std::vector<double> c = widen(dtype, want), g = widen(dtype, got);
  const double u = std::ldexp(1.0, -24);
  for (std::size_t i = 0; i < c.size(); ++i) {
    if (std::isnan(c[i])) {
      ASSERT_TRUE(std::isnan(g[i])) << what << " at " << i << ": cpu NaN, gpu " << g[i];
      continue;
    }
    ASSERT_TRUE(std::isfinite(g[i])) << what << " at " << i << ": cpu " << c[i] << ", gpu " << g[i];
    const double tol = 2 * ulp16(dtype, std::max(std::abs(c[i]), std::abs(g[i]))) +
                       2 * static_cast<double>(terms) * u * abs_sum[i] + (bias_rounding ? ulp16(dtype, abs_sum[i]) : 0);
    ASSERT_LE(std::abs(c[i] - g[i]), tol) << what << " (" << dtype_name(dtype) << ") at " << i << ": cpu " << c[i]
                                          << ", gpu " << g[i] << ", S " << abs_sum[i];
  }
}

// TensorFlow's output size and leading padding of one axis.
std::pair<int64_t, int64_t> tf_axis(int64_t in, int64_t k, int64_t s, bool same) {
  if (!same) return {(in - k) / s + 1, 0};
  const int64_t out = (in + s - 1) / s;
  return {out, std::max<int64_t>((out - 1) * s + k - in, 0) / 2};
}

struct ConvCase {
  int64_t N, H, W, C, KH, KW, F, s;
  bool same;
};

// 3, 12, 16 and 64 channels; "same" that cuDNN pads (odd kernel, stride 1), "same" that we pad
// (stride 2 on an even input, an even kernel), "valid" with stride 1 and 2.
const ConvCase kConvCases[] = {
    {2, 12, 12, 3, 3, 3, 16, 1, false},  // the seed's first layer, smaller
    {2, 10, 10, 16, 3, 3, 16, 1, true},  // symmetric "same"
    {2, 10, 12, 16, 3, 3, 32, 2, true},  // stride 2 on even input: asymmetric padding
    {2, 8, 8, 64, 3, 3, 64, 1, true},    // 64 channels in and out
    {3, 7, 7, 3, 3, 3, 64, 2, false},    // valid, stride 2, the last input row unused
    {2, 8, 8, 16, 2, 2, 8, 1, true},     // even kernel: asymmetric padding
    {2, 9, 9, 64, 1, 1, 8, 2, false},    // 1x1, stride 2
    {2, 10, 12, 3, 3, 3, 16, 2, true},   // 3 channels with asymmetric padding
    {2, 8, 8, 12, 3, 3, 8, 1, true},     // 12 channels: not whole 16-byte vectors of 16-bit values
    // The filter gradient's tensor-core kernel (KH*KW*C + 1 of at most 32, F of at most 64) over
    // several slices of rows: dz in 16-byte loads (F a multiple of 8), then one value at a time.
    {4, 16, 16, 3, 3, 3, 32, 1, true},
    {3, 15, 15, 3, 3, 3, 24, 1, true},
    {2, 8, 8, 16, 1, 1, 32, 2, false},   // a 1x1 projection shortcut: one 16-channel run per window
    {2, 9, 9, 1, 3, 3, 8, 1, true},      // one channel: 16 patch columns, 16 filter columns
    {2, 11, 11, 1, 5, 5, 40, 1, false},  // 5x5 of one channel, 40 filters: 32 and 48 columns
};

backend::Conv2dGeometry geometry(const ConvCase& t) {
  const auto [OH, pt] = tf_axis(t.H, t.KH, t.s, t.same);
  const auto [OW, pl] = tf_axis(t.W, t.KW, t.s, t.same);
  return {t.N, t.H, t.W, t.C, t.KH, t.KW, t.F, OH, OW, t.s, t.s, pt, pl};
}

std::string name_of(const ConvCase& t) {
  return "conv N=" + std::to_string(t.N) + " H=" + std::to_string(t.H) + " W=" + std::to_string(t.W) +
         " C=" + std::to_string(t.C) + " K=" + std::to_string(t.KH) + "x" + std::to_string(t.KW) +
         " F=" + std::to_string(t.F) + " s=" + std::to_string(t.s) + (t.same ? " same" : " valid");
}

}  // namespace

TEST(CudaHalfGemmConv, UlpOfEachTypeIsItsSpacing) {
  // The bound's unit, checked where it is easy to know: 1 + ulp is the next value after 1.
  EXPECT_EQ(ulp16(DType::Float16, 1.0), std::ldexp(1.0, -10));
  EXPECT_EQ(ulp16(DType::Float16, -1.5), std::ldexp(1.0, -10));
  EXPECT_EQ(ulp16(DType::Float16, 65504.0), 32.0);
  EXPECT_EQ(ulp16(DType::Float16, 0.0), std::ldexp(1.0, -24));
  EXPECT_EQ(ulp16(DType::Float16, std::ldexp(1.0, -20)), std::ldexp(1.0, -24));  // subnormal
  EXPECT_EQ(ulp16(DType::BFloat16, 1.0), std::ldexp(1.0, -7));
  EXPECT_EQ(ulp16(DType::BFloat16, 3.0), std::ldexp(1.0, -6));
  EXPECT_EQ(ulp16(DType::BFloat16, 0.0), std::ldexp(1.0, -133));
  for (const DType t : kHalfTypes) {
    // 1 + ulp is representable (survives the round trip), 1 + ulp/2 is a tie that rounds to 1.
    const std::vector<float> f = {1.0f + static_cast<float>(ulp16(t, 1.0)),
                                  1.0f + static_cast<float>(ulp16(t, 1.0) / 2)};
    Bits b(2);
    cpu().cast(DType::Float32, f.data(), t, b.data(), 2);
    EXPECT_EQ(widen(t, b), (std::vector<double>{f[0], 1.0})) << dtype_name(t);
  }
}

TEST(CudaHalfGemmConv, GemmEveryTransposeAndBeta) {
  REQUIRE_GPU();
  const int64_t m = 37, n = 53, k = 129;
  for (const DType t : kHalfTypes)
    for (const bool ta : {false, true})
      for (const bool tb : {false, true})
        for (const double beta : {0.0, 1.0}) {
          const Bits a = random16(t, m * k), b = random16(t, k * n), c0 = random16(t, m * n);
          Bits c = c0;
          cpu().gemm(t, ta, tb, m, n, k, 1.0, a.data(), b.data(), beta, c.data());
          DevBuf ga(a), gb(b), gc(c0);
          gpu().gemm(t, ta, tb, m, n, k, 1.0, ga.ptr, gb.ptr, beta, gc.ptr);
          std::vector<double> s = widen(t, c0, true);
          const std::vector<double> aa = widen(t, a, true), ab = widen(t, b, true);
          cpu().gemm(DType::Float64, ta, tb, m, n, k, 1.0, aa.data(), ab.data(), beta, s.data());
          expect_within(
              t, c, gc.get<uint16_t>(), s, k + 1, false,
              "gemm ta=" + std::to_string(ta) + " tb=" + std::to_string(tb) + " beta=" + std::to_string(beta));
        }
}

TEST(CudaHalfGemmConv, ProductsAccumulateInFloat) {
  REQUIRE_GPU();
  // 16384 positive products of about 1/4: the sum (about 4096) is far past where a 16-bit
  // accumulator stops growing (adding 1/4 to 2048 in float16, or to 128 in bfloat16, changes
  // nothing), so a product that accumulated in 16 bits would miss by thousands.
  const int64_t m = 4, n = 8, k = 16384;
  for (const DType t : kHalfTypes) {
    const Bits a = random16(t, m * k, 0.0, 1.0), b = random16(t, k * n, 0.0, 1.0);
    Bits c(m * n);
    cpu().gemm(t, false, false, m, n, k, 1.0, a.data(), b.data(), 0.0, c.data());
    DevBuf ga(a), gb(b), gc(c.size() * 2);
    gpu().gemm(t, false, false, m, n, k, 1.0, ga.ptr, gb.ptr, 0.0, gc.ptr);
    std::vector<double> s(c.size());
    const std::vector<double> aa = widen(t, a), ab = widen(t, b);  // already non-negative
    cpu().gemm(DType::Float64, false, false, m, n, k, 1.0, aa.data(), ab.data(), 0.0, s.data());
    EXPECT_GT(*std::min_element(s.begin(), s.end()), 3000.0);  // the sums really are that large
    expect_within(t, c, gc.get<uint16_t>(), s, k, false, "long gemm");
  }
}

TEST(CudaHalfGemmConv, DenseForwardWithBiasAndRelu) {
  REQUIRE_GPU();
  struct Case {
    int64_t m, k, n;
  };
  // The seed's dense layers (aligned: cuBLASLt's fused epilogues) and an odd shape (unaligned rows:
  // the unfused fallback where cuBLASLt offers nothing).
  const Case cases[] = {{10, 1152, 64}, {256, 64, 16}, {7, 13, 5}};
  for (const DType t : kHalfTypes)
    for (const Case& cs : cases)
      for (const int variant : {0, 1, 2}) {  // relu alone, bias alone, bias and relu
        const bool with_bias = variant != 0, relu = variant != 1;
        const Bits x = random16(t, cs.m * cs.k), w = random16(t, cs.k * cs.n), bias = random16(t, cs.n);
        Bits y(cs.m * cs.n);
        cpu().gemm_bias_act(t, cs.m, cs.n, cs.k, x.data(), w.data(), with_bias ? bias.data() : nullptr, relu, y.data());
        DevBuf gx(x), gw(w), gb(bias), gy(y.size() * 2);
        gpu().gemm_bias_act(t, cs.m, cs.n, cs.k, gx.ptr, gw.ptr, with_bias ? gb.ptr : nullptr, relu, gy.ptr);
        const std::vector<double> ax = widen(t, x, true), aw = widen(t, w, true), ab = widen(t, bias, true);
        std::vector<double> s(y.size());
        cpu().gemm_bias_act(DType::Float64, cs.m, cs.n, cs.k, ax.data(), aw.data(), with_bias ? ab.data() : nullptr,
                            false, s.data());
        expect_within(t, y, gy.get<uint16_t>(), s, cs.k + 1, with_bias,
                      "dense m=" + std::to_string(cs.m) + " k=" + std::to_string(cs.k) + " n=" + std::to_string(cs.n) +
                          (with_bias ? " bias" : "") + (relu ? " relu" : ""));
      }
}

TEST(CudaHalfGemmConv, DenseForwardReluKeepsNan) {
  REQUIRE_GPU();
  // A NaN input makes its row's pre-activations NaN; the ReLU (fused or not) must keep them NaN,
  // as the CPU's does, so a layer gone NaN stays visible.
  const int64_t m = 16, k = 64, n = 32;
  for (const DType t : kHalfTypes) {
    Bits x = random16(t, m * k);
    const float nan = std::numeric_limits<float>::quiet_NaN();
    cpu().cast(DType::Float32, &nan, t, &x[3 * k + 5], 1);
    const Bits w = random16(t, k * n), bias = random16(t, n);
    Bits y(m * n);
    cpu().gemm_bias_act(t, m, n, k, x.data(), w.data(), bias.data(), true, y.data());
    DevBuf gx(x), gw(w), gb(bias), gy(y.size() * 2);
    gpu().gemm_bias_act(t, m, n, k, gx.ptr, gw.ptr, gb.ptr, true, gy.ptr);
    const std::vector<double> got = widen(t, gy.get<uint16_t>());
    for (int64_t j = 0; j < n; ++j) EXPECT_TRUE(std::isnan(got[3 * n + j])) << dtype_name(t) << " column " << j;
    const std::vector<double> ax = widen(t, x, true), aw = widen(t, w, true), ab = widen(t, bias, true);
    std::vector<double> s(y.size());
    cpu().gemm_bias_act(DType::Float64, m, n, k, ax.data(), aw.data(), ab.data(), false, s.data());
    expect_within(t, y, gy.get<uint16_t>(), s, k + 1, true, "dense with a NaN row");
  }
}

TEST(CudaHalfGemmConv, DenseWeightAndBiasGradients) {
  REQUIRE_GPU();
  struct Case {
    int64_t m, k, n;
  };
  // dW = X^T dZ [k, n] and db = column sums of dZ [m, n]; k = 0 leaves only the bias gradient.
  const Case cases[] = {{256, 64, 16}, {10, 1152, 64}, {7, 13, 5}, {300, 0, 7}};
  for (const DType t : kHalfTypes)
    for (const Case& cs : cases)
      for (const bool with_db : {true, false}) {
        if (cs.k == 0 && !with_db) continue;
        const Bits x = random16(t, cs.m * cs.k), dz = random16(t, cs.m * cs.n);
        Bits dw(cs.k * cs.n), db(cs.n);
        cpu().gemm_wgrad_bias(t, cs.m, cs.n, cs.k, x.data(), dz.data(), dw.data(), with_db ? db.data() : nullptr);
        DevBuf gx(x), gdz(dz), gdw(dw.size() * 2), gdb(db.size() * 2);
        gpu().gemm_wgrad_bias(t, cs.m, cs.n, cs.k, gx.ptr, gdz.ptr, gdw.ptr, with_db ? gdb.ptr : nullptr);
        const std::vector<double> ax = widen(t, x, true), adz = widen(t, dz, true);
        std::vector<double> sw(dw.size()), sb(db.size());
        cpu().gemm_wgrad_bias(DType::Float64, cs.m, cs.n, cs.k, ax.data(), adz.data(), sw.data(), sb.data());
        const std::string name =
            "dense gradients m=" + std::to_string(cs.m) + " k=" + std::to_string(cs.k) + " n=" + std::to_string(cs.n);
        expect_within(t, dw, gdw.get<uint16_t>(), sw, cs.m, false, name + " dw");
        if (with_db) expect_within(t, db, gdb.get<uint16_t>(), sb, cs.m, false, name + " db");
      }
}

TEST(CudaHalfGemmConv, ConvForwardWithAndWithoutBiasAndRelu) {
  REQUIRE_GPU();
  for (const ConvCase& tc : kConvCases) {
    const backend::Conv2dGeometry g = geometry(tc);
    const int64_t nx = g.N * g.H * g.W * g.C, nw = g.KH * g.KW * g.C * g.F, ny = g.N * g.OH * g.OW * g.F;
    // float32 first at the same geometry: its plan must not serve the 16-bit calls after it.
    {
      const auto x = random_vec(nx), w = random_vec(nw);
      std::vector<float> y(ny);
      cpu().conv2d_forward(DType::Float32, g, x.data(), w.data(), nullptr, false, y.data());
      DevBuf gx(x), gw(w), gy(y.size() * 4);
      gpu().conv2d_forward(DType::Float32, g, gx.ptr, gw.ptr, nullptr, false, gy.ptr);
      // Sums of KH*KW*C products of |x| <= 2 in another order, FMA math: 4e-6 per term.
      testing::expect_close(y, gy.get<float>(), 1e-4, 4e-6 * (g.KH * g.KW * g.C + 1), name_of(tc) + " float32");
    }
    for (const DType t : kHalfTypes)
      for (const int variant : {0, 1, 2}) {  // plain, bias alone, bias and relu
        const bool with_bias = variant != 0, relu = variant == 2;
        const Bits x = random16(t, nx), w = random16(t, nw), bias = random16(t, g.F);
        Bits y(ny);
        cpu().conv2d_forward(t, g, x.data(), w.data(), with_bias ? bias.data() : nullptr, relu, y.data());
        DevBuf gx(x), gw(w), gb(bias), gy(y.size() * 2);
        gpu().conv2d_forward(t, g, gx.ptr, gw.ptr, with_bias ? gb.ptr : nullptr, relu, gy.ptr);
        const std::vector<double> ax = widen(t, x, true), aw = widen(t, w, true), ab = widen(t, bias, true);
        std::vector<double> s(y.size());
        cpu().conv2d_forward(DType::Float64, g, ax.data(), aw.data(), with_bias ? ab.data() : nullptr, false, s.data());
        expect_within(t, y, gy.get<uint16_t>(), s, g.KH * g.KW * g.C + 1, with_bias,
                      name_of(tc) + (with_bias ? " bias" : "") + (relu ? " relu" : "") + " forward");
      }
  }
}

TEST(CudaHalfGemmConv, ConvBackwardDataInBothModes) {
  REQUIRE_GPU();
  for (const bool deterministic : {true, false}) {
    const Determinism mode(deterministic);
    for (const ConvCase& tc : kConvCases)
      for (const DType t : kHalfTypes) {
        const backend::Conv2dGeometry g = geometry(tc);
        const int64_t nx = g.N * g.H * g.W * g.C, nw = g.KH * g.KW * g.C * g.F, ny = g.N * g.OH * g.OW * g.F;
        const Bits dy = random16(t, ny), w = random16(t, nw);
        Bits dx(nx);
        cpu().conv2d_backward_data(t, g, dy.data(), w.data(), dx.data());
        DevBuf gdy(dy), gw(w), gdx(dx.size() * 2);
        gpu().conv2d_backward_data(t, g, gdy.ptr, gw.ptr, gdx.ptr);
        const std::vector<double> ady = widen(t, dy, true), aw = widen(t, w, true);
        std::vector<double> s(dx.size());
        cpu().conv2d_backward_data(DType::Float64, g, ady.data(), aw.data(), s.data());
        // An input pixel gathers at most KH*KW*F products.
        expect_within(t, dx, gdx.get<uint16_t>(), s, g.KH * g.KW * g.F, false,
                      name_of(tc) + " backward data" + (deterministic ? " (deterministic)" : ""));
      }
  }
}

TEST(CudaHalfGemmConv, ConvBackwardFilterWithAndWithoutReluInBothModes) {
  REQUIRE_GPU();
  long masked = 0, outputs = 0;
  for (const bool deterministic : {true, false}) {
    const Determinism mode(deterministic);
    for (const ConvCase& tc : kConvCases)
      for (const DType t : kHalfTypes)
        for (const bool relu : {false, true}) {
          const backend::Conv2dGeometry g = geometry(tc);
          const int64_t nx = g.N * g.H * g.W * g.C, nw = g.KH * g.KW * g.C * g.F, ny = g.N * g.OH * g.OW * g.F;
          const Bits x = random16(t, nx), w = random16(t, nw), bias = random16(t, g.F), dy = random16(t, ny);
          // The ReLU mask is the CPU's forward output, given to both devices.
          Bits y(ny);
          cpu().conv2d_forward(t, g, x.data(), w.data(), bias.data(), true, y.data());
          const std::vector<double> yd = widen(t, y);
          masked += std::count_if(yd.begin(), yd.end(), [](double v) { return v <= 0; });
          outputs += static_cast<long>(yd.size());
          Bits dw(nw), db(g.F);
          cpu().conv2d_backward_filter(t, g, x.data(), dy.data(), relu ? y.data() : nullptr, dw.data(), db.data());
          DevBuf gx(x), gdy(dy), gy(y), gdw(dw.size() * 2), gdb(db.size() * 2);
          gpu().conv2d_backward_filter(t, g, gx.ptr, gdy.ptr, relu ? gy.ptr : nullptr, gdw.ptr, gdb.ptr);
          const std::vector<double> ax = widen(t, x, true), ady = widen(t, dy, true);
          std::vector<double> sw(dw.size()), sb(db.size());
          cpu().conv2d_backward_filter(DType::Float64, g, ax.data(), ady.data(), relu ? yd.data() : nullptr, sw.data(),
                                       sb.data());
          const std::string name =
              name_of(tc) + (relu ? " relu" : "") + " backward filter" + (deterministic ? " (deterministic)" : "");
          expect_within(t, dw, gdw.get<uint16_t>(), sw, g.N * g.OH * g.OW, false, name + " dw");
          expect_within(t, db, gdb.get<uint16_t>(), sb, g.N * g.OH * g.OW, false, name + " db");
        }
  }
  // The ReLU really masked some gradients, not all.
  EXPECT_GT(masked, 0);
  EXPECT_LT(masked, outputs);
}

TEST(CudaHalfGemmConv, DeterministicRerunsAndRecordedReplayGiveTheSameBits) {
  REQUIRE_GPU();
  const Determinism mode(true);
  // 16 channels: cuDNN's filter gradient; 3 channels: the tensor-core kernel's.
  for (const ConvCase& tc : {ConvCase{4, 16, 16, 16, 3, 3, 32, 1, true}, ConvCase{4, 16, 16, 3, 3, 3, 32, 1, true}}) {
    const backend::Conv2dGeometry g = geometry(tc);
    const int64_t nx = g.N * g.H * g.W * g.C, nw = g.KH * g.KW * g.C * g.F, ny = g.N * g.OH * g.OW * g.F;
    const int64_t m = 64, k = 128, n = 32;
    for (const DType t : kHalfTypes) {
      const Bits x = random16(t, nx), w = random16(t, nw), bias = random16(t, g.F), dy = random16(t, ny);
      const Bits dx_in = random16(t, m * k), dw_in = random16(t, k * n), db_in = random16(t, n),
                 dz = random16(t, m * n);
      DevBuf gx(x), gw(w), gb(bias), gdy(dy), ga(dx_in), gbw(dw_in), gbb(db_in), gdz(dz);
      // Outputs of three runs: two eager, one recorded and replayed (all allocated before recording).
      struct Outputs {
        DevBuf y, dx, dw, db, dense_y, dense_dw, dense_db;
      };
      const auto outputs = [&] {
        return std::unique_ptr<Outputs>(new Outputs{DevBuf(bytes16(ny)), DevBuf(bytes16(nx)), DevBuf(bytes16(nw)),
                                                    DevBuf(bytes16(g.F)), DevBuf(bytes16(m * n)),
                                                    DevBuf(bytes16(k * n)), DevBuf(bytes16(n))});
      };
      const std::unique_ptr<Outputs> runs[3] = {outputs(), outputs(), outputs()};
      backend::Backend& be = gpu();
      const auto step = [&](Outputs& o) {
        be.conv2d_forward(t, g, gx.ptr, gw.ptr, gb.ptr, true, o.y.ptr);
        be.conv2d_backward_data(t, g, gdy.ptr, gw.ptr, o.dx.ptr);
        be.conv2d_backward_filter(t, g, gx.ptr, gdy.ptr, o.y.ptr, o.dw.ptr, o.db.ptr);
        be.gemm_bias_act(t, m, n, k, ga.ptr, gbw.ptr, gbb.ptr, true, o.dense_y.ptr);
        be.gemm_wgrad_bias(t, m, n, k, ga.ptr, gdz.ptr, o.dense_dw.ptr, o.dense_db.ptr);
      };
      step(*runs[0]);
      step(*runs[1]);
      be.begin_capture();
      try {
        step(*runs[2]);
      } catch (...) {
        be.abort_capture();
        throw;
      }
      const auto graph = be.end_capture();
      graph->launch();
      for (int r = 1; r < 3; ++r) {
        const std::string what = name_of(tc) + " " + dtype_name(t) + (r == 1 ? " rerun" : " replay");
        const Outputs &a = *runs[0], &b = *runs[r];
        EXPECT_EQ(a.y.get<uint16_t>(), b.y.get<uint16_t>()) << what << " forward";
        EXPECT_EQ(a.dx.get<uint16_t>(), b.dx.get<uint16_t>()) << what << " backward data";
        EXPECT_EQ(a.dw.get<uint16_t>(), b.dw.get<uint16_t>()) << what << " backward filter";
        EXPECT_EQ(a.db.get<uint16_t>(), b.db.get<uint16_t>()) << what << " bias gradient";
        EXPECT_EQ(a.dense_y.get<uint16_t>(), b.dense_y.get<uint16_t>()) << what << " dense forward";
        EXPECT_EQ(a.dense_dw.get<uint16_t>(), b.dense_dw.get<uint16_t>()) << what << " dense dw";
        EXPECT_EQ(a.dense_db.get<uint16_t>(), b.dense_db.get<uint16_t>()) << what << " dense db";
      }
    }
  }
}

}  // namespace kiln
