// patch_whitening_kernel: the patches' second-moment matrix accumulated in float64 chunk by chunk
// (a chunk of images' patches as rows of a matrix, then one product; on a GPU with kiln's ops where
// the images are, so only the small matrix comes back), Eigen's symmetric eigensolver, and the
// scaled eigenvectors written out in the Conv2D kernel layout.
#include "kiln/utils/whitening.h"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>

#include "kiln/autograd.h"
#include "kiln/error.h"
#include "kiln/ops.h"

namespace kiln::utils {

namespace {

const char* const kOp = "patch_whitening_kernel";

std::string number(double v) {
  std::ostringstream out;
  out << v;
  return out.str();
}

void check_arguments(const Tensor& images, std::array<int64_t, 2> k, const PatchWhiteningOptions& options) {
  if (!images.defined() || images.ndim() != 4)
    throw Error(kOp, "images are " + (images.defined() ? images.shape().str() : std::string("undefined")) +
                         "; expected a batch of images [N, H, W, C]");
  if (images.dtype() != DType::Float32 && images.dtype() != DType::Float64)
    throw Error(kOp, "images are " + dtype_name(images.dtype()) +
                         "; expected float32 or float64 (normalized pixel values, not raw uint8)");
  if (k[0] < 1 || k[1] < 1)
    throw Error(kOp, "kernel_size is [" + std::to_string(k[0]) + ", " + std::to_string(k[1]) +
                         "]; expected at least 1 in each dimension");
  if (images.size(0) < 1 || images.size(1) < k[0] || images.size(2) < k[1] || images.size(3) < 1)
    throw Error(kOp, "images " + images.shape().str() + " hold no " + std::to_string(k[0]) + "x" +
                         std::to_string(k[1]) + " patch; expected at least one image of at least the kernel's size");
  if (!std::isfinite(options.epsilon) || options.epsilon < 0)
    throw Error(kOp, "epsilon is " + number(options.epsilon) + "; expected a finite number >= 0");
}

// The second-moment matrix of every KH x KW patch of the images at `x` (NHWC, contiguous), each
// patch flattened as (row, column, channel): the order of a kernel's [KH, KW, C] elements.
template <typename T>
Eigen::MatrixXd second_moments(const T* x, int64_t N, int64_t H, int64_t W, int64_t C, std::array<int64_t, 2> k) {
  const int64_t D = k[0] * k[1] * C, OH = H - k[0] + 1, OW = W - k[1] + 1;
  const int64_t per_image = OH * OW;
  // Chunks of about 64k patches keep the patch matrix small (D columns of doubles).
  const int64_t images_per_chunk = std::max<int64_t>(1, 65536 / per_image);
  Eigen::MatrixXd sum = Eigen::MatrixXd::Zero(D, D);
  Eigen::MatrixXd patches;
  for (int64_t n0 = 0; n0 < N; n0 += images_per_chunk) {
    const int64_t n1 = std::min(N, n0 + images_per_chunk);
    patches.resize((n1 - n0) * per_image, D);
    int64_t row = 0;
    for (int64_t n = n0; n < n1; ++n)
      for (int64_t oy = 0; oy < OH; ++oy)
        for (int64_t ox = 0; ox < OW; ++ox, ++row) {
          int64_t col = 0;
          for (int64_t i = 0; i < k[0]; ++i)
            for (int64_t j = 0; j < k[1]; ++j) {
              const T* px = x + ((n * H + oy + i) * W + ox + j) * C;
              for (int64_t c = 0; c < C; ++c) patches(row, col++) = static_cast<double>(px[c]);
            }
        }
    sum.selfadjointView<Eigen::Lower>().rankUpdate(patches.transpose());
  }
  Eigen::MatrixXd moments = sum.selfadjointView<Eigen::Lower>();
  return moments / static_cast<double>(N * per_image);
}

// second_moments() computed where the images live, with kiln's ops: a chunk's patches gathered by
// KH*KW shifted slices concatenated along the channels (the same (row, column, channel) order),
// widened to float64, and multiplied by their own transpose.
Eigen::MatrixXd device_second_moments(const Tensor& images, std::array<int64_t, 2> k) {
  NoGradGuard no_grad;  // statistics of the data, not part of any model's graph
  const int64_t N = images.size(0), H = images.size(1), W = images.size(2), C = images.size(3);
  const int64_t D = k[0] * k[1] * C, OH = H - k[0] + 1, OW = W - k[1] + 1;
  // Chunks of about 4M patches bound the float64 copies (D columns each) to some hundred MiB.
  const int64_t images_per_chunk = std::max<int64_t>(1, (int64_t{1} << 22) / (OH * OW));
  Tensor sum;
  for (int64_t n0 = 0; n0 < N; n0 += images_per_chunk) {
    const int64_t n = std::min(N - n0, images_per_chunk);
    std::vector<Tensor> shifted;
    for (int64_t i = 0; i < k[0]; ++i)
      for (int64_t j = 0; j < k[1]; ++j) shifted.push_back(slice(images, {n0, i, j, 0}, {n, OH, OW, C}));
    const Tensor patches = reshape(cast(concatenate(shifted, -1), DType::Float64), {n * OH * OW, D});
    const Tensor product = matmul(permute(patches, {1, 0}), patches);
    sum = sum.defined() ? add(sum, product) : product;
  }
  const std::vector<double> host = sum.to_vector<double>();
  Eigen::MatrixXd moments = Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(
      host.data(), static_cast<Eigen::Index>(D), static_cast<Eigen::Index>(D));
  return moments / static_cast<double>(N * OH * OW);
}

template <typename T>
void check_finite(const T* x, int64_t n, const Shape& shape) {
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(x[i]))
      throw Error(kOp, "images " + shape.str() + " hold " + std::to_string(static_cast<double>(x[i])) +
                           " at flat index " + std::to_string(i) + "; expected finite values");
}

}  // namespace

Tensor patch_whitening_kernel(const Tensor& images, std::array<int64_t, 2> kernel_size,
                              const PatchWhiteningOptions& options) {
  check_arguments(images, kernel_size, options);
  const int64_t N = images.size(0), H = images.size(1), W = images.size(2), C = images.size(3);
  const int64_t D = kernel_size[0] * kernel_size[1] * C;
  Eigen::MatrixXd moments;
  if (images.device().is_cuda()) {
    moments = device_second_moments(images, kernel_size);
    // A NaN or infinity anywhere reaches the moments; only then are the images read back to name it.
    if (!moments.allFinite()) {
      const Tensor host = images.cpu();
      if (host.dtype() == DType::Float32)
        check_finite(host.data<float>(), host.numel(), host.shape());
      else
        check_finite(host.data<double>(), host.numel(), host.shape());
    }
  } else if (const Tensor& host = images; host.dtype() == DType::Float32) {
    check_finite(host.data<float>(), host.numel(), host.shape());
    moments = second_moments(host.data<float>(), N, H, W, C, kernel_size);
  } else {
    check_finite(host.data<double>(), host.numel(), host.shape());
    moments = second_moments(host.data<double>(), N, H, W, C, kernel_size);
  }

  const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> solver(moments);
  if (solver.info() != Eigen::Success)
    throw Error(kOp, "the eigendecomposition of the patches' " + std::to_string(D) + "x" + std::to_string(D) +
                         " second-moment matrix did not converge; expected finite, not all-equal images");
  const Eigen::VectorXd& values = solver.eigenvalues();  // increasing
  const Eigen::MatrixXd& vectors = solver.eigenvectors();

  const int64_t F = options.negated ? 2 * D : D;
  Tensor kernel = Tensor::empty({kernel_size[0], kernel_size[1], C, F});
  float* out = kernel.data<float>();
  for (int64_t f = 0; f < D; ++f) {
    const Eigen::Index e = static_cast<Eigen::Index>(D - 1 - f);  // decreasing eigenvalue
    const double shifted = values(e) + options.epsilon;
    if (!(shifted > 0))
      throw Error(kOp, "eigenvalue " + std::to_string(f) + " of the patches' second moments plus epsilon is " +
                           number(shifted) + ": the patches span fewer than " + std::to_string(D) +
                           " directions (constant or repeated images?); expected epsilon > 0 for such data");
    Eigen::VectorXd v = vectors.col(e);
    Eigen::Index largest = 0;
    v.cwiseAbs().maxCoeff(&largest);
    if (v(largest) < 0) v = -v;
    v /= std::sqrt(shifted);
    // The kernel's element (i, j, c, f) sits at ((i * KW + j) * C + c) * F + f, and row d of v is the
    // patch element (i, j, c) with d = (i * KW + j) * C + c.
    for (int64_t d = 0; d < D; ++d) {
      out[d * F + f] = static_cast<float>(v(static_cast<Eigen::Index>(d)));
      if (options.negated) out[d * F + D + f] = static_cast<float>(-v(static_cast<Eigen::Index>(d)));
    }
  }
  return kernel;
}

}  // namespace kiln::utils
