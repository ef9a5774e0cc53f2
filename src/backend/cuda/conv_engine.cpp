// cuDNN graph-API convolutions (conv_engine.h). A candidate is an execution plan finalized from an
// engine configuration: the ones cuDNN's heuristics (mode A) and its fallback list propose, and
// every engine's default configuration (the survey found the fastest exact filter gradients among
// the latter at some shapes). Candidates are filtered by the engines' numerical notes, then timed
// on the caller's buffers (after one untimed run: a kernel's first launch loads its module) or,
// while a CUDA graph is being recorded, ranked by the heuristics alone.
#include "backend/cuda/conv_engine.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "backend/cuda/check.h"
#include "backend/cuda/cuda_allocator.h"
#include "kiln/error.h"

namespace kiln::backend {

BackendDescriptor::BackendDescriptor(cudnnBackendDescriptorType_t type) {
  KILN_CUDNN_CHECK(cudnnBackendCreateDescriptor(type, &d_));
}

BackendDescriptor::~BackendDescriptor() {
  if (d_) cudnnBackendDestroyDescriptor(d_);
}

BackendDescriptor& BackendDescriptor::operator=(BackendDescriptor&& other) noexcept {
  if (this != &other) {
    if (d_) cudnnBackendDestroyDescriptor(d_);
    d_ = other.d_;
    other.d_ = nullptr;
  }
  return *this;
}

void BackendDescriptor::set(cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type, int64_t count,
                            const void* values) {
  const cudnnStatus_t status = cudnnBackendSetAttribute(d_, name, type, count, values);
  if (status != CUDNN_STATUS_SUCCESS)
    cuda_detail::throw_cudnn(("cudnnBackendSetAttribute(" + std::to_string(static_cast<int>(name)) + ")").c_str(),
                             __FILE__, __LINE__, status);
}

cudnnStatus_t BackendDescriptor::finalize() { return cudnnBackendFinalize(d_); }

namespace {

// Unique ids of the three tensors in the variant pack.
constexpr int64_t kX = 1, kW = 2, kY = 3;

BackendDescriptor nhwc_tensor(int64_t uid, int64_t n, int64_t c, int64_t h, int64_t w) {
  BackendDescriptor t(CUDNN_BACKEND_TENSOR_DESCRIPTOR);
  const int64_t dims[4] = {n, c, h, w}, strides[4] = {h * w * c, 1, w * c, c};
  const cudnnDataType_t type = CUDNN_DATA_FLOAT;
  // The caching allocator's blocks are 256-byte aligned; 16 bytes is what vectorized engines ask.
  const int64_t alignment = 16;
  t.set(CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &type);
  t.set(CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dims);
  t.set(CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, strides);
  t.set(CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid);
  t.set(CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &alignment);
  KILN_CUDNN_CHECK(t.finalize());
  return t;
}

bool env_is(const char* name, const char* value) {
  const char* v = std::getenv(name);
  return v && std::strcmp(v, value) == 0;
}

struct Notes {
  bool tensor_core = false, lower_precision = false, transform = false, nondeterministic = false;
  bool runtime_compiled = false;  // its kernels are compiled when its plan is finalized (NVRTC)
  std::string text;
};

Notes notes_of(cudnnBackendDescriptor_t engine) {
  cudnnBackendNumericalNote_t notes[CUDNN_NUMERICAL_NOTE_TYPE_COUNT];
  int64_t count = 0;
  Notes n;
  if (cudnnBackendGetAttribute(engine, CUDNN_ATTR_ENGINE_NUMERICAL_NOTE, CUDNN_TYPE_NUMERICAL_NOTE,
                               CUDNN_NUMERICAL_NOTE_TYPE_COUNT, &count, notes) != CUDNN_STATUS_SUCCESS)
    count = 0;
  for (int64_t i = 0; i < count; ++i) {
    switch (notes[i]) {
      case CUDNN_NUMERICAL_NOTE_TENSOR_CORE:
        n.tensor_core = true;
        n.text += " tensor-core";
        break;
      case CUDNN_NUMERICAL_NOTE_DOWN_CONVERT_INPUTS:
      case CUDNN_NUMERICAL_NOTE_REDUCED_PRECISION_REDUCTION:
        n.lower_precision = true;
        n.text += " lower-precision";
        break;
      case CUDNN_NUMERICAL_NOTE_FFT:
      case CUDNN_NUMERICAL_NOTE_WINOGRAD:
      case CUDNN_NUMERICAL_NOTE_WINOGRAD_TILE_4x4:
      case CUDNN_NUMERICAL_NOTE_WINOGRAD_TILE_6x6:
      case CUDNN_NUMERICAL_NOTE_WINOGRAD_TILE_13x13:
        if (!n.transform) n.text += " fft/winograd";
        n.transform = true;
        break;
      case CUDNN_NUMERICAL_NOTE_NONDETERMINISTIC:
        n.nondeterministic = true;
        n.text += " nondeterministic";
        break;
      default:
        break;
    }
  }
  cudnnBackendBehaviorNote_t behavior[CUDNN_BEHAVIOR_NOTE_TYPE_COUNT];
  if (cudnnBackendGetAttribute(engine, CUDNN_ATTR_ENGINE_BEHAVIOR_NOTE, CUDNN_TYPE_BEHAVIOR_NOTE,
                               CUDNN_BEHAVIOR_NOTE_TYPE_COUNT, &count, behavior) != CUDNN_STATUS_SUCCESS)
    count = 0;
  for (int64_t i = 0; i < count; ++i)
    if (behavior[i] == CUDNN_BEHAVIOR_NOTE_RUNTIME_COMPILATION) {
      n.runtime_compiled = true;
      n.text += " runtime-compiled";
    }
  return n;
}

bool allowed(const Notes& n, const EnginePolicy& policy) {
  if (n.lower_precision) return false;
  if (n.tensor_core && !policy.tf32) return false;
  return !(n.nondeterministic && policy.deterministic);
}

struct Candidate {
  BackendDescriptor plan;
  int64_t engine = -1;       // cuDNN's global engine index
  std::vector<int64_t> key;  // the engine index, then each knob's type and value: equal keys, equal plans
  const char* source = "";
  Notes notes;
  std::size_t workspace = 0;
  float ms = -1.f;  // measured time, -1 when not measured or failed
};

// The engine index and knob choices of `cfg`: the heuristic list, the fallback list and the
// engines' default configurations propose many of the same configurations.
std::vector<int64_t> config_key(cudnnBackendDescriptor_t cfg, int64_t engine) {
  std::vector<int64_t> key{engine};
  std::vector<BackendDescriptor> choices;
  std::vector<cudnnBackendDescriptor_t> raw;
  for (int i = 0; i < CUDNN_KNOB_TYPE_COUNTS; ++i) {
    choices.emplace_back(CUDNN_BACKEND_KNOB_CHOICE_DESCRIPTOR);
    raw.push_back(choices.back().get());
  }
  int64_t count = 0, got = 0;
  if (cudnnBackendGetAttribute(cfg, CUDNN_ATTR_ENGINECFG_KNOB_CHOICES, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                               CUDNN_KNOB_TYPE_COUNTS, &count, raw.data()) != CUDNN_STATUS_SUCCESS)
    return key;
  for (int64_t i = 0; i < std::min<int64_t>(count, CUDNN_KNOB_TYPE_COUNTS); ++i) {
    cudnnBackendKnobType_t type{};
    int64_t value = 0;
    cudnnBackendGetAttribute(raw[static_cast<std::size_t>(i)], CUDNN_ATTR_KNOB_CHOICE_KNOB_TYPE, CUDNN_TYPE_KNOB_TYPE,
                             1, &got, &type);
    cudnnBackendGetAttribute(raw[static_cast<std::size_t>(i)], CUDNN_ATTR_KNOB_CHOICE_KNOB_VALUE, CUDNN_TYPE_INT64, 1,
                             &got, &value);
    key.push_back(static_cast<int64_t>(type));
    key.push_back(value);
  }
  return key;
}

// Finalizes a plan for `cfg` when its engine passes the policy, its workspace fits and no earlier
// candidate has the same configuration. `compiled_ok`: whether an engine compiled at run time may
// be one (finalizing its plan compiles its kernels, up to seconds each).
void add_candidate(std::vector<Candidate>& out, cudnnHandle_t handle, cudnnBackendDescriptor_t cfg, const char* source,
                   const EnginePolicy& policy, std::size_t max_workspace, bool compiled_ok = true) {
  BackendDescriptor engine(CUDNN_BACKEND_ENGINE_DESCRIPTOR);
  cudnnBackendDescriptor_t engine_d = engine.get();
  int64_t got = 0;
  if (cudnnBackendGetAttribute(cfg, CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &got, &engine_d) !=
      CUDNN_STATUS_SUCCESS)
    return;
  Candidate c;
  c.notes = notes_of(engine.get());
  if (!allowed(c.notes, policy) || (c.notes.runtime_compiled && !compiled_ok)) return;
  cudnnBackendGetAttribute(engine.get(), CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1, &got, &c.engine);
  c.key = config_key(cfg, c.engine);
  if (std::any_of(out.begin(), out.end(), [&](const Candidate& earlier) { return earlier.key == c.key; })) return;
  c.plan = BackendDescriptor(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR);
  c.plan.set(CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle);
  c.plan.set(CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &cfg);
  if (c.plan.finalize() != CUDNN_STATUS_SUCCESS) return;
  int64_t workspace = 0;
  KILN_CUDNN_CHECK(cudnnBackendGetAttribute(c.plan.get(), CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1,
                                            &got, &workspace));
  if (workspace < 0 || static_cast<std::size_t>(workspace) > max_workspace) return;
  c.workspace = static_cast<std::size_t>(workspace);
  c.source = source;
  out.push_back(std::move(c));
}

void add_heuristic(std::vector<Candidate>& out, cudnnHandle_t handle, cudnnBackendDescriptor_t graph,
                   cudnnBackendHeurMode_t mode, const char* source, const EnginePolicy& policy,
                   std::size_t max_workspace) {
  BackendDescriptor heuristic(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
  heuristic.set(CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &graph);
  heuristic.set(CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode);
  if (heuristic.finalize() != CUDNN_STATUS_SUCCESS) return;
  int64_t count = 0;
  if (cudnnBackendGetAttribute(heuristic.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &count,
                               nullptr) != CUDNN_STATUS_SUCCESS ||
      count <= 0)
    return;
  std::vector<BackendDescriptor> configs;
  std::vector<cudnnBackendDescriptor_t> raw;
  for (int64_t i = 0; i < count; ++i) {
    configs.emplace_back(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR);
    raw.push_back(configs.back().get());
  }
  int64_t got = 0;
  if (cudnnBackendGetAttribute(heuristic.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, count,
                               &got, raw.data()) != CUDNN_STATUS_SUCCESS)
    return;
  for (int64_t i = 0; i < std::min(got, count); ++i)
    add_candidate(out, handle, raw[static_cast<std::size_t>(i)], source, policy, max_workspace);
}

void add_engines(std::vector<Candidate>& out, cudnnHandle_t handle, cudnnBackendDescriptor_t graph,
                 const EnginePolicy& policy, std::size_t max_workspace) {
  int64_t engines = 0, got = 0;
  if (cudnnBackendGetAttribute(graph, CUDNN_ATTR_OPERATIONGRAPH_ENGINE_GLOBAL_COUNT, CUDNN_TYPE_INT64, 1, &got,
                               &engines) != CUDNN_STATUS_SUCCESS)
    return;
  for (int64_t index = 0; index < engines; ++index) {
    BackendDescriptor engine(CUDNN_BACKEND_ENGINE_DESCRIPTOR);
    engine.set(CUDNN_ATTR_ENGINE_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &graph);
    engine.set(CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1, &index);
    if (engine.finalize() != CUDNN_STATUS_SUCCESS) continue;
    BackendDescriptor cfg(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR);
    const cudnnBackendDescriptor_t engine_d = engine.get();
    cfg.set(CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &engine_d);
    if (cfg.finalize() != CUDNN_STATUS_SUCCESS) continue;
    // The sweep adds only engines whose kernels are built already: finalizing a runtime-compiled
    // engine's plan compiles its kernels, which can take seconds per engine (the heuristic and
    // fallback lists may still propose one).
    add_candidate(out, handle, cfg.get(), "engine", policy, max_workspace, /*compiled_ok=*/false);
  }
}

BackendDescriptor variant_pack(const void* x, const void* w, const void* y, void* workspace) {
  BackendDescriptor pack(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR);
  const int64_t uids[3] = {kX, kW, kY};
  // cuDNN's variant pack holds plain pointers for inputs and outputs alike; the plan writes only
  // its direction's output.
  void* pointers[3] = {const_cast<void*>(x), const_cast<void*>(w), const_cast<void*>(y)};
  pack.set(CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, 3, uids);
  pack.set(CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, 3, pointers);
  pack.set(CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &workspace);
  KILN_CUDNN_CHECK(pack.finalize());
  return pack;
}

// Times `runs` executions of a plan on `stream`; -1 when cuDNN refuses one.
float time_runs(cudnnHandle_t handle, cudaStream_t stream, cudnnBackendDescriptor_t plan, cudnnBackendDescriptor_t pack,
                int runs) {
  cudaEvent_t start = nullptr, stop = nullptr;
  KILN_CUDA_CHECK(cudaEventCreate(&start));
  KILN_CUDA_CHECK(cudaEventCreate(&stop));
  KILN_CUDA_CHECK(cudaEventRecord(start, stream));
  bool ok = true;
  for (int i = 0; i < runs && ok; ++i) ok = cudnnBackendExecute(handle, plan, pack) == CUDNN_STATUS_SUCCESS;
  KILN_CUDA_CHECK(cudaEventRecord(stop, stream));
  KILN_CUDA_CHECK(cudaEventSynchronize(stop));
  float elapsed = 0.f;
  KILN_CUDA_CHECK(cudaEventElapsedTime(&elapsed, start, stop));
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return ok ? elapsed / static_cast<float>(runs) : -1.f;
}

// The candidate's time per run in ms, or -1 when cuDNN refuses to run it. The first run is not
// counted (it loads the kernels' modules); a candidate whose first run already took several times
// the best time so far (`best_ms`, -1 when none) and longer than any module load is not timed
// further: the slowest engines take tens of milliseconds per run at large shapes.
float time_candidate(cudnnHandle_t handle, cudaStream_t stream, CudaAllocator& allocator, const Candidate& c,
                     float best_ms, const void* x, const void* w, const void* y) {
  constexpr int kRuns = 3;
  constexpr float kHopeless = 4.f, kModuleLoadMs = 20.f;
  const Scratch workspace(allocator, c.workspace);
  const BackendDescriptor pack = variant_pack(x, w, y, workspace.get());
  const float first = time_runs(handle, stream, c.plan.get(), pack.get(), 1);
  if (first < 0) return -1.f;
  if (best_ms >= 0 && first > kHopeless * best_ms && first > kModuleLoadMs) return first;
  return time_runs(handle, stream, c.plan.get(), pack.get(), kRuns);
}

const char* direction_name(ConvDirection d) {
  return d == ConvDirection::Forward        ? "forward"
         : d == ConvDirection::BackwardData ? "backward-data"
                                            : "backward-filter";
}

}  // namespace

ConvEngine::ConvEngine(cudnnHandle_t handle, ConvDirection direction, const ConvEngineShape& s)
    : direction_(direction),
      x_(nhwc_tensor(kX, s.N, s.C, s.H, s.W)),
      w_(nhwc_tensor(kW, s.F, s.C, s.KH, s.KW)),
      y_(nhwc_tensor(kY, s.N, s.F, s.OH, s.OW)),
      conv_(CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR) {
  const int64_t spatial = 2, dilations[2] = {1, 1}, strides[2] = {s.stride_h, s.stride_w}, pads[2] = {s.pad_h, s.pad_w};
  const cudnnDataType_t compute = CUDNN_DATA_FLOAT;
  const cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
  conv_.set(CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, CUDNN_TYPE_INT64, 1, &spatial);
  conv_.set(CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &compute);
  conv_.set(CUDNN_ATTR_CONVOLUTION_CONV_MODE, CUDNN_TYPE_CONVOLUTION_MODE, 1, &mode);
  conv_.set(CUDNN_ATTR_CONVOLUTION_DILATIONS, CUDNN_TYPE_INT64, 2, dilations);
  conv_.set(CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, CUDNN_TYPE_INT64, 2, strides);
  conv_.set(CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, CUDNN_TYPE_INT64, 2, pads);
  conv_.set(CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, CUDNN_TYPE_INT64, 2, pads);
  KILN_CUDNN_CHECK(conv_.finalize());

  const float alpha = 1.f, beta = 0.f;
  const cudnnBackendDescriptor_t x = x_.get(), w = w_.get(), y = y_.get(), conv = conv_.get();
  const ConvOperationNames& names = kConvOperationNames[static_cast<int>(direction)];
  op_ = BackendDescriptor(names.type);
  op_.set(names.x, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x);
  op_.set(names.w, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &w);
  op_.set(names.y, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y);
  op_.set(names.conv, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &conv);
  op_.set(names.alpha, CUDNN_TYPE_FLOAT, 1, &alpha);
  op_.set(names.beta, CUDNN_TYPE_FLOAT, 1, &beta);
  KILN_CUDNN_CHECK(op_.finalize());
  graph_ = BackendDescriptor(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
  const cudnnBackendDescriptor_t op = op_.get();
  graph_.set(CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &op);
  graph_.set(CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle);
  KILN_CUDNN_CHECK(graph_.finalize());
}

void ConvEngine::choose(cudnnHandle_t handle, cudaStream_t stream, CudaAllocator& allocator, bool measure,
                        const EnginePolicy& policy, std::size_t max_workspace, const void* x, const void* w,
                        const void* y, const std::string& geometry) {
  std::vector<Candidate> candidates;
  add_heuristic(candidates, handle, graph_.get(), CUDNN_HEUR_MODE_A, "heuristic", policy, max_workspace);
  add_heuristic(candidates, handle, graph_.get(), CUDNN_HEUR_MODE_FALLBACK, "fallback", policy, max_workspace);
  if (measure) {
    add_engines(candidates, handle, graph_.get(), policy, max_workspace);
    float best_ms = -1.f;
    for (Candidate& c : candidates) {
      c.ms = time_candidate(handle, stream, allocator, c, best_ms, x, w, y);
      if (c.ms >= 0 && (best_ms < 0 || c.ms < best_ms)) best_ms = c.ms;
    }
  }
  // Engines that sum products directly first; among them the fastest measured, or the
  // heuristics' first.
  Candidate* best = nullptr;
  for (int pass = 0; pass < 2 && !best; ++pass)
    for (Candidate& c : candidates) {
      if (pass == 0 && c.notes.transform) continue;
      if (measure && c.ms < 0) continue;
      if (!best || (measure && c.ms < best->ms)) best = &c;
      if (!measure) break;
    }
  if (env_is("KILN_CUDNN_LOG", "1")) {
    std::fprintf(stderr, "[conv2d] float32 %s engines for %s%s%s (%s):\n", direction_name(direction_), geometry.c_str(),
                 policy.tf32 ? " (TF32 allowed)" : "", policy.deterministic ? " (deterministic)" : "",
                 measure ? "measured" : "heuristic");
    for (const Candidate& c : candidates)
      std::fprintf(stderr, "  %s %s engine %lld%s ws %.1f MB %.4f ms\n", &c == best ? "*" : " ", c.source,
                   static_cast<long long>(c.engine), c.notes.text.c_str(), static_cast<double>(c.workspace) / (1 << 20),
                   static_cast<double>(c.ms));
  }
  if (!best)
    throw Error("conv2d", std::string("cuDNN has no ") + direction_name(direction_) +
                              " engine for float32 NHWC convolution with " + geometry +
                              (policy.deterministic ? " under op determinism" : "") + " (" +
                              std::to_string(candidates.size()) +
                              " candidates ran none); expected a geometry cuDNN supports, or run this convolution on "
                              "the CPU" +
                              (policy.deterministic ? " or without enable_op_determinism()" : ""));
  plan_ = std::move(best->plan);
  workspace_ = best->workspace;
}

void ConvEngine::run(cudnnHandle_t handle, const void* x, const void* w, const void* y, void* workspace) const {
  const BackendDescriptor pack = variant_pack(x, w, y, workspace);
  KILN_CUDNN_CHECK(cudnnBackendExecute(handle, plan_.get(), pack.get()));
}

}  // namespace kiln::backend
