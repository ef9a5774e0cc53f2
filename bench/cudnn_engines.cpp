// Which cuDNN convolution algorithms exist for a float32 geometry, and how fast and how exact each
// is: the legacy API's algorithms (cudnnFind*, what kiln's plans choose from) and the graph API's
// engine configurations (heuristic modes A and FALLBACK, and every global engine with its default
// knobs), in NHWC and NCHW, forward, data gradient and filter gradient. Each is timed (median of
// 10 after 3 warm-up runs, CUDA events) and its result compared with the legacy API's algorithm 0
// in the same layout (max |difference| / max |reference|). One line per candidate, tab-separated.
// Usage: bench_cudnn_engines [--transforms] [N H W C F K stride pad]... (defaults: vgg's and
// ResNet-20's inner layers). --transforms keeps only the graph API's FFT and Winograd engines (and
// algorithm 0, the reference), and lists those whose plan cuDNN refuses for the layout.
#include <cuda_runtime.h>
#include <cudnn.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "backend/cuda/conv_engine.h"

namespace {

bool transforms_only = false;

void check(cudnnStatus_t s, const char* what) {
  if (s != CUDNN_STATUS_SUCCESS) {
    std::fprintf(stderr, "%s: %s\n", what, cudnnGetErrorString(s));
    std::exit(1);
  }
}
void check(cudaError_t s, const char* what) {
  if (s != cudaSuccess) {
    std::fprintf(stderr, "%s: %s\n", what, cudaGetErrorString(s));
    std::exit(1);
  }
}

struct Geometry {
  int64_t n, h, w, c, f, k, stride, pad;
  int64_t oh() const { return (h + 2 * pad - k) / stride + 1; }
  int64_t ow() const { return (w + 2 * pad - k) / stride + 1; }
};

// In ConvDirection's order (kConvOperationNames is indexed by it).
enum class Direction { Forward, Data, Filter };
const char* name(Direction d) { return d == Direction::Forward ? "fwd" : d == Direction::Data ? "dgrad" : "wgrad"; }

struct Desc {
  cudnnBackendDescriptor_t d = nullptr;
  explicit Desc(cudnnBackendDescriptorType_t t) { check(cudnnBackendCreateDescriptor(t, &d), "create"); }
  ~Desc() { cudnnBackendDestroyDescriptor(d); }
  Desc(const Desc&) = delete;
  Desc& operator=(const Desc&) = delete;
  template <typename T>
  void set(cudnnBackendAttributeName_t a, cudnnBackendAttributeType_t t, int64_t count, const T* v) {
    check(cudnnBackendSetAttribute(d, a, t, count, v), "set attribute");
  }
  cudnnStatus_t finalize() { return cudnnBackendFinalize(d); }
};

// dims in cuDNN's order [N, C, H, W]; NHWC or NCHW strides.
void make_tensor(Desc& t, int64_t uid, int64_t n, int64_t c, int64_t h, int64_t w, bool nhwc) {
  const int64_t dims[4] = {n, c, h, w};
  const int64_t nhwc_strides[4] = {h * w * c, 1, w * c, c}, nchw_strides[4] = {c * h * w, h * w, w, 1};
  const cudnnDataType_t type = CUDNN_DATA_FLOAT;
  const int64_t align = 16;
  t.set(CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &type);
  t.set(CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dims);
  t.set(CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, nhwc ? nhwc_strides : nchw_strides);
  t.set(CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid);
  t.set(CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &align);
  check(t.finalize(), "tensor");
}

struct Buffers {
  float *x = nullptr, *w = nullptr, *y = nullptr, *ref = nullptr;
  void* ws = nullptr;
  std::size_t xs, ws_size, ys;
};

float median(std::vector<float> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

template <typename Run>
float time_ms(Run&& run) {
  cudaEvent_t a, b;
  check(cudaEventCreate(&a), "event");
  check(cudaEventCreate(&b), "event");
  for (int i = 0; i < 3; ++i)
    if (!run()) return -1.f;
  std::vector<float> times;
  for (int i = 0; i < 10; ++i) {
    check(cudaEventRecord(a), "record");
    run();
    check(cudaEventRecord(b), "record");
    check(cudaEventSynchronize(b), "sync");
    float ms = 0;
    check(cudaEventElapsedTime(&ms, a, b), "elapsed");
    times.push_back(ms);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return median(times);
}

// max |out - ref| / max |ref| over `count` floats on the device.
double relative_error(const float* out, const float* ref, std::size_t count) {
  std::vector<float> a(count), b(count);
  check(cudaMemcpy(a.data(), out, count * 4, cudaMemcpyDeviceToHost), "copy");
  check(cudaMemcpy(b.data(), ref, count * 4, cudaMemcpyDeviceToHost), "copy");
  double diff = 0, scale = 0;
  for (std::size_t i = 0; i < count; ++i) {
    diff = std::max(diff, std::fabs(static_cast<double>(a[i]) - b[i]));
    scale = std::max(scale, std::fabs(static_cast<double>(b[i])));
  }
  return scale > 0 ? diff / scale : diff;
}

std::string notes_of(cudnnBackendDescriptor_t engine, bool* transform = nullptr) {
  cudnnBackendNumericalNote_t notes[CUDNN_NUMERICAL_NOTE_TYPE_COUNT];
  int64_t count = 0;
  cudnnBackendGetAttribute(engine, CUDNN_ATTR_ENGINE_NUMERICAL_NOTE, CUDNN_TYPE_NUMERICAL_NOTE,
                           CUDNN_NUMERICAL_NOTE_TYPE_COUNT, &count, notes);
  if (transform) {
    *transform = false;
    for (int64_t i = 0; i < count; ++i)
      *transform = *transform || notes[i] == CUDNN_NUMERICAL_NOTE_FFT || notes[i] == CUDNN_NUMERICAL_NOTE_WINOGRAD ||
                   notes[i] == CUDNN_NUMERICAL_NOTE_WINOGRAD_TILE_4x4 ||
                   notes[i] == CUDNN_NUMERICAL_NOTE_WINOGRAD_TILE_6x6 ||
                   notes[i] == CUDNN_NUMERICAL_NOTE_WINOGRAD_TILE_13x13;
  }
  static const char* names[] = {"tensor_core", "down_convert", "reduced_reduction", "fft",        "nondeterministic",
                                "winograd",    "winograd4x4",  "winograd6x6",       "winograd13", "strict_nan"};
  std::string s;
  for (int64_t i = 0; i < count; ++i) s += std::string(s.empty() ? "" : ",") + names[notes[i]];
  return s.empty() ? "-" : s;
}

struct Problem {
  const Geometry& g;
  Direction dir;
  bool nhwc;
  Buffers& b;
  cudnnHandle_t handle;
  // The output of this direction and its element count.
  float* out() const { return dir == Direction::Forward ? b.y : dir == Direction::Data ? b.x : b.w; }
  std::size_t out_count() const { return dir == Direction::Forward ? b.ys : dir == Direction::Data ? b.xs : b.ws_size; }
};

void legacy(const Problem& p) {
  const Geometry& g = p.g;
  cudnnTensorDescriptor_t x, y;
  cudnnFilterDescriptor_t w;
  cudnnConvolutionDescriptor_t conv;
  const cudnnTensorFormat_t fmt = p.nhwc ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW;
  check(cudnnCreateTensorDescriptor(&x), "x");
  check(cudnnCreateTensorDescriptor(&y), "y");
  check(cudnnCreateFilterDescriptor(&w), "w");
  check(cudnnCreateConvolutionDescriptor(&conv), "conv");
  check(cudnnSetTensor4dDescriptor(x, fmt, CUDNN_DATA_FLOAT, g.n, g.c, g.h, g.w), "x");
  check(cudnnSetTensor4dDescriptor(y, fmt, CUDNN_DATA_FLOAT, g.n, g.f, g.oh(), g.ow()), "y");
  check(cudnnSetFilter4dDescriptor(w, CUDNN_DATA_FLOAT, fmt, g.f, g.c, g.k, g.k), "w");
  check(cudnnSetConvolution2dDescriptor(conv, g.pad, g.pad, g.stride, g.stride, 1, 1, CUDNN_CROSS_CORRELATION,
                                        CUDNN_DATA_FLOAT),
        "conv");
  check(cudnnSetConvolutionMathType(conv, CUDNN_FMA_MATH), "math");
  const float one = 1.f, zero = 0.f;
  Buffers& b = p.b;
  for (int algo = 0; algo < (transforms_only ? 1 : 8); ++algo) {
    std::size_t ws = 0;
    cudnnStatus_t s = p.dir == Direction::Forward
                          ? cudnnGetConvolutionForwardWorkspaceSize(p.handle, x, w, conv, y,
                                                                    static_cast<cudnnConvolutionFwdAlgo_t>(algo), &ws)
                      : p.dir == Direction::Data
                          ? cudnnGetConvolutionBackwardDataWorkspaceSize(
                                p.handle, w, y, conv, x, static_cast<cudnnConvolutionBwdDataAlgo_t>(algo), &ws)
                          : cudnnGetConvolutionBackwardFilterWorkspaceSize(
                                p.handle, x, y, conv, w, static_cast<cudnnConvolutionBwdFilterAlgo_t>(algo), &ws);
    if (s != CUDNN_STATUS_SUCCESS || ws > (std::size_t(1) << 30)) continue;
    void* space = nullptr;
    if (ws) check(cudaMalloc(&space, ws), "ws");
    auto run = [&] {
      const cudnnStatus_t r =
          p.dir == Direction::Forward
              ? cudnnConvolutionForward(p.handle, &one, x, b.x, w, b.w, conv,
                                        static_cast<cudnnConvolutionFwdAlgo_t>(algo), space, ws, &zero, y, b.y)
          : p.dir == Direction::Data
              ? cudnnConvolutionBackwardData(p.handle, &one, w, b.w, y, b.y, conv,
                                             static_cast<cudnnConvolutionBwdDataAlgo_t>(algo), space, ws, &zero, x, b.x)
              : cudnnConvolutionBackwardFilter(p.handle, &one, x, b.x, y, b.y, conv,
                                               static_cast<cudnnConvolutionBwdFilterAlgo_t>(algo), space, ws, &zero, w,
                                               b.w);
      return r == CUDNN_STATUS_SUCCESS;
    };
    const float ms = time_ms(run);
    if (ms >= 0) {
      double err = 0;
      if (algo == 0)
        check(cudaMemcpy(b.ref, p.out(), p.out_count() * 4, cudaMemcpyDeviceToDevice), "ref");
      else
        err = relative_error(p.out(), b.ref, p.out_count());
      std::printf("%s\t%s\tlegacy\talgo %d\t-\t%.1f MB\t%.4f ms\t%.2e\n", name(p.dir), p.nhwc ? "NHWC" : "NCHW", algo,
                  static_cast<double>(ws) / (1 << 20), static_cast<double>(ms), err);
    }
    if (space) cudaFree(space);
  }
  cudnnDestroyConvolutionDescriptor(conv);
  cudnnDestroyFilterDescriptor(w);
  cudnnDestroyTensorDescriptor(y);
  cudnnDestroyTensorDescriptor(x);
}

void try_config(const Problem& p, cudnnBackendDescriptor_t cfg, const char* source, const int64_t uids[3],
                void* ptrs[3]) {
  int64_t ws = 0, got = 0;
  Desc engine(CUDNN_BACKEND_ENGINE_DESCRIPTOR);
  check(cudnnBackendGetAttribute(cfg, CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &got, &engine.d),
        "engine");
  int64_t index = -1;
  cudnnBackendGetAttribute(engine.d, CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1, &got, &index);
  bool transform = false;
  const std::string notes = notes_of(engine.d, &transform);
  if (transforms_only && !transform) return;
  Desc plan(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR);
  plan.set(CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &p.handle);
  plan.set(CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &cfg);
  const cudnnStatus_t finalized = plan.finalize();
  if (finalized != CUDNN_STATUS_SUCCESS) {
    if (transforms_only)
      std::printf("%s\t%s\t%s\tengine %lld\t%s\trefused: %s\n", name(p.dir), p.nhwc ? "NHWC" : "NCHW", source,
                  static_cast<long long>(index), notes.c_str(), cudnnGetErrorString(finalized));
    return;
  }
  check(cudnnBackendGetAttribute(plan.d, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &got, &ws),
        "ws");
  if (ws > (int64_t(1) << 30)) return;
  void* space = nullptr;
  if (ws) check(cudaMalloc(&space, static_cast<std::size_t>(ws)), "ws");
  Desc pack(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR);
  pack.set(CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, 3, uids);
  pack.set(CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, 3, ptrs);
  pack.set(CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &space);
  check(pack.finalize(), "variant pack");
  const float ms = time_ms([&] { return cudnnBackendExecute(p.handle, plan.d, pack.d) == CUDNN_STATUS_SUCCESS; });
  if (ms >= 0) {
    const double err = relative_error(p.out(), p.b.ref, p.out_count());
    std::printf("%s\t%s\t%s\tengine %lld\t%s\t%.1f MB\t%.4f ms\t%.2e\n", name(p.dir), p.nhwc ? "NHWC" : "NCHW", source,
                static_cast<long long>(index), notes.c_str(), static_cast<double>(ws) / (1 << 20),
                static_cast<double>(ms), err);
  }
  if (space) cudaFree(space);
}

void graph(const Problem& p) {
  const Geometry& g = p.g;
  Desc x(CUDNN_BACKEND_TENSOR_DESCRIPTOR), w(CUDNN_BACKEND_TENSOR_DESCRIPTOR), y(CUDNN_BACKEND_TENSOR_DESCRIPTOR);
  make_tensor(x, 'x', g.n, g.c, g.h, g.w, p.nhwc);
  make_tensor(w, 'w', g.f, g.c, g.k, g.k, p.nhwc);
  make_tensor(y, 'y', g.n, g.f, g.oh(), g.ow(), p.nhwc);
  Desc conv(CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR);
  const int64_t dims = 2, ones[2] = {1, 1}, strides[2] = {g.stride, g.stride}, pads[2] = {g.pad, g.pad};
  const cudnnDataType_t comp = CUDNN_DATA_FLOAT;
  const cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
  conv.set(CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, CUDNN_TYPE_INT64, 1, &dims);
  conv.set(CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &comp);
  conv.set(CUDNN_ATTR_CONVOLUTION_CONV_MODE, CUDNN_TYPE_CONVOLUTION_MODE, 1, &mode);
  conv.set(CUDNN_ATTR_CONVOLUTION_DILATIONS, CUDNN_TYPE_INT64, 2, ones);
  conv.set(CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, CUDNN_TYPE_INT64, 2, strides);
  conv.set(CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, CUDNN_TYPE_INT64, 2, pads);
  conv.set(CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, CUDNN_TYPE_INT64, 2, pads);
  check(conv.finalize(), "conv");
  const float alpha = 1.f, beta = 0.f;
  const kiln::backend::ConvOperationNames& names = kiln::backend::kConvOperationNames[static_cast<int>(p.dir)];
  Desc op(names.type);
  op.set(names.x, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x.d);
  op.set(names.w, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &w.d);
  op.set(names.y, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y.d);
  op.set(names.conv, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &conv.d);
  op.set(names.alpha, CUDNN_TYPE_FLOAT, 1, &alpha);
  op.set(names.beta, CUDNN_TYPE_FLOAT, 1, &beta);
  check(op.finalize(), "operation");
  Desc opgraph(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
  opgraph.set(CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &op.d);
  opgraph.set(CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &p.handle);
  check(opgraph.finalize(), "operation graph");
  const int64_t uids[3] = {'x', 'w', 'y'};
  void* ptrs[3] = {p.b.x, p.b.w, p.b.y};

  for (const auto& [mode_name, heur_mode] :
       {std::pair{"heurA", CUDNN_HEUR_MODE_A}, std::pair{"fallback", CUDNN_HEUR_MODE_FALLBACK}}) {
    Desc heur(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
    heur.set(CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &opgraph.d);
    heur.set(CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &heur_mode);
    if (heur.finalize() != CUDNN_STATUS_SUCCESS) continue;
    int64_t count = 0;
    cudnnBackendGetAttribute(heur.d, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &count, nullptr);
    std::vector<cudnnBackendDescriptor_t> cfgs(static_cast<std::size_t>(count));
    for (auto& c : cfgs) check(cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, &c), "cfg");
    int64_t got = 0;
    cudnnBackendGetAttribute(heur.d, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, count, &got,
                             cfgs.data());
    for (int64_t i = 0; i < got; ++i) try_config(p, cfgs[static_cast<std::size_t>(i)], mode_name, uids, ptrs);
    for (auto& c : cfgs) cudnnBackendDestroyDescriptor(c);
  }
  int64_t engines = 0, got = 0;
  check(cudnnBackendGetAttribute(opgraph.d, CUDNN_ATTR_OPERATIONGRAPH_ENGINE_GLOBAL_COUNT, CUDNN_TYPE_INT64, 1, &got,
                                 &engines),
        "engine count");
  for (int64_t e = 0; e < engines; ++e) {
    Desc engine(CUDNN_BACKEND_ENGINE_DESCRIPTOR);
    engine.set(CUDNN_ATTR_ENGINE_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &opgraph.d);
    engine.set(CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1, &e);
    if (engine.finalize() != CUDNN_STATUS_SUCCESS) continue;
    Desc cfg(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR);
    cfg.set(CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &engine.d);
    if (cfg.finalize() != CUDNN_STATUS_SUCCESS) continue;
    try_config(p, cfg.d, "global", uids, ptrs);
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<Geometry> geometries;
  int first = 1;
  if (argc > 1 && std::string(argv[1]) == "--transforms") {
    transforms_only = true;
    first = 2;
  }
  if (argc > first) {
    if ((argc - first) % 8 != 0) {
      std::fprintf(stderr, "usage: %s [--transforms] [N H W C F K stride pad]...\n", argv[0]);
      return 2;
    }
    for (int i = first; i + 7 < argc; i += 8) {
      int64_t v[8];
      for (int j = 0; j < 8; ++j) v[j] = std::atoll(argv[i + j]);
      geometries.push_back({v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]});
    }
  } else {
    geometries = {{512, 32, 32, 64, 64, 3, 1, 1}, {512, 16, 16, 64, 128, 3, 1, 1}, {512, 16, 16, 128, 128, 3, 1, 1},
                  {512, 8, 8, 128, 256, 3, 1, 1}, {512, 8, 8, 256, 256, 3, 1, 1},  {128, 32, 32, 16, 16, 3, 1, 1},
                  {128, 16, 16, 32, 32, 3, 1, 1}, {128, 8, 8, 64, 64, 3, 1, 1},    {128, 32, 32, 16, 32, 3, 2, 1},
                  {128, 30, 30, 32, 32, 3, 1, 0}};
  }
  cudnnHandle_t handle;
  check(cudnnCreate(&handle), "cudnnCreate");
  std::printf("cuDNN %zu\n", cudnnGetVersion());
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> uni(-1.f, 1.f);
  for (const Geometry& g : geometries) {
    std::printf("# N %lld H %lld W %lld C %lld F %lld K %lld stride %lld pad %lld\n", static_cast<long long>(g.n),
                static_cast<long long>(g.h), static_cast<long long>(g.w), static_cast<long long>(g.c),
                static_cast<long long>(g.f), static_cast<long long>(g.k), static_cast<long long>(g.stride),
                static_cast<long long>(g.pad));
    Buffers b;
    b.xs = static_cast<std::size_t>(g.n * g.h * g.w * g.c);
    b.ws_size = static_cast<std::size_t>(g.f * g.k * g.k * g.c);
    b.ys = static_cast<std::size_t>(g.n * g.oh() * g.ow() * g.f);
    const std::size_t largest = std::max({b.xs, b.ws_size, b.ys});
    check(cudaMalloc(&b.x, b.xs * 4), "x");
    check(cudaMalloc(&b.w, b.ws_size * 4), "w");
    check(cudaMalloc(&b.y, b.ys * 4), "y");
    check(cudaMalloc(&b.ref, largest * 4), "ref");
    for (Direction dir : {Direction::Forward, Direction::Data, Direction::Filter}) {
      for (bool nhwc : {true, false}) {
        // Fresh inputs for each direction: the two not written by it.
        std::vector<float> host(largest);
        for (auto& v : host) v = uni(rng);
        if (dir != Direction::Data) check(cudaMemcpy(b.x, host.data(), b.xs * 4, cudaMemcpyHostToDevice), "x");
        if (dir != Direction::Filter) check(cudaMemcpy(b.w, host.data(), b.ws_size * 4, cudaMemcpyHostToDevice), "w");
        if (dir != Direction::Forward) check(cudaMemcpy(b.y, host.data(), b.ys * 4, cudaMemcpyHostToDevice), "y");
        const Problem p{g, dir, nhwc, b, handle};
        legacy(p);
        graph(p);
        std::fflush(stdout);
      }
    }
    cudaFree(b.x);
    cudaFree(b.w);
    cudaFree(b.y);
    cudaFree(b.ref);
  }
  cudnnDestroy(handle);
  return 0;
}
