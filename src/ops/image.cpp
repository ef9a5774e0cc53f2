// Image resampling: the per-sample axis-aligned map behind flips, translations, crops and resizes,
// its gradient (the map's transpose), and the random transforms the augmentation layers draw.
#include <cmath>

#include "backend/philox.h"
#include "ops/image_random.h"
#include "ops/op_util.h"

namespace kiln {

FillMode parse_fill_mode(const std::string& name, const std::string& op) {
  if (name == "constant") return FillMode::Constant;
  if (name == "reflect") return FillMode::Reflect;
  if (name == "wrap") return FillMode::Wrap;
  if (name == "nearest") return FillMode::Nearest;
  throw Error(op, "fill_mode \"" + name + "\" is unknown; expected \"constant\", \"reflect\", \"wrap\" or \"nearest\"");
}

std::string fill_mode_name(FillMode mode) {
  switch (mode) {
    case FillMode::Constant:
      return "constant";
    case FillMode::Reflect:
      return "reflect";
    case FillMode::Wrap:
      return "wrap";
    case FillMode::Nearest:
      return "nearest";
  }
  return "constant";
}

Interpolation parse_interpolation(const std::string& name, const std::string& op) {
  if (name == "bilinear") return Interpolation::Bilinear;
  if (name == "nearest") return Interpolation::Nearest;
  throw Error(op, "interpolation \"" + name + "\" is unknown; expected \"bilinear\" or \"nearest\"");
}

std::string interpolation_name(Interpolation interpolation) {
  return interpolation == Interpolation::Nearest ? "nearest" : "bilinear";
}

namespace {

backend::ImageFill backend_fill(FillMode mode) {
  switch (mode) {
    case FillMode::Constant:
      return backend::ImageFill::Constant;
    case FillMode::Reflect:
      return backend::ImageFill::Reflect;
    case FillMode::Wrap:
      return backend::ImageFill::Wrap;
    case FillMode::Nearest:
      return backend::ImageFill::Nearest;
  }
  return backend::ImageFill::Constant;
}

}  // namespace

Tensor image_transform(const Tensor& x, const Tensor& transforms, std::array<int64_t, 2> size,
                       Interpolation interpolation, FillMode fill_mode, double fill_value) {
  const std::string op = "image_transform";
  ops::check_floating(op, x);
  ops::check_ndim(op, x, 4);
  ops::check_floating(op, transforms, "transforms");
  ops::check_compatible(op, x, transforms);
  const int64_t N = x.size(0), H = x.size(1), W = x.size(2), C = x.size(3);
  if (transforms.shape() != Shape{N, 4})
    throw Error(op, "transforms have shape " + transforms.shape().str() + " for " + std::to_string(N) +
                        " images; expected [" + std::to_string(N) + ", 4] (ay, by, ax, bx per image)");
  if (size[0] < 1 || size[1] < 1)
    throw Error(op, "output size [" + std::to_string(size[0]) + ", " + std::to_string(size[1]) +
                        "]; expected a height and a width of at least 1");
  if (H < 1 || W < 1)
    throw Error(op, "input images are " + std::to_string(H) + "x" + std::to_string(W) +
                        "; expected a height and a width of at least 1");
  if (!std::isfinite(fill_value)) throw Error(op, "fill_value is not finite; expected a finite number");
  const backend::ImageTransformGeometry g{.N = N,
                                          .H = H,
                                          .W = W,
                                          .C = C,
                                          .OH = size[0],
                                          .OW = size[1],
                                          .bilinear = interpolation == Interpolation::Bilinear,
                                          .fill = backend_fill(fill_mode),
                                          .fill_value = fill_value};
  Tensor y = make_tensor({N, g.OH, g.OW, C}, x.dtype(), x.device());
  ops::backend_of(x).image_transform(x.dtype(), g, x.raw_data(), transforms.raw_data(), y.raw_data());
  const Tensor t = transforms.detach();
  return autograd::record(op, y, {x}, [g, t](const Tensor& dy) -> std::vector<Tensor> {
    Tensor dx = make_tensor({g.N, g.H, g.W, g.C}, dy.dtype(), dy.device());
    ops::backend_of(dy).image_transform_backward(dy.dtype(), g, dy.raw_data(), t.raw_data(), dx.raw_data());
    return {dx};
  });
}

Tensor random_image_transforms(const std::array<backend::ImageAxisSpec, 2>& axes, int64_t n, uint64_t seed,
                               const Tensor& step_counter, uint64_t draw, DType dtype, int64_t first) {
  const std::string op = "random_image_transforms";
  if (!is_floating(dtype))
    throw Error(op, "dtype " + dtype_name(dtype) +
                        " requested; expected a floating dtype (float32, float64, float16 or bfloat16)");
  if (!step_counter.defined() || step_counter.dtype() != DType::Int64 || step_counter.numel() != 1)
    throw Error(op, "step_counter is not one int64 element; expected the layer's seed_generator_state");
  if (draw > backend::philox::kMaxDraw)
    throw Error(op, "draw " + std::to_string(draw) + " is out of range; expected draw < 2^32");
  if (n < 0 || first < 0 || 2 * (first + n) > backend::philox::kMaxElements)
    throw Error(op, std::to_string(n) + " samples from sample " + std::to_string(first) +
                        "; expected 0 to 2^33 samples in all");
  Tensor t = make_tensor({n, 4}, dtype, step_counter.device());
  ops::backend_of(t).random_image_transforms(
      dtype, axes.data(), n, seed, static_cast<const int64_t*>(step_counter.raw_data()), draw, first, t.raw_data());
  return t;
}

}  // namespace kiln
