// Microbenchmarks of the kernels behind the seed CIFAR-10 CNN's training step, at its shapes, per
// device: each figure is one backend kernel (the code ops dispatch to, without autograd), plus the
// whole step through the public API so that the kernels' sum can be set against it.
// Shapes (N = batch): input [N, 32, 32, 3]; conv 3x3x3x32 valid -> [N, 30, 30, 32]; pool 2x2 ->
// [N, 15, 15, 32]; flatten 7200; dense 7200x64, 64x10.
// Flags besides Google Benchmark's: --threads=N (CPU threads, default all cores).
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "kiln/kiln.h"

namespace {

using kiln::Device;
using kiln::Tensor;
namespace be = kiln::backend;

constexpr int64_t kH = 32, kW = 32, kC = 3, kK = 3, kF = 32, kOH = 30, kOW = 30, kPH = 15, kPW = 15;
constexpr int64_t kFlat = kPH * kPW * kF, kHidden = 64, kClasses = 10;
constexpr auto F32 = kiln::DType::Float32;

Tensor rand(const kiln::Shape& shape, Device device) {
  static kiln::Generator gen(7);
  return Tensor::uniform(shape, -1.0, 1.0, gen, F32, device);
}

Tensor labels(int64_t n, Device device) {
  static kiln::Generator gen(11);
  std::vector<int32_t> v(static_cast<std::size_t>(n));
  for (auto& l : v) l = static_cast<int32_t>(gen.below(kClasses));
  return Tensor::from_vector(v, kiln::Shape{n}, device);
}

const void* cp(const Tensor& t) { return t.raw_data(); }
void* mp(Tensor& t) { return t.raw_data(); }

// GPU work is queued, so an iteration sends `inner` calls before one synchronize: the counter
// per_call (seconds) is the time per call in a busy stream, with the sync's latency amortised, and
// the Time column is that of `inner` calls. CPU kernels return when done (synchronize is a no-op),
// so there an iteration is one call and per_call equals Time.
void timed(benchmark::State& state, Device device, int64_t images, const std::function<void()>& call) {
  be::Backend& backend = be::get(device);
  const int inner = device.is_cuda() ? 20 : 1;
  call();  // warm-up: first-use allocations, library handles, algorithm selection
  backend.synchronize();
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < inner; ++i) call();
    backend.synchronize();
    state.SetIterationTime(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  const double calls = static_cast<double>(state.iterations()) * inner;
  state.counters["per_call"] = benchmark::Counter(calls, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  if (images > 0) state.SetItemsProcessed(static_cast<int64_t>(calls) * images);
}

be::Conv2dGeometry conv_geometry(int64_t n) { return {n, kH, kW, kC, kK, kK, kF, kOH, kOW, 1, 1, 0, 0}; }
be::Pool2dGeometry pool_geometry(int64_t n) { return {n, kOH, kOW, kF, 2, 2, kPH, kPW, 2, 2, 0, 0}; }

using BenchFn = std::function<void(benchmark::State&, Device, int64_t)>;

// ---- matrix products of the first Dense layer (the largest): forward, weight and input gradients ----
void dense1_fwd(benchmark::State& s, Device d, int64_t n) {
  Tensor x = rand({n, kFlat}, d), w = rand({kFlat, kHidden}, d), y = rand({n, kHidden}, d);
  timed(s, d, n, [&] { be::get(d).gemm(F32, false, false, n, kHidden, kFlat, 1.0, cp(x), cp(w), 0.0, mp(y)); });
}
void dense1_bwd_filter(benchmark::State& s, Device d, int64_t n) {
  Tensor x = rand({n, kFlat}, d), dy = rand({n, kHidden}, d), dw = rand({kFlat, kHidden}, d);
  timed(s, d, n, [&] { be::get(d).gemm(F32, true, false, kFlat, kHidden, n, 1.0, cp(x), cp(dy), 0.0, mp(dw)); });
}
void dense1_bwd_data(benchmark::State& s, Device d, int64_t n) {
  Tensor dy = rand({n, kHidden}, d), w = rand({kFlat, kHidden}, d), dx = rand({n, kFlat}, d);
  timed(s, d, n, [&] { be::get(d).gemm(F32, false, true, n, kFlat, kHidden, 1.0, cp(dy), cp(w), 0.0, mp(dx)); });
}

// The first Dense layer's whole forward and backward (bias and ReLU included), fused (one GEMM with a
// bias+ReLU epilogue; ReLU mask, one GEMM with the bias gradient, the data-gradient GEMM) and
// unfused (GEMM, bias add, ReLU; ReLU mask, GEMM, column sum, GEMM), to weigh the fusion.
void dense1_fused_fwd(benchmark::State& s, Device d, int64_t n) {
  Tensor x = rand({n, kFlat}, d), w = rand({kFlat, kHidden}, d), b = rand({kHidden}, d), y = rand({n, kHidden}, d);
  timed(s, d, n, [&] { be::get(d).gemm_bias_act(F32, n, kHidden, kFlat, cp(x), cp(w), cp(b), true, mp(y)); });
}
void dense1_fused_bwd(benchmark::State& s, Device d, int64_t n) {
  Tensor x = rand({n, kFlat}, d), w = rand({kFlat, kHidden}, d), y = rand({n, kHidden}, d), dy = rand({n, kHidden}, d);
  Tensor dz = rand({n, kHidden}, d), dw = rand({kFlat, kHidden}, d), db = rand({kHidden}, d), dx = rand({n, kFlat}, d);
  timed(s, d, n, [&] {
    be::Backend& backend = be::get(d);
    backend.unary_backward(be::UnaryOp::Relu, F32, cp(y), cp(y), cp(dy), mp(dz), n * kHidden);
    backend.gemm_wgrad_bias(F32, n, kHidden, kFlat, cp(x), cp(dz), mp(dw), mp(db));
    backend.gemm(F32, false, true, n, kFlat, kHidden, 1.0, cp(dz), cp(w), 0.0, mp(dx));
  });
}
void dense1_unfused_fwd(benchmark::State& s, Device d, int64_t n) {
  Tensor x = rand({n, kFlat}, d), w = rand({kFlat, kHidden}, d), b = rand({kHidden}, d), y = rand({n, kHidden}, d);
  timed(s, d, n, [&] {
    be::Backend& backend = be::get(d);
    backend.gemm(F32, false, false, n, kHidden, kFlat, 1.0, cp(x), cp(w), 0.0, mp(y));
    backend.binary(be::BinaryOp::Add, F32, cp(y), n * kHidden, cp(b), kHidden, mp(y), n * kHidden);
    backend.unary(be::UnaryOp::Relu, F32, cp(y), mp(y), n * kHidden);
  });
}
void dense1_unfused_bwd(benchmark::State& s, Device d, int64_t n) {
  Tensor x = rand({n, kFlat}, d), w = rand({kFlat, kHidden}, d), y = rand({n, kHidden}, d), dy = rand({n, kHidden}, d);
  Tensor dz = rand({n, kHidden}, d), dw = rand({kFlat, kHidden}, d), db = rand({kHidden}, d), dx = rand({n, kFlat}, d);
  timed(s, d, n, [&] {
    be::Backend& backend = be::get(d);
    backend.unary_backward(be::UnaryOp::Relu, F32, cp(y), cp(y), cp(dy), mp(dz), n * kHidden);
    backend.gemm(F32, true, false, kFlat, kHidden, n, 1.0, cp(x), cp(dz), 0.0, mp(dw));
    backend.sum_rows(F32, cp(dz), mp(db), n, kHidden, false);
    backend.gemm(F32, false, true, n, kFlat, kHidden, 1.0, cp(dz), cp(w), 0.0, mp(dx));
  });
}

// ---- convolution ----
void conv_fwd(benchmark::State& s, Device d, int64_t n) {
  Tensor x = rand({n, kH, kW, kC}, d), w = rand({kK, kK, kC, kF}, d), y = rand({n, kOH, kOW, kF}, d);
  timed(s, d, n, [&] { be::get(d).conv2d_forward(F32, conv_geometry(n), cp(x), cp(w), nullptr, false, mp(y)); });
}
// The layer's whole forward pass: convolution, bias and ReLU in one call (against conv2d_fwd +
// conv_bias_add + relu_fwd).
void conv_fwd_fused(benchmark::State& s, Device d, int64_t n) {
  Tensor x = rand({n, kH, kW, kC}, d), w = rand({kK, kK, kC, kF}, d), b = rand({kF}, d), y = rand({n, kOH, kOW, kF}, d);
  timed(s, d, n, [&] { be::get(d).conv2d_forward(F32, conv_geometry(n), cp(x), cp(w), cp(b), true, mp(y)); });
}
void conv_bwd_data(benchmark::State& s, Device d, int64_t n) {
  Tensor dy = rand({n, kOH, kOW, kF}, d), w = rand({kK, kK, kC, kF}, d), dx = rand({n, kH, kW, kC}, d);
  timed(s, d, n, [&] { be::get(d).conv2d_backward_data(F32, conv_geometry(n), cp(dy), cp(w), mp(dx)); });
}
void conv_bwd_filter(benchmark::State& s, Device d, int64_t n) {
  Tensor x = rand({n, kH, kW, kC}, d), dy = rand({n, kOH, kOW, kF}, d), dw = rand({kK, kK, kC, kF}, d);
  timed(s, d, n,
        [&] { be::get(d).conv2d_backward_filter(F32, conv_geometry(n), cp(x), cp(dy), nullptr, mp(dw), nullptr); });
}
// The layer's whole backward pass (its input needs no gradient): ReLU backward, filter and bias
// gradients in one call (against relu_bwd + conv_bias_grad + conv2d_bwd_filter).
void conv_bwd_fused(benchmark::State& s, Device d, int64_t n) {
  Tensor x = rand({n, kH, kW, kC}, d), dy = rand({n, kOH, kOW, kF}, d), y = rand({n, kOH, kOW, kF}, d);
  Tensor dw = rand({kK, kK, kC, kF}, d), db = rand({kF}, d);
  timed(s, d, n,
        [&] { be::get(d).conv2d_backward_filter(F32, conv_geometry(n), cp(x), cp(dy), cp(y), mp(dw), mp(db)); });
}

// ---- the conv layer's bias and activation, at the conv output's size (the largest of the step) ----
void bias_add(benchmark::State& s, Device d, int64_t n) {
  const int64_t count = n * kOH * kOW * kF;
  Tensor y = rand({n, kOH, kOW, kF}, d), b = rand({kF}, d), out = rand({n, kOH, kOW, kF}, d);
  timed(s, d, n, [&] { be::get(d).binary(be::BinaryOp::Add, F32, cp(y), count, cp(b), kF, mp(out), count); });
}
void bias_grad(benchmark::State& s, Device d, int64_t n) {
  Tensor dy = rand({n, kOH, kOW, kF}, d), db = rand({kF}, d);
  timed(s, d, n, [&] { be::get(d).sum_rows(F32, cp(dy), mp(db), n * kOH * kOW, kF, false); });
}
void relu_fwd(benchmark::State& s, Device d, int64_t n) {
  const int64_t count = n * kOH * kOW * kF;
  Tensor x = rand({count}, d), y = rand({count}, d);
  timed(s, d, n, [&] { be::get(d).unary(be::UnaryOp::Relu, F32, cp(x), mp(y), count); });
}
void relu_bwd(benchmark::State& s, Device d, int64_t n) {
  const int64_t count = n * kOH * kOW * kF;
  Tensor x = rand({count}, d), y = rand({count}, d), dy = rand({count}, d), dx = rand({count}, d);
  timed(s, d, n, [&] { be::get(d).unary_backward(be::UnaryOp::Relu, F32, cp(x), cp(y), cp(dy), mp(dx), count); });
}

// ---- BatchNormalization in training over the conv output, alone and with ReLU inside its passes ----
void batch_norm_run(benchmark::State& s, Device d, int64_t n, bool relu, bool backward) {
  const int64_t rows = n * kOH * kOW;
  Tensor x = rand({rows, kF}, d), y = rand({rows, kF}, d), dy = rand({rows, kF}, d), dx = rand({rows, kF}, d);
  Tensor gamma = rand({kF}, d), beta = rand({kF}, d), mean = rand({kF}, d), variance = rand({kF}, d);
  Tensor dgamma = rand({kF}, d), dbeta = rand({kF}, d);
  const std::optional<be::UnaryFn> act = relu ? std::optional<be::UnaryFn>(be::UnaryOp::Relu) : std::nullopt;
  const auto forward = [&] {
    be::get(d).batch_norm_forward(F32, cp(x), cp(gamma), cp(beta), 1e-3, act, mp(y), mp(mean), mp(variance), rows, kF);
  };
  forward();
  if (!backward) return timed(s, d, n, forward);
  timed(s, d, n, [&] {
    be::get(d).batch_norm_backward(F32, cp(x), cp(dy), act, relu ? cp(y) : nullptr, cp(mean), cp(variance), cp(gamma),
                                   cp(beta), 1e-3, mp(dx), mp(dgamma), mp(dbeta), rows, kF);
  });
}
void batch_norm_fwd(benchmark::State& s, Device d, int64_t n) { batch_norm_run(s, d, n, false, false); }
void batch_norm_bwd(benchmark::State& s, Device d, int64_t n) { batch_norm_run(s, d, n, false, true); }
void batch_norm_relu_fwd(benchmark::State& s, Device d, int64_t n) { batch_norm_run(s, d, n, true, false); }
void batch_norm_relu_bwd(benchmark::State& s, Device d, int64_t n) { batch_norm_run(s, d, n, true, true); }

// ---- pooling ----
void pool_fwd(benchmark::State& s, Device d, int64_t n) {
  Tensor x = rand({n, kOH, kOW, kF}, d), y = rand({n, kPH, kPW, kF}, d);
  timed(s, d, n, [&] { be::get(d).max_pool2d_forward(F32, pool_geometry(n), cp(x), mp(y)); });
}
void pool_bwd(benchmark::State& s, Device d, int64_t n) {
  Tensor x = rand({n, kOH, kOW, kF}, d), y = rand({n, kPH, kPW, kF}, d), dy = rand({n, kPH, kPW, kF}, d),
         dx = rand({n, kOH, kOW, kF}, d);
  be::get(d).max_pool2d_forward(F32, pool_geometry(n), cp(x), mp(y));
  timed(s, d, n, [&] { be::get(d).max_pool2d_backward(F32, pool_geometry(n), cp(x), cp(y), cp(dy), mp(dx)); });
}

// LeNet-5's first pooling: 2x2 average over [N, 28, 28, 6], a layer of few channels.
be::Pool2dGeometry lenet_pool_geometry(int64_t n) { return {n, 28, 28, 6, 2, 2, 14, 14, 2, 2, 0, 0}; }
void avg_pool_fwd(benchmark::State& s, Device d, int64_t n) {
  Tensor x = rand({n, 28, 28, 6}, d), y = rand({n, 14, 14, 6}, d);
  timed(s, d, n, [&] { be::get(d).avg_pool2d_forward(F32, lenet_pool_geometry(n), cp(x), mp(y)); });
}
void avg_pool_bwd(benchmark::State& s, Device d, int64_t n) {
  Tensor dy = rand({n, 14, 14, 6}, d), dx = rand({n, 28, 28, 6}, d);
  timed(s, d, n, [&] { be::get(d).avg_pool2d_backward(F32, lenet_pool_geometry(n), cp(dy), mp(dx)); });
}

// ---- loss: softmax cross-entropy forward and its logits gradient in one kernel ----
void softmax_xent(benchmark::State& s, Device d, int64_t n) {
  Tensor logits = rand({n, kClasses}, d), y = labels(n, d), loss = rand({n}, d), dlogits = rand({n, kClasses}, d);
  timed(s, d, n, [&] {
    be::get(d).sparse_softmax_xent(F32, cp(logits), static_cast<const int32_t*>(cp(y)), mp(loss), mp(dlogits),
                                   1.0 / static_cast<double>(n), n, kClasses);
  });
}

// ---- optimizer: one Adam update of all six parameters of the model (independent of the batch) ----
void adam_all(benchmark::State& s, Device d, int64_t) {
  const std::vector<kiln::Shape> shapes = {{kK, kK, kC, kF},    {kF},      {kFlat, kHidden}, {kHidden},
                                           {kHidden, kClasses}, {kClasses}};
  std::vector<Tensor> w, g, m, v;
  for (const auto& sh : shapes) {
    w.push_back(rand(sh, d)), g.push_back(rand(sh, d));
    m.push_back(Tensor::zeros(sh, F32, d)), v.push_back(Tensor::zeros(sh, F32, d));
  }
  int64_t step = 0;
  timed(s, d, 0, [&] {
    ++step;
    for (std::size_t i = 0; i < w.size(); ++i)
      be::get(d).adam_step(F32, mp(w[i]), cp(g[i]), mp(m[i]), mp(v[i]), w[i].numel(), 1e-3, 0.9, 0.999, 1e-7, step);
  });
}

// ---- the whole training step through the public API (what bench_train times) ----
void train_step(benchmark::State& s, Device d, int64_t n) {
  kiln::Sequential model({kiln::layers::Conv2D(32, {3, 3}, {.activation = "relu", .input_shape = {32, 32, 3}}),
                          kiln::layers::MaxPooling2D({2, 2}), kiln::layers::Flatten(),
                          kiln::layers::Dense(64, {.activation = "relu"}), kiln::layers::Dense(10)});
  model.compile(kiln::optimizers::Adam(), kiln::losses::SparseCategoricalCrossentropy({.from_logits = true}));
  model.to(d);
  const std::vector<Tensor> params = model.trainable_weights();
  Tensor x = Tensor::uniform({n, kH, kW, kC}, 0.0, 1.0, kiln::global_generator(), F32, d), y = labels(n, d);
  timed(s, d, n, [&] {
    Tensor loss = (*model.loss())(y, model(x));
    for (auto p : params) p.zero_grad();
    loss.backward();
    model.optimizer()->step(params);
  });
}

// Three short repetitions, reported as their median (and spread), keep a full run near a minute.
void configure(benchmark::internal::Benchmark* b) {
  b->UseManualTime()->Unit(benchmark::kMicrosecond)->MinTime(0.2)->Repetitions(3)->ReportAggregatesOnly(true);
}

void register_device(Device d, const std::vector<int64_t>& batches) {
  const std::vector<std::pair<const char*, BenchFn>> per_batch = {{"dense1_fwd", dense1_fwd},
                                                                  {"dense1_bwd_filter", dense1_bwd_filter},
                                                                  {"dense1_bwd_data", dense1_bwd_data},
                                                                  {"dense1_fused_fwd", dense1_fused_fwd},
                                                                  {"dense1_fused_bwd", dense1_fused_bwd},
                                                                  {"dense1_unfused_fwd", dense1_unfused_fwd},
                                                                  {"dense1_unfused_bwd", dense1_unfused_bwd},
                                                                  {"conv2d_fwd", conv_fwd},
                                                                  {"conv2d_bwd_data", conv_bwd_data},
                                                                  {"conv2d_bwd_filter", conv_bwd_filter},
                                                                  {"conv2d_fwd_bias_relu", conv_fwd_fused},
                                                                  {"conv2d_bwd_relu_filter_bias", conv_bwd_fused},
                                                                  {"conv_bias_add", bias_add},
                                                                  {"conv_bias_grad", bias_grad},
                                                                  {"relu_fwd", relu_fwd},
                                                                  {"relu_bwd", relu_bwd},
                                                                  {"batch_norm_fwd", batch_norm_fwd},
                                                                  {"batch_norm_bwd", batch_norm_bwd},
                                                                  {"batch_norm_relu_fwd", batch_norm_relu_fwd},
                                                                  {"batch_norm_relu_bwd", batch_norm_relu_bwd},
                                                                  {"max_pool2d_fwd", pool_fwd},
                                                                  {"max_pool2d_bwd", pool_bwd},
                                                                  {"avg_pool2d_6ch_fwd", avg_pool_fwd},
                                                                  {"avg_pool2d_6ch_bwd", avg_pool_bwd},
                                                                  {"softmax_xent", softmax_xent},
                                                                  {"train_step", train_step}};
  const std::string dev = d.is_cuda() ? "gpu" : "cpu";
  for (int64_t n : batches)
    for (const auto& [name, fn] : per_batch) {
      const std::string full = dev + "/" + name + "/N:" + std::to_string(n);
      configure(benchmark::RegisterBenchmark(full.c_str(), [d, n, fn = fn](benchmark::State& st) { fn(st, d, n); }));
    }
  const std::string adam = dev + "/adam_step_all_params";
  configure(benchmark::RegisterBenchmark(adam.c_str(), [d](benchmark::State& st) { adam_all(st, d, 0); }));
}

}  // namespace

int main(int argc, char** argv) {
  // Takes --threads=N out of argv before Google Benchmark sees its own flags.
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    if (std::strncmp(argv[i], "--threads=", 10) == 0)
      kiln::set_num_threads(std::atoi(argv[i] + 10));
    else
      rest.push_back(argv[i]);
  }
  int rest_argc = static_cast<int>(rest.size());
  benchmark::AddCustomContext("kiln_threads", std::to_string(kiln::get_num_threads()));

  register_device(Device::cpu(), {10, 128});
  const std::string gpu = kiln::test::gpu_device_name();
  if (!gpu.empty()) {
    benchmark::AddCustomContext("kiln_gpu", gpu);
    register_device(Device::gpu(), {10, 128, 2048});
  }

  benchmark::Initialize(&rest_argc, rest.data());
  if (benchmark::ReportUnrecognizedArguments(rest_argc, rest.data())) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
