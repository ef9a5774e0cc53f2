// CPU vs GPU parity of the CUDA kernels on float16 and bfloat16 tensors (mixed precision: elements
// read into float, computed there as float32 is, rounded once when stored), op by op through the
// backend interface: fresh random inputs rounded to the 16-bit type each run, the same bits on both
// devices, results compared in units of the 16-bit type's last place. Skipped, with the reason,
// where no GPU is usable.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "backend/backend.h"
#include "cuda_parity.h"
#include "kiln/kiln.h"
#include "test_support.h"

using namespace kiln;
using namespace kiln::testing;
using backend::BinaryOp;
using backend::UnaryFn;
using backend::UnaryOp;

namespace {

using Bits = std::vector<uint16_t>;

const DType kHalfTypes[] = {DType::Float16, DType::BFloat16};

// `v` rounded to `dtype` by the CPU's cast (to nearest even), as 16-bit patterns.
Bits to_bits(DType dtype, const std::vector<float>& v) {
  Bits out(v.size());
  cpu().cast(DType::Float32, v.data(), dtype, out.data(), static_cast<int64_t>(v.size()));
  return out;
}

// The values of 16-bit patterns of `dtype` (exact).
std::vector<float> values_of(DType dtype, const Bits& b) {
  std::vector<float> out(b.size());
  cpu().cast(dtype, b.data(), DType::Float32, out.data(), static_cast<int64_t>(b.size()));
  return out;
}

// n uniform values in [lo, hi) rounded to `dtype`.
Bits random_bits(DType dtype, std::size_t n, double lo = -4.0, double hi = 4.0) {
  return to_bits(dtype, random_vec<float>(n, lo, hi));
}

// The spacing of `dtype`'s values at magnitude |v|: 2^(e - mantissa bits) in v's binade, floored at
// the subnormal spacing.
double ulp_of(DType dtype, double v) {
  const int mantissa = dtype == DType::Float16 ? 10 : 7;
  const int min_exp = dtype == DType::Float16 ? -14 : -126;
  int e = 0;
  std::frexp(std::abs(v), &e);  // |v| in [2^(e-1), 2^e)
  const int exp = std::max(e - 1, min_exp);
  return std::ldexp(1.0, exp - mantissa);
}

// want and got agree: both NaN, or equal (infinities included), or
// |want - got| <= ulps * ulp(max(|want|, |got|)) + rtol |want| + atol.
void expect_near(DType dtype, const Bits& want_bits, const Bits& got_bits, int ulps, double rtol, double atol,
                 const std::string& what) {
  ASSERT_EQ(want_bits.size(), got_bits.size()) << what;
  const std::vector<float> want = values_of(dtype, want_bits), got = values_of(dtype, got_bits);
  const std::string name = what + " " + dtype_name(dtype);
  for (std::size_t i = 0; i < want.size(); ++i) {
    const double w = want[i], g = got[i];
    if (std::isnan(w) || std::isnan(g)) {
      ASSERT_TRUE(std::isnan(w) && std::isnan(g)) << name << " at " << i << ": cpu " << w << ", gpu " << g;
      continue;
    }
    if (w == g) continue;
    ASSERT_TRUE(std::isfinite(w) && std::isfinite(g)) << name << " at " << i << ": cpu " << w << ", gpu " << g;
    const double tol = ulps * ulp_of(dtype, std::max(std::abs(w), std::abs(g))) + rtol * std::abs(w) + atol;
    ASSERT_LE(std::abs(w - g), tol) << name << " at " << i << ": cpu " << w << ", gpu " << g;
  }
}

// The same bits.
void expect_equal(DType dtype, const Bits& want, const Bits& got, const std::string& what) {
  expect_near(dtype, want, got, 0, 0, 0, what);
}

struct NamedFn {
  UnaryFn fn;
  std::string name;
  bool positive;  // log and sqrt: inputs in (0, 4)
  bool libm;      // computed with exp, erfc, tanh, log or sqrt (CUDA's and glibc's may differ)
};

std::vector<NamedFn> unary_fns() {
  return {{UnaryOp::Neg, "neg", false, false},
          {UnaryOp::Relu, "relu", false, false},
          {UnaryOp::Sigmoid, "sigmoid", false, true},
          {UnaryOp::Gelu, "gelu", false, true},
          {UnaryOp::GeluTanh, "gelu approximate", false, true},
          {UnaryOp::Silu, "silu", false, true},
          {UnaryFn(UnaryOp::Elu, 1.0), "elu", false, true},
          {UnaryFn(UnaryOp::LeakyRelu, 0.2), "leaky_relu", false, false},
          {UnaryOp::Tanh, "tanh", false, true},
          {UnaryOp::Exp, "exp", false, true},
          {UnaryOp::Log, "log", true, true},
          {UnaryOp::Square, "square", false, false},
          {UnaryOp::Sqrt, "sqrt", true, true},
          {UnaryOp::Abs, "abs", false, false}};
}

// GPU buffers of 16-bit elements placed `shift` elements past an aligned address: shift 1 makes
// every array 2 bytes off a 4-byte boundary, so the scalar kernels run instead of the pair ones.
struct HalfBuf {
  DevBuf buf;
  int shift;
  HalfBuf(const Bits& host, int s) : buf((host.size() + 1) * 2), shift(s) {
    gpu().copy_from_host(ptr(), host.data(), host.size() * 2);
  }
  HalfBuf(std::size_t n, int s) : buf((n + 1) * 2), shift(s) {}
  void* ptr() const { return static_cast<uint16_t*>(buf.ptr) + shift; }
  Bits get(std::size_t n) const {
    Bits out(n);
    gpu().copy_to_host(out.data(), ptr(), n * 2);
    return out;
  }
};

// TensorFlow's output size and leading padding of one axis.
std::pair<int64_t, int64_t> tf_pool_axis(int64_t in, int64_t k, int64_t s, bool same) {
  if (!same) return {(in - k) / s + 1, 0};
  const int64_t out = (in + s - 1) / s;
  return {out, std::max<int64_t>((out - 1) * s + k - in, 0) / 2};
}

}  // namespace

// Tolerance of the elementwise ops: within 1 ulp of the 16-bit type; each side rounds its float
// result once, and where the float results differ in their last bits (CUDA's and glibc's exp,
// erfc, tanh, log, sqrt; a product contracted into an FMA on the GPU only) one rounding may go the
// other way. Beyond that ulp, the float32 parity tolerance of these ops (test_cuda_backend.cpp,
// test_cuda_activations_pooling_random.cpp: forward 1e-5 relative and 1e-6 absolute, derivatives
// 1e-5 and 1e-5) is allowed where a libm function is involved, as the float results may already
// differ by that much before rounding.
TEST(CudaHalfCompute, UnaryAndBackwardMatchCpu) {
  REQUIRE_GPU();
  const int64_t n = 10007;  // odd: the pair kernel's last element
  for (const DType dtype : kHalfTypes)
    for (const NamedFn& f : unary_fns())
      for (const int shift : {0, 1}) {
        auto x = f.positive ? random_bits(dtype, n, 0.05, 4.0) : random_bits(dtype, n);
        x = to_bits(dtype, with_nans(values_of(dtype, x), 64));
        const Bits dy = random_bits(dtype, n, -2.0, 2.0);
        Bits y(n), dx(n);
        cpu().unary(f.fn, dtype, x.data(), y.data(), n);
        cpu().unary_backward(f.fn, dtype, x.data(), y.data(), dy.data(), dx.data(), n);
        HalfBuf gx(x, shift), gy(n, shift), gyc(y, shift), gdy(dy, shift), gdx(n, shift);
        gpu().unary(f.fn, dtype, gx.ptr(), gy.ptr(), n);
        gpu().unary_backward(f.fn, dtype, gx.ptr(), gyc.ptr(), gdy.ptr(), gdx.ptr(), n);  // the CPU's y
        const std::string what = f.name + (shift ? " unaligned" : "");
        expect_near(dtype, y, gy.get(n), 1, f.libm ? 1e-5 : 0, f.libm ? 1e-6 : 0, what);
        expect_near(dtype, dx, gdx.get(n), 1, f.libm ? 1e-5 : 0, f.libm ? 1e-5 : 0, what + " backward");
      }
}

TEST(CudaHalfCompute, UnaryInPlaceMatchesOutOfPlace) {
  REQUIRE_GPU();
  const int64_t n = 4096;
  for (const DType dtype : kHalfTypes) {
    const Bits x = random_bits(dtype, n);
    HalfBuf a(x, 0), b(x, 0), out(n, 0);
    gpu().unary(UnaryOp::Sigmoid, dtype, a.ptr(), out.ptr(), n);
    gpu().unary(UnaryOp::Sigmoid, dtype, b.ptr(), b.ptr(), n);  // y aliases x
    expect_equal(dtype, out.get(n), b.get(n), "sigmoid in place");
  }
}

// Tolerance: 1 ulp (see above); the ops are single IEEE float operations on both devices.
TEST(CudaHalfCompute, BinaryMatchesCpuWithBroadcasts) {
  REQUIRE_GPU();
  const BinaryOp ops[] = {BinaryOp::Add, BinaryOp::Sub,     BinaryOp::Mul,
                          BinaryOp::Div, BinaryOp::Maximum, BinaryOp::GreaterEqual};
  const int64_t rows = 143, cols = 70, n = rows * cols;
  struct Case {
    int64_t na, nb;
    std::string name;
  };
  const Case cases[] = {{n, n, "equal"}, {n, cols, "row broadcast"}, {n, 1, "scalar b"}, {cols, n, "a broadcast"}};
  for (const DType dtype : kHalfTypes)
    for (const Case& c : cases)
      for (const BinaryOp op : ops)
        for (const int shift : {0, 1}) {
          const Bits a = to_bits(dtype, with_nans(random_vec<float>(c.na, -4.0, 4.0), 50));
          const Bits b = random_bits(dtype, c.nb, 0.25, 4.0);  // away from 0 (Div)
          Bits out(n);
          cpu().binary(op, dtype, a.data(), c.na, b.data(), c.nb, out.data(), n);
          HalfBuf ga(a, shift), gb(b, shift), gout(n, shift);
          gpu().binary(op, dtype, ga.ptr(), c.na, gb.ptr(), c.nb, gout.ptr(), n);
          expect_near(dtype, out, gout.get(n), 1, 0, 0,
                      "binary " + std::to_string(int(op)) + " " + c.name + (shift ? " unaligned" : ""));
        }
}

// Tolerance: 1 ulp (the GPU may fuse alpha x + beta into one FMA); clip and its gradient are
// comparisons and copies: exact.
TEST(CudaHalfCompute, AffineAndClipMatchCpu) {
  REQUIRE_GPU();
  const int64_t n = 9999;
  for (const DType dtype : kHalfTypes) {
    const Bits x = to_bits(dtype, with_nans(random_vec<float>(n, -3.0, 3.0), 40));
    const Bits dy = random_bits(dtype, n, -2.0, 2.0);
    Bits y(n), c(n), dc(n);
    cpu().affine(dtype, x.data(), 1.7, -0.3, y.data(), n);
    cpu().clip(dtype, x.data(), c.data(), n, -0.5, 1.25);
    cpu().clip_backward(dtype, x.data(), dy.data(), dc.data(), n, -0.5, 1.25);
    HalfBuf gx(x, 0), gdy(dy, 0), gy(n, 0), gc(n, 0), gdc(n, 0);
    gpu().affine(dtype, gx.ptr(), 1.7, -0.3, gy.ptr(), n);
    gpu().clip(dtype, gx.ptr(), gc.ptr(), n, -0.5, 1.25);
    gpu().clip_backward(dtype, gx.ptr(), gdy.ptr(), gdc.ptr(), n, -0.5, 1.25);
    expect_near(dtype, y, gy.get(n), 1, 0, 0, "affine");
    expect_equal(dtype, c, gc.get(n), "clip");
    expect_equal(dtype, dc, gdc.get(n), "clip_backward");
  }
}

// Tolerance: 1 ulp beyond the float32 parity tolerance (log1p and exp of CUDA and glibc).
TEST(CudaHalfCompute, SigmoidCrossEntropyMatchesCpu) {
  REQUIRE_GPU();
  const int64_t n = 10001;
  for (const DType dtype : kHalfTypes) {
    const Bits x = to_bits(dtype, with_nans(random_vec<float>(n, -6.0, 6.0), 64));
    const Bits z = random_bits(dtype, n, 0.0, 1.0);
    Bits loss(n);
    cpu().sigmoid_xent(dtype, x.data(), z.data(), loss.data(), n);
    HalfBuf gx(x, 0), gz(z, 0), gloss(n, 0);
    gpu().sigmoid_xent(dtype, gx.ptr(), gz.ptr(), gloss.ptr(), n);
    expect_near(dtype, loss, gloss.get(n), 1, 1e-5, 1e-6, "sigmoid_xent");
  }
}

// Tolerance of sums: 2 ulps of the 16-bit type at the result's magnitude. Both devices add the
// 16-bit values in float and round once, but in different orders, so the float sums differ in
// their last bits and each rounding may land on either side. A sum that cancels to near 0 has a
// tiny 16-bit ulp, so a few float ulps of the terms' total magnitude, 8 * 2^-24 * sum|x|, are
// allowed besides: the float sums themselves may differ by that much (random signs stay far below
// the worst case of (terms - 1) ulps).
TEST(CudaHalfCompute, SumsMatchCpu) {
  REQUIRE_GPU();
  struct Shape {
    int64_t rows, cols;
  };
  // Warp-per-row and block-per-row column sums; one and several row slices of sum_rows.
  const Shape shapes[] = {{1, 1}, {37, 10}, {3000, 33}, {64, 5000}, {2, 20000}};
  for (const DType dtype : kHalfTypes)
    for (const Shape& s : shapes)
      for (const bool accumulate : {false, true}) {
        const int64_t n = s.rows * s.cols;
        const Bits x = random_bits(dtype, n, -2.0, 2.0);
        const Bits y0 = random_bits(dtype, s.cols, -8.0, 8.0);
        Bits sr = y0, sc(s.rows);
        cpu().sum_rows(dtype, x.data(), sr.data(), s.rows, s.cols, accumulate);
        cpu().sum_cols(dtype, x.data(), sc.data(), s.rows, s.cols);
        HalfBuf gx(x, 0), gsr(y0, 0), gsc(s.rows, 0);
        gpu().sum_rows(dtype, gx.ptr(), gsr.ptr(), s.rows, s.cols, accumulate);
        gpu().sum_cols(dtype, gx.ptr(), gsc.ptr(), s.rows, s.cols);
        const std::string shape = std::to_string(s.rows) + "x" + std::to_string(s.cols);
        const double float_ulps = 8.0 * std::ldexp(1.0, -24);
        // |x| <= 2; the accumulated y adds one term of at most 8.
        const double rows_slack = float_ulps * (2.0 * double(s.rows) + 8.0);
        const double cols_slack = float_ulps * 2.0 * double(s.cols);
        expect_near(dtype, sr, gsr.get(s.cols), 2, 0, rows_slack,
                    "sum_rows " + shape + (accumulate ? " accumulate" : ""));
        expect_near(dtype, sc, gsc.get(s.rows), 2, 0, cols_slack, "sum_cols " + shape);
      }
}

// Exact: argmax compares the 16-bit values exactly in float; the count is a whole number.
TEST(CudaHalfCompute, ArgmaxAndAccuracyMatchCpu) {
  REQUIRE_GPU();
  const int64_t rows = 200, cols = 37;  // 200 fits bfloat16's exact integers (256)
  for (const DType dtype : kHalfTypes) {
    const Bits x = to_bits(dtype, with_nans(tied_vec(rows * cols, 5), 300));
    std::vector<int32_t> labels(rows);
    std::uniform_int_distribution<int32_t> pick(0, cols - 1);
    for (auto& l : labels) l = pick(rng());
    std::vector<int32_t> idx(rows);
    Bits correct = to_bits(dtype, {3.0f});
    cpu().argmax_rows(dtype, x.data(), idx.data(), rows, cols);
    cpu().accuracy_sum(dtype, x.data(), labels.data(), correct.data(), rows, cols);
    HalfBuf gx(x, 0), gcorrect(to_bits(dtype, {3.0f}), 0);
    DevBuf gidx(rows * sizeof(int32_t)), glabels(labels);
    gpu().argmax_rows(dtype, gx.ptr(), gidx.as<int32_t>(), rows, cols);
    gpu().accuracy_sum(dtype, gx.ptr(), glabels.as<int32_t>(), gcorrect.ptr(), rows, cols);
    EXPECT_EQ(gidx.get<int32_t>(), idx) << dtype_name(dtype);
    expect_equal(dtype, correct, gcorrect.get(1), "accuracy_sum");
  }
}

// Exact: comparisons of 16-bit values in float, and whole-number counts (below 256, exact in both
// 16-bit types).
TEST(CudaHalfCompute, MetricCountsMatchCpu) {
  REQUIRE_GPU();
  const int64_t rows = 150, cols = 10, n = 211;
  for (const DType dtype : kHalfTypes) {
    const Bits x = to_bits(dtype, tied_vec(rows * cols, 6));
    std::vector<int32_t> labels(rows);
    std::uniform_int_distribution<int32_t> pick(0, cols - 1);
    for (auto& l : labels) l = pick(rng());
    const Bits p = random_bits(dtype, n, 0.0, 1.0), z = to_bits(dtype, tied_vec(n, 2));
    for (const int64_t k : {1, 3}) {
      Bits top = to_bits(dtype, {1.0f}), acc = to_bits(dtype, {2.0f});
      cpu().in_top_k_sum(dtype, x.data(), labels.data(), top.data(), rows, cols, k);
      cpu().binary_accuracy_sum(dtype, p.data(), z.data(), acc.data(), n, 0.5, 1.0);
      HalfBuf gx(x, 0), gp(p, 0), gz(z, 0), gtop(to_bits(dtype, {1.0f}), 0), gacc(to_bits(dtype, {2.0f}), 0);
      DevBuf glabels(labels);
      gpu().in_top_k_sum(dtype, gx.ptr(), glabels.as<int32_t>(), gtop.ptr(), rows, cols, k);
      gpu().binary_accuracy_sum(dtype, gp.ptr(), gz.ptr(), gacc.ptr(), n, 0.5, 1.0);
      expect_equal(dtype, top, gtop.get(1), "in_top_k k=" + std::to_string(k));
      expect_equal(dtype, acc, gacc.get(1), "binary_accuracy");
    }
  }
}

// Tolerance: 2 ulps of the 16-bit type at the value's magnitude (the row's sum of exps, and the
// backward's sum of dy y, are float sums in different orders on the two devices, and exp and log
// are CUDA's and glibc's), plus the float32 parity tolerance of these ops (test_cuda_backend.cpp:
// 1e-5 relative, 1e-5 absolute; 2e-6 for the loss gradient), which the float results may already
// differ by before rounding.
TEST(CudaHalfCompute, SoftmaxFamilyMatchesCpu) {
  REQUIRE_GPU();
  struct Shape {
    int64_t rows, cols;
  };
  const Shape shapes[] = {{1, 1}, {77, 10}, {33, 100}, {5, 1000}};
  for (const DType dtype : kHalfTypes)
    for (const Shape& s : shapes) {
      const int64_t n = s.rows * s.cols;
      const std::string shape = std::to_string(s.rows) + "x" + std::to_string(s.cols);
      const Bits x = random_bits(dtype, n), dy = random_bits(dtype, n, -1.0, 1.0);
      for (const bool log : {false, true}) {
        Bits y(n), dx(n);
        cpu().softmax(dtype, x.data(), y.data(), s.rows, s.cols, log);
        cpu().softmax_backward(dtype, y.data(), dy.data(), dx.data(), s.rows, s.cols, log);
        HalfBuf gx(x, 0), gy(n, 0), gyc(y, 0), gdy(dy, 0), gdx(n, 0);
        gpu().softmax(dtype, gx.ptr(), gy.ptr(), s.rows, s.cols, log);
        gpu().softmax_backward(dtype, gyc.ptr(), gdy.ptr(), gdx.ptr(), s.rows, s.cols, log);  // the CPU's y
        const std::string what = std::string(log ? "log_softmax " : "softmax ") + shape;
        expect_near(dtype, y, gy.get(n), 2, 1e-5, 1e-5, what);
        expect_near(dtype, dx, gdx.get(n), 2, 1e-5, 1e-5, what + " backward");
      }
      std::vector<int32_t> labels(s.rows);
      std::uniform_int_distribution<int32_t> pick(0, static_cast<int32_t>(s.cols) - 1);
      for (auto& l : labels) l = pick(rng());
      const double scale = 1.0 / double(s.rows);
      Bits loss(s.rows), dl(n);
      cpu().sparse_softmax_xent(dtype, x.data(), labels.data(), loss.data(), dl.data(), scale, s.rows, s.cols);
      HalfBuf gx(x, 0), gloss(s.rows, 0), gdl(n, 0);
      DevBuf glabels(labels);
      gpu().sparse_softmax_xent(dtype, gx.ptr(), glabels.as<int32_t>(), gloss.ptr(), gdl.ptr(), scale, s.rows, s.cols);
      expect_near(dtype, loss, gloss.get(s.rows), 2, 1e-5, 1e-5, "xent loss " + shape);
      expect_near(dtype, dl, gdl.get(n), 2, 1e-5, 2e-6, "xent dlogits " + shape);
    }
}

// Exact: max pooling copies an input (the same winner: values compared exactly, NaN first) and
// adds a cell's gradients in float in (oh, ow) order on both devices; average pooling sums a
// window in window order in float and divides once, and gathers dy / count in (oh, ow) order: the
// same float operations in the same order on both devices, then one rounding.
TEST(CudaHalfCompute, PoolingMatchesCpuExactly) {
  REQUIRE_GPU();
  struct Case {
    int64_t N, H, W, C, K, s;
    bool same;
  };
  // Tiles (the disjoint backward), overlapping windows, gaps and "same" padding; with C a multiple
  // of 8 (the 16-byte pack kernels: tiles, overlapping windows with padding, gaps) and without.
  // Odd sizes pooled by adjacent windows leave bottom rows and right columns that only zeroing
  // reaches (dx starts as NaN bits, so a missed cell shows).
  const Case cases[] = {{4, 16, 16, 8, 2, 2, false},  {2, 9, 10, 16, 3, 2, true}, {2, 9, 9, 8, 2, 3, false},
                        {2, 9, 10, 3, 3, 2, true},    {2, 7, 7, 5, 3, 1, true},   {2, 9, 9, 4, 2, 3, false},
                        {2, 15, 15, 16, 2, 2, false}, {2, 7, 8, 8, 3, 3, false},  {2, 8, 9, 3, 2, 2, false}};
  for (const DType dtype : kHalfTypes)
    for (const Case& t : cases) {
      const auto [OH, pt] = tf_pool_axis(t.H, t.K, t.s, t.same);
      const auto [OW, pl] = tf_pool_axis(t.W, t.K, t.s, t.same);
      const backend::Pool2dGeometry g{t.N, t.H, t.W, t.C, t.K, t.K, OH, OW, t.s, t.s, pt, pl};
      const int64_t nx = t.N * t.H * t.W * t.C, ny = t.N * OH * OW * t.C;
      const std::string what = "pool H=" + std::to_string(t.H) + " K=" + std::to_string(t.K) +
                               " s=" + std::to_string(t.s) + (t.same ? " same" : " valid");
      for (const bool ties : {false, true}) {
        const Bits x = ties ? to_bits(dtype, with_nans(tied_vec(nx, 3), 40)) : random_bits(dtype, nx);
        const Bits dy = random_bits(dtype, ny, -2.0, 2.0);
        Bits ymax(ny), dxmax(nx), yavg(ny), dxavg(nx);
        cpu().max_pool2d_forward(dtype, g, x.data(), ymax.data());
        cpu().max_pool2d_backward(dtype, g, x.data(), ymax.data(), dy.data(), dxmax.data());
        cpu().avg_pool2d_forward(dtype, g, x.data(), yavg.data());
        cpu().avg_pool2d_backward(dtype, g, dy.data(), dxavg.data());
        HalfBuf gx(x, 0), gdy(dy, 0), gymax(ny, 0), gdxmax(nx, 0), gyavg(ny, 0), gdxavg(nx, 0);
        gpu().max_pool2d_forward(dtype, g, gx.ptr(), gymax.ptr());
        gpu().fill(DType::UInt8, gdxmax.ptr(), nx * 2, 255.0);
        gpu().max_pool2d_backward(dtype, g, gx.ptr(), gymax.ptr(), gdy.ptr(), gdxmax.ptr());
        gpu().avg_pool2d_forward(dtype, g, gx.ptr(), gyavg.ptr());
        gpu().avg_pool2d_backward(dtype, g, gdy.ptr(), gdxavg.ptr());
        const std::string w = what + (ties ? " ties" : "");
        expect_equal(dtype, ymax, gymax.get(ny), "max_pool forward " + w);
        expect_equal(dtype, dxmax, gdxmax.get(nx), "max_pool backward " + w);
        expect_equal(dtype, yavg, gyavg.get(ny), "avg_pool forward " + w);
        expect_equal(dtype, dxavg, gdxavg.get(nx), "avg_pool backward " + w);
      }
    }
}

// Exact: the same Philox words; a uniform number is float32's rounded toward zero (so it stays
// below 1), and dropout keeps an element on the same integer test as float32 and scales in float.
TEST(CudaHalfCompute, PhiloxUniformAndDropoutMatchCpuAndFloat32Masks) {
  REQUIRE_GPU();
  const int64_t n = 100003, step = 41;
  DevBuf counter(std::vector<int64_t>{step});
  for (const DType dtype : kHalfTypes) {
    Bits u(n);
    cpu().philox_uniform(dtype, u.data(), n, 9, &step, 3);
    HalfBuf gu(n, 0);
    gpu().philox_uniform(dtype, gu.ptr(), n, 9, counter.as<int64_t>(), 3);
    const Bits got_u = gu.get(n);
    expect_equal(dtype, u, got_u, "philox_uniform");
    for (const float v : values_of(dtype, got_u)) ASSERT_TRUE(v >= 0.f && v < 1.f) << v;
    for (const double rate : {0.1, 0.5, 0.9}) {
      const std::vector<float> xf = values_of(dtype, random_bits(dtype, n, 0.5, 2.0));  // no zeros
      const Bits x = to_bits(dtype, xf);
      Bits y(n);
      cpu().dropout(dtype, x.data(), y.data(), n, rate, 11, &step, 2, 0);
      HalfBuf gx(x, 0), gy(n, 0);
      DevBuf gxf(xf), gyf(n * sizeof(float));
      gpu().dropout(dtype, gx.ptr(), gy.ptr(), n, rate, 11, counter.as<int64_t>(), 2, 0);
      gpu().dropout(DType::Float32, gxf.ptr, gyf.ptr, n, rate, 11, counter.as<int64_t>(), 2, 0);
      const Bits got = gy.get(n);
      const std::string what = "dropout rate " + std::to_string(rate);
      expect_equal(dtype, y, got, what);
      // float32's output rounded once is the 16-bit output: the same mask, the same product.
      expect_equal(dtype, to_bits(dtype, gyf.get<float>()), got, what + " vs float32");
      HalfBuf in_place(x, 0);
      gpu().dropout(dtype, in_place.ptr(), in_place.ptr(), n, rate, 11, counter.as<int64_t>(), 2, 0);
      expect_equal(dtype, got, in_place.get(n), what + " in place");
    }
  }
}

// Exact: both devices widen to float, run the float32 resampling (whose arithmetic image_map.h
// rounds step by step on both) and round once.
TEST(CudaHalfCompute, ImageTransformsMatchCpuExactly) {
  REQUIRE_GPU();
  const int64_t N = 3, H = 11, W = 9, C = 3;
  backend::ImageAxisSpec axes[2];
  axes[0].kind = backend::ImageAxisKind::Shift;
  axes[0].lo = -0.3;
  axes[0].hi = 0.3;
  axes[0].size = H;
  axes[1].kind = backend::ImageAxisKind::Flip;
  axes[1].size = W;
  const int64_t step = 5;
  DevBuf counter(std::vector<int64_t>{step});
  for (const DType dtype : kHalfTypes) {
    Bits t(4 * N);
    cpu().random_image_transforms(dtype, axes, N, 21, &step, 4, 0, t.data());
    HalfBuf gt(4 * N, 0);
    gpu().random_image_transforms(dtype, axes, N, 21, counter.as<int64_t>(), 4, 0, gt.ptr());
    expect_equal(dtype, t, gt.get(4 * N), "random_image_transforms");
    for (const bool bilinear : {false, true})
      for (const backend::ImageFill fill : {backend::ImageFill::Constant, backend::ImageFill::Reflect}) {
        const backend::ImageTransformGeometry g{N, H, W, C, 8, 7, bilinear, fill, 0.25};
        const int64_t nx = N * H * W * C, ny = N * 8 * 7 * C;
        const Bits x = random_bits(dtype, nx, 0.0, 1.0), dy = random_bits(dtype, ny, -1.0, 1.0);
        Bits y(ny), dx(nx);
        cpu().image_transform(dtype, g, x.data(), t.data(), y.data());
        cpu().image_transform_backward(dtype, g, dy.data(), t.data(), dx.data());
        HalfBuf gx(x, 0), gdy(dy, 0), gtc(t, 0), gy(ny, 0), gdx(nx, 0);
        gpu().image_transform(dtype, g, gx.ptr(), gtc.ptr(), gy.ptr());
        gpu().image_transform_backward(dtype, g, gdy.ptr(), gtc.ptr(), gdx.ptr());
        const std::string what =
            std::string(bilinear ? "bilinear" : "nearest") + " fill " + std::to_string(static_cast<int>(fill));
        expect_equal(dtype, y, gy.get(ny), "image_transform " + what);
        expect_equal(dtype, dx, gdx.get(nx), "image_transform_backward " + what);
      }
  }
}

// The integer dtypes are refused with the op's name and the floating dtypes it takes.
TEST(CudaHalfCompute, IntegerDtypesAreRefusedWithTheOpName) {
  REQUIRE_GPU();
  DevBuf x(16), y(16);
  const std::string message = message_of([&] { gpu().unary(UnaryOp::Relu, DType::Int32, x.ptr, y.ptr, 4); });
  EXPECT_NE(message.find("[unary]"), std::string::npos) << message;
  EXPECT_NE(message.find("float32, float64, float16 or bfloat16"), std::string::npos) << message;
}
