// The 16-bit float storage types (float16, bfloat16): exact casts both ways with round-to-nearest-
// even, NaN/inf, factories, printing, device moves, safetensors and .npy bytes, and the errors of the
// kernels written for C++ arithmetic types, which refuse them.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <sstream>

#include "backend/dtype_dispatch.h"
#include "io/safetensors.h"
#include "kiln/io/numpy.h"
#include "kiln/kiln.h"
#include "test_support.h"

namespace kiln {
namespace {

using testing::message_of;
using Bytes = std::vector<uint8_t>;

// The 16-bit patterns of a CPU tensor of float16 or bfloat16, in element order.
std::vector<uint16_t> bits_of(const Tensor& t) {
  EXPECT_EQ(dtype_size(t.dtype()), 2u);
  const Tensor c = t.cpu();
  std::vector<uint16_t> out(static_cast<std::size_t>(c.numel()));
  std::memcpy(out.data(), c.raw_data(), out.size() * 2);
  return out;
}

// A CPU tensor of `dtype` holding exactly the 16-bit patterns `bits`.
Tensor from_bits(const std::vector<uint16_t>& bits, DType dtype) {
  Tensor t = Tensor::empty({static_cast<int64_t>(bits.size())}, dtype);
  std::memcpy(t.raw_data(), bits.data(), bits.size() * 2);
  return t;
}

Tensor f32(const std::vector<float>& v) { return Tensor::from_vector(v); }

class HalfTypes : public testing::CpuTestInFolder {};

TEST_F(HalfTypes, NamesSizesAndFloatingness) {
  EXPECT_EQ(dtype_name(DType::Float16), "float16");
  EXPECT_EQ(dtype_name(DType::BFloat16), "bfloat16");
  EXPECT_EQ(dtype_size(DType::Float16), 2u);
  EXPECT_EQ(dtype_size(DType::BFloat16), 2u);
  EXPECT_TRUE(is_floating(DType::Float16));
  EXPECT_TRUE(is_floating(DType::BFloat16));
  EXPECT_EQ(Tensor::zeros({3, 2}, DType::BFloat16).nbytes(), 12u);
}

TEST_F(HalfTypes, ExactValuesCastToFloat16AndBack) {
  // 1, -2, 0.5, the largest finite (65504), the smallest subnormal (2^-24), -0.
  const Tensor h = f32({1.0f, -2.0f, 0.5f, 65504.0f, std::ldexp(1.0f, -24), -0.0f}).astype(DType::Float16);
  EXPECT_EQ(h.dtype(), DType::Float16);
  EXPECT_EQ(bits_of(h), (std::vector<uint16_t>{0x3C00, 0xC000, 0x3800, 0x7BFF, 0x0001, 0x8000}));
  EXPECT_EQ(h.astype(DType::Float32).to_vector<float>(),
            (std::vector<float>{1.0f, -2.0f, 0.5f, 65504.0f, std::ldexp(1.0f, -24), -0.0f}));
  EXPECT_TRUE(std::signbit(h.to_vector<double>()[5]));
}

TEST_F(HalfTypes, ExactValuesCastToBFloat16AndBack) {
  const Tensor b = f32({1.0f, -2.0f, 0.5f, 3.140625f, -0.0f}).astype(DType::BFloat16);
  EXPECT_EQ(b.dtype(), DType::BFloat16);
  EXPECT_EQ(bits_of(b), (std::vector<uint16_t>{0x3F80, 0xC000, 0x3F00, 0x4049, 0x8000}));
  EXPECT_EQ(b.to_vector<float>(), (std::vector<float>{1.0f, -2.0f, 0.5f, 3.140625f, -0.0f}));
}

TEST_F(HalfTypes, Float16RoundsToNearestEven) {
  const float ulp = std::ldexp(1.0f, -10);  // float16's spacing in [1, 2)
  const Tensor h = f32({1.0f + ulp / 2, 1.0f + 3 * ulp / 2, 1.0f + ulp / 2 + ulp / 8, 65519.0f, 65520.0f, -65520.0f})
                       .astype(DType::Float16);
  // Ties go to the even pattern (0x3C00, 0x3C02); above a tie rounds up; 65519 stays finite;
  // 65520 is the tie between 65504 and 65536 (past the range): it overflows to inf.
  EXPECT_EQ(bits_of(h), (std::vector<uint16_t>{0x3C00, 0x3C02, 0x3C01, 0x7BFF, 0x7C00, 0xFC00}));
  const std::vector<double> v = h.to_vector<double>();
  EXPECT_EQ(v[1], 1.001953125);
  EXPECT_TRUE(std::isinf(v[4]) && v[4] > 0);
  EXPECT_TRUE(std::isinf(v[5]) && v[5] < 0);
}

TEST_F(HalfTypes, BFloat16RoundsToNearestEven) {
  const float ulp = std::ldexp(1.0f, -7);  // bfloat16's spacing in [1, 2)
  const Tensor b = f32({3.14159f, 1.0f + ulp / 2, 1.0f + 3 * ulp / 2, std::numeric_limits<float>::max(), 65520.0f})
                       .astype(DType::BFloat16);
  EXPECT_EQ(bits_of(b), (std::vector<uint16_t>{0x4049, 0x3F80, 0x3F82, 0x7F80, 0x4780}));
  const std::vector<double> v = b.to_vector<double>();
  EXPECT_EQ(v[0], 3.140625);
  EXPECT_EQ(v[2], 1.015625);
  EXPECT_TRUE(std::isinf(v[3]));  // float32's largest rounds up past bfloat16's largest
  EXPECT_EQ(v[4], 65536.0);       // bfloat16 has float32's range: no overflow here
}

TEST_F(HalfTypes, NanAndInfinityArePreserved) {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (const DType dt : {DType::Float16, DType::BFloat16}) {
    const Tensor t = f32({inf, -inf, nan}).astype(dt);
    const std::vector<uint16_t> bits = bits_of(t);
    const uint16_t exp_mask = dt == DType::Float16 ? 0x7C00 : 0x7F80;
    EXPECT_EQ(bits[0], exp_mask) << dtype_name(dt);
    EXPECT_EQ(bits[1], 0x8000 | exp_mask) << dtype_name(dt);
    EXPECT_EQ(bits[2] & exp_mask, exp_mask) << dtype_name(dt);
    EXPECT_NE(bits[2] & ~exp_mask & 0x7FFF, 0) << dtype_name(dt);  // a NaN, not an infinity
    for (const DType back : {DType::Float32, DType::Float64}) {
      const std::vector<double> v = t.astype(back).to_vector<double>();
      EXPECT_EQ(v[0], inf);
      EXPECT_EQ(v[1], -inf);
      EXPECT_TRUE(std::isnan(v[2]));
    }
  }
}

TEST_F(HalfTypes, CastsFromAndToEveryOtherDtype) {
  // float64: rounding 1 + 2^-11 + 2^-30 (just above the tie) must go up, as a single rounding does.
  const Tensor d = Tensor::from_vector(std::vector<double>{1.0 + std::ldexp(1.0, -11) + std::ldexp(1.0, -30), 1e10});
  EXPECT_EQ(bits_of(d.astype(DType::Float16)), (std::vector<uint16_t>{0x3C01, 0x7C00}));
  // int32: spacing 2 in [2048, 4096): 2049 ties to 2048, 2051 ties to 2052.
  const Tensor i = Tensor::from_vector(std::vector<int32_t>{2049, 2051, -7});
  EXPECT_EQ(i.astype(DType::Float16).to_vector<int32_t>(), (std::vector<int32_t>{2048, 2052, -7}));
  EXPECT_EQ(i.astype(DType::BFloat16).to_vector<int32_t>(), (std::vector<int32_t>{2048, 2048, -7}));
  // Integers past float's 24 bits round once too: 2^24 + 2^16 + 1 lies just above a bfloat16 tie
  // (rounding through float first would give the tie 2^24 + 2^16, then 2^24).
  EXPECT_EQ(Tensor::from_vector(std::vector<int32_t>{16842753}).astype(DType::BFloat16).to_vector<int32_t>(),
            (std::vector<int32_t>{16908288}));
  const int64_t big = (int64_t{1} << 40) + (int64_t{1} << 32) + 1;
  const Tensor l = Tensor::from_vector(std::vector<int64_t>{int64_t{1} << 40, -big, 3});
  EXPECT_EQ(l.astype(DType::BFloat16).to_vector<int64_t>(),
            (std::vector<int64_t>{int64_t{1} << 40, -((int64_t{1} << 40) + (int64_t{1} << 33)), 3}));
  const Tensor u = Tensor::from_vector(std::vector<uint8_t>{0, 200, 255});
  EXPECT_EQ(bits_of(u.astype(DType::Float16)), (std::vector<uint16_t>{0x0000, 0x5A40, 0x5BF8}));
  // Back to integers truncates toward zero, as a float32 cast does.
  const Tensor h = f32({2.5f, -1.5f, 200.0f}).astype(DType::Float16);
  EXPECT_EQ(h.astype(DType::Int32).to_vector<int32_t>(), (std::vector<int32_t>{2, -1, 200}));
  EXPECT_EQ(h.astype(DType::Int64).to_vector<int64_t>(), (std::vector<int64_t>{2, -1, 200}));
  EXPECT_EQ(f32({200.0f, 7.0f}).astype(DType::BFloat16).astype(DType::UInt8).to_vector<uint8_t>(),
            (std::vector<uint8_t>{200, 7}));
  EXPECT_EQ(h.astype(DType::Float64).to_vector<double>(), (std::vector<double>{2.5, -1.5, 200.0}));
  // Between the two 16-bit types: 3.140625 is exact in both; 1 + 2^-10 is below bfloat16's half ulp.
  EXPECT_EQ(bits_of(from_bits({0x4049}, DType::BFloat16).astype(DType::Float16)), (std::vector<uint16_t>{0x4248}));
  EXPECT_EQ(bits_of(from_bits({0x3C01}, DType::Float16).astype(DType::BFloat16)), (std::vector<uint16_t>{0x3F80}));
  // A cast to the same dtype is the tensor itself.
  EXPECT_EQ(bits_of(h.astype(DType::Float16)), bits_of(h));
}

TEST_F(HalfTypes, FactoriesFillAndReadBack) {
  EXPECT_EQ(bits_of(Tensor::zeros({2}, DType::Float16)), (std::vector<uint16_t>{0x0000, 0x0000}));
  EXPECT_EQ(bits_of(Tensor::ones({2}, DType::BFloat16)), (std::vector<uint16_t>{0x3F80, 0x3F80}));
  EXPECT_EQ(bits_of(Tensor::full({1}, 1e6, DType::Float16)), (std::vector<uint16_t>{0x7C00}));
  EXPECT_EQ(bits_of(Tensor::full({1}, 3.14159, DType::BFloat16)), (std::vector<uint16_t>{0x4049}));
  EXPECT_EQ(Tensor::full({}, -0.25, DType::Float16).item(), -0.25);
  Tensor t = Tensor::zeros({3}, DType::BFloat16);
  t.fill_(-3.0);
  EXPECT_EQ(t.to_vector<float>(), (std::vector<float>{-3.0f, -3.0f, -3.0f}));
  // Random factories draw as float64 does and round once.
  Generator g1(7), g2(7);
  const Tensor r16 = Tensor::uniform({5}, -1.0, 1.0, g1, DType::Float16);
  const Tensor r64 = Tensor::uniform({5}, -1.0, 1.0, g2, DType::Float64);
  EXPECT_EQ(bits_of(r16), bits_of(r64.astype(DType::Float16)));
  Generator g3(9), g4(9);
  EXPECT_EQ(bits_of(Tensor::randn({4}, g3, DType::BFloat16)),
            bits_of(Tensor::randn({4}, g4, DType::Float64).astype(DType::BFloat16)));
}

TEST_F(HalfTypes, CopiesViewsAndLayoutOps) {
  const Tensor h = f32({1, 2, 3, 4, 5, 6}).astype(DType::Float16).reshape({3, 2});
  const Tensor c = h.clone();
  EXPECT_EQ(c.dtype(), DType::Float16);
  EXPECT_EQ(bits_of(c), bits_of(h));
  EXPECT_EQ(h.slice_rows(1, 3).to_vector<float>(), (std::vector<float>{3, 4, 5, 6}));
  Tensor dst = Tensor::zeros({3, 2}, DType::Float16);
  dst.copy_(h);
  EXPECT_EQ(dst.to_vector<float>(), (std::vector<float>{1, 2, 3, 4, 5, 6}));
  // A strided copy moves elements without arithmetic, so it takes the 16-bit types.
  EXPECT_EQ(permute(h.astype(DType::BFloat16), {1, 0}).to_vector<float>(), (std::vector<float>{1, 3, 5, 2, 4, 6}));
}

TEST_F(HalfTypes, PrintsValuesAndDtype) {
  std::ostringstream a, b;
  a << f32({1.5f, -0.25f, 65504.0f, 1e6f}).astype(DType::Float16);
  EXPECT_EQ(a.str(), "Tensor([1.5, -0.25, 65504, inf], shape=[4], dtype=float16, device=cpu)");
  b << Tensor::full({}, 3.14159, DType::BFloat16);
  EXPECT_EQ(b.str(), "Tensor(3.14062, shape=[], dtype=bfloat16, device=cpu)");
}

TEST_F(HalfTypes, ArithmeticTypeKernelsRefuseThem) {
  // The floating ops compute on them (test_half_compute.cpp); kernels written for C++ arithmetic
  // types refuse them rather than read their bytes as another type.
  EXPECT_EQ(message_of([] { backend::with_any_type(DType::BFloat16, [](auto) {}); }),
            "[dtype] no kernel for bfloat16; expected float32, float64, int32, uint8 or int64 (16-bit floats are "
            "storage types: cast them with astype)");
}

// A safetensors file written by hand: F16 [1, -2] then BF16 [1, 3.140625], little-endian.
Bytes hand_written_safetensors() {
  const std::string header =
      R"({"h":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},"b":{"dtype":"BF16","shape":[2],"data_offsets":[4,8]}})";
  Bytes out(8);
  const uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  out.insert(out.end(), header.begin(), header.end());
  for (const uint8_t byte : {0x00, 0x3C, 0x00, 0xC0, 0x80, 0x3F, 0x49, 0x40}) out.push_back(byte);
  return out;
}

TEST_F(HalfTypes, SafetensorsReadsF16AndBF16) {
  const Bytes file = hand_written_safetensors();
  const io::SafetensorsView view = io::parse_safetensors(file, "hand.safetensors");
  const Tensor h = io::to_tensor(*view.find("h"));
  const Tensor b = io::to_tensor(*view.find("b"));
  EXPECT_EQ(h.dtype(), DType::Float16);
  EXPECT_EQ(b.dtype(), DType::BFloat16);
  EXPECT_EQ(h.to_vector<float>(), (std::vector<float>{1.0f, -2.0f}));
  EXPECT_EQ(b.to_vector<float>(), (std::vector<float>{1.0f, 3.140625f}));
}

TEST_F(HalfTypes, SafetensorsWritesF16AndBF16) {
  const Tensor h = f32({1.0f, -2.0f}).astype(DType::Float16);
  const Tensor b = f32({1.0f, 3.140625f}).astype(DType::BFloat16);
  const Bytes bytes = io::serialize_safetensors({{"h", h}, {"b", b}}, {});
  uint64_t header_len = 0;
  ASSERT_GE(bytes.size(), 8u);
  std::memcpy(&header_len, bytes.data(), 8);
  ASSERT_EQ(bytes.size(), 8 + header_len + 8);
  const std::string header(bytes.begin() + 8, bytes.begin() + 8 + static_cast<std::ptrdiff_t>(header_len));
  EXPECT_NE(header.find(R"("dtype":"F16")"), std::string::npos) << header;
  EXPECT_NE(header.find(R"("dtype":"BF16")"), std::string::npos) << header;
  const Bytes data(bytes.end() - 8, bytes.end());
  EXPECT_EQ(data, (Bytes{0x00, 0x3C, 0x00, 0xC0, 0x80, 0x3F, 0x49, 0x40}));
  // Through a file and back: the same dtypes and bits.
  io::write_safetensors(path("w.safetensors"), {{"h", h}, {"b", b}}, {});
  const io::SafetensorsFile f = io::read_safetensors(path("w.safetensors"));
  EXPECT_EQ(bits_of(io::to_tensor(*f.view.find("h"))), (std::vector<uint16_t>{0x3C00, 0xC000}));
  EXPECT_EQ(bits_of(io::to_tensor(*f.view.find("b"))), (std::vector<uint16_t>{0x3F80, 0x4049}));
  EXPECT_EQ(io::to_tensor(*f.view.find("b")).dtype(), DType::BFloat16);
}

TEST_F(HalfTypes, NpyRoundTripsFloat16AndRefusesBFloat16) {
  const Tensor h = f32({1.0f, -2.0f, 0.5f}).astype(DType::Float16);
  io::save_npy(path("h.npy"), h);
  std::ifstream in(path("h.npy"), std::ios::binary);
  const Bytes raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string text(raw.begin(), raw.end());
  EXPECT_NE(text.find("'descr': '<f2'"), std::string::npos);
  ASSERT_GE(raw.size(), 6u);
  EXPECT_EQ(Bytes(raw.end() - 6, raw.end()), (Bytes{0x00, 0x3C, 0x00, 0xC0, 0x00, 0x38}));
  const Tensor back = io::load_npy(path("h.npy"));
  EXPECT_EQ(back.dtype(), DType::Float16);
  EXPECT_EQ(back.shape(), (Shape{3}));
  EXPECT_EQ(bits_of(back), (std::vector<uint16_t>{0x3C00, 0xC000, 0x3800}));
  EXPECT_EQ(message_of([&] { io::save_npy(path("b.npy"), h.astype(DType::BFloat16)); }),
            "[save_npy] NumPy has no bfloat16 dtype; expected float16, float32, float64, int32, int64 or uint8 (cast "
            "with astype(float32) first)");
}

TEST_F(HalfTypes, MovesToTheGpuAndCastsThere) {
  if (test::gpu_device_name().empty()) GTEST_SKIP() << "no usable GPU";
  const Device gpu = Device::gpu(0);
  const float ulp = std::ldexp(1.0f, -10);
  const Tensor x = f32({1.0f + ulp / 2, 1.0f + 3 * ulp / 2, 65520.0f, 3.14159f, std::numeric_limits<float>::infinity(),
                        std::numeric_limits<float>::quiet_NaN()});
  for (const DType dt : {DType::Float16, DType::BFloat16}) {
    const Tensor on_cpu = x.astype(dt);
    const Tensor on_gpu = x.to(gpu).astype(dt);
    EXPECT_EQ(on_gpu.device(), gpu);
    EXPECT_EQ(bits_of(on_gpu.cpu()).size(), 6u);
    const std::vector<uint16_t> a = bits_of(on_cpu), b = bits_of(on_gpu.cpu());
    for (std::size_t i = 0; i + 1 < a.size(); ++i) EXPECT_EQ(a[i], b[i]) << dtype_name(dt) << " element " << i;
    EXPECT_TRUE(std::isnan(on_gpu.to_vector<double>()[5]));
    EXPECT_EQ(bits_of(on_cpu.to(gpu)), a);  // a byte copy
    EXPECT_EQ(on_gpu.astype(DType::Float32).cpu().to_vector<float>()[3], on_cpu.to_vector<float>()[3]);
    EXPECT_EQ(bits_of(Tensor::full({2}, 3.14159, dt, gpu)), bits_of(Tensor::full({2}, 3.14159, dt)));
  }
}

TEST_F(HalfTypes, FitEvaluateAndPredictCastSixteenBitDataToFloat32) {
  // Values exact in both 16-bit types, so float32 data of the same values must train and predict
  // bit for bit alike: the 16-bit tensors are cast on the way in (Keras casts to the layer's dtype).
  const std::vector<float> xs = {0.5F, -1.25F, 2.0F, 0.75F, -0.5F, 1.5F, 3.0F, -2.0F, 0.25F, 1.0F, -1.0F, 0.125F};
  const std::vector<float> ys = {1.0F, -0.5F, 0.25F, 2.0F, -1.5F, 0.5F, 1.25F, -0.75F};
  const Tensor x = Tensor::from_vector(xs, {4, 3}), y = Tensor::from_vector(ys, {4, 2});
  auto trained = [](const Tensor& in, const Tensor& out) {
    utils::set_random_seed(5);
    auto m = std::make_unique<Sequential>(
        std::vector<LayerRef>{layers::Dense(4, {.activation = "relu", .input_shape = {3}}), layers::Dense(2)});
    m->compile("sgd", "mean_squared_error");
    m->fit(in, out, {.batch_size = 2, .epochs = 2, .verbose = 0, .shuffle = false});
    return m;
  };
  const auto plain = trained(x, y);
  const auto half = trained(x.astype(DType::BFloat16), y.astype(DType::Float16));
  EXPECT_EQ(half->predict(x.astype(DType::Float16)).to_vector<float>(), plain->predict(x).to_vector<float>());
  EXPECT_EQ(half->evaluate(x.astype(DType::BFloat16), y.astype(DType::BFloat16), {.verbose = 0}),
            plain->evaluate(x, y, {.verbose = 0}));
}

}  // namespace
}  // namespace kiln
