/// Runtime configuration and device discovery, in TensorFlow's names.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "kiln/device.h"

namespace kiln {

/// Threads used by CPU kernels, for the whole process: a call from any thread sets the count that
/// every thread's next CPU op uses (default: OMP_NUM_THREADS when set, else the cores this process
/// may run on). Results do not depend on it. Throws kiln::Error below 1.
void set_num_threads(int threads);
/// The process-wide CPU thread count.
int get_num_threads();

/// A device as TensorFlow's list_physical_devices reports it.
struct PhysicalDevice {
  std::string name;         ///< "/physical_device:GPU:0"
  std::string device_type;  ///< "GPU" or "CPU"
};

/// A device with its details, as device_lib.list_local_devices() reports it.
struct LocalDevice {
  std::string name;                  ///< "/device:GPU:0"
  std::string device_type;           ///< "GPU" or "CPU"
  std::size_t memory_limit = 0;      ///< bytes of device memory (0 for the CPU)
  std::string physical_device_desc;  ///< "device: 0, name: NVIDIA H100 80GB HBM3, compute capability: 9.0"
  std::string gpu_name;              ///< "NVIDIA H100 80GB HBM3" (empty for the CPU)
  int compute_major = 0;             ///< compute capability, major
  int compute_minor = 0;             ///< compute capability, minor
  int multiprocessors = 0;           ///< streaming multiprocessors
};

/// Versions kiln was built against and those found at run time ("" where not found).
struct BuildInfo {
  std::string kiln_version;                     ///< this library's version, as version() returns it
  bool built_with_cuda = false;                 ///< whether this build has the CUDA backend
  std::string cuda_runtime_built;               ///< "13.0"
  std::string cuda_runtime_loaded;              ///< the CUDA runtime found at run time
  std::string cuda_driver;                      ///< highest CUDA version the installed driver supports, "13.0"
  std::string cublas_built;                     ///< cuBLAS built against, "13.0.0"
  std::string cublas_loaded;                    ///< cuBLAS found at run time
  std::string cudnn_built;                      ///< cuDNN built against, "9.13.0"
  std::string cudnn_loaded;                     ///< cuDNN found at run time
  std::vector<std::string> cuda_architectures;  ///< the GPU code in this build, e.g. {"sm_90", "compute_90"}
};

/// Whether the GPU stack works, and if not, what is wrong and what to do.
struct GpuVerdict {
  bool usable = false;  ///< true when kiln can train on a GPU
  std::string summary;  ///< one sentence: "GPU 0 (NVIDIA H100 80GB HBM3) is usable" or the problem
  std::string action;   ///< what to do about it ("" when usable)
};

namespace config {
/// Physical devices of `device_type` ("GPU" or "CPU"); GPUs appear only when usable.
std::vector<PhysicalDevice> list_physical_devices(const std::string& device_type = "");

/// Lets float32 matrix products (cuBLAS, cuBLASLt: matmul, dense) and convolutions (cuDNN) on a GPU
/// use TF32 tensor-core math, as tf.config.experimental.enable_tensor_float_32_execution does.
/// TF32 keeps float32's range but only 10 mantissa bits of each input, so a product is off by about
/// 1e-3 relative instead of float32's 1e-7, and training curves differ slightly from float32 runs;
/// in return large products and convolutions run several times faster on Ampere and newer GPUs.
///
/// Disabled by default, unlike TensorFlow (and like PyTorch's matmul): kiln's default is exact
/// float32, matching the CPU to float32 rounding. Unaffected either way: float64, the CPU, and
/// kiln's own kernels (elementwise ops, reductions, pooling, the optimizers, and the direct
/// convolution filter-gradient kernel used for small filter sums), which always compute in float32.
///
/// Takes effect on every GPU, for work issued afterwards: the setting is read when a library plan
/// is made (each mode gets its own) and when a call is issued. A step that fit has recorded (a CUDA
/// graph) keeps the math it was recorded with until that fit call ends, so change the setting
/// between fit calls, not from a callback; changing it while a recording is under way throws
/// kiln::Error and changes nothing.
void enable_tensor_float_32_execution(bool enabled);
/// Whether TF32 execution is enabled (false unless enable_tensor_float_32_execution(true) was called).
bool tensor_float_32_execution_enabled();

/// Makes GPU results bit-for-bit repeatable (`enabled`), as tf.config.experimental.
/// enable_op_determinism does: convolutions then use only cuDNN algorithms that are deterministic.
/// Off by default: some of cuDNN's fastest algorithms (the filter gradient's, above all) add their
/// partial sums with atomics in whatever order the GPU runs them, so two runs of the same step may
/// differ in the last bits of float32 (bench/README.md measures what determinism costs). Either
/// way the algorithms sum products directly in float32 (no FFT or Winograd transforms, no TF32
/// unless enabled), so results match the CPU to float32 rounding.
///
/// Turn it on for bit-equal reruns: a recorded step equal to the eager one, a resumed run equal to
/// an uninterrupted one on a GPU, the same weights from the same seed in two processes. Unaffected:
/// the CPU (always deterministic), float64 and kiln's own kernels (elementwise ops, reductions,
/// pooling, the optimizers, and the direct filter-gradient kernel for small filter sums), which sum
/// in a fixed order. As with TF32, the setting applies to work issued afterwards, a recorded step
/// keeps the algorithms it was recorded with until its fit call ends, and changing it while a
/// recording is under way throws kiln::Error and changes nothing.
void enable_op_determinism(bool enabled = true);
/// Whether op determinism is on (false unless enable_op_determinism() was called).
bool op_determinism_enabled();
}  // namespace config

namespace test {
/// "/device:GPU:0" when a GPU is usable, else "".
std::string gpu_device_name();
/// True when kiln was built with CUDA.
bool is_built_with_cuda();
}  // namespace test

/// Every device kiln can run on, the CPU first.
std::vector<LocalDevice> list_local_devices();
/// Library versions: built against and loaded.
BuildInfo build_info();
/// The GPU stack's state as one actionable sentence.
GpuVerdict gpu_verdict();
/// The first usable GPU, else the CPU.
Device default_device();
/// Makes new models start on `device` instead of default_device() (PyTorch's set_default_device).
void set_default_device(Device device);
/// The device new models start on: the one set with set_default_device, else default_device(). The
/// first call without an explicit choice prints one line to stderr saying which device and why.
Device model_device();

}  // namespace kiln
