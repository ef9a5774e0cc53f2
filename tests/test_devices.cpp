// Device discovery: never throws, always explains itself, and KILN_DEVICE=cpu hides the GPUs.
#include <gtest/gtest.h>

#include <string>

#include "kiln/kiln.h"
#include "test_support.h"

using namespace kiln;
using kiln::testing::ScopedEnv;

TEST(Devices, DiscoveryNeverThrows) {
  EXPECT_NO_THROW(config::list_physical_devices());
  EXPECT_NO_THROW(config::list_physical_devices("GPU"));
  EXPECT_NO_THROW(test::gpu_device_name());
  EXPECT_NO_THROW(list_local_devices());
  EXPECT_NO_THROW(build_info());
  EXPECT_NO_THROW(gpu_verdict());
  EXPECT_NO_THROW(default_device());
}

TEST(Devices, CpuIsAlwaysListedFirst) {
  const auto cpus = config::list_physical_devices("CPU");
  ASSERT_EQ(cpus.size(), 1u);
  EXPECT_EQ(cpus[0].name, "/physical_device:CPU:0");
  const auto local = list_local_devices();
  ASSERT_FALSE(local.empty());
  EXPECT_EQ(local[0].name, "/device:CPU:0");
  EXPECT_EQ(local[0].device_type, "CPU");
}

TEST(Devices, VerdictExplainsItself) {
  const GpuVerdict v = gpu_verdict();
  EXPECT_FALSE(v.summary.empty());
  if (v.usable) {
    EXPECT_TRUE(v.action.empty());
    EXPECT_EQ(test::gpu_device_name(), "/device:GPU:0");
    EXPECT_TRUE(default_device().is_cuda());
  } else {
    EXPECT_FALSE(v.action.empty()) << v.summary;
    EXPECT_EQ(test::gpu_device_name(), "");
    EXPECT_TRUE(default_device().is_cpu());
  }
}

TEST(Devices, GpusAgreeAcrossTheThreeChecks) {
  const auto gpus = config::list_physical_devices("GPU");
  std::size_t local_gpus = 0;
  for (const auto& d : list_local_devices()) {
    if (d.device_type != "GPU") continue;
    ++local_gpus;
    EXPECT_GT(d.memory_limit, 0u);
    EXPECT_NE(d.physical_device_desc.find("compute capability: "), std::string::npos) << d.physical_device_desc;
    EXPECT_FALSE(d.gpu_name.empty());
  }
  EXPECT_EQ(gpus.size(), local_gpus);
  EXPECT_EQ(gpus.empty(), test::gpu_device_name().empty());
}

TEST(Devices, BuildInfoMatchesTheBuild) {
  const BuildInfo info = build_info();
  EXPECT_FALSE(info.kiln_version.empty());
  EXPECT_EQ(info.built_with_cuda, test::is_built_with_cuda());
  if (info.built_with_cuda) {
    EXPECT_FALSE(info.cuda_runtime_built.empty());
    EXPECT_FALSE(info.cudnn_built.empty());
    EXPECT_FALSE(info.cublas_built.empty());
    EXPECT_FALSE(info.cuda_architectures.empty());
  } else {
    EXPECT_NE(gpu_verdict().summary.find("without CUDA"), std::string::npos);
  }
  if (gpu_verdict().usable) {
    EXPECT_FALSE(info.cudnn_loaded.empty());
    EXPECT_FALSE(info.cuda_driver.empty());
  }
}

TEST(Devices, KilnDeviceCpuHidesGpus) {
  ScopedEnv env("KILN_DEVICE", "cpu");
  EXPECT_EQ(test::gpu_device_name(), "");
  EXPECT_TRUE(config::list_physical_devices("GPU").empty());
  EXPECT_EQ(list_local_devices().size(), 1u);
  EXPECT_TRUE(default_device().is_cpu());
  const GpuVerdict v = gpu_verdict();
  EXPECT_FALSE(v.usable);
  if (test::is_built_with_cuda()) {
    EXPECT_NE(v.summary.find("KILN_DEVICE=cpu"), std::string::npos) << v.summary;
  }
}

TEST(Devices, GpuRequestWithoutGpuNamesTheReason) {
  if (gpu_verdict().usable) GTEST_SKIP() << "a GPU is usable here; this checks the error where none is";
  try {
    Tensor::zeros({2}, DType::Float32, Device::gpu());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_EQ(what.rfind("[cuda] GPU 0 requested, but ", 0), 0u) << what;
  }
}
