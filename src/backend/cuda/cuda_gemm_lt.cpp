// The dense layer's fused products through cuBLASLt epilogues: the forward act(X W + b) as one GEMM
// (epilogue BIAS, RELU or RELU_BIAS) and the weight gradient with the bias gradient as one GEMM
// (epilogue BGRADA), instead of a GEMM plus a bias kernel plus a ReLU kernel, and a GEMM plus a
// column sum. Shapes: X [M, K], W [K, N], b [N], dZ [M, N].
//
// Row-major as column-major, as in cuda_gemm.cpp: a row-major [r, c] matrix is a column-major
// [c, r] one, so
//   forward  Y = X W     is  Y^T [N, M] = W^T [N, K] X^T [K, M]  (A = W, B = X, both as stored)
//   weights  dW = X^T dZ is  dW^T [N, K] = dZ^T [N, M] X [M, K]  (A = dZ as stored, B = X transposed)
// In both, the bias lies along D's N rows, which is where cuBLASLt wants it: BIAS adds a vector of
// D's row count, and BGRADA sums A (dZ, not transposed, as BGRADA requires) over the GEMM's k, the
// batch, into one.
//
// Plans (descriptors, layouts and the algorithm) are made at a shape's first call and kept: every
// later call of the shape runs the same algorithm, so results repeat bit for bit, and a recorded
// step (CUDA graph) makes no heuristic query. Every reduction scheme cuBLASLt offers for split-K
// sums in a fixed order (in place behind counters, or a second pass over the workspace), none with
// atomics, so a kept algorithm is deterministic whichever scheme it uses. The workspace comes from
// the caching allocator per call (a recording's pool while recording). Float32 stays IEEE float32
// (CUBLAS_COMPUTE_32F, no TF32), as cuBLAS' path does, unless TF32 is enabled
// (set_tensor_float_32): then CUBLAS_COMPUTE_32F_FAST_TF32, and the mode is part of the plan's key,
// so a plan made for one mode never runs in the other. float16 and bfloat16 (mixed precision) keep
// every operand and the bias in the 16-bit type and compute in float (CUBLAS_COMPUTE_32F, tensor
// cores, float alpha and beta): products of 16-bit values are exact in float, and D and the bias
// gradient are rounded to 16 bits once; split-K partial sums stay in float (the plan allows only
// the reduction scheme that keeps them in the compute type: the in-place and output-type schemes
// would add them in 16 bits). Where cuBLASLt offers no algorithm (a dtype without the epilogue,
// odd alignment) the unfused kernels run instead (16-bit: the product, then one bias-and-ReLU pass;
// the bias gradient as a product with a row of ones, column_sums.h). KILN_CUBLASLT=0 makes every
// call take the unfused kernels (to weigh the fusion); KILN_CUBLASLT_LOG=1 prints each plan made.
// The RELU epilogues keep a NaN as NaN, as kiln's own ReLU does (measured on an H200 with CUDA 13's
// cuBLASLt, every algorithm its heuristic offered, float32 and float64; CudaDenseFused's NaN test
// checks it wherever the suite runs, CudaHalfGemmConv's for the 16-bit types).
#include <cublasLt.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>

#include "backend/cuda/check.h"
#include "backend/cuda/column_sums.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/kernels.h"
#include "kiln/error.h"

namespace kiln::backend {

namespace {

// Workspace cuBLASLt may ask for (the size cuBLAS gets on Hopper); a plan allocates only what its
// algorithm needs, usually far less.
constexpr std::uint64_t kLtMaxWorkspace = std::uint64_t(32) << 20;

enum class LtKind { Forward, WeightGrad };

// What decides a plan: the product, its math (TF32 or not; always false for float64), its epilogue,
// and each operand's alignment (algorithms that need wider alignment than a pointer has must not be
// chosen for it).
struct LtKey {
  LtKind kind;
  DType dtype;
  bool tf32;
  int64_t m, n, k;
  cublasLtEpilogue_t epilogue;
  std::uint32_t align_a, align_b, align_d, align_bias;
  auto operator<=>(const LtKey&) const = default;
};

// The largest power of two up to 256 that divides the address (256 for null).
std::uint32_t alignment(const void* p) {
  const auto address = reinterpret_cast<std::uintptr_t>(p);
  std::uint32_t a = 256;
  while (a > 1 && address % a != 0) a /= 2;
  return a;
}

// The operands' type, the math, and the type of alpha and beta.
struct LtTypes {
  cudaDataType_t data;
  cublasComputeType_t compute;
  cudaDataType_t scale;
};

bool is_16bit(DType dtype) { return dtype == DType::Float16 || dtype == DType::BFloat16; }

LtTypes lt_types(DType dtype, bool tf32) {
  switch (dtype) {
    case DType::Float32:
      return {CUDA_R_32F, tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F, CUDA_R_32F};
    case DType::Float64:
      return {CUDA_R_64F, CUBLAS_COMPUTE_64F, CUDA_R_64F};
    case DType::Float16:
      return {CUDA_R_16F, CUBLAS_COMPUTE_32F, CUDA_R_32F};
    case DType::BFloat16:
      return {CUDA_R_16BF, CUBLAS_COMPUTE_32F, CUDA_R_32F};
    default:
      throw Error("dense",
                  "no CUDA kernel for " + dtype_name(dtype) + "; expected float32, float64, float16 or bfloat16");
  }
}

// One product's descriptors and chosen algorithm; `usable` is false when cuBLASLt has none.
struct LtPlan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  cublasLtMatmulAlgo_t algo{};
  std::size_t workspace = 0;
  bool usable = false;

  LtPlan() = default;
  LtPlan(const LtPlan&) = delete;
  LtPlan& operator=(const LtPlan&) = delete;
  ~LtPlan() {
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (d) cublasLtMatrixLayoutDestroy(d);
    if (desc) cublasLtMatmulDescDestroy(desc);
  }
};

// The search preferences: the workspace cap and the operands' actual alignments.
class LtPreference {
 public:
  explicit LtPreference(const LtKey& key) {
    KILN_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref_));
    try {
      set(CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, kLtMaxWorkspace);
      set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, key.align_a);
      set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, key.align_b);
      set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, key.align_d);  // C is D (beta = 0)
      set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, key.align_d);
      // 16-bit outputs: split-K partial sums only in float (CUBLASLT_REDUCTION_SCHEME_NONE, no
      // split, is always allowed).
      if (is_16bit(key.dtype))
        set(CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK,
            static_cast<std::uint32_t>(CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE));
    } catch (...) {
      cublasLtMatmulPreferenceDestroy(pref_);
      throw;
    }
  }
  ~LtPreference() { cublasLtMatmulPreferenceDestroy(pref_); }
  LtPreference(const LtPreference&) = delete;
  LtPreference& operator=(const LtPreference&) = delete;
  cublasLtMatmulPreference_t get() const { return pref_; }

 private:
  template <typename T>
  void set(cublasLtMatmulPreferenceAttributes_t attr, const T& value) {
    KILN_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref_, attr, &value, sizeof(value)));
  }
  cublasLtMatmulPreference_t pref_ = nullptr;
};

template <typename T>
void set_desc(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attr, const T& value) {
  KILN_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, attr, &value, sizeof(value)));
}

bool env_is(const char* name, const char* value) {
  const char* v = std::getenv(name);
  return v && std::strcmp(v, value) == 0;
}

const char* epilogue_name(cublasLtEpilogue_t e) {
  switch (e) {
    case CUBLASLT_EPILOGUE_BIAS:
      return "BIAS";
    case CUBLASLT_EPILOGUE_RELU:
      return "RELU";
    case CUBLASLT_EPILOGUE_RELU_BIAS:
      return "RELU_BIAS";
    case CUBLASLT_EPILOGUE_BGRADA:
      return "BGRADA";
    default:
      return "other";
  }
}

// One line per plan made: the product, and the algorithm's split-K and reduction scheme, or why none.
void log_plan(const LtKey& key, const LtPlan& plan, const char* outcome) {
  int32_t splits = 1;
  uint32_t scheme = CUBLASLT_REDUCTION_SCHEME_NONE;
  std::size_t written = 0;
  if (plan.usable) {
    (void)cublasLtMatmulAlgoConfigGetAttribute(&plan.algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &splits, sizeof(splits),
                                               &written);
    (void)cublasLtMatmulAlgoConfigGetAttribute(&plan.algo, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, &scheme,
                                               sizeof(scheme), &written);
  }
  std::fprintf(stderr,
               "kiln cuBLASLt: %s %s%s m=%lld n=%lld k=%lld epilogue %s, alignment a/b/d/bias %u/%u/%u/%u: %s "
               "(split-K %d, reduction scheme %u, workspace %zu bytes)\n",
               key.kind == LtKind::Forward ? "dense forward" : "dense weight gradient", dtype_name(key.dtype).c_str(),
               key.tf32 ? " (TF32)" : "", static_cast<long long>(key.m), static_cast<long long>(key.n),
               static_cast<long long>(key.k), epilogue_name(key.epilogue), key.align_a, key.align_b, key.align_d,
               key.align_bias, outcome, splits, scheme, plan.workspace);
}

bool uses_bias(cublasLtEpilogue_t e) {
  return e == CUBLASLT_EPILOGUE_BIAS || e == CUBLASLT_EPILOGUE_RELU_BIAS || e == CUBLASLT_EPILOGUE_BGRADA;
}

// Descriptors for `key` and the algorithm cuBLASLt's heuristic ranks first. `bias` is the bias (or
// bias gradient) pointer of this first call: the heuristic reads its alignment.
std::unique_ptr<LtPlan> make_plan(cublasLtHandle_t handle, const LtKey& key, const void* bias, bool log) {
  auto plan = std::make_unique<LtPlan>();
  const char* outcome = "no algorithm, unfused kernels instead";
  const LtTypes types = lt_types(key.dtype, key.tf32);
  const auto m = static_cast<std::uint64_t>(key.m), n = static_cast<std::uint64_t>(key.n),
             k = static_cast<std::uint64_t>(key.k);
  KILN_CUBLAS_CHECK(cublasLtMatmulDescCreate(&plan->desc, types.compute, types.scale));
  const cublasOperation_t op_n = CUBLAS_OP_N, op_t = CUBLAS_OP_T;
  set_desc(plan->desc, CUBLASLT_MATMUL_DESC_TRANSA, op_n);
  set_desc(plan->desc, CUBLASLT_MATMUL_DESC_TRANSB, key.kind == LtKind::WeightGrad ? op_t : op_n);
  set_desc(plan->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, key.epilogue);
  if (uses_bias(key.epilogue)) {
    set_desc(plan->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, bias);
    // A 16-bit bias (or bias gradient) in the operands' type: D's, cuBLASLt's default, said
    // explicitly since the scale type (float) differs from it.
    if (is_16bit(key.dtype))
      set_desc(plan->desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, static_cast<int32_t>(types.data));
  }
  // Column-major layouts (rows, columns, leading dimension) of the row-major operands.
  if (key.kind == LtKind::Forward) {  // A = W [n rows, k], B = X [k rows, m], D = Y [n rows, m]
    KILN_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan->a, types.data, n, k, static_cast<int64_t>(n)));
    KILN_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan->b, types.data, k, m, static_cast<int64_t>(k)));
    KILN_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan->d, types.data, n, m, static_cast<int64_t>(n)));
  } else {  // A = dZ [n rows, m], B = X [k rows, m] used transposed, D = dW [n rows, k]
    KILN_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan->a, types.data, n, m, static_cast<int64_t>(n)));
    KILN_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan->b, types.data, k, m, static_cast<int64_t>(k)));
    KILN_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan->d, types.data, n, k, static_cast<int64_t>(n)));
  }
  const LtPreference pref(key);
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  const cublasStatus_t status = cublasLtMatmulAlgoGetHeuristic(handle, plan->desc, plan->a, plan->b, plan->d, plan->d,
                                                               pref.get(), 1, &result, &found);
  // No algorithm for this combination (cuBLASLt answers NOT_SUPPORTED or INVALID_VALUE where a
  // dtype lacks an epilogue, or finds none): not usable, and the caller runs the unfused kernels,
  // which compute the same thing. Other statuses are real failures.
  if (status != CUBLAS_STATUS_SUCCESS && status != CUBLAS_STATUS_NOT_SUPPORTED && status != CUBLAS_STATUS_INVALID_VALUE)
    cuda_detail::throw_cublas("cublasLtMatmulAlgoGetHeuristic", __FILE__, __LINE__, status);
  if (status == CUBLAS_STATUS_SUCCESS && found > 0 && result.state == CUBLAS_STATUS_SUCCESS) {
    plan->algo = result.algo;
    plan->workspace = result.workspaceSize;
    plan->usable = true;
    outcome = "fused";
  }
  if (log) log_plan(key, *plan, outcome);
  return plan;
}

// Lets host-side library set-up (handle, heuristic query) run while the stream is being recorded,
// should a shape first appear then: it queues no work, but may call what strict capture forbids.
class RelaxedCapture {
 public:
  RelaxedCapture() { (void)cudaThreadExchangeStreamCaptureMode(&mode_); }
  ~RelaxedCapture() { (void)cudaThreadExchangeStreamCaptureMode(&mode_); }
  RelaxedCapture(const RelaxedCapture&) = delete;
  RelaxedCapture& operator=(const RelaxedCapture&) = delete;

 private:
  cudaStreamCaptureMode mode_ = cudaStreamCaptureModeRelaxed;
};

}  // namespace

struct CudaBackend::LtState {
  cublasLtHandle_t handle = nullptr;
  std::map<LtKey, std::unique_ptr<LtPlan>> plans;
  const bool enabled = !env_is("KILN_CUBLASLT", "0");
  const bool log = env_is("KILN_CUBLASLT_LOG", "1");

  explicit LtState(int device) {
    DeviceGuard guard(device);
    RelaxedCapture relaxed;
    KILN_CUBLAS_CHECK(cublasLtCreate(&handle));
  }
  ~LtState() {
    plans.clear();
    if (handle) cublasLtDestroy(handle);
  }

  LtPlan& plan(const LtKey& key, const void* bias) {
    auto it = plans.find(key);
    if (it == plans.end()) {
      RelaxedCapture relaxed;
      it = plans.emplace(key, make_plan(handle, key, bias, log)).first;
    }
    return *it->second;
  }

  // D = epilogue(A op(B)) on `stream`, with `bias` the epilogue's vector (input or output).
  void run(LtPlan& p, DType dtype, cudaStream_t stream, void* workspace, const void* a, const void* b, void* d,
           const void* bias) {
    // The descriptor is shared by every call of the shape; the caller holds lt_mutex_.
    if (bias) set_desc(p.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, bias);
    // Alpha and beta in the plan's scale type: double for float64, float for the others.
    const float one_f = 1.0f, zero_f = 0.0f;
    const double one_d = 1.0, zero_d = 0.0;
    const bool f32 = dtype != DType::Float64;
    KILN_CUBLAS_CHECK(cublasLtMatmul(handle, p.desc, f32 ? static_cast<const void*>(&one_f) : &one_d, a, p.a, b, p.b,
                                     f32 ? static_cast<const void*>(&zero_f) : &zero_d, d, p.d, d, p.d, &p.algo,
                                     workspace, p.workspace, stream));
  }
};

void CudaBackend::LtStateDeleter::operator()(LtState* state) const noexcept { delete state; }

void CudaBackend::gemm_bias_act(DType dtype, int64_t m, int64_t n, int64_t k, const void* a, const void* b,
                                const void* bias, bool relu, void* c) {
  if (m <= 0 || n <= 0) return;
  if (!bias && !relu) return gemm(dtype, false, false, m, n, k, 1.0, a, b, 0.0, c);
  DeviceGuard guard(device_);
  if (k > 0) {
    const cublasLtEpilogue_t epilogue =
        bias ? (relu ? CUBLASLT_EPILOGUE_RELU_BIAS : CUBLASLT_EPILOGUE_BIAS) : CUBLASLT_EPILOGUE_RELU;
    // Column-major A is the row-major B (W) and column-major B the row-major A (X).
    const bool tf32 = dtype == DType::Float32 && tf32_.load();
    const LtKey key{LtKind::Forward, dtype,        tf32,           m, n, k, epilogue, alignment(b),
                    alignment(a),    alignment(c), alignment(bias)};
    std::lock_guard lock(lt_mutex_);
    if (!lt_) lt_.reset(new LtState(device_));
    LtPlan* plan = lt_->enabled ? &lt_->plan(key, bias) : nullptr;
    if (plan && plan->usable) {
      Scratch workspace(allocator_, plan->workspace);
      lt_->run(*plan, dtype, stream_, workspace.get(), b, a, c, bias);
      return;
    }
  }
  // Unfused: the product, then the bias and the ReLU in place (16-bit: one pass of the
  // convolution's bias-and-ReLU kernel, which adds in float and rounds once more).
  gemm(dtype, false, false, m, n, k, 1.0, a, b, 0.0, c);
  if (is_16bit(dtype)) {
    kernels::bias_relu(dtype, c, bias, relu, m, n, stream_);
    return;
  }
  if (bias) binary(BinaryOp::Add, dtype, c, m * n, bias, n, c, m * n);
  if (relu) unary(UnaryOp::Relu, dtype, c, c, m * n);
}

void CudaBackend::gemm_wgrad_bias(DType dtype, int64_t m, int64_t n, int64_t k, const void* x, const void* dz, void* dw,
                                  void* db) {
  if (n <= 0) return;
  if (k <= 0) {  // no weights, but the bias still has its gradient
    if (db) column_sums(*this, dtype, dz, db, m, n);
    return;
  }
  if (!db) return gemm(dtype, true, false, k, n, m, 1.0, x, dz, 0.0, dw);
  DeviceGuard guard(device_);
  if (m > 0) {
    const bool tf32 = dtype == DType::Float32 && tf32_.load();
    const LtKey key{LtKind::WeightGrad, dtype,         tf32,         m, n, k, CUBLASLT_EPILOGUE_BGRADA, alignment(dz),
                    alignment(x),       alignment(dw), alignment(db)};
    std::lock_guard lock(lt_mutex_);
    if (!lt_) lt_.reset(new LtState(device_));
    LtPlan* plan = lt_->enabled ? &lt_->plan(key, db) : nullptr;
    if (plan && plan->usable) {
      Scratch workspace(allocator_, plan->workspace);
      lt_->run(*plan, dtype, stream_, workspace.get(), dz, x, dw, db);
      return;
    }
  }
  // Unfused: the product, then the column sum.
  gemm(dtype, true, false, k, n, m, 1.0, x, dz, 0.0, dw);
  column_sums(*this, dtype, dz, db, m, n);
}

}  // namespace kiln::backend
