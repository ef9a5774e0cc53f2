// CPU vs GPU parity of every Backend kernel (float32, fresh random inputs each run, the tolerance
// stated per op), the same through the public Tensor API (forward and backward), and the CUDA
// allocator's bookkeeping. Skipped, with the reason, where no GPU is usable.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "backend/backend.h"
#include "cuda_parity.h"
#include "kiln/kiln.h"
#include "test_support.h"

using namespace kiln;
using namespace kiln::testing;
using backend::Backend;

namespace {

[[maybe_unused]] double max_abs(const std::vector<float>& v) {
  double m = 0;
  for (float x : v) m = std::max(m, static_cast<double>(std::abs(x)));
  return m;
}

}  // namespace

TEST(CudaBackend, CopiesRoundTripAndHostBufferIsReusable) {
  REQUIRE_GPU();
  auto host = random_vec(10000);
  const auto original = host;
  DevBuf d(host.size() * sizeof(float));
  gpu().copy_from_host(d.ptr, host.data(), d.bytes);
  std::fill(host.begin(), host.end(), 0.f);  // reused at once: the device copy must be unaffected
  EXPECT_EQ(d.get<float>(), original);
  DevBuf e(d.bytes);
  gpu().copy(e.ptr, d.ptr, d.bytes);
  EXPECT_EQ(e.get<float>(), original);  // exact
}

TEST(CudaBackend, FillAndCastAreExact) {
  REQUIRE_GPU();
  DevBuf f(100 * sizeof(double));
  gpu().fill(DType::Float64, f.ptr, 100, 0.1);
  for (double v : f.get<double>()) EXPECT_EQ(v, 0.1);
  gpu().fill(DType::Int32, f.ptr, 100, -7);
  const auto ints = f.get<int32_t>();
  for (int i = 0; i < 100; ++i) ASSERT_EQ(ints[i], -7);
  const std::vector<uint8_t> bytes = {0, 1, 127, 128, 255};
  DevBuf b(bytes), out(bytes.size() * sizeof(float));
  gpu().cast(DType::UInt8, b.ptr, DType::Float32, out.ptr, 5);
  EXPECT_EQ(out.get<float>(), (std::vector<float>{0, 1, 127, 128, 255}));
  const auto x = random_vec(1000, -100, 100);
  DevBuf dx(x), di(x.size() * sizeof(int32_t));
  gpu().cast(DType::Float32, dx.ptr, DType::Int32, di.ptr, 1000);
  std::vector<int32_t> want(1000);
  cpu().cast(DType::Float32, x.data(), DType::Int32, want.data(), 1000);
  EXPECT_EQ(di.get<int32_t>(), want);
}

TEST(CudaBackend, UnaryAndBackwardMatchCpu) {
  REQUIRE_GPU();
  using backend::UnaryOp;
  const int64_t n = 100003;
  for (UnaryOp op : {UnaryOp::Neg, UnaryOp::Relu, UnaryOp::Sigmoid, UnaryOp::Tanh, UnaryOp::Exp, UnaryOp::Log,
                     UnaryOp::Square, UnaryOp::Sqrt}) {
    const bool positive = op == UnaryOp::Log || op == UnaryOp::Sqrt;
    const auto x = random_vec(n, positive ? 0.01 : -8.0, 8.0);
    const auto dy = random_vec(n);
    std::vector<float> y(n), dx(n);
    cpu().unary(op, DType::Float32, x.data(), y.data(), n);
    cpu().unary_backward(op, DType::Float32, x.data(), y.data(), dy.data(), dx.data(), n);
    DevBuf gx(x), gy(n * sizeof(float)), gdy(dy), gdx(n * sizeof(float));
    gpu().unary(op, DType::Float32, gx.ptr, gy.ptr, n);
    gpu().unary_backward(op, DType::Float32, gx.ptr, gy.ptr, gdy.ptr, gdx.ptr, n);
    // Tolerance: CUDA's expf/logf/tanhf are within 2 ulp of the CPU's: 1e-6 relative. The
    // backward rules 1 - y*y and y*(1 - y) cancel near |y| = 1, turning y's ulps (1.2e-7 at 1)
    // times |dy| <= 2 into an absolute error: 1e-6 absolute.
    expect_close(y, gy.get<float>(), 1e-6, 1e-7, "unary " + std::to_string(int(op)));
    expect_close(dx, gdx.get<float>(), 1e-5, 1e-6, "unary_backward " + std::to_string(int(op)));
  }
}

TEST(CudaBackend, BinaryBroadcastsMatchCpu) {
  REQUIRE_GPU();
  using backend::BinaryOp;
  const int64_t rows = 513, cols = 37, n = rows * cols;
  const std::pair<int64_t, int64_t> shapes[] = {{n, n}, {n, cols}, {cols, n}, {n, 1}, {1, n}};
  for (BinaryOp op : {BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div})
    for (auto [na, nb] : shapes) {
      const auto a = random_vec(na), b = random_vec(nb, 0.5, 2.0);
      std::vector<float> out(n);
      cpu().binary(op, DType::Float32, a.data(), na, b.data(), nb, out.data(), n);
      DevBuf ga(a), gb(b), go(n * sizeof(float));
      gpu().binary(op, DType::Float32, ga.ptr, na, gb.ptr, nb, go.ptr, n);
      // Tolerance: exact (one correctly rounded IEEE operation on both sides).
      expect_close(out, go.get<float>(), 0, 0, "binary " + std::to_string(int(op)));
    }
}

TEST(CudaBackend, AffineAndClipMatchCpu) {
  REQUIRE_GPU();
  const int64_t n = 4099;
  auto x = random_vec(n, -3, 3);
  x[0] = std::nanf("");
  const auto dy = random_vec(n);
  std::vector<float> y(n), c(n), dc(n);
  cpu().affine(DType::Float32, x.data(), 1.7, -0.3, y.data(), n);
  cpu().clip(DType::Float32, x.data(), c.data(), n, -1.0, 1.5);
  cpu().clip_backward(DType::Float32, x.data(), dy.data(), dc.data(), n, -1.0, 1.5);
  DevBuf gx(x), gdy(dy), gy(n * 4), gc(n * 4), gdc(n * 4);
  gpu().affine(DType::Float32, gx.ptr, 1.7, -0.3, gy.ptr, n);
  gpu().clip(DType::Float32, gx.ptr, gc.ptr, n, -1.0, 1.5);
  gpu().clip_backward(DType::Float32, gx.ptr, gdy.ptr, gdc.ptr, n, -1.0, 1.5);
  expect_close(y, gy.get<float>(), 1e-6, 1e-7, "affine");  // the GPU may fuse a*x+b (one rounding)
  expect_close(c, gc.get<float>(), 0, 0, "clip");          // exact, NaN kept
  expect_close(dc, gdc.get<float>(), 0, 0, "clip_backward");
}

TEST(CudaBackend, ReductionsMatchCpu) {
  REQUIRE_GPU();
  // Tall shapes take the sliced path (partial sums, then a second pass): the conv bias gradient at
  // batch 10 ({9000, 32}), one past the slice cap ({600000, 5}), several column tiles ({20000, 100}).
  const std::pair<int64_t, int64_t> shapes[] = {{1000, 37}, {3, 1},     {50000, 1},  {7, 3000},    {1, 100000},
                                                {64, 10},   {9000, 32}, {600000, 5}, {20000, 100}, {513, 33}};
  for (auto [rows, cols] : shapes) {
    const auto x = random_vec(rows * cols);
    const auto y0 = random_vec(cols);
    std::vector<float> sr = y0, sc(rows);
    cpu().sum_rows(DType::Float32, x.data(), sr.data(), rows, cols, true);
    cpu().sum_cols(DType::Float32, x.data(), sc.data(), rows, cols);
    DevBuf gx(x), gsr(y0), gsc(rows * 4);
    gpu().sum_rows(DType::Float32, gx.ptr, gsr.ptr, rows, cols, true);
    gpu().sum_cols(DType::Float32, gx.ptr, gsc.ptr, rows, cols);
    // Tolerance: summation order differs; error grows with the count: 1e-6 * terms * max|x|.
    const std::string shape = std::to_string(rows) + "x" + std::to_string(cols);
    expect_close(sr, gsr.get<float>(), 1e-5, 1e-6 * rows * 2, "sum_rows " + shape);
    expect_close(sc, gsc.get<float>(), 1e-5, 1e-6 * cols * 2, "sum_cols " + shape);
  }
}

TEST(CudaBackend, ArgmaxAndAccuracyTakeFirstMaximum) {
  REQUIRE_GPU();
  for (int64_t cols : {1, 10, 33, 1000}) {
    const int64_t rows = 777;
    const auto x = tied_vec(rows * cols, 4);  // many ties: the first maximal column must win
    std::vector<int32_t> labels(rows);
    for (auto& l : labels) l = static_cast<int32_t>(rng()() % cols);
    std::vector<int32_t> am(rows);
    float correct = 5.f;
    cpu().argmax_rows(DType::Float32, x.data(), am.data(), rows, cols);
    cpu().accuracy_sum(DType::Float32, x.data(), labels.data(), &correct, rows, cols);
    DevBuf gx(x), gl(labels), gam(rows * 4), gc(std::vector<float>{5.f});
    gpu().argmax_rows(DType::Float32, gx.ptr, gam.as<int32_t>(), rows, cols);
    gpu().accuracy_sum(DType::Float32, gx.ptr, gl.as<int32_t>(), gc.ptr, rows, cols);
    EXPECT_EQ(gam.get<int32_t>(), am) << cols;  // exact
    EXPECT_EQ(gc.get<float>()[0], correct) << cols;
  }
}

TEST(CudaBackend, GemmMatchesCpuForEveryTransposeAndDtype) {
  REQUIRE_GPU();
  const int64_t m = 37, n = 53, k = 129;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      const auto a = random_vec(m * k), b = random_vec(k * n), c0 = random_vec(m * n);
      std::vector<float> c = c0;
      cpu().gemm(DType::Float32, ta, tb, m, n, k, 1.5, a.data(), b.data(), 0.5, c.data());
      DevBuf ga(a), gb(b), gc(c0);
      gpu().gemm(DType::Float32, ta, tb, m, n, k, 1.5, ga.ptr, gb.ptr, 0.5, gc.ptr);
      // Tolerance: k products of |x| <= 2 summed in another order (no TF32): 1e-6 * k * 4.
      expect_close(c, gc.get<float>(), 1e-5, 4e-6 * k, "gemm ta=" + std::to_string(ta) + " tb=" + std::to_string(tb));
      const auto ad = random_vec<double>(m * k), bd = random_vec<double>(k * n);
      std::vector<double> cd(m * n);
      cpu().gemm(DType::Float64, ta, tb, m, n, k, 1.0, ad.data(), bd.data(), 0.0, cd.data());
      DevBuf gad(ad), gbd(bd), gcd(m * n * 8);
      gpu().gemm(DType::Float64, ta, tb, m, n, k, 1.0, gad.ptr, gbd.ptr, 0.0, gcd.ptr);
      expect_close(cd, gcd.get<double>(), 1e-12, 1e-12 * k, "dgemm");
    }
}

TEST(CudaBackend, SoftmaxFamilyMatchesCpu) {
  REQUIRE_GPU();
  for (int64_t cols : {10, 1000}) {
    const int64_t rows = 300;
    const auto x = random_vec(rows * cols, -20, 20), dy = random_vec(rows * cols);
    for (bool log : {false, true}) {
      std::vector<float> y(rows * cols), dx(rows * cols);
      cpu().softmax(DType::Float32, x.data(), y.data(), rows, cols, log);
      cpu().softmax_backward(DType::Float32, y.data(), dy.data(), dx.data(), rows, cols, log);
      DevBuf gx(x), gdy(dy), gy(x.size() * 4), gdx(x.size() * 4);
      gpu().softmax(DType::Float32, gx.ptr, gy.ptr, rows, cols, log);
      gpu().softmax_backward(DType::Float32, gy.ptr, gdy.ptr, gdx.ptr, rows, cols, log);
      // Tolerance: exp/log within 2 ulp, sums of `cols` terms in another order; log_softmax is
      // x - lse with |lse| up to ~27 here, whose ulp (1.9e-6) becomes an absolute error: 1e-5.
      expect_close(y, gy.get<float>(), 1e-5, log ? 1e-5 : 1e-6, "softmax log=" + std::to_string(log));
      expect_close(dx, gdx.get<float>(), 1e-4, 1e-5, "softmax_backward log=" + std::to_string(log));
    }
    std::vector<int32_t> labels(rows);
    for (auto& l : labels) l = static_cast<int32_t>(rng()() % cols);
    labels[3] = static_cast<int32_t>(cols);  // out of range: NaN loss on both
    std::vector<float> loss(rows), dl(rows * cols);
    cpu().sparse_softmax_xent(DType::Float32, x.data(), labels.data(), loss.data(), dl.data(), 0.25, rows, cols);
    DevBuf gx(x), gl(labels), gloss(rows * 4), gdl(x.size() * 4);
    gpu().sparse_softmax_xent(DType::Float32, gx.ptr, gl.as<int32_t>(), gloss.ptr, gdl.ptr, 0.25, rows, cols);
    // Tolerance: the loss is lse - x[label] (lse's ulp, 1.9e-6 near 20, is absolute: 1e-5);
    // dlogits = (exp(x - lse) - 1) * 0.25 cancels at the label where p is near 1: 2e-6 absolute.
    expect_close(loss, gloss.get<float>(), 1e-5, 1e-5, "xent loss");
    expect_close(dl, gdl.get<float>(), 1e-5, 2e-6, "xent dlogits");
  }
}

namespace {
// TensorFlow's output size and leading padding of one axis.
std::pair<int64_t, int64_t> tf_axis(int64_t in, int64_t k, int64_t s, bool same) {
  if (!same) return {(in - k) / s + 1, 0};
  const int64_t out = (in + s - 1) / s;
  return {out, std::max<int64_t>((out - 1) * s + k - in, 0) / 2};
}
}  // namespace

namespace {
struct ConvCase {
  int64_t N, H, W, C, KH, KW, F, s;
  bool same;
};

// Forward, data and filter gradients of `t` on the GPU against the CPU, without bias or ReLU and
// with both fused (forward, and the filter and bias gradients with the ReLU backward applied on
// the fly from the forward output). Adds the fused outputs' zeros and count.
void expect_convolution_matches_cpu(const ConvCase& t, long& fused_zeros, long& fused_outputs) {
  const auto [OH, pt] = tf_axis(t.H, t.KH, t.s, t.same);
  const auto [OW, pl] = tf_axis(t.W, t.KW, t.s, t.same);
  const backend::Conv2dGeometry g{t.N, t.H, t.W, t.C, t.KH, t.KW, t.F, OH, OW, t.s, t.s, pt, pl};
  const auto x = random_vec(t.N * t.H * t.W * t.C), w = random_vec(t.KH * t.KW * t.C * t.F);
  const auto dy = random_vec(t.N * OH * OW * t.F), bias = random_vec(t.F);
  for (const bool fused : {false, true}) {
    const void* b_cpu = fused ? bias.data() : nullptr;
    std::vector<float> y(dy.size()), dx(x.size()), dw(w.size()), db(bias.size());
    cpu().conv2d_forward(DType::Float32, g, x.data(), w.data(), b_cpu, fused, y.data());
    cpu().conv2d_backward_data(DType::Float32, g, dy.data(), w.data(), dx.data());
    cpu().conv2d_backward_filter(DType::Float32, g, x.data(), dy.data(), fused ? y.data() : nullptr, dw.data(),
                                 fused ? db.data() : nullptr);
    DevBuf gx(x), gw(w), gdy(dy), gb(bias), gy(y.size() * 4), gdx(dx.size() * 4), gdw(dw.size() * 4),
        gdb(db.size() * 4);
    gpu().conv2d_forward(DType::Float32, g, gx.ptr, gw.ptr, fused ? gb.ptr : nullptr, fused, gy.ptr);
    gpu().conv2d_backward_data(DType::Float32, g, gdy.ptr, gw.ptr, gdx.ptr);
    // The GPU's ReLU mask is its own forward output; compare it on the CPU's, so that an output
    // that rounds to the other side of 0 cannot flip one gradient term.
    DevBuf gy_cpu(y);
    gpu().conv2d_backward_filter(DType::Float32, g, gx.ptr, gdy.ptr, fused ? gy_cpu.ptr : nullptr, gdw.ptr,
                                 fused ? gdb.ptr : nullptr);
    // Tolerance: sums of KH*KW*C (forward), KH*KW*F (data) and N*OH*OW (filter, bias) products of
    // |x| <= 2 in another order, FMA math only (no TF32): 4e-6 per term.
    const std::string name = std::string(fused ? "fused " : "") + "conv case H=" + std::to_string(t.H) +
                             " C=" + std::to_string(t.C) + " K=" + std::to_string(t.KH) + " F=" + std::to_string(t.F);
    expect_close(y, gy.get<float>(), 1e-4, 4e-6 * (t.KH * t.KW * t.C + 1), name + " forward");
    expect_close(dx, gdx.get<float>(), 1e-4, 4e-6 * t.KH * t.KW * t.F, name + " backward_data");
    expect_close(dw, gdw.get<float>(), 1e-4, 4e-6 * t.N * OH * OW, name + " backward_filter");
    if (fused) {
      expect_close(db, gdb.get<float>(), 1e-4, 4e-6 * t.N * OH * OW, name + " bias gradient");
      fused_zeros += std::count(y.begin(), y.end(), 0.f);
      fused_outputs += static_cast<long>(y.size());
    }
  }
}
}  // namespace

TEST(CudaBackend, ConvolutionMatchesCpu) {
  REQUIRE_GPU();
  const ConvCase cases[] = {
      {4, 32, 32, 3, 3, 3, 32, 1, false},   // the CIFAR-10 seed's layer
      {2, 9, 9, 5, 3, 3, 7, 1, true},       // symmetric "same": cuDNN pads
      {2, 8, 8, 4, 2, 2, 6, 1, true},       // even kernel: asymmetric padding, padded by us
      {3, 10, 12, 3, 3, 3, 8, 2, true},     // stride 2 on even input: asymmetric
      {2, 6, 7, 2, 3, 3, 4, 2, false},      // valid, stride 2: the last input row is unused
      {2, 9, 9, 8, 3, 3, 12, 1, true},      // K = 72: filter gradient by cuDNN, not the direct kernel
      {2, 7, 7, 3, 3, 3, 70, 1, false},     // F = 70: likewise
      {3, 5, 5, 1, 1, 1, 1, 1, false},      // one channel, one filter, 1x1 kernel
      {4, 16, 16, 64, 3, 3, 128, 1, true},  // an inner layer of a VGG: cuDNN's larger engines
      {4, 16, 16, 32, 3, 3, 64, 2, true},   // a strided inner layer (ResNet's downsampling)
  };
  long fused_zeros = 0, fused_outputs = 0;
  for (const ConvCase& t : cases) expect_convolution_matches_cpu(t, fused_zeros, fused_outputs);
  // The ReLU really cut: some outputs are 0 (their gradients masked), not all (a one-filter case
  // may be all negative by chance, so this is over all cases).
  EXPECT_GT(fused_zeros, 0);
  EXPECT_LT(fused_zeros, fused_outputs);
}

TEST(CudaBackend, LegacyApiConvolutionMatchesCpu) {
  REQUIRE_GPU();
  // KILN_CUDNN_LEGACY=1 sends float32 plans made while it is set to cuDNN's legacy API (the path
  // every other type takes): geometries no other test uses, so their plans are made here.
  const ScopedEnv legacy("KILN_CUDNN_LEGACY", "1");
  long fused_zeros = 0, fused_outputs = 0;
  for (const ConvCase& t : {ConvCase{3, 11, 11, 6, 3, 3, 9, 1, true}, ConvCase{2, 13, 13, 10, 2, 2, 5, 2, true}})
    expect_convolution_matches_cpu(t, fused_zeros, fused_outputs);
  EXPECT_GT(fused_zeros, 0);
}

TEST(CudaBackend, NchwRouteConvolutionMatchesCpu) {
  REQUIRE_GPU();
  // KILN_CUDNN_LAYOUT=nchw makes float32 plans made while it is set choose among NCHW engines only,
  // run on copies of the NHWC operands transposed there and back: the route cuDNN's FFT and
  // Winograd engines take. Geometries no other test uses, so their plans are made here: a 3x3
  // stride-1 layer (Winograd's case), one with height != width and C != F (a transposition that
  // mixed them up would show), an asymmetric strided one (padded by us, then NCHW), and an image of
  // more than 65535 x 32 pixels (its transposes have more row tiles than a grid's y dimension).
  const ScopedEnv nchw("KILN_CUDNN_LAYOUT", "nchw");
  long fused_zeros = 0, fused_outputs = 0;
  for (const ConvCase& t : {ConvCase{4, 12, 12, 32, 3, 3, 48, 1, true}, ConvCase{3, 7, 9, 12, 3, 3, 20, 1, true},
                            ConvCase{2, 10, 10, 16, 3, 3, 24, 2, true}, ConvCase{1, 1500, 1450, 2, 3, 3, 2, 1, true}})
    expect_convolution_matches_cpu(t, fused_zeros, fused_outputs);
  EXPECT_GT(fused_zeros, 0);
}

TEST(CudaBackend, FusedConvolutionIsDeterministic) {
  REQUIRE_GPU();
  // The seed's layer at a batch large enough for many row slices: two runs give the same bits.
  const backend::Conv2dGeometry g{64, 32, 32, 3, 3, 3, 32, 30, 30, 1, 1, 0, 0};
  const auto x = random_vec(64 * 32 * 32 * 3), w = random_vec(27 * 32), bias = random_vec(32);
  const auto dy = random_vec(64 * 30 * 30 * 32);
  DevBuf gx(x), gw(w), gb(bias), gdy(dy), gy(dy.size() * 4), gdw(w.size() * 4), gdb(bias.size() * 4);
  std::vector<float> first_w, first_b;
  for (int run = 0; run < 2; ++run) {
    gpu().conv2d_forward(DType::Float32, g, gx.ptr, gw.ptr, gb.ptr, true, gy.ptr);
    gpu().conv2d_backward_filter(DType::Float32, g, gx.ptr, gdy.ptr, gy.ptr, gdw.ptr, gdb.ptr);
    if (run == 0) {
      first_w = gdw.get<float>();
      first_b = gdb.get<float>();
    } else {
      EXPECT_EQ(first_w, gdw.get<float>());
      EXPECT_EQ(first_b, gdb.get<float>());
    }
  }
}

TEST(CudaBackend, Float64ConvolutionMatchesCpuOrSaysWhy) {
  REQUIRE_GPU();
  const backend::Conv2dGeometry g{2, 7, 7, 3, 3, 3, 4, 5, 5, 1, 1, 0, 0};
  const auto x = random_vec<double>(2 * 7 * 7 * 3), w = random_vec<double>(3 * 3 * 3 * 4);
  std::vector<double> y(2 * 5 * 5 * 4);
  cpu().conv2d_forward(DType::Float64, g, x.data(), w.data(), nullptr, false, y.data());
  DevBuf gx(x), gw(w), gy(y.size() * 8);
  try {
    gpu().conv2d_forward(DType::Float64, g, gx.ptr, gw.ptr, nullptr, false, gy.ptr);
  } catch (const Error& e) {  // cuDNN may offer no float64 NHWC algorithm: the error must say so
    EXPECT_NE(std::string(e.what()).find("float64"), std::string::npos) << e.what();
    GTEST_SKIP() << "float64 convolution unsupported here: " << e.what();
  }
  expect_close(y, gy.get<double>(), 1e-12, 1e-12 * 27 * 4, "float64 conv");  // sums of 27 products
}

TEST(CudaBackend, MaxPoolMatchesCpuIncludingTies) {
  REQUIRE_GPU();
  struct Case {
    int64_t N, H, W, C, K, s;
    bool same;
  };
  // Overlapping windows take the gathering kernel; disjoint ones (stride >= window) the per-window
  // one: exact tiling, a stride past the window (gaps), an odd input (an uncovered row and
  // column, zeroed alone), "same" padding past the edge, and a 3x3 tiling. Channels a multiple of
  // 4 take the four-channel kernels (with "same" padding and overlapping windows too), others the
  // scalar ones. dx starts as NaN bits, so a cell the backward does not write shows.
  const Case cases[] = {{4, 30, 30, 32, 2, 2, false}, {2, 9, 10, 3, 3, 2, true},   {2, 7, 7, 5, 3, 1, true},
                        {2, 9, 9, 4, 2, 3, false},    {3, 31, 31, 8, 2, 2, false}, {2, 7, 9, 3, 2, 2, true},
                        {2, 9, 9, 3, 3, 3, false},    {2, 7, 9, 4, 2, 2, true},    {2, 7, 7, 8, 3, 1, true},
                        {1, 5, 5, 12, 3, 3, true},    {2, 7, 8, 4, 3, 3, false},   {2, 8, 9, 3, 2, 2, false}};
  for (const Case& t : cases) {
    const auto [OH, pt] = tf_axis(t.H, t.K, t.s, t.same);
    const auto [OW, pl] = tf_axis(t.W, t.K, t.s, t.same);
    const backend::Pool2dGeometry g{t.N, t.H, t.W, t.C, t.K, t.K, OH, OW, t.s, t.s, pt, pl};
    const auto x = tied_vec(t.N * t.H * t.W * t.C, 3);  // ties decide where gradients go
    const auto dy = random_vec(t.N * OH * OW * t.C);
    std::vector<float> y(dy.size()), dx(x.size());
    cpu().max_pool2d_forward(DType::Float32, g, x.data(), y.data());
    cpu().max_pool2d_backward(DType::Float32, g, x.data(), y.data(), dy.data(), dx.data());
    DevBuf gx(x), gdy(dy), gy(y.size() * 4), gdx(dx.size() * 4);
    gpu().fill(DType::UInt8, gdx.ptr, static_cast<int64_t>(gdx.bytes), 255.0);
    gpu().max_pool2d_forward(DType::Float32, g, gx.ptr, gy.ptr);
    gpu().max_pool2d_backward(DType::Float32, g, gx.ptr, gy.ptr, gdy.ptr, gdx.ptr);
    // Tolerance: exact (same winner, gradients added in the same order).
    expect_close(y, gy.get<float>(), 0, 0, "max_pool forward");
    expect_close(dx, gdx.get<float>(), 0, 0, "max_pool backward");
  }
}

// ---- NaN: relu(NaN) = NaN, a window or row holding a NaN yields it (the first), as on the CPU ----

TEST(CudaBackend, ReluAndItsBackwardKeepNanAsOnCpu) {
  REQUIRE_GPU();
  using backend::UnaryOp;
  const int64_t n = 100003;
  // float32 and float64; the gradient passes at a NaN input (PyTorch's threshold_backward).
  const auto x = with_nans(random_vec(n, -4.0, 4.0)), dy = random_vec(n);
  std::vector<float> y(n), dx(n);
  cpu().unary(UnaryOp::Relu, DType::Float32, x.data(), y.data(), n);
  cpu().unary_backward(UnaryOp::Relu, DType::Float32, x.data(), y.data(), dy.data(), dx.data(), n);
  DevBuf gx(x), gy(n * 4), gdy(dy), gdx(n * 4);
  gpu().unary(UnaryOp::Relu, DType::Float32, gx.ptr, gy.ptr, n);
  gpu().unary_backward(UnaryOp::Relu, DType::Float32, gx.ptr, gy.ptr, gdy.ptr, gdx.ptr, n);
  expect_close(y, gy.get<float>(), 0, 0, "relu");  // exact, NaN where the CPU has NaN
  expect_close(dx, gdx.get<float>(), 0, 0, "relu backward");
  const auto xd = with_nans(random_vec<double>(n, -4.0, 4.0));
  std::vector<double> yd(n);
  cpu().unary(UnaryOp::Relu, DType::Float64, xd.data(), yd.data(), n);
  DevBuf gxd(xd), gyd(n * 8);
  gpu().unary(UnaryOp::Relu, DType::Float64, gxd.ptr, gyd.ptr, n);
  expect_close(yd, gyd.get<double>(), 0, 0, "relu float64");
}

TEST(CudaBackend, MaxPoolWithNanMatchesCpu) {
  REQUIRE_GPU();
  struct Case {
    int64_t N, H, W, C, K, s;
    bool same;
  };
  // As MaxPoolMatchesCpuIncludingTies: general and disjoint kernels, scalar and four-channel ones.
  const Case cases[] = {{4, 30, 30, 32, 2, 2, false}, {2, 9, 10, 3, 3, 2, true},   {2, 7, 7, 5, 3, 1, true},
                        {2, 9, 9, 4, 2, 3, false},    {3, 31, 31, 8, 2, 2, false}, {2, 7, 9, 4, 2, 2, true},
                        {2, 7, 7, 8, 3, 1, true},     {1, 5, 5, 12, 3, 3, true}};
  for (const Case& t : cases) {
    const auto [OH, pt] = tf_axis(t.H, t.K, t.s, t.same);
    const auto [OW, pl] = tf_axis(t.W, t.K, t.s, t.same);
    const backend::Pool2dGeometry g{t.N, t.H, t.W, t.C, t.K, t.K, OH, OW, t.s, t.s, pt, pl};
    const auto x = with_nans(tied_vec(t.N * t.H * t.W * t.C, 3));  // ties and NaNs decide the routing
    const auto dy = random_vec(t.N * OH * OW * t.C);
    std::vector<float> y(dy.size()), dx(x.size());
    cpu().max_pool2d_forward(DType::Float32, g, x.data(), y.data());
    cpu().max_pool2d_backward(DType::Float32, g, x.data(), y.data(), dy.data(), dx.data());
    DevBuf gx(x), gdy(dy), gy(y.size() * 4), gdx(dx.size() * 4);
    gpu().fill(DType::UInt8, gdx.ptr, static_cast<int64_t>(gdx.bytes), 255.0);
    gpu().max_pool2d_forward(DType::Float32, g, gx.ptr, gy.ptr);
    gpu().max_pool2d_backward(DType::Float32, g, gx.ptr, gy.ptr, gdy.ptr, gdx.ptr);
    const std::string what = "max_pool with NaN, H=" + std::to_string(t.H) + " C=" + std::to_string(t.C) +
                             " K=" + std::to_string(t.K) + " s=" + std::to_string(t.s);
    expect_close(y, gy.get<float>(), 0, 0, what + " forward");
    expect_close(dx, gdx.get<float>(), 0, 0, what + " backward");
    const std::vector<double> xd(x.begin(), x.end()), dyd(dy.begin(), dy.end());
    std::vector<double> yd(y.size()), dxd(x.size());
    cpu().max_pool2d_forward(DType::Float64, g, xd.data(), yd.data());
    cpu().max_pool2d_backward(DType::Float64, g, xd.data(), yd.data(), dyd.data(), dxd.data());
    DevBuf gxd(xd), gdyd(dyd), gyd(yd.size() * 8), gdxd(dxd.size() * 8);
    gpu().max_pool2d_forward(DType::Float64, g, gxd.ptr, gyd.ptr);
    gpu().max_pool2d_backward(DType::Float64, g, gxd.ptr, gyd.ptr, gdyd.ptr, gdxd.ptr);
    expect_close(yd, gyd.get<double>(), 0, 0, what + " float64 forward");
    expect_close(dxd, gdxd.get<double>(), 0, 0, what + " float64 backward");
  }
}

TEST(CudaBackend, ArgmaxAndAccuracyTakeTheFirstNan) {
  REQUIRE_GPU();
  for (int64_t cols : {1, 10, 33, 1000}) {
    const int64_t rows = 777;
    const auto x = with_nans(tied_vec(rows * cols, 4), 2 * static_cast<int>(cols));  // some rows have one
    std::vector<int32_t> labels(rows);
    for (auto& l : labels) l = static_cast<int32_t>(rng()() % cols);
    std::vector<int32_t> am(rows);
    float correct = 5.f;
    cpu().argmax_rows(DType::Float32, x.data(), am.data(), rows, cols);
    cpu().accuracy_sum(DType::Float32, x.data(), labels.data(), &correct, rows, cols);
    DevBuf gx(x), gl(labels), gam(rows * 4), gc(std::vector<float>{5.f});
    gpu().argmax_rows(DType::Float32, gx.ptr, gam.as<int32_t>(), rows, cols);
    gpu().accuracy_sum(DType::Float32, gx.ptr, gl.as<int32_t>(), gc.ptr, rows, cols);
    EXPECT_EQ(gam.get<int32_t>(), am) << cols;  // exact
    EXPECT_EQ(gc.get<float>()[0], correct) << cols;
  }
}

TEST(CudaBackend, FusedConvolutionKeepsNanAsOnCpu) {
  REQUIRE_GPU();
  // A NaN weight in filter 1 and a NaN bias for filter 3: those filters' outputs are NaN after the
  // fused bias and ReLU (cuDNN's fused call, or the bias_relu kernel), on the GPU as on the CPU.
  // Their ReLU backward passes dy (y is NaN), so the filter gradients stay finite. The seed's layer
  // (C = 3; the filter gradient by kiln's kernel) and K = 72 (by cuDNN after the ReLU backward).
  struct Case {
    int64_t N, H, W, C, F;
  };
  for (const Case& t : {Case{4, 32, 32, 3, 32}, Case{2, 9, 9, 8, 12}}) {
    const backend::Conv2dGeometry g{t.N, t.H, t.W, t.C, 3, 3, t.F, t.H - 2, t.W - 2, 1, 1, 0, 0};
    const auto x = random_vec(t.N * t.H * t.W * t.C);
    auto w = random_vec(9 * t.C * t.F), bias = random_vec(t.F);
    w[(4 * t.C + 1) * t.F + 1] = std::nanf("");  // centre tap, channel 1, filter 1
    bias[3] = std::nanf("");
    const auto dy = random_vec(t.N * g.OH * g.OW * t.F);
    std::vector<float> y(dy.size()), dw(w.size()), db(bias.size());
    cpu().conv2d_forward(DType::Float32, g, x.data(), w.data(), bias.data(), true, y.data());
    cpu().conv2d_backward_filter(DType::Float32, g, x.data(), dy.data(), y.data(), dw.data(), db.data());
    DevBuf gx(x), gw(w), gb(bias), gdy(dy), gy(y.size() * 4), gdw(dw.size() * 4), gdb(db.size() * 4);
    gpu().conv2d_forward(DType::Float32, g, gx.ptr, gw.ptr, gb.ptr, true, gy.ptr);
    DevBuf gy_cpu(y);  // the CPU's mask, as in ConvolutionMatchesCpu
    gpu().conv2d_backward_filter(DType::Float32, g, gx.ptr, gdy.ptr, gy_cpu.ptr, gdw.ptr, gdb.ptr);
    const std::string what = "conv with NaN, C=" + std::to_string(t.C) + " F=" + std::to_string(t.F);
    // Tolerances as in ConvolutionMatchesCpu.
    expect_close(y, gy.get<float>(), 1e-4, 4e-6 * (9 * t.C + 1), what + " forward");
    expect_close(dw, gdw.get<float>(), 1e-4, 4e-6 * t.N * g.OH * g.OW, what + " filter gradient");
    expect_close(db, gdb.get<float>(), 1e-4, 4e-6 * t.N * g.OH * g.OW, what + " bias gradient");
    for (std::size_t i = 0; i < y.size(); ++i) {
      const int64_t f = static_cast<int64_t>(i) % t.F;
      ASSERT_EQ(std::isnan(y[i]), f == 1 || f == 3) << what << " at " << i;
    }
    for (float v : dw) ASSERT_FALSE(std::isnan(v)) << what;
  }
}

TEST(CudaBackend, OptimizerStepsMatchCpu) {
  REQUIRE_GPU();
  const int64_t n = 10007;
  const auto g = random_vec(n);
  for (auto [momentum, nesterov] : {std::pair{0.0, false}, {0.9, false}, {0.9, true}}) {
    auto w = random_vec(n), v = random_vec(n, -0.1, 0.1);
    DevBuf gw(w), gg(g), gv(v);
    cpu().sgd_step(DType::Float32, w.data(), g.data(), v.data(), n, 0.01, momentum, nesterov);
    gpu().sgd_step(DType::Float32, gw.ptr, gg.ptr, gv.ptr, n, 0.01, momentum, nesterov);
    // Tolerance: one FMA contraction may round differently: 1e-6 relative.
    expect_close(w, gw.get<float>(), 1e-6, 1e-7, "sgd");
    expect_close(v, gv.get<float>(), 1e-6, 1e-7, "sgd velocity");
  }
  for (int64_t step : {1, 10}) {
    auto w = random_vec(n), m = random_vec(n, -0.1, 0.1), v = random_vec(n, 0.0, 0.1);
    DevBuf gw(w), gg(g), gm(m), gv(v);
    cpu().adam_step(DType::Float32, w.data(), g.data(), m.data(), v.data(), n, 0.001, 0.9, 0.999, 1e-7, step);
    gpu().adam_step(DType::Float32, gw.ptr, gg.ptr, gm.ptr, gv.ptr, n, 0.001, 0.9, 0.999, 1e-7, step);
    expect_close(w, gw.get<float>(), 1e-6, 1e-7, "adam w");
    expect_close(m, gm.get<float>(), 1e-6, 1e-8, "adam m");
    expect_close(v, gv.get<float>(), 1e-6, 1e-8, "adam v");
  }
}

TEST(CudaBackend, GatherRowsForEveryRowWidth) {
  REQUIRE_GPU();
  for (std::size_t row_bytes : {std::size_t(3), std::size_t(40), std::size_t(64), std::size_t(3072)}) {
    const int64_t rows = 100, n_idx = 37;
    std::vector<uint8_t> src(rows * row_bytes);
    for (auto& b : src) b = static_cast<uint8_t>(rng()());
    std::vector<int32_t> idx(n_idx);
    for (auto& i : idx) i = static_cast<int32_t>(rng()() % rows);
    std::vector<uint8_t> want(n_idx * row_bytes);
    cpu().gather_rows(src.data(), idx.data(), want.data(), n_idx, row_bytes);
    DevBuf gs(src), gi(idx), gd(want.size());
    gpu().gather_rows(gs.ptr, gi.as<int32_t>(), gd.ptr, n_idx, row_bytes);
    EXPECT_EQ(gd.get<uint8_t>(), want) << row_bytes;  // exact
  }
}

// ---- the public API ----

namespace {
Tensor leaf(const Tensor& t, Device d) {
  Tensor out = t.to(d).detach();
  out.set_requires_grad();
  return out;
}
void expect_tensors_close(const Tensor& cpu_t, const Tensor& gpu_t, double rtol, double atol, const std::string& what) {
  ASSERT_TRUE(gpu_t.device().is_cuda()) << what;
  expect_close(cpu_t.to_vector<float>(), gpu_t.to_vector<float>(), rtol, atol, what);
}
}  // namespace

TEST(CudaTensor, ToGpuAndBackIsExact) {
  REQUIRE_GPU();
  Generator gen(std::random_device{}());
  const Tensor t = Tensor::uniform({17, 33}, -1, 1, gen);
  const Tensor g = t.to(Device::gpu());
  EXPECT_TRUE(g.device().is_cuda());
  EXPECT_EQ(g.to_vector<float>(), t.to_vector<float>());
  EXPECT_EQ(g.cpu().to_vector<float>(), t.to_vector<float>());
}

TEST(CudaTensor, SmallCnnForwardAndBackwardMatchCpu) {
  REQUIRE_GPU();
  Generator gen(std::random_device{}());
  const Tensor x = Tensor::uniform({8, 12, 12, 3}, 0, 1, gen);
  const Tensor k = Tensor::uniform({3, 3, 3, 16}, -0.3, 0.3, gen);
  const Tensor wd = Tensor::uniform({5 * 5 * 16, 10}, -0.1, 0.1, gen);
  const Tensor labels = Tensor::from_vector<int32_t>({0, 1, 2, 3, 4, 5, 6, 9}, {8});
  struct Out {
    Tensor loss, probs, dk, dwd;
  };
  auto run = [&](Device d) {
    Tensor kk = leaf(k, d), ww = leaf(wd, d);
    Tensor h = max_pool2d(relu(conv2d(x.to(d), kk)), {2, 2}, {2, 2});
    Tensor logits = matmul(flatten(h), ww);
    Tensor loss = sparse_softmax_cross_entropy(logits, labels.to(d));
    loss.backward();
    return Out{loss, softmax(logits), kk.grad(), ww.grad()};
  };
  const Out c = run(Device::cpu()), g = run(Device::gpu());
  // Tolerance: a chain of float32 sums in another order; 1e-4 relative.
  expect_tensors_close(c.loss, g.loss, 1e-5, 1e-6, "loss");
  expect_tensors_close(c.probs, g.probs, 1e-4, 1e-6, "softmax");
  expect_tensors_close(c.dk, g.dk, 1e-4, 1e-5, "conv kernel gradient");
  expect_tensors_close(c.dwd, g.dwd, 1e-4, 1e-5, "dense gradient");
}

TEST(CudaTensor, CheckNumericsReportsANanWeightBehindAReluOnGpu) {
  REQUIRE_GPU();
  // The seed CNN's layer kinds on the GPU, a NaN in one filter of the Conv2D(relu) (cuDNN's fused
  // conv + bias + ReLU) or in one unit of the Dense(relu) (cuBLASLt's RELU_BIAS epilogue): the layer's
  // output holds NaN, and check_numerics names that layer, as on the CPU.
  const float nan = std::numeric_limits<float>::quiet_NaN();
  Generator gen(9);
  const Tensor x = Tensor::uniform({10, 8, 8, 3}, 0, 1, gen);
  const Tensor y = Tensor::from_vector<int32_t>({0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {10});
  for (const int nan_layer : {0, 3}) {
    std::string messages[2];
    for (const Device device : {Device::cpu(), Device::gpu()}) {
      set_default_device(device);
      utils::set_random_seed(2);
      Sequential model({layers::Conv2D(8, {3, 3}, {.activation = "relu", .input_shape = {8, 8, 3}}),
                        layers::MaxPooling2D({2, 2}), layers::Flatten(), layers::Dense(16, {.activation = "relu"}),
                        layers::Dense(10)});
      set_default_device(Device::cpu());
      model.compile(optimizers::Adam(), losses::SparseCategoricalCrossentropy({.from_logits = true}));
      const Tensor kernel = model.layers()[nan_layer]->named_weights()[0].second;
      std::vector<float> k = kernel.to_vector<float>();
      k[k.size() / 2] = nan;
      model.layers()[nan_layer]->set_weight("kernel", Tensor::from_vector(k, kernel.shape()));
      messages[device.is_cpu() ? 0 : 1] = kiln::testing::message_of(
          [&] { model.fit(x, y, {.batch_size = 10, .epochs = 1, .verbose = 0, .check_numerics = true}); });
    }
    EXPECT_NE(messages[0].find(nan_layer == 0 ? "the output of layer conv2d (Conv2D) holds NaN"
                                              : "the output of layer dense (Dense) holds NaN"),
              std::string::npos)
        << messages[0];
    EXPECT_EQ(messages[1], messages[0]);
  }
}

TEST(CudaTensor, MixedDevicesNameBoth) {
  REQUIRE_GPU();
  const Tensor a = Tensor::ones({2, 2});
  const Tensor b = Tensor::ones({2, 2}, DType::Float32, Device::gpu());
  try {
    matmul(a, b);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("cpu"), std::string::npos) << what;
    EXPECT_NE(what.find("cuda:0"), std::string::npos) << what;
  }
}

TEST(CudaAllocator, NothingLiveAfterTensorsDie) {
  REQUIRE_GPU();
  const Device d = Device::gpu();
  gpu().synchronize();
  const MemoryStats before = memory_stats(d);
  {
    Generator gen(1);
    Tensor x = Tensor::uniform({64, 32, 32, 3}, 0, 1, gen, DType::Float32, d);
    Tensor k = leaf(Tensor::uniform({3, 3, 3, 32}, -0.1, 0.1, gen), d);
    Tensor loss = mean(max_pool2d(relu(conv2d(x, k)), {2, 2}, {2, 2}));
    loss.backward();
    const MemoryStats during = memory_stats(d);
    EXPECT_GT(during.in_use, before.in_use);
    EXPECT_GE(during.peak, during.in_use);
  }
  const MemoryStats after = memory_stats(d);
  EXPECT_EQ(after.in_use, before.in_use);
  EXPECT_EQ(after.allocations, before.allocations);
  EXPECT_GT(after.cached, 0u);  // blocks are kept for the next step
  empty_cache(d);
  EXPECT_EQ(memory_stats(d).cached, 0u);
}

TEST(CudaAllocator, SteadyStateReusesBlocks) {
  REQUIRE_GPU();
  auto& a = gpu().allocator();
  void* p = a.allocate(1000);
  a.deallocate(p, 1000);
  const std::size_t cached = a.stats().cached;
  void* q = a.allocate(1000);  // served from the cache: nothing new from the driver
  EXPECT_EQ(a.stats().cached, cached - 1024);
  a.deallocate(q, 1000);
}

TEST(CudaAllocator, OutOfMemorySaysWhatToDo) {
  REQUIRE_GPU();
  const std::size_t huge = std::size_t(1) << 50;  // 1 PiB
  try {
    gpu().allocator().allocate(huge);
    FAIL() << "expected OutOfMemoryError";
  } catch (const OutOfMemoryError& e) {
    EXPECT_EQ(e.requested_bytes(), huge);
    const std::string what = e.what();
    EXPECT_NE(what.find("free of"), std::string::npos) << what;
    EXPECT_NE(what.find("batch_size"), std::string::npos) << what;
  }
  // The GPU still works afterwards.
  DevBuf b(std::vector<float>{1.f, 2.f});
  EXPECT_EQ(b.get<float>(), (std::vector<float>{1.f, 2.f}));
}
