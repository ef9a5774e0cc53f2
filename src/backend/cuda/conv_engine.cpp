// cuDNN graph-API convolutions (conv_engine.h). A candidate is an execution plan finalized from an
// engine configuration: the ones cuDNN's heuristics (mode A) and its fallback list propose, and
// every engine's default configuration (the survey found the fastest exact filter gradients among
// the latter at some shapes), for the NHWC operation graph and, for its FFT and Winograd engines,
// the NCHW one (conv_nchw.h: cuDNN has those for float32 in NCHW only). Candidates are filtered by
// the engines' numerical notes, then timed on the caller's buffers (after one untimed run: a
// kernel's first launch loads its module; an NCHW candidate's time includes its transposes) or,
// while a CUDA graph is being recorded, ranked by the NHWC heuristics alone.
// FFT and Winograd engines compute the sums through transforms, with more rounding than a direct
// sum (bench/README.md has the measured errors); PyTorch's and TensorFlow's autotuning take them for
// float32 too. kiln takes one where it is the fastest and its result on the first call's operands
// stays within conv_accuracy.h's bound of the fastest direct engine's.
#include "backend/cuda/conv_engine.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "backend/cuda/check.h"
#include "backend/cuda/conv_accuracy.h"
#include "backend/cuda/conv_nchw.h"
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

BackendDescriptor make_tensor(int64_t uid, int64_t n, int64_t c, int64_t h, int64_t w, ConvLayout layout) {
  BackendDescriptor t(CUDNN_BACKEND_TENSOR_DESCRIPTOR);
  const int64_t dims[4] = {n, c, h, w};
  const int64_t nhwc[4] = {h * w * c, 1, w * c, c}, nchw[4] = {c * h * w, h * w, w, 1};
  const int64_t* strides = layout == ConvLayout::Nhwc ? nhwc : nchw;
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

// Which configurations of one operation graph to propose: its layout, whether only FFT and
// Winograd engines (the NCHW route exists for those), whether runtime-compiled engines.
struct Proposal {
  const char* source;
  ConvLayout layout;
  bool transforms_only = false;
  bool compiled_ok = true;
};

struct Candidate {
  BackendDescriptor plan;
  int64_t engine = -1;       // cuDNN's global engine index
  std::vector<int64_t> key;  // the layout, the engine index, then each knob's type and value
  const char* source = "";
  ConvLayout layout = ConvLayout::Nhwc;
  Notes notes;
  std::size_t engine_workspace = 0;  // the engine's own
  std::size_t workspace = 0;         // with the NCHW copies where it runs in NCHW
  float ms = -1.f;                   // measured time, -1 when not measured or failed
  double difference = -1.;           // an FFT or Winograd engine's from the direct result, -1 when not measured
};

// The layout, engine index and knob choices of `cfg`: the heuristic list, the fallback list and
// the engines' default configurations propose many of the same configurations.
std::vector<int64_t> config_key(cudnnBackendDescriptor_t cfg, int64_t engine, ConvLayout layout) {
  std::vector<int64_t> key{static_cast<int64_t>(layout), engine};
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

// Finalizes a plan for `cfg` when its engine passes the policy and the proposal, its workspace fits
// and no earlier candidate has the same configuration. Runtime-compiled engines are left out unless
// the proposal allows them: finalizing their plans compiles their kernels, up to seconds each.
void add_candidate(std::vector<Candidate>& out, cudnnHandle_t handle, const ConvEngineShape& shape,
                   cudnnBackendDescriptor_t cfg, const Proposal& proposal, const EnginePolicy& policy,
                   std::size_t max_workspace) {
  BackendDescriptor engine(CUDNN_BACKEND_ENGINE_DESCRIPTOR);
  cudnnBackendDescriptor_t engine_d = engine.get();
  int64_t got = 0;
  if (cudnnBackendGetAttribute(cfg, CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &got, &engine_d) !=
      CUDNN_STATUS_SUCCESS)
    return;
  Candidate c;
  c.notes = notes_of(engine.get());
  if (!allowed(c.notes, policy) || (c.notes.runtime_compiled && !proposal.compiled_ok) ||
      (proposal.transforms_only && !c.notes.transform))
    return;
  cudnnBackendGetAttribute(engine.get(), CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1, &got, &c.engine);
  c.layout = proposal.layout;
  c.key = config_key(cfg, c.engine, c.layout);
  if (std::any_of(out.begin(), out.end(), [&](const Candidate& earlier) { return earlier.key == c.key; })) return;
  c.plan = BackendDescriptor(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR);
  c.plan.set(CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle);
  c.plan.set(CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &cfg);
  if (c.plan.finalize() != CUDNN_STATUS_SUCCESS) return;
  int64_t workspace = 0;
  KILN_CUDNN_CHECK(cudnnBackendGetAttribute(c.plan.get(), CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1,
                                            &got, &workspace));
  if (workspace < 0 || static_cast<std::size_t>(workspace) > max_workspace) return;
  c.engine_workspace = static_cast<std::size_t>(workspace);
  c.workspace = c.layout == ConvLayout::Nchw ? nchw_copies(shape, c.engine_workspace).end : c.engine_workspace;
  c.source = proposal.source;
  out.push_back(std::move(c));
}

void add_heuristic(std::vector<Candidate>& out, cudnnHandle_t handle, const ConvEngineShape& shape,
                   cudnnBackendDescriptor_t graph, cudnnBackendHeurMode_t mode, const Proposal& proposal,
                   const EnginePolicy& policy, std::size_t max_workspace) {
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
    add_candidate(out, handle, shape, raw[static_cast<std::size_t>(i)], proposal, policy, max_workspace);
}

void add_engines(std::vector<Candidate>& out, cudnnHandle_t handle, const ConvEngineShape& shape,
                 cudnnBackendDescriptor_t graph, Proposal proposal, const EnginePolicy& policy,
                 std::size_t max_workspace) {
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
    proposal.compiled_ok = false;
    add_candidate(out, handle, shape, cfg.get(), proposal, policy, max_workspace);
  }
}

// Every configuration the heuristics, the fallback list and (when `sweep`) the engine sweep
// propose for `graph`.
void add_proposals(std::vector<Candidate>& out, cudnnHandle_t handle, const ConvEngineShape& shape,
                   cudnnBackendDescriptor_t graph, ConvLayout layout, bool transforms_only, bool sweep,
                   const EnginePolicy& policy, std::size_t max_workspace) {
  const bool nchw = layout == ConvLayout::Nchw;
  add_heuristic(out, handle, shape, graph, CUDNN_HEUR_MODE_A,
                Proposal{nchw ? "nchw-heuristic" : "heuristic", layout, transforms_only}, policy, max_workspace);
  add_heuristic(out, handle, shape, graph, CUDNN_HEUR_MODE_FALLBACK,
                Proposal{nchw ? "nchw-fallback" : "fallback", layout, transforms_only}, policy, max_workspace);
  if (sweep)
    add_engines(out, handle, shape, graph, Proposal{nchw ? "nchw-engine" : "engine", layout, transforms_only}, policy,
                max_workspace);
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

// Runs `plan` once on kiln's NHWC x, w, y: directly, or in NCHW between the transposes of the
// direction's operands (conv_nchw.h). cuDNN's status (a refusal while choosing is an answer).
cudnnStatus_t execute(cudnnHandle_t handle, cudaStream_t stream, cudnnBackendDescriptor_t plan, ConvLayout layout,
                      ConvDirection d, const ConvEngineShape& shape, std::size_t engine_workspace, const void* x,
                      const void* w, const void* y, void* workspace) {
  if (layout == ConvLayout::Nhwc) {
    const BackendDescriptor pack = variant_pack(x, w, y, workspace);
    return cudnnBackendExecute(handle, plan, pack.get());
  }
  const NchwCopies copies = nchw_copies(shape, engine_workspace);
  char* base = static_cast<char*>(workspace);
  to_nchw(d, shape, copies, x, w, y, workspace, stream);
  const BackendDescriptor pack = variant_pack(base + copies.x, base + copies.w, base + copies.y, workspace);
  const cudnnStatus_t status = cudnnBackendExecute(handle, plan, pack.get());
  if (status != CUDNN_STATUS_SUCCESS) return status;
  // The caller's output among the operands, written as in variant_pack.
  from_nchw(d, shape, copies, workspace, const_cast<void*>(conv_output(d, x, w, y)), stream);
  return CUDNN_STATUS_SUCCESS;
}

// The candidate's time per run in ms, or -1 when cuDNN refuses to run it. The first run is not
// counted (it loads the kernels' modules); a candidate whose first run already took several times
// the best time so far (`best_ms`, -1 when none) and longer than any module load is not timed
// further: the slowest engines take tens of milliseconds per run at large shapes.
float time_candidate(cudnnHandle_t handle, cudaStream_t stream, CudaAllocator& allocator, const Candidate& c,
                     ConvDirection d, const ConvEngineShape& shape, float best_ms, const void* x, const void* w,
                     const void* y) {
  constexpr int kRuns = 3;
  constexpr float kHopeless = 4.f, kModuleLoadMs = 20.f;
  const Scratch workspace(allocator, c.workspace);
  const auto time_runs = [&](int runs) {
    cudaEvent_t start = nullptr, stop = nullptr;
    KILN_CUDA_CHECK(cudaEventCreate(&start));
    KILN_CUDA_CHECK(cudaEventCreate(&stop));
    KILN_CUDA_CHECK(cudaEventRecord(start, stream));
    bool ok = true;
    for (int i = 0; i < runs && ok; ++i)
      ok = execute(handle, stream, c.plan.get(), c.layout, d, shape, c.engine_workspace, x, w, y, workspace.get()) ==
           CUDNN_STATUS_SUCCESS;
    KILN_CUDA_CHECK(cudaEventRecord(stop, stream));
    KILN_CUDA_CHECK(cudaEventSynchronize(stop));
    float elapsed = 0.f;
    KILN_CUDA_CHECK(cudaEventElapsedTime(&elapsed, start, stop));
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    return ok ? elapsed / static_cast<float>(runs) : -1.f;
  };
  const float first = time_runs(1);
  if (first < 0) return -1.f;
  if (best_ms >= 0 && first > kHopeless * best_ms && first > kModuleLoadMs) return first;
  return time_runs(kRuns);
}

// Runs `c` once and returns the direction's output, on the host (empty when cuDNN refuses).
std::vector<float> output_after(cudnnHandle_t handle, cudaStream_t stream, CudaAllocator& allocator, const Candidate& c,
                                ConvDirection d, const ConvEngineShape& shape, const void* x, const void* w,
                                const void* y) {
  const Scratch workspace(allocator, c.workspace);
  if (execute(handle, stream, c.plan.get(), c.layout, d, shape, c.engine_workspace, x, w, y, workspace.get()) !=
      CUDNN_STATUS_SUCCESS)
    return {};
  return to_host(conv_output(d, x, w, y), conv_output_count(d, shape), stream);
}

const char* direction_name(ConvDirection d) {
  return d == ConvDirection::Forward        ? "forward"
         : d == ConvDirection::BackwardData ? "backward-data"
                                            : "backward-filter";
}

ConvGraph make_graph(cudnnHandle_t handle, ConvDirection direction, const ConvEngineShape& s, ConvLayout layout) {
  ConvGraph g{.x = make_tensor(kX, s.N, s.C, s.H, s.W, layout),
              .w = make_tensor(kW, s.F, s.C, s.KH, s.KW, layout),
              .y = make_tensor(kY, s.N, s.F, s.OH, s.OW, layout),
              .conv = BackendDescriptor(CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR),
              .op = {},
              .graph = {}};
  const int64_t spatial = 2, dilations[2] = {1, 1}, strides[2] = {s.stride_h, s.stride_w}, pads[2] = {s.pad_h, s.pad_w};
  const cudnnDataType_t compute = CUDNN_DATA_FLOAT;
  const cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
  g.conv.set(CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, CUDNN_TYPE_INT64, 1, &spatial);
  g.conv.set(CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &compute);
  g.conv.set(CUDNN_ATTR_CONVOLUTION_CONV_MODE, CUDNN_TYPE_CONVOLUTION_MODE, 1, &mode);
  g.conv.set(CUDNN_ATTR_CONVOLUTION_DILATIONS, CUDNN_TYPE_INT64, 2, dilations);
  g.conv.set(CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, CUDNN_TYPE_INT64, 2, strides);
  g.conv.set(CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, CUDNN_TYPE_INT64, 2, pads);
  g.conv.set(CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, CUDNN_TYPE_INT64, 2, pads);
  KILN_CUDNN_CHECK(g.conv.finalize());

  const float alpha = 1.f, beta = 0.f;
  const cudnnBackendDescriptor_t x = g.x.get(), w = g.w.get(), y = g.y.get(), conv = g.conv.get();
  const ConvOperationNames& names = kConvOperationNames[static_cast<int>(direction)];
  g.op = BackendDescriptor(names.type);
  g.op.set(names.x, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x);
  g.op.set(names.w, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &w);
  g.op.set(names.y, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y);
  g.op.set(names.conv, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &conv);
  g.op.set(names.alpha, CUDNN_TYPE_FLOAT, 1, &alpha);
  g.op.set(names.beta, CUDNN_TYPE_FLOAT, 1, &beta);
  KILN_CUDNN_CHECK(g.op.finalize());
  g.graph = BackendDescriptor(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
  const cudnnBackendDescriptor_t op = g.op.get();
  g.graph.set(CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &op);
  g.graph.set(CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle);
  KILN_CUDNN_CHECK(g.graph.finalize());
  return g;
}

}  // namespace

ConvEngine::ConvEngine(cudnnHandle_t handle, ConvDirection direction, const ConvEngineShape& s)
    : direction_(direction), shape_(s), nhwc_(make_graph(handle, direction, s, ConvLayout::Nhwc)) {}

void ConvEngine::choose(cudnnHandle_t handle, cudaStream_t stream, CudaAllocator& allocator, bool measure,
                        const EnginePolicy& policy, std::size_t max_workspace, const void* x, const void* w,
                        const void* y, const std::string& geometry) {
  // Without timing, cuDNN's NHWC ranking decides; with it, the NCHW route's FFT and Winograd engines
  // compete too (KILN_CUDNN_LAYOUT=nchw: every NCHW engine and no NHWC one; =nhwc: no NCHW one).
  const bool only_nchw = measure && env_is("KILN_CUDNN_LAYOUT", "nchw");
  const bool with_nchw = measure && !env_is("KILN_CUDNN_LAYOUT", "nhwc");
  std::vector<Candidate> candidates;
  if (!only_nchw)
    add_proposals(candidates, handle, shape_, nhwc_.graph.get(), ConvLayout::Nhwc, false, measure, policy,
                  max_workspace);
  if (with_nchw) {
    if (!nchw_.graph.get()) nchw_ = make_graph(handle, direction_, shape_, ConvLayout::Nchw);
    add_proposals(candidates, handle, shape_, nchw_.graph.get(), ConvLayout::Nchw, !only_nchw, true, policy,
                  max_workspace);
  }
  Candidate* best = nullptr;
  double allowance = 0., scale = 0.;  // the transform engines' bound, the direct result's largest |value|
  if (measure) {
    float best_ms = -1.f;
    for (Candidate& c : candidates) {
      c.ms = time_candidate(handle, stream, allocator, c, direction_, shape_, best_ms, x, w, y);
      if (c.ms >= 0 && (best_ms < 0 || c.ms < best_ms)) best_ms = c.ms;
    }
    // The fastest; an FFT or Winograd engine faster than every direct one only while its result
    // stays within conv_accuracy.h's bound of the fastest direct engine's on these operands.
    std::vector<Candidate*> ranked;
    for (Candidate& c : candidates)
      if (c.ms >= 0) ranked.push_back(&c);
    std::stable_sort(ranked.begin(), ranked.end(),
                     [](const Candidate* a, const Candidate* b) { return a->ms < b->ms; });
    const auto direct =
        std::find_if(ranked.begin(), ranked.end(), [](const Candidate* c) { return !c->notes.transform; });
    std::vector<float> want;
    for (Candidate* c : ranked) {
      if (!c->notes.transform || direct == ranked.end()) {
        best = c;
        break;
      }
      if (want.empty()) {
        want = output_after(handle, stream, allocator, **direct, direction_, shape_, x, w, y);
        allowance = transform_allowance(direction_, shape_, x, w, y, stream);
        scale = max_abs(want);
      }
      c->difference =
          max_abs_difference(output_after(handle, stream, allocator, *c, direction_, shape_, x, w, y), want);
      if (c->difference <= allowance) {
        best = c;
        break;
      }
    }
  } else {
    // Engines that sum products directly first; among them the heuristics' first.
    for (int pass = 0; pass < 2 && !best; ++pass)
      for (Candidate& c : candidates)
        if (pass == 1 || !c.notes.transform) {
          best = &c;
          break;
        }
  }
  if (env_is("KILN_CUDNN_LOG", "1")) {
    std::fprintf(stderr, "[conv2d] float32 %s engines for %s%s%s (%s):\n", direction_name(direction_), geometry.c_str(),
                 policy.tf32 ? " (TF32 allowed)" : "", policy.deterministic ? " (deterministic)" : "",
                 measure ? "measured" : "heuristic");
    for (const Candidate& c : candidates) {
      std::fprintf(stderr, "  %s %s engine %lld%s ws %.1f MB %.4f ms", &c == best ? "*" : " ", c.source,
                   static_cast<long long>(c.engine), c.notes.text.c_str(), static_cast<double>(c.workspace) / (1 << 20),
                   static_cast<double>(c.ms));
      // Both relative to the largest output, as bench/README.md states them.
      if (c.difference >= 0)
        std::fprintf(stderr, " difference %.2e (bound %.2e)", c.difference / std::max(scale, 1e-30),
                     allowance / std::max(scale, 1e-30));
      std::fprintf(stderr, "\n");
    }
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
  layout_ = best->layout;
  engine_workspace_ = best->engine_workspace;
  workspace_ = best->workspace;
}

void ConvEngine::run(cudnnHandle_t handle, const void* x, const void* w, const void* y, void* workspace) const {
  cudaStream_t stream = nullptr;
  KILN_CUDNN_CHECK(cudnnGetStream(handle, &stream));
  KILN_CUDNN_CHECK(
      execute(handle, stream, plan_.get(), layout_, direction_, shape_, engine_workspace_, x, w, y, workspace));
}

}  // namespace kiln::backend
