// Where a CPU training step of the zoo's convolution networks spends its convolution and batch-norm
// time: every 3x3 (and 1x1) convolution layer of vgg and resnet20 and LeNet-5's two 5x5 'valid'
// ones (bench/zoo) at its shape, timed
// through the backend interface as the step calls it -- forward, data gradient, filter gradient --
// plus batch normalization's forward and backward at each conv output. Prints one line per kernel
// and shape (median milliseconds of --repeats calls after a warm-up call) and the per-model sums.
// Usage: bench_conv_layers [--model vgg|resnet20|lenet5|all] [--batch-size N] [--threads T] [--repeats R]
//                          [--avx512 0|1]   (0: the products at the library's own level, not AVX-512)
//                          [--winograd 0|1] (0: every layer by im2col + GEMM, not Winograd's F(4x4, 3x3))
//                          [--direct 0|1]   (0: few-channel layers by im2col + GEMM, not direct summation)
//                          [--bn-activation relu|gelu|silu|none] (relu, the default: BatchNormalization with
//                          the ReLU inside, as models run vgg's and resnet20's; none: the normalization alone)
//                          [--layer H,C,F,K,S,same|valid]... (these layers instead of the models': input H x H x C,
//                          F filters of K x K at stride S; summed as model "layers")
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/batch_norm_math.h"
#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_direct_conv.h"
#include "backend/cpu/cpu_winograd.h"
#include "kiln/kiln.h"
#include "layers/activation_op.h"

namespace {

namespace be = kiln::backend;
constexpr auto F32 = kiln::DType::Float32;

struct Layer {
  const char* model;
  int64_t H, C, F, K, stride;  // square input H x H x C, K x K kernel
  int count;                   // how many layers of the model have this shape
  bool same = true;            // 'same' padding, else 'valid'
};

// vgg: conv-BN-ReLU pairs at 64/128/256 filters, pooled after each pair. resnet20: 3x3 'same'
// convolutions of the three stages (the first of stages 2 and 3 at stride 2, Keras' one-sided
// padding) and the 1x1 stride-2 shortcuts.
const std::vector<Layer> kLayers = {
    {"vgg", 32, 3, 64, 3, 1, 1},           {"vgg", 32, 64, 64, 3, 1, 1},      {"vgg", 16, 64, 128, 3, 1, 1},
    {"vgg", 16, 128, 128, 3, 1, 1},        {"vgg", 8, 128, 256, 3, 1, 1},     {"vgg", 8, 256, 256, 3, 1, 1},
    {"resnet20", 32, 3, 16, 3, 1, 1},      {"resnet20", 32, 16, 16, 3, 1, 6}, {"resnet20", 32, 16, 32, 3, 2, 1},
    {"resnet20", 32, 16, 32, 1, 2, 1},     {"resnet20", 16, 32, 32, 3, 1, 5}, {"resnet20", 16, 32, 64, 3, 2, 1},
    {"resnet20", 16, 32, 64, 1, 2, 1},     {"resnet20", 8, 64, 64, 3, 1, 5},  {"lenet5", 32, 3, 6, 5, 1, 1, false},
    {"lenet5", 14, 6, 16, 5, 1, 1, false},
};
const char* const kModels[] = {"vgg", "resnet20", "lenet5", "layers"};

// A --layer value, "H,C,F,K,S,same|valid", as a layer of model "layers"; nullopt if malformed.
std::optional<Layer> parse_layer(const std::string& text) {
  long H = 0, C = 0, F = 0, K = 0, S = 0;
  char padding[8] = {};
  if (std::sscanf(text.c_str(), "%ld,%ld,%ld,%ld,%ld,%7s", &H, &C, &F, &K, &S, padding) != 6 ||
      std::min({H, C, F, K, S}) < 1 || (std::strcmp(padding, "same") != 0 && std::strcmp(padding, "valid") != 0))
    return std::nullopt;
  return Layer{"layers", H, C, F, K, S, 1, std::strcmp(padding, "same") == 0};
}

std::vector<float> random_floats(int64_t n) {
  std::vector<float> v(static_cast<std::size_t>(n));
  for (auto& e : v) e = static_cast<float>(std::rand()) / RAND_MAX * 2.0f - 1.0f;
  return v;
}

double median_ms(int repeats, const std::function<void()>& call) {
  call();  // warm-up: the thread buffers' first use
  std::vector<double> t;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    call();
    t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  std::string model = "all";
  int64_t batch = 32;
  int threads = 2, repeats = 9, avx512 = 1, winograd = 1, direct = 1;
  std::string bn_activation = "relu";
  std::vector<Layer> layers;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--model")
      model = value;
    else if (flag == "--batch-size")
      batch = std::atoll(value.c_str());
    else if (flag == "--threads")
      threads = std::atoi(value.c_str());
    else if (flag == "--repeats")
      repeats = std::atoi(value.c_str());
    else if (flag == "--avx512")
      avx512 = std::atoi(value.c_str());
    else if (flag == "--winograd")
      winograd = std::atoi(value.c_str());
    else if (flag == "--direct")
      direct = std::atoi(value.c_str());
    else if (flag == "--bn-activation")
      bn_activation = value;
    else if (flag == "--layer") {
      const std::optional<Layer> l = parse_layer(value);
      if (!l) return std::fprintf(stderr, "--layer %s: expected H,C,F,K,S,same|valid\n", value.c_str()), 2;
      layers.push_back(*l);
    } else
      return std::fprintf(stderr, "unknown flag %s\n", flag.c_str()), 2;
  }
  kiln::set_num_threads(threads);
  std::printf("AVX-512 products: %s\n", be::set_gemm_avx512(avx512 != 0) ? "on" : "off");
  be::set_conv_winograd(winograd != 0);
  std::printf("Winograd F(4x4, 3x3): %s\n", be::conv_winograd_enabled() ? "on" : "off");
  be::set_conv_direct(direct != 0);
  std::printf("direct summation for few channels: %s\n", direct != 0 ? "on" : "off");
  // The activation the normalization applies in its own passes ("none": the normalization alone).
  const std::optional<be::UnaryFn> activation =
      bn_activation == "none" ? std::nullopt : kiln::activations::elementwise_op(bn_activation);
  if (bn_activation != "none" && !(activation && be::batch_norm_fuses(activation->op)))
    return std::fprintf(stderr, "--bn-activation %s: expected relu, gelu, silu or none\n", bn_activation.c_str()), 2;
  std::printf("BatchNormalization with the activation inside: %s\n", bn_activation.c_str());
  be::Backend& cpu = be::get(kiln::Device::cpu());
  std::printf("%-9s %-22s %5s %9s %9s %9s %9s %9s\n", "model", "layer", "count", "fwd", "bwd_data", "bwd_filt",
              "bn_fwd", "bn_bwd");
  double total[std::size(kModels)][5] = {};
  if (layers.empty()) layers = kLayers;
  for (const Layer& l : layers) {
    if (model != "all" && model != l.model) continue;
    const int64_t OH = l.same ? (l.H + l.stride - 1) / l.stride : (l.H - l.K) / l.stride + 1;
    const int64_t pad = l.same ? std::max<int64_t>((OH - 1) * l.stride + l.K - l.H, 0) / 2 : 0;
    const be::Conv2dGeometry g{batch, l.H, l.H, l.C, l.K, l.K, l.F, OH, OH, l.stride, l.stride, pad, pad};
    const int64_t nx = batch * l.H * l.H * l.C, ny = batch * OH * OH * l.F, nw = l.K * l.K * l.C * l.F;
    std::vector<float> x = random_floats(nx), w = random_floats(nw), y(ny), dy = random_floats(ny), dx(nx), dw(nw);
    std::vector<float> stats = random_floats(4 * l.F), gamma = random_floats(l.F), dg(l.F), dbeta(l.F), bn_y(ny),
                       bn_dx(ny);
    for (int64_t c = 0; c < l.F; ++c) stats[l.F + c] = std::abs(stats[l.F + c]) + 0.5f;
    double ms[5];
    ms[0] = median_ms(repeats, [&] { cpu.conv2d_forward(F32, g, x.data(), w.data(), nullptr, false, y.data()); });
    ms[1] = l.C > 3 ? median_ms(repeats, [&] { cpu.conv2d_backward_data(F32, g, dy.data(), w.data(), dx.data()); })
                    : 0.0;  // the first layer's input needs no gradient
    ms[2] = median_ms(repeats,
                      [&] { cpu.conv2d_backward_filter(F32, g, x.data(), dy.data(), nullptr, dw.data(), nullptr); });
    ms[3] = median_ms(repeats, [&] {
      cpu.batch_norm_forward(F32, y.data(), gamma.data(), gamma.data(), 1e-3, activation, bn_y.data(), stats.data(),
                             stats.data() + l.F, batch * OH * OH, l.F);
    });
    ms[4] = median_ms(repeats, [&] {
      cpu.batch_norm_backward(F32, y.data(), dy.data(), activation, bn_y.data(), stats.data(), stats.data() + l.F,
                              gamma.data(), gamma.data(), 1e-3, bn_dx.data(), dg.data(), dbeta.data(), batch * OH * OH,
                              l.F);
    });
    char name[64];
    std::snprintf(name, sizeof(name), "%ldx%ldx%ld>%ld k%ld s%ld", static_cast<long>(l.H), static_cast<long>(l.H),
                  static_cast<long>(l.C), static_cast<long>(l.F), static_cast<long>(l.K), static_cast<long>(l.stride));
    std::printf("%-9s %-22s %5d %9.3f %9.3f %9.3f %9.3f %9.3f\n", l.model, name, l.count, ms[0], ms[1], ms[2], ms[3],
                ms[4]);
    const auto m = static_cast<std::size_t>(std::find_if(std::begin(kModels), std::end(kModels),
                                                         [&](const char* n) { return std::strcmp(n, l.model) == 0; }) -
                                            std::begin(kModels));
    for (int k = 0; k < 5; ++k) total[m][k] += ms[k] * l.count;
  }
  for (std::size_t m = 0; m < std::size(kModels); ++m)
    if (total[m][0] > 0)
      std::printf("%-9s %-22s %5s %9.3f %9.3f %9.3f %9.3f %9.3f  (ms per step, batch %ld, %d threads)\n", kModels[m],
                  "sum", "", total[m][0], total[m][1], total[m][2], total[m][3], total[m][4], static_cast<long>(batch),
                  threads);
  return 0;
}
