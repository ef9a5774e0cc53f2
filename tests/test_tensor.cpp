// Tensor basics: creation, views sharing storage, conversion, printing and their errors.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "kiln/kiln.h"

using namespace kiln;

TEST(Tensor, FactoriesFillAndShape) {
  const Tensor z = Tensor::zeros({2, 3});
  EXPECT_EQ(z.shape(), (Shape{2, 3}));
  EXPECT_EQ(z.numel(), 6);
  EXPECT_EQ(z.dtype(), DType::Float32);
  EXPECT_TRUE(z.device().is_cpu());
  for (float v : z.to_vector<float>()) EXPECT_EQ(v, 0.0f);
  const Tensor f = Tensor::full({4}, 2.5, DType::Float64);
  for (double v : f.to_vector<double>()) EXPECT_EQ(v, 2.5);
  const Tensor i = Tensor::from_vector<int32_t>({1, -2, 3}, {3});
  EXPECT_EQ(i.dtype(), DType::Int32);
  EXPECT_EQ(i.to_vector<int32_t>(), (std::vector<int32_t>{1, -2, 3}));
}

TEST(Tensor, FromVectorSizeMismatchNamesBoth) {
  try {
    Tensor::from_vector<float>({1, 2, 3}, {2, 2});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "[tensor] 3 values cannot fill shape [2, 2]; expected 4");
  }
}

TEST(Tensor, ReshapeAndSliceShareStorage) {
  Tensor t = Tensor::from_vector<float>({0, 1, 2, 3, 4, 5}, {3, 2});
  Tensor r = t.reshape({2, -1});
  EXPECT_EQ(r.shape(), (Shape{2, 3}));
  Tensor rows = t.slice_rows(1, 3);
  EXPECT_EQ(rows.to_vector<float>(), (std::vector<float>{2, 3, 4, 5}));
  rows.data<float>()[0] = 42;  // writes through to the original
  EXPECT_EQ(t.to_vector<float>()[2], 42);
  EXPECT_EQ(r.to_vector<float>()[2], 42);
  EXPECT_THROW(t.slice_rows(2, 4), Error);
  EXPECT_THROW(t.reshape({4, 2}), Error);
}

TEST(Tensor, ReshapeErrorNamesShapes) {
  const Tensor t = Tensor::zeros({2, 3});
  try {
    t.reshape({4, 2});
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "[reshape] cannot view [2, 3] (6 elements) as [4, 2]; expected the same number of elements");
  }
}

TEST(Tensor, CloneIsDeepAndAstypeConverts) {
  Tensor t = Tensor::from_vector<float>({1.5f, -2.5f}, {2});
  Tensor c = t.clone();
  c.data<float>()[0] = 9;
  EXPECT_EQ(t.to_vector<float>()[0], 1.5f);
  EXPECT_EQ(t.astype(DType::Int32).to_vector<int32_t>(), (std::vector<int32_t>{1, -2}));
  EXPECT_EQ(t.astype(DType::Float64).dtype(), DType::Float64);
}

TEST(Tensor, DataWithWrongTypeThrows) {
  Tensor t = Tensor::zeros({2});
  EXPECT_THROW(t.data<double>(), Error);
  EXPECT_THROW(Tensor().shape(), Error);
}

TEST(Tensor, ItemNeedsOneElement) {
  EXPECT_EQ(Tensor::full({1, 1}, 3.0).item(), 3.0);
  try {
    Tensor::zeros({2}).item();
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "[item] tensor of shape [2] has 2 elements; expected exactly one");
  }
}

TEST(Tensor, PrintsNestedAndElided) {
  const Tensor t = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  EXPECT_EQ(t.str(), "[[1, 2, 3],\n [4, 5, 6]]");
  std::ostringstream os;
  os << Tensor::from_vector<int32_t>({7}, {1});
  EXPECT_EQ(os.str(), "Tensor([7], shape=[1], dtype=int32, device=cpu)");
  std::vector<float> many(100);
  EXPECT_EQ(Tensor::from_vector(many).str(4), "[0, 0, ..., 0, 0]");
}

TEST(Tensor, SameSeedSameUniformValues) {
  Generator a(7), b(7);
  EXPECT_EQ(Tensor::uniform({5}, -1, 1, a).to_vector<float>(), Tensor::uniform({5}, -1, 1, b).to_vector<float>());
}

TEST(Tensor, DeviceParsing) {
  EXPECT_EQ(Device::parse("cpu"), Device::cpu());
  EXPECT_EQ(Device::parse("gpu"), Device::gpu(0));
  EXPECT_EQ(Device::parse("/device:GPU:1"), Device::gpu(1));
  EXPECT_EQ(Device::parse("cuda:2").str(), "cuda:2");
  try {
    Device::parse("tpu");
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "[device] unknown device 'tpu'; expected cpu, gpu, gpu:N, cuda:N or /device:GPU:N");
  }
}

TEST(Tensor, NothingLiveAfterTensorsDie) {
  const auto before = memory_stats(Device::cpu()).in_use;
  {
    Tensor a = Tensor::ones({100, 100});
    Tensor b = a.reshape({10000}).slice_rows(0, 10);
    EXPECT_GE(memory_stats(Device::cpu()).in_use, before + 40000);
  }
  EXPECT_EQ(memory_stats(Device::cpu()).in_use, before);
}

namespace {

// What the OutOfMemoryError that `make` throws says (thrown is false when it throws none).
struct OomResult {
  bool thrown = false;
  std::size_t requested = 0;
  std::string what;
};
OomResult out_of_memory_of(const std::function<void()>& make) {
  try {
    make();
  } catch (const OutOfMemoryError& e) {
    return {true, e.requested_bytes(), e.what()};
  }
  return {};
}

// Tensor::uniform and randn as they were first written: every value drawn into a vector of
// doubles, then converted to the dtype. The in-place fill must give the same bits.
template <typename T>
std::vector<T> drawn_the_old_way(int64_t n, Generator& gen, bool normal, double low = 0, double high = 1) {
  std::vector<double> v(static_cast<std::size_t>(n));
  for (double& x : v) x = normal ? gen.normal() : low + (high - low) * gen.uniform();
  return std::vector<T>(v.begin(), v.end());
}

template <typename T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

}  // namespace

TEST(Tensor, ImpossibleSizeRaisesOutOfMemoryNamingTheBytes) {
  const int64_t n = int64_t(1) << 50;                      // 2^50 floats: 4 PiB, more than any machine's memory
  const Shape square{int64_t(1) << 25, int64_t(1) << 25};  // as many, in two dimensions
  const std::size_t bytes = std::size_t(1) << 52;
  Generator gen(1);
  const std::pair<const char*, std::function<void()>> factories[] = {
      {"zeros", [&] { Tensor::zeros({n}); }},
      {"empty", [&] { Tensor::empty({n}); }},
      {"uniform", [&] { Tensor::uniform({n}, -1, 1, gen); }},
      {"randn", [&] { Tensor::randn({n}, gen); }},
      {"uniform 2-D", [&] { Tensor::uniform(square, -1, 1, gen); }},
  };
  for (const auto& [name, make] : factories) {
    const OomResult r = out_of_memory_of(make);
    ASSERT_TRUE(r.thrown) << name << ": expected OutOfMemoryError";
    EXPECT_EQ(r.requested, bytes) << name;
    EXPECT_NE(r.what.find("[cpu] out of memory on the CPU: could not allocate 4294967296.0 MiB (requested " +
                          std::to_string(bytes) + " bytes)"),
              std::string::npos)
        << name << ": " << r.what;
    EXPECT_NE(r.what.find("expected a smaller batch_size"), std::string::npos) << r.what;
  }
  // Nothing was drawn for the tensor that could not be made: the generator is where it was.
  Generator fresh(1);
  EXPECT_EQ(gen.uniform(), fresh.uniform());
  // Normal sizes still work afterwards.
  EXPECT_EQ(Tensor::zeros({3}).to_vector<float>(), (std::vector<float>{0, 0, 0}));
}

TEST(Tensor, SizeBeyondWhatSizeTCountsIsOutOfMemoryNotAWrappedSize) {
  // 2^62 floats are 2^64 bytes: computed in size_t, 0. The factory must refuse, not hand out a
  // tiny block that the fill then writes past.
  const OomResult r = out_of_memory_of([] { Tensor::zeros({int64_t(1) << 31, int64_t(1) << 31}); });
  ASSERT_TRUE(r.thrown);
  EXPECT_EQ(r.requested, std::numeric_limits<std::size_t>::max());
  EXPECT_EQ(r.what,
            "[tensor] shape [2147483648, 2147483648] of float32 needs more bytes than a size_t counts; expected a "
            "smaller tensor");
  // Likewise a request so close to SIZE_MAX that rounding it up to the alignment wraps around.
  const std::size_t near_max = std::numeric_limits<std::size_t>::max() - 3;
  const OomResult a = out_of_memory_of([&] { backend::cpu().allocator().allocate(near_max); });
  ASSERT_TRUE(a.thrown);
  EXPECT_EQ(a.requested, near_max);
}

TEST(Tensor, UniformAndRandnDrawTheSameValuesAsBefore) {
  // Existing seeds must keep giving the same initial weights, in every dtype.
  for (const uint64_t seed : {0ull, 7ull, 12345ull}) {
    const int64_t n = 70001;  // past one host chunk of a GPU fill, on the CPU all in place
    Generator a(seed), b(seed);
    EXPECT_TRUE(same_bits(Tensor::uniform({n}, -0.3, 0.7, a).to_vector<float>(),
                          drawn_the_old_way<float>(n, b, false, -0.3, 0.7)))
        << seed;
    EXPECT_TRUE(same_bits(Tensor::uniform({7, 11}, -2, 5, a, DType::Float64).to_vector<double>(),
                          drawn_the_old_way<double>(77, b, false, -2, 5)))
        << seed;
    EXPECT_EQ(Tensor::uniform({50}, 0, 100, a, DType::Int32).to_vector<int32_t>(),
              drawn_the_old_way<int32_t>(50, b, false, 0, 100))
        << seed;
    EXPECT_TRUE(same_bits(Tensor::randn({3, 1000}, a).to_vector<float>(), drawn_the_old_way<float>(3000, b, true)))
        << seed;
    EXPECT_TRUE(
        same_bits(Tensor::randn({999}, a, DType::Float64).to_vector<double>(), drawn_the_old_way<double>(999, b, true)))
        << seed;
    EXPECT_EQ(a.uniform(), b.uniform()) << seed;  // and both generators are left in the same state
  }
}
