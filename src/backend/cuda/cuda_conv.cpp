// 2-D convolution through cuDNN, NHWC. Our kernel layout [KH, KW, C, F] (TensorFlow's HWIO) is a
// [KH*KW*C, F] matrix; cuDNN's NHWC filter layout [F, KH, KW, C] is its transpose, so each call
// transposes the (small) kernel with one kernel of ours.
// float32 runs through cuDNN's graph API (conv_engine.h): its legacy API offers float32 NHWC only
// two implicit-GEMM algorithms, the graph API every engine cuDNN has, under the same rules as below
// (timed choice, FMA unless TF32 is enabled, determinism on request), except that its FFT and
// Winograd engines (NCHW only, run between transposes) may win the timing where their result stays
// within a measured bound of the direct engine's; its forward pass leaves bias and ReLU to our
// kernel. KILN_CUDNN_LEGACY=1 sends float32 back to the legacy API (for comparison). Every other
// type uses the legacy API, as follows.
// Algorithms are chosen once per geometry
// and direction: cuDNN times each one on that geometry (cudnnFind*, run twice at the first, eager
// call, the second run's timings deciding: fit warms up before it records a step) and the fastest
// one that sums products directly in float32 (no FFT or Winograd transform, no tensor-core math:
// float32 stays float32) and whose workspace fits is kept. With op determinism
// (enable_op_determinism) only deterministic algorithms qualify; without it, algorithms that add
// partial sums with atomics may win (cuDNN's fastest filter gradients do). With TF32 enabled
// (set_tensor_float_32) float32 plans use CUDNN_TENSOR_OP_MATH and tensor-core algorithms may win
// too. Both modes are part of the plan's key, so each keeps its own choices. kiln's direct
// filter-gradient kernel (kernels/conv_wgrad.cu) is deterministic FMA math in every mode, and so
// is its direct forward kernel for layers of fewer than 8 input channels (kernels/conv_direct.cu),
// which serves those instead of cuDNN. cuDNN's heuristics (cudnnGet*_v7) ranked slow algorithms
// first at the seed's shapes (bench/README-gpu-step.md). The heuristics are used instead while a
// CUDA graph is being recorded (Find synchronizes), or when KILN_CUDNN_FIND=0: then every process
// picks the same algorithm, whereas timings may differ between processes. KILN_CUDNN_LOG=1 prints
// both rankings.
// The workspace comes from the caching allocator. cuDNN 9 marks this API deprecated but still
// ships it (libcudnn_cnn).
// float16 and bfloat16 (mixed precision) run cuDNN's pseudo-half configurations: x, w, y, the bias
// and the gradients in the 16-bit type, the convolution descriptor in float (products of 16-bit
// values are exact in float, sums are float, each output is rounded once) with CUDNN_TENSOR_OP_MATH
// (tensor cores). Their plans are chosen by the same rules, under the same key (the dtype is part of
// it, so a float32 plan never serves a bfloat16 call). kiln's direct filter-gradient kernel is
// float32/float64 only; 16-bit filter gradients always go to cuDNN, and their bias gradient is a
// product with a row of ones (column_sums.h), summed in float.
// Shape letters: N batch, H/W input, C channels, KH/KW kernel, F filters, OH/OW output.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "backend/cuda/check.h"
#include "backend/cuda/column_sums.h"
#include "backend/cuda/conv_plan.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/kernels.h"

namespace kiln::backend {

namespace {

// The largest scratch an algorithm may take: 1 GiB, where the Winograd engines of 3x3 layers at
// large batches fit (bench/README.md; TensorFlow's default limit is 4 GiB).
// KILN_CUDNN_WORKSPACE_MB (a positive number of MiB) overrides it; an unusable value is an error
// naming it, not a silent default.
std::size_t max_workspace() {
  static const std::size_t bytes = [] {
    constexpr std::size_t kDefaultMiB = 1024;
    const char* text = std::getenv("KILN_CUDNN_WORKSPACE_MB");
    if (!text || !*text) return kDefaultMiB << 20;
    char* end = nullptr;
    const long long mib = std::strtoll(text, &end, 10);
    if (*end != '\0' || mib <= 0 || mib > (1LL << 20))
      throw Error("conv2d", std::string("KILN_CUDNN_WORKSPACE_MB is \"") + text +
                                "\"; expected a positive whole number of MiB (e.g. 1024, the default)");
    return static_cast<std::size_t>(mib) << 20;
  }();
  return bytes;
}

std::string geometry_str(const Conv2dGeometry& g) {
  auto s = [](int64_t v) { return std::to_string(v); };
  return "input [" + s(g.N) + ", " + s(g.H) + ", " + s(g.W) + ", " + s(g.C) + "], kernel [" + s(g.KH) + ", " + s(g.KW) +
         ", " + s(g.C) + ", " + s(g.F) + "], strides [" + s(g.stride_h) + ", " + s(g.stride_w) + "]";
}

int as_int(int64_t v, const Conv2dGeometry& g) {
  if (v < 0 || v > 2147483647)
    throw Error("conv2d", "extent " + std::to_string(v) + " does not fit cuDNN's int API (" + geometry_str(g) +
                              "); expected extents below 2^31");
  return static_cast<int>(v);
}

// 1 and 0 in the precision cuDNN wants for alpha and beta.
struct Scalars {
  float f1 = 1.f, f0 = 0.f;
  double d1 = 1.0, d0 = 0.0;
  const void* one(cudnnDataType_t t) const { return t == CUDNN_DATA_DOUBLE ? static_cast<const void*>(&d1) : &f1; }
  const void* zero(cudnnDataType_t t) const { return t == CUDNN_DATA_DOUBLE ? static_cast<const void*>(&d0) : &f0; }
};

// Whether an algorithm sums the products directly (a GEMM or direct loop): FFT and Winograd
// transforms trade float32 accuracy for speed, which CPU parity cannot afford.
bool sums_directly(cudnnConvolutionFwdAlgo_t a) {
  return a != CUDNN_CONVOLUTION_FWD_ALGO_FFT && a != CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING &&
         a != CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD && a != CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED;
}
bool sums_directly(cudnnConvolutionBwdDataAlgo_t a) {
  return a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_0 || a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_1;
}
bool sums_directly(cudnnConvolutionBwdFilterAlgo_t a) {
  return a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0 || a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1 ||
         a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3;
}

// Picks from a ranked list (fastest or best first): plain FMA math (float32 stays float32: no
// TF32) and direct summation first, workspace within the cap; then any non-tensor-core math. With
// `deterministic` both passes require CUDNN_DETERMINISTIC, and a nondeterministic algorithm is
// never taken (the caller asked for bit-equal reruns: no algorithm is an error, as in TensorFlow).
// float16 and bfloat16 never take a nondeterministic algorithm: those add partial sums into the
// 16-bit output with atomics, so each addition rounds to the 16-bit type (the float accumulation
// mixed precision promises is lost), and they ran several times slower in a training step than
// cuDNN's timing of them said (bench/README.md).
// With `tf32`, float32 may also take tensor-op math (TF32) in every pass, never the down-conversion
// to half precision (CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION).
template <typename Perf>
const Perf* pick(const std::vector<Perf>& perf, cudnnDataType_t type, bool tf32, bool deterministic) {
  for (int pass = 0; pass < 2; ++pass)
    for (const Perf& p : perf) {
      if (p.status != CUDNN_STATUS_SUCCESS || p.memory > max_workspace()) continue;
      if ((deterministic || type == CUDNN_DATA_HALF || type == CUDNN_DATA_BFLOAT16) &&
          p.determinism != CUDNN_DETERMINISTIC)
        continue;
      if (pass == 0 && !sums_directly(p.algo)) continue;
      const bool fma = p.mathType == CUDNN_FMA_MATH, plain = fma || p.mathType == CUDNN_DEFAULT_MATH;
      const bool tensor = tf32 && p.mathType == CUDNN_TENSOR_OP_MATH;
      if (type == CUDNN_DATA_FLOAT && !((pass == 0 ? fma : plain) || tensor)) continue;
      return &p;
    }
  return nullptr;
}

template <typename Perf>
[[noreturn]] void no_algorithm(const char* op, const char* direction, const std::vector<Perf>& perf,
                               const ConvPlan& plan, const Conv2dGeometry& g) {
  std::string tried;
  for (const Perf& p : perf)
    tried +=
        (tried.empty() ? "" : ", ") + std::to_string(static_cast<int>(p.algo)) + ":" + cudnnGetErrorString(p.status);
  throw Error(op, std::string("cuDNN has no ") + direction + " algorithm for " + dtype_name(plan.dtype) +
                      " NHWC convolution with " + geometry_str(g) +
                      (plan.deterministic ? " under op determinism" : "") + " (heuristics returned " +
                      (tried.empty() ? "none" : tried) + "); expected float32, or run this convolution on the CPU" +
                      (plan.deterministic ? " or without enable_op_determinism()" : ""));
}

bool env_is(const char* name, const char* value) {
  const char* v = std::getenv(name);
  return v && std::strcmp(v, value) == 0;
}

// Whether cuDNN may time algorithms now: not while `stream` records a graph, not when disabled.
bool may_measure(cudaStream_t stream) {
  if (env_is("KILN_CUDNN_FIND", "0")) return false;
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  return cudaStreamIsCapturing(stream, &status) == cudaSuccess && status == cudaStreamCaptureStatusNone;
}

template <typename Perf>
void log_ranking(const char* label, const std::vector<Perf>& perf) {
  std::fprintf(stderr, "  %s:", label);
  for (const Perf& p : perf)
    std::fprintf(stderr, " [algo %d %s %.4f ms %s %s ws %.1f MB]", static_cast<int>(p.algo),
                 p.status == CUDNN_STATUS_SUCCESS ? "ok" : "fail", static_cast<double>(p.time),
                 p.determinism == CUDNN_DETERMINISTIC ? "det" : "nondet",
                 p.mathType == CUDNN_FMA_MATH       ? "fma"
                 : p.mathType == CUDNN_DEFAULT_MATH ? "default"
                                                    : "tensor",
                 static_cast<double>(p.memory) / (1 << 20));
  std::fprintf(stderr, "\n");
}

// The algorithm for one direction: `find()` (cuDNN's timings, fastest first) when measuring is
// allowed, else `heuristic()` (cuDNN's ranking); then pick() over that list.
template <typename Perf, typename Find, typename Heuristic>
Perf choose(const char* op, const char* direction, const ConvPlan& plan, const Conv2dGeometry& g, bool measure,
            Find&& find, Heuristic&& heuristic) {
  const bool log = env_is("KILN_CUDNN_LOG", "1");
  // CUDA loads a kernel's module at its first launch: timed first, an algorithm whose kernels no
  // earlier call used would count that load into its time, so the timings of a second run decide.
  std::vector<Perf> perf = measure ? (find(), find()) : heuristic();
  const Perf* best = pick(perf, plan.type, plan.tf32, plan.deterministic);
  if (!best) no_algorithm(op, direction, perf, plan, g);
  if (log) {
    std::fprintf(stderr, "[%s] %s algorithm for %s %s%s%s: %s algo %d\n", op, direction, dtype_name(plan.dtype).c_str(),
                 geometry_str(g).c_str(), plan.tf32 ? " (TF32 allowed)" : "",
                 plan.deterministic ? " (deterministic)" : "", measure ? "measured" : "heuristic",
                 static_cast<int>(best->algo));
    if (measure) {
      log_ranking("heuristic ranking", heuristic());
      log_ranking("measured", perf);
    } else {
      log_ranking("heuristic ranking", perf);
    }
  }
  return *best;
}

}  // namespace

ConvPlan& CudaBackend::conv_plan(DType dtype, const Conv2dGeometry& g) {
  const bool tf32 = dtype == DType::Float32 && tf32_.load();
  const bool deterministic = deterministic_.load();
  const ConvKey key{static_cast<int>(dtype),
                    tf32,
                    deterministic,
                    g.N,
                    g.H,
                    g.W,
                    g.C,
                    g.KH,
                    g.KW,
                    g.F,
                    g.OH,
                    g.OW,
                    g.stride_h,
                    g.stride_w,
                    g.pad_top,
                    g.pad_left};
  auto it = conv_plans_.find(key);
  if (it != conv_plans_.end()) return *it->second;

  auto plan = std::make_unique<ConvPlan>();
  ConvPlan& p = *plan;
  p.tf32 = tf32;
  p.deterministic = deterministic;
  p.dtype = dtype;
  switch (dtype) {
    case DType::Float32:
      p.type = p.compute = CUDNN_DATA_FLOAT;
      break;
    case DType::Float64:
      p.type = p.compute = CUDNN_DATA_DOUBLE;
      break;
    case DType::Float16:
      p.type = CUDNN_DATA_HALF;
      p.compute = CUDNN_DATA_FLOAT;
      break;
    case DType::BFloat16:
      p.type = CUDNN_DATA_BFLOAT16;
      p.compute = CUDNN_DATA_FLOAT;
      break;
    default:
      throw Error("conv2d",
                  "no CUDA kernel for " + dtype_name(dtype) + "; expected float32, float64, float16 or bfloat16");
  }

  // cuDNN pads symmetrically; use its padding only when that gives exactly TensorFlow's output.
  const int64_t num_h = g.H + 2 * g.pad_top - g.KH, num_w = g.W + 2 * g.pad_left - g.KW;
  const bool direct = num_h >= 0 && num_w >= 0 && num_h / g.stride_h + 1 == g.OH && num_w / g.stride_w + 1 == g.OW;
  p.explicit_pad = !direct;
  p.HP = direct ? g.H : (g.OH - 1) * g.stride_h + g.KH;
  p.WP = direct ? g.W : (g.OW - 1) * g.stride_w + g.KW;
  const int pad_h = direct ? as_int(g.pad_top, g) : 0, pad_w = direct ? as_int(g.pad_left, g) : 0;
  p.pad_h = pad_h;
  p.pad_w = pad_w;
  p.graph = p.type == CUDNN_DATA_FLOAT && !env_is("KILN_CUDNN_LEGACY", "1");

  KILN_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p.x));
  KILN_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p.y));
  KILN_CUDNN_CHECK(cudnnCreateFilterDescriptor(&p.w));
  KILN_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&p.conv));
  KILN_CUDNN_CHECK(cudnnSetTensor4dDescriptor(p.x, CUDNN_TENSOR_NHWC, p.type, as_int(g.N, g), as_int(g.C, g),
                                              as_int(p.HP, g), as_int(p.WP, g)));
  KILN_CUDNN_CHECK(cudnnSetTensor4dDescriptor(p.y, CUDNN_TENSOR_NHWC, p.type, as_int(g.N, g), as_int(g.F, g),
                                              as_int(g.OH, g), as_int(g.OW, g)));
  KILN_CUDNN_CHECK(cudnnSetFilter4dDescriptor(p.w, p.type, CUDNN_TENSOR_NHWC, as_int(g.F, g), as_int(g.C, g),
                                              as_int(g.KH, g), as_int(g.KW, g)));
  KILN_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(p.conv, pad_h, pad_w, as_int(g.stride_h, g), as_int(g.stride_w, g),
                                                   1, 1, CUDNN_CROSS_CORRELATION, p.compute));
  // FMA keeps float32 exact; TENSOR_OP lets float32 run as TF32 on tensor cores (never as half
  // precision: that would take TENSOR_OP_MATH_ALLOW_CONVERSION), and 16-bit tensors on tensor cores
  // with float accumulation.
  const bool half = p.type == CUDNN_DATA_HALF || p.type == CUDNN_DATA_BFLOAT16;
  KILN_CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv, half                         ? CUDNN_TENSOR_OP_MATH
                                                       : p.type != CUDNN_DATA_FLOAT ? CUDNN_DEFAULT_MATH
                                                       : p.tf32                     ? CUDNN_TENSOR_OP_MATH
                                                                                    : CUDNN_FMA_MATH));
  int n = 0, c = 0, h = 0, w = 0;
  KILN_CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(p.conv, p.x, p.w, &n, &c, &h, &w));
  if (n != g.N || c != g.F || h != g.OH || w != g.OW)
    throw Error("conv2d", "cuDNN computes output [" + std::to_string(n) + ", " + std::to_string(h) + ", " +
                              std::to_string(w) + ", " + std::to_string(c) + "] for " + geometry_str(g) +
                              "; expected [" + std::to_string(g.N) + ", " + std::to_string(g.OH) + ", " +
                              std::to_string(g.OW) + ", " + std::to_string(g.F) + "]");
  return *conv_plans_.emplace(key, std::move(plan)).first->second;
}

namespace {

// The plan's graph-API engine for direction `d`, made and chosen at its first call: timed on x, w
// and y (the direction's output among them is overwritten) where measuring is allowed.
ConvEngine& ready_engine(std::mutex& mutex, cudnnHandle_t cudnn, cudaStream_t stream, CudaAllocator& allocator,
                         ConvPlan& p, ConvDirection d, const Conv2dGeometry& g, const void* x, const void* w,
                         const void* y) {
  const std::lock_guard lock(mutex);
  std::unique_ptr<ConvEngine>& engine = p.engines[static_cast<int>(d)];
  if (!engine) {
    const ConvEngineShape shape{.N = g.N,
                                .H = p.HP,
                                .W = p.WP,
                                .C = g.C,
                                .F = g.F,
                                .KH = g.KH,
                                .KW = g.KW,
                                .OH = g.OH,
                                .OW = g.OW,
                                .stride_h = g.stride_h,
                                .stride_w = g.stride_w,
                                .pad_h = p.pad_h,
                                .pad_w = p.pad_w};
    auto made = std::make_unique<ConvEngine>(cudnn, d, shape);
    made->choose(cudnn, stream, allocator, may_measure(stream), EnginePolicy{p.tf32, p.deterministic}, max_workspace(),
                 x, w, y, geometry_str(g));
    engine = std::move(made);
  }
  return *engine;
}

// y = relu(conv + bias) in cuDNN's fused call, with the algorithm chosen for the plain forward pass.
// Returns false, having run nothing, where cuDNN does not offer the fusion for this geometry (it
// says so on the first, eager call, and the plan remembers) or KILN_CUDNN_FUSED=0.
bool fused_forward(cudnnHandle_t cudnn, ConvPlan& p, const Scalars& s, const void* input, const void* w, void* ws,
                   const void* bias, void* y) {
  if (p.fused_tried && !p.fused_ok) return false;
  if (!p.fused_tried) {
    p.fused_tried = true;
    if (env_is("KILN_CUDNN_FUSED", "0")) return false;
    int n = 0, c = 0, h = 0, wd = 0;
    KILN_CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(p.conv, p.x, p.w, &n, &c, &h, &wd));
    KILN_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p.bias));
    KILN_CUDNN_CHECK(cudnnSetTensor4dDescriptor(p.bias, CUDNN_TENSOR_NHWC, p.type, 1, c, 1, 1));
    KILN_CUDNN_CHECK(cudnnCreateActivationDescriptor(&p.relu));
    // PROPAGATE_NAN: with NOT_PROPAGATE_NAN cuDNN 9's fused ReLU turns a NaN into 0 (measured on an
    // H200, cuDNN 9.14, both NHWC algorithms it offers), which would hide a layer gone NaN from
    // check_numerics; our own ReLU (the unfused path, and the CPU) keeps NaN.
    KILN_CUDNN_CHECK(cudnnSetActivationDescriptor(p.relu, CUDNN_ACTIVATION_RELU, CUDNN_PROPAGATE_NAN, 0.0));
    const cudnnStatus_t status =
        cudnnConvolutionBiasActivationForward(cudnn, s.one(p.type), p.x, input, p.w, w, p.conv, p.fwd, ws, p.fwd_ws,
                                              s.zero(p.type), p.y, y, p.bias, bias, p.relu, p.y, y);
    // cuDNN 9 refuses with NOT_SUPPORTED or one of its refinements (3000-3999: the data type, the
    // layout, the shape...). For the 16-bit types a refusal may also come as BAD_PARAM (2000-2999:
    // a bias or activation type this legacy call does not take with them); the unfused path runs
    // the same descriptors, so a real descriptor error still surfaces there.
    const int family = static_cast<int>(status) / 1000;
    const bool half = p.type == CUDNN_DATA_HALF || p.type == CUDNN_DATA_BFLOAT16;
    if (family == static_cast<int>(CUDNN_STATUS_NOT_SUPPORTED) / 1000 ||
        (half && family == static_cast<int>(CUDNN_STATUS_BAD_PARAM) / 1000))
      return false;
    KILN_CUDNN_CHECK(status);
    p.fused_ok = true;
    return true;
  }
  KILN_CUDNN_CHECK(cudnnConvolutionBiasActivationForward(cudnn, s.one(p.type), p.x, input, p.w, w, p.conv, p.fwd, ws,
                                                         p.fwd_ws, s.zero(p.type), p.y, y, p.bias, bias, p.relu, p.y,
                                                         y));
  return true;
}

// The forward pass's operands as cuDNN takes them: the kernel transposed to [F, KH, KW, C], and
// the input padded where cuDNN's symmetric padding cannot say kiln's (ConvPlan::explicit_pad).
struct ForwardOperands {
  ForwardOperands(CudaAllocator& allocator, cudaStream_t stream, const ConvPlan& p, const Conv2dGeometry& g,
                  const void* x, const void* w)
      : kernel(allocator, static_cast<std::size_t>(g.KH * g.KW * g.C * g.F) * dtype_size(p.dtype)),
        padded(allocator, p.explicit_pad ? static_cast<std::size_t>(g.N * p.HP * p.WP * g.C) * dtype_size(p.dtype) : 0),
        input(x) {
    kernels::transpose(p.dtype, w, kernel.get(), g.KH * g.KW * g.C, g.F, stream);
    if (p.explicit_pad) {
      kernels::pad_nhwc(p.dtype, x, padded.get(), g.N, g.H, g.W, g.C, p.HP, p.WP, g.pad_top, g.pad_left, stream);
      input = padded.get();
    }
  }
  Scratch kernel, padded;
  const void* input;
};

}  // namespace

void CudaBackend::graph_forward(ConvPlan& p, const Conv2dGeometry& g, const void* input, const void* kernel,
                                const void* bias, bool relu, void* y) {
  const ConvEngine& engine =
      ready_engine(conv_mutex_, cudnn_, stream_, allocator_, p, ConvDirection::Forward, g, input, kernel, y);
  Scratch ws(allocator_, engine.workspace_size());
  engine.run(cudnn_, input, kernel, y, ws.get());
  kernels::bias_relu(p.dtype, y, bias, relu, g.N * g.OH * g.OW, g.F, stream_);
}

void CudaBackend::conv2d_forward(DType dtype, const Conv2dGeometry& g, const void* x, const void* w, const void* bias,
                                 bool relu, void* y) {
  if (g.N * g.OH * g.OW * g.F == 0) return;
  DeviceGuard guard(device_);
  if (kernels::conv_direct_forward_fits(dtype, g)) {
    // Few input channels: our direct kernel beats cuDNN's and takes the bias and ReLU along
    // (kernels/conv_direct.cu).
    kernels::conv_direct_forward(dtype, g, x, w, bias, relu, y, stream_);
    return;
  }
  std::unique_lock lock(conv_mutex_);
  ConvPlan& p = conv_plan(dtype, g);
  const ForwardOperands in(allocator_, stream_, p, g, x, w);
  if (p.graph) {
    lock.unlock();
    graph_forward(p, g, in.input, in.kernel.get(), bias, relu, y);
    return;
  }
  if (!p.have_fwd) {
    using Perf = cudnnConvolutionFwdAlgoPerf_t;
    int max = 0;
    KILN_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithmMaxCount(cudnn_, &max));
    const auto list = [&](bool find) {
      std::vector<Perf> perf(static_cast<std::size_t>(max));
      int count = 0;
      if (find)
        KILN_CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithm(cudnn_, p.x, p.w, p.conv, p.y, max, &count, perf.data()));
      else
        KILN_CUDNN_CHECK(
            cudnnGetConvolutionForwardAlgorithm_v7(cudnn_, p.x, p.w, p.conv, p.y, max, &count, perf.data()));
      perf.resize(static_cast<std::size_t>(count));
      return perf;
    };
    p.fwd =
        choose<Perf>(
            "conv2d", "forward", p, g, may_measure(stream_), [&] { return list(true); }, [&] { return list(false); })
            .algo;
    KILN_CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(cudnn_, p.x, p.w, p.conv, p.y, p.fwd, &p.fwd_ws));
    p.have_fwd = true;
  }
  // The first fused call tells whether cuDNN fuses this geometry; the plan keeps the answer.
  if (!(bias && relu && !p.fused_tried)) lock.unlock();
  Scratch ws(allocator_, p.fwd_ws);
  const Scalars s;
  if (bias && relu && fused_forward(cudnn_, p, s, in.input, in.kernel.get(), ws.get(), bias, y)) return;
  KILN_CUDNN_CHECK(cudnnConvolutionForward(cudnn_, s.one(p.type), p.x, in.input, p.w, in.kernel.get(), p.conv, p.fwd,
                                           ws.get(), p.fwd_ws, s.zero(p.type), p.y, y));
  kernels::bias_relu(dtype, y, bias, relu, g.N * g.OH * g.OW, g.F, stream_);
}

void CudaBackend::conv2d_backward_data(DType dtype, const Conv2dGeometry& g, const void* dy, const void* w, void* dx) {
  if (g.N * g.H * g.W * g.C == 0) return;
  DeviceGuard guard(device_);
  if (g.OH * g.OW * g.F == 0) {
    fill(dtype, dx, g.N * g.H * g.W * g.C, 0.0);
    return;
  }
  std::unique_lock lock(conv_mutex_);
  ConvPlan& p = conv_plan(dtype, g);
  const bool graph = p.graph;
  if (!graph && !p.have_bwd_data) {
    using Perf = cudnnConvolutionBwdDataAlgoPerf_t;
    int max = 0;
    KILN_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(cudnn_, &max));
    const auto list = [&](bool find) {
      std::vector<Perf> perf(static_cast<std::size_t>(max));
      int count = 0;
      if (find)
        KILN_CUDNN_CHECK(
            cudnnFindConvolutionBackwardDataAlgorithm(cudnn_, p.w, p.y, p.conv, p.x, max, &count, perf.data()));
      else
        KILN_CUDNN_CHECK(
            cudnnGetConvolutionBackwardDataAlgorithm_v7(cudnn_, p.w, p.y, p.conv, p.x, max, &count, perf.data()));
      perf.resize(static_cast<std::size_t>(count));
      return perf;
    };
    p.bwd_data = choose<Perf>(
                     "conv2d_backward_data", "backward-data", p, g, may_measure(stream_), [&] { return list(true); },
                     [&] { return list(false); })
                     .algo;
    KILN_CUDNN_CHECK(
        cudnnGetConvolutionBackwardDataWorkspaceSize(cudnn_, p.w, p.y, p.conv, p.x, p.bwd_data, &p.bwd_data_ws));
    p.have_bwd_data = true;
  }
  lock.unlock();
  const std::size_t es = dtype_size(dtype);
  const int64_t K = g.KH * g.KW * g.C;
  Scratch wt(allocator_, static_cast<std::size_t>(K * g.F) * es);
  kernels::transpose(dtype, w, wt.get(), K, g.F, stream_);
  Scratch dxp(allocator_, p.explicit_pad ? static_cast<std::size_t>(g.N * p.HP * p.WP * g.C) * es : 0);
  void* out = p.explicit_pad ? dxp.get() : dx;
  if (graph) {
    const ConvEngine& engine =
        ready_engine(conv_mutex_, cudnn_, stream_, allocator_, p, ConvDirection::BackwardData, g, out, wt.get(), dy);
    Scratch ws(allocator_, engine.workspace_size());
    engine.run(cudnn_, out, wt.get(), dy, ws.get());
  } else {
    Scratch ws(allocator_, p.bwd_data_ws);
    const Scalars s;
    KILN_CUDNN_CHECK(cudnnConvolutionBackwardData(cudnn_, s.one(p.type), p.w, wt.get(), p.y, dy, p.conv, p.bwd_data,
                                                  ws.get(), p.bwd_data_ws, s.zero(p.type), p.x, out));
  }
  if (p.explicit_pad)
    kernels::crop_nhwc(dtype, dxp.get(), dx, g.N, g.H, g.W, g.C, p.HP, p.WP, g.pad_top, g.pad_left, stream_);
}

void CudaBackend::conv2d_backward_filter(DType dtype, const Conv2dGeometry& g, const void* x, const void* dy,
                                         const void* relu_y, void* dw, void* db) {
  const int64_t K = g.KH * g.KW * g.C, R = g.N * g.OH * g.OW;
  if (g.F == 0) return;
  DeviceGuard guard(device_);
  if (R == 0) {
    fill(dtype, dw, K * g.F, 0.0);
    if (db) fill(dtype, db, g.F, 0.0);
    return;
  }
  const bool direct = kernels::conv_wgrad_direct_fits(dtype, g), mma = kernels::conv_wgrad_mma_fits(dtype, g);
  if (direct || mma) {
    // Few filter sums: our kernels beat cuDNN's (float32: its deterministic algorithm; 16-bit: its
    // three passes) and take the bias sum and the ReLU backward along (kernels/conv_wgrad.cu,
    // kernels/conv_wgrad_mma.cu). Their partials are in the compute type (float for the 16-bit
    // types), summed there and rounded once into dw and db.
    const DType acc = dtype == DType::Float64 ? DType::Float64 : DType::Float32;
    const int64_t blocks = direct ? kernels::conv_wgrad_blocks(dtype, g) : kernels::conv_wgrad_mma_blocks(g);
    const std::size_t as = dtype_size(acc);
    Scratch partial_w(allocator_, static_cast<std::size_t>(blocks * K * g.F) * as);
    Scratch partial_b(allocator_, db ? static_cast<std::size_t>(blocks * g.F) * as : 0);
    void* pb = db ? partial_b.get() : nullptr;
    if (direct)
      kernels::conv_wgrad_partial(dtype, g, x, dy, relu_y, partial_w.get(), pb, stream_);
    else
      kernels::conv_wgrad_mma_partial(dtype, g, x, dy, relu_y, static_cast<float*>(partial_w.get()),
                                      static_cast<float*>(pb), stream_);
    const auto sum_into = [&](const Scratch& partial, void* out, int64_t cols) {
      if (acc == dtype) return sum_rows(dtype, partial.get(), out, blocks, cols, false);
      Scratch sum(allocator_, static_cast<std::size_t>(cols) * as);
      sum_rows(acc, partial.get(), sum.get(), blocks, cols, false);
      cast(acc, sum.get(), dtype, out, cols);
    };
    sum_into(partial_w, dw, K * g.F);
    if (db) sum_into(partial_b, db, g.F);
    return;
  }
  // cuDNN's path needs the pre-activation gradient written out (the ReLU backward, 16-bit too).
  Scratch dz(allocator_, relu_y ? static_cast<std::size_t>(R * g.F) * dtype_size(dtype) : 0);
  if (relu_y) {
    unary_backward(UnaryOp::Relu, dtype, relu_y, relu_y, dy, dz.get(), R * g.F);
    dy = dz.get();
  }
  if (db) column_sums(*this, dtype, dy, db, R, g.F);
  std::unique_lock lock(conv_mutex_);
  ConvPlan& p = conv_plan(dtype, g);
  const bool graph = p.graph;
  if (!graph && !p.have_bwd_filter) {
    using Perf = cudnnConvolutionBwdFilterAlgoPerf_t;
    int max = 0;
    KILN_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(cudnn_, &max));
    const auto list = [&](bool find) {
      std::vector<Perf> perf(static_cast<std::size_t>(max));
      int count = 0;
      if (find)
        KILN_CUDNN_CHECK(
            cudnnFindConvolutionBackwardFilterAlgorithm(cudnn_, p.x, p.y, p.conv, p.w, max, &count, perf.data()));
      else
        KILN_CUDNN_CHECK(
            cudnnGetConvolutionBackwardFilterAlgorithm_v7(cudnn_, p.x, p.y, p.conv, p.w, max, &count, perf.data()));
      perf.resize(static_cast<std::size_t>(count));
      return perf;
    };
    p.bwd_filter = choose<Perf>(
                       "conv2d_backward_filter", "backward-filter", p, g, may_measure(stream_),
                       [&] { return list(true); }, [&] { return list(false); })
                       .algo;
    KILN_CUDNN_CHECK(
        cudnnGetConvolutionBackwardFilterWorkspaceSize(cudnn_, p.x, p.y, p.conv, p.w, p.bwd_filter, &p.bwd_filter_ws));
    p.have_bwd_filter = true;
  }
  lock.unlock();
  const std::size_t es = dtype_size(dtype);
  Scratch xp(allocator_, p.explicit_pad ? static_cast<std::size_t>(g.N * p.HP * p.WP * g.C) * es : 0);
  const void* input = x;
  if (p.explicit_pad) {
    kernels::pad_nhwc(dtype, x, xp.get(), g.N, g.H, g.W, g.C, p.HP, p.WP, g.pad_top, g.pad_left, stream_);
    input = xp.get();
  }
  Scratch dwt(allocator_, static_cast<std::size_t>(K * g.F) * es);
  if (graph) {
    const ConvEngine& engine = ready_engine(conv_mutex_, cudnn_, stream_, allocator_, p, ConvDirection::BackwardFilter,
                                            g, input, dwt.get(), dy);
    Scratch ws(allocator_, engine.workspace_size());
    engine.run(cudnn_, input, dwt.get(), dy, ws.get());
  } else {
    Scratch ws(allocator_, p.bwd_filter_ws);
    const Scalars s;
    KILN_CUDNN_CHECK(cudnnConvolutionBackwardFilter(cudnn_, s.one(p.type), p.x, input, p.y, dy, p.conv, p.bwd_filter,
                                                    ws.get(), p.bwd_filter_ws, s.zero(p.type), p.w, dwt.get()));
  }
  kernels::transpose(dtype, dwt.get(), dw, g.F, K, stream_);
}

}  // namespace kiln::backend
