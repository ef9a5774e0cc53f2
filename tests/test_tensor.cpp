// Tensor basics: creation, views sharing storage, conversion, printing and their errors.
#include <gtest/gtest.h>

#include <sstream>

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
