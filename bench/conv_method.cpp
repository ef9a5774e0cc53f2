// Which CPU convolution method is faster at the seed shapes: kiln's im2col + Eigen GEMM
// (src/backend/cpu/cpu_conv.cpp, called here through the backend) or an Eigen Tensor contraction
// over image patches (extract_image_patches, TensorFlow's CPU method), implicit (the contraction
// packs straight from the patch expression) or materialised (patches evaluated first); and, to
// split patch extraction from the matrix product, the Tensor contraction alone on patches made
// beforehand.
// Forward and filter gradient (the two a training step of the seed model runs), at 1, 2 and all
// threads. Shapes: x [N, 32, 32, 3], kernel [3, 3, 3, 32], valid, stride 1 -> [N, 30, 30, 32].
#include <benchmark/benchmark.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <unsupported/Eigen/CXX11/Tensor>
#include <vector>

#include "backend/backend.h"
#include "kiln/kiln.h"

namespace {

constexpr Eigen::Index kH = 32, kW = 32, kC = 3, kK = 3, kF = 32, kOH = 30, kOW = 30, kPatch = kK * kK * kC;

using Tensor4 = Eigen::TensorMap<Eigen::Tensor<float, 4, Eigen::RowMajor>>;
using CTensor4 = Eigen::TensorMap<Eigen::Tensor<const float, 4, Eigen::RowMajor>>;
using Tensor2 = Eigen::TensorMap<Eigen::Tensor<float, 2, Eigen::RowMajor>>;
using CTensor2 = Eigen::TensorMap<Eigen::Tensor<const float, 2, Eigen::RowMajor>>;
using Pair = Eigen::IndexPair<Eigen::Index>;

struct Data {
  Eigen::Index n;
  std::vector<float> x, w, y, dy, dw, im2col;  // im2col: [N*OH*OW, KH*KW*C], made once
  explicit Data(Eigen::Index batch) : n(batch) {
    std::srand(3);
    auto fill = [](std::vector<float>& v, std::size_t size) {
      v.resize(size);
      for (auto& e : v) e = static_cast<float>(std::rand()) / RAND_MAX * 2.0f - 1.0f;
    };
    fill(x, n * kH * kW * kC), fill(w, kPatch * kF), fill(y, n * kOH * kOW * kF);
    fill(dy, n * kOH * kOW * kF), fill(dw, kPatch * kF);
    im2col.resize(n * kOH * kOW * kPatch);
  }
};

kiln::backend::Conv2dGeometry geometry(Eigen::Index n) { return {n, kH, kW, kC, kK, kK, kF, kOH, kOW, 1, 1, 0, 0}; }

// Row-major [N, H, W, C] reads to Eigen as (batch, cols = H, rows = W, depth), so the patch tensor
// is [N, OH*OW, KH, KW, C]: flattened, the rows are output pixels and the columns follow the
// kernel's [KH, KW, C] order, exactly the im2col matrix.
auto patches(const CTensor4& x) {
  return x.extract_image_patches(kK, kK, 1, 1, 1, 1, Eigen::PADDING_VALID)
      .reshape(Eigen::array<Eigen::Index, 2>{x.dimension(0) * kOH * kOW, kPatch});
}

// The contraction engine alone, on patches extracted before the clock starts.
void eigen_contract_only(const Eigen::ThreadPoolDevice& dev, Data& d, bool backward_filter) {
  CTensor2 p(d.im2col.data(), d.n * kOH * kOW, kPatch);
  if (backward_filter) {
    Tensor2(d.dw.data(), kPatch, kF).device(dev) =
        p.contract(CTensor2(d.dy.data(), d.n * kOH * kOW, kF), Eigen::array<Pair, 1>{Pair(0, 0)});
  } else {
    Tensor2(d.y.data(), d.n * kOH * kOW, kF).device(dev) =
        p.contract(CTensor2(d.w.data(), kPatch, kF), Eigen::array<Pair, 1>{Pair(1, 0)});
  }
}

void eigen_forward(const Eigen::ThreadPoolDevice& dev, Data& d, bool materialise) {
  CTensor4 x(d.x.data(), d.n, kH, kW, kC);
  CTensor2 w(d.w.data(), kPatch, kF);
  Tensor2 y(d.y.data(), d.n * kOH * kOW, kF);
  const Eigen::array<Pair, 1> dims = {Pair(1, 0)};
  if (materialise) {
    Eigen::Tensor<float, 2, Eigen::RowMajor> p(d.n * kOH * kOW, kPatch);
    p.device(dev) = patches(x);
    y.device(dev) = p.contract(w, dims);
  } else {
    y.device(dev) = patches(x).contract(w, dims);
  }
}

void eigen_backward_filter(const Eigen::ThreadPoolDevice& dev, Data& d, bool materialise) {
  CTensor4 x(d.x.data(), d.n, kH, kW, kC);
  CTensor2 dy(d.dy.data(), d.n * kOH * kOW, kF);
  Tensor2 dw(d.dw.data(), kPatch, kF);
  const Eigen::array<Pair, 1> dims = {Pair(0, 0)};
  if (materialise) {
    Eigen::Tensor<float, 2, Eigen::RowMajor> p(d.n * kOH * kOW, kPatch);
    p.device(dev) = patches(x);
    dw.device(dev) = p.contract(dy, dims);
  } else {
    dw.device(dev) = patches(x).contract(dy, dims);
  }
}

// Both methods must compute the same function before their speeds mean anything.
bool check(int threads) {
  Eigen::ThreadPool pool(threads);
  Eigen::ThreadPoolDevice dev(&pool, threads);
  Data d(4);
  std::vector<float> ref_y(d.y.size()), ref_dw(d.dw.size());
  auto& cpu = kiln::backend::cpu();
  cpu.conv2d_forward(kiln::DType::Float32, geometry(d.n), d.x.data(), d.w.data(), nullptr, false, ref_y.data());
  cpu.conv2d_backward_filter(kiln::DType::Float32, geometry(d.n), d.x.data(), d.dy.data(), nullptr, ref_dw.data(),
                             nullptr);
  auto rel = [](const std::vector<float>& a, const std::vector<float>& b) {
    double num = 0, den = 0;
    for (std::size_t i = 0; i < a.size(); ++i) num += (a[i] - b[i]) * (a[i] - b[i]), den += b[i] * b[i];
    return std::sqrt(num / den);
  };
  bool ok = true;
  for (bool m : {false, true}) {
    std::fill(d.y.begin(), d.y.end(), NAN), std::fill(d.dw.begin(), d.dw.end(), NAN);
    eigen_forward(dev, d, m);
    eigen_backward_filter(dev, d, m);
    const double ey = rel(d.y, ref_y), ew = rel(d.dw, ref_dw);
    std::printf("check (%s): forward rel. error %.2e, filter gradient rel. error %.2e\n",
                m ? "materialised" : "implicit", ey, ew);
    ok = ok && ey < 1e-5 && ew < 1e-5;
  }
  return ok;
}

template <typename F>
void timed(benchmark::State& state, Eigen::Index images, F&& f) {
  f();  // warm-up
  for (auto _ : state) f();
  state.SetItemsProcessed(state.iterations() * images);
}

void register_all(int threads) {
  for (Eigen::Index n : {10, 128}) {
    const std::string t = "/N:" + std::to_string(n) + "/threads:" + std::to_string(threads);
    auto add = [&](const std::string& name, auto fn) {
      benchmark::RegisterBenchmark(name.c_str(), fn)
          ->Unit(benchmark::kMicrosecond)
          ->UseRealTime()
          ->MinTime(0.2)
          ->Repetitions(3)
          ->ReportAggregatesOnly(true);
    };
    for (bool bwd : {false, true}) {
      const std::string pass = bwd ? "bwd_filter" : "fwd";
      add("im2col_gemm_" + pass + t, [n, threads, bwd](benchmark::State& st) {
        kiln::set_num_threads(threads);
        Data d(n);
        auto& cpu = kiln::backend::cpu();
        timed(st, n, [&] {
          if (bwd)
            cpu.conv2d_backward_filter(kiln::DType::Float32, geometry(d.n), d.x.data(), d.dy.data(), nullptr,
                                       d.dw.data(), nullptr);
          else
            cpu.conv2d_forward(kiln::DType::Float32, geometry(d.n), d.x.data(), d.w.data(), nullptr, false, d.y.data());
        });
      });
      for (bool m : {false, true})
        add(std::string(m ? "eigen_patches_materialised_" : "eigen_patches_implicit_") + pass + t,
            [n, threads, bwd, m](benchmark::State& st) {
              Eigen::ThreadPool pool(threads);
              Eigen::ThreadPoolDevice dev(&pool, threads);
              Data d(n);
              timed(st, n, [&] { bwd ? eigen_backward_filter(dev, d, m) : eigen_forward(dev, d, m); });
            });
      add("eigen_contraction_only_" + pass + t, [n, threads, bwd](benchmark::State& st) {
        Eigen::ThreadPool pool(threads);
        Eigen::ThreadPoolDevice dev(&pool, threads);
        Data d(n);
        Tensor2(d.im2col.data(), d.n * kOH * kOW, kPatch).device(dev) = patches(CTensor4(d.x.data(), d.n, kH, kW, kC));
        timed(st, n, [&] { eigen_contract_only(dev, d, bwd); });
      });
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  const int all = static_cast<int>(std::thread::hardware_concurrency());
  if (!check(2)) {
    std::fprintf(stderr, "conv_method: the methods disagree; not timing them\n");
    return 1;
  }
  std::vector<int> thread_counts = {1, 2};
  if (all > 2) thread_counts.push_back(all);
  for (int t : thread_counts) register_all(t);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
