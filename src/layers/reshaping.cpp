// Reshaping layers: ZeroPadding2D and Cropping2D (kiln::pad and kiln::slice on the two spatial
// axes), Reshape (a view) and Permute (kiln::permute), channels_last.
#include "kiln/layers/reshaping.h"

#include <algorithm>
#include <numeric>

#include "kiln/error.h"
#include "kiln/ops.h"
#include "layers/config_fields.h"

namespace kiln::layers {

namespace {

const RegisterLayer<ZeroPadding2D> zero_padding_registered("ZeroPadding2D");
const RegisterLayer<Cropping2D> cropping_registered("Cropping2D");
const RegisterLayer<Reshape> reshape_registered("Reshape");
const RegisterLayer<Permute> permute_registered("Permute");

std::string sides_str(const Sides2D& s) {
  return "((" + std::to_string(s.top) + ", " + std::to_string(s.bottom) + "), (" + std::to_string(s.left) + ", " +
         std::to_string(s.right) + "))";
}

// [[top, bottom], [left, right]], Keras' form in a config.
Config sides_config(const Sides2D& s) {
  return Config::array({Config::array({s.top, s.bottom}), Config::array({s.left, s.right})});
}

// Reads field `key` in any of Keras' forms: n, [h, w] or [[top, bottom], [left, right]].
Sides2D sides_field(const io::JsonFields& f, const std::string& key) {
  const Config& v = f.at(key);
  const auto amount = [&](const Config& a) {
    if (!a.is_number_integer() || a.get<int64_t>() < 0 || a.get<int64_t>() > io::kMaxExtent)
      f.fail("\"" + key + "\" is " + v.dump() + "; expected n, [height, width] or [[top, bottom], [left, right]] of " +
             "integers in [0, " + std::to_string(io::kMaxExtent) + "]");
    return a.get<int64_t>();
  };
  if (!v.is_array()) return Sides2D(amount(v));
  if (v.size() != 2) amount(Config());  // fails with the message above
  if (!v[0].is_array() && !v[1].is_array()) return Sides2D(amount(v[0]), amount(v[1]));
  if (!v[0].is_array() || !v[1].is_array() || v[0].size() != 2 || v[1].size() != 2) amount(Config());
  return Sides2D({amount(v[0][0]), amount(v[0][1])}, {amount(v[1][0]), amount(v[1][1])});
}

// Keras' data_format field: only channels_last is supported (null or absent: the default, also it).
void check_data_format(const io::JsonFields& f) {
  if (f.has("data_format") && f.string("data_format") != "channels_last")
    f.fail("data_format is \"" + f.string("data_format") + "\"; expected \"channels_last\" (kiln is channels_last)");
}

void check_sides(const std::string& op, const char* what, const Sides2D& s) {
  if (s.top < 0 || s.bottom < 0 || s.left < 0 || s.right < 0)
    throw Error(op, std::string(what) + " " + sides_str(s) + "; expected amounts >= 0");
}

// Throws unless per-sample `in` is an image (height, width, channels).
void check_image(const std::string& op, const Shape& in) {
  if (in.ndim() != 3)
    throw Error(op, "input of shape " + in.batch_str() + "; expected [None, height, width, channels] (channels_last)");
}

}  // namespace

// ---- ZeroPadding2D ----

ZeroPadding2D::ZeroPadding2D(Sides2D padding, ZeroPadding2DOptions options) : padding_(padding) {
  name_ = "zero_padding2d";
  check_sides(name_, "padding", padding_);
  declare(std::move(options.input_shape), options.dtype);
}

Shape ZeroPadding2D::compute_output_shape(const Shape& in) const {
  check_image(name_, in);
  return Shape{in[0] + padding_.top + padding_.bottom, in[1] + padding_.left + padding_.right, in[2]};
}

Tensor ZeroPadding2D::call(const Tensor& x, bool) {
  if (x.ndim() >= 1) check_image(name_, x.shape().drop_front());
  return pad(x, {{0, 0}, {padding_.top, padding_.bottom}, {padding_.left, padding_.right}, {0, 0}});
}

Config ZeroPadding2D::get_config() const {
  return {{"padding", sides_config(padding_)}, {"data_format", "channels_last"}};
}

ZeroPadding2D ZeroPadding2D::from_config(const Config& config) {
  const auto f = config_fields(config, "ZeroPadding2D");
  check_data_format(f);
  return ZeroPadding2D(sides_field(f, "padding"));
}

// ---- Cropping2D ----

Cropping2D::Cropping2D(Sides2D cropping, Cropping2DOptions options) : cropping_(cropping) {
  name_ = "cropping2d";
  check_sides(name_, "cropping", cropping_);
  declare(std::move(options.input_shape), options.dtype);
}

Shape Cropping2D::compute_output_shape(const Shape& in) const {
  check_image(name_, in);
  const int64_t h = in[0] - cropping_.top - cropping_.bottom, w = in[1] - cropping_.left - cropping_.right;
  if (h < 1 || w < 1)
    throw Error(name_, "cropping " + sides_str(cropping_) + " leaves no " + (h < 1 ? "rows" : "columns") +
                           " of inputs of shape " + in.batch_str() + "; expected " +
                           (h < 1 ? "top + bottom < height (" + std::to_string(in[0]) + ")"
                                  : "left + right < width (" + std::to_string(in[1]) + ")"));
  return Shape{h, w, in[2]};
}

Tensor Cropping2D::call(const Tensor& x, bool) {
  if (x.ndim() < 1) check_image(name_, Shape{});
  const Shape out = compute_output_shape(x.shape().drop_front());
  return slice(x, {0, cropping_.top, cropping_.left, 0}, {x.size(0), out[0], out[1], out[2]});
}

Config Cropping2D::get_config() const {
  return {{"cropping", sides_config(cropping_)}, {"data_format", "channels_last"}};
}

Cropping2D Cropping2D::from_config(const Config& config) {
  const auto f = config_fields(config, "Cropping2D");
  check_data_format(f);
  return Cropping2D(sides_field(f, "cropping"));
}

// ---- Reshape ----

Reshape::Reshape(std::vector<int64_t> target_shape, ReshapeOptions options) : target_shape_(std::move(target_shape)) {
  name_ = "reshape";
  const auto infer = std::count(target_shape_.begin(), target_shape_.end(), -1);
  const bool valid =
      std::all_of(target_shape_.begin(), target_shape_.end(), [](int64_t d) { return d == -1 || d > 0; });
  if (infer > 1 || !valid)
    throw Error(name_, "target_shape " + Shape(target_shape_).str() +
                           "; expected positive dimensions and at most one -1 (the one to infer)");
  declare(std::move(options.input_shape), options.dtype);
}

Shape Reshape::compute_output_shape(const Shape& in) const {
  std::vector<int64_t> out = target_shape_;
  int64_t known = 1;
  for (const int64_t d : out)
    if (d != -1) known *= d;
  const auto infer = std::find(out.begin(), out.end(), int64_t{-1});
  if (infer != out.end() && in.numel() % known == 0) *infer = in.numel() / known;
  if ((infer != out.end() && *infer < 1) || Shape(out).numel() != in.numel())
    throw Error(name_, "cannot reshape inputs of shape " + in.batch_str() + " (" + std::to_string(in.numel()) +
                           " elements per sample) to target_shape " + Shape(target_shape_).str() +
                           "; expected the same number of elements");
  return Shape(out);
}

Tensor Reshape::call(const Tensor& x, bool) {
  if (x.ndim() < 1) throw Error(name_, "input is a scalar; expected a batch [N, ...]");
  return reshape(x, compute_output_shape(x.shape().drop_front()).prepend(x.size(0)));
}

Config Reshape::get_config() const { return {{"target_shape", target_shape_}}; }

Reshape Reshape::from_config(const Config& config) {
  const auto f = config_fields(config, "Reshape");
  const Config& v = f.at("target_shape");
  std::vector<int64_t> target;
  if (v.is_array())
    for (const Config& d : v)
      if (d.is_number_integer() &&
          (d.get<int64_t>() == -1 || (d.get<int64_t>() >= 1 && d.get<int64_t>() <= io::kMaxExtent)))
        target.push_back(d.get<int64_t>());
  if (!v.is_array() || target.size() != v.size())
    f.fail("\"target_shape\" is " + v.dump() + "; expected a list of integers in [1, " +
           std::to_string(io::kMaxExtent) + "] or -1");
  return Reshape(target);
}

// ---- Permute ----

Permute::Permute(std::vector<int64_t> dims, PermuteOptions options) : dims_(std::move(dims)) {
  name_ = "permute";
  std::vector<int64_t> sorted = dims_, want(dims_.size());
  std::sort(sorted.begin(), sorted.end());
  std::iota(want.begin(), want.end(), 1);
  if (sorted != want)
    throw Error(name_, "dims " + Shape(dims_).str() + " are not a permutation of 1.." + std::to_string(dims_.size()) +
                           "; expected each of 1.." + std::to_string(dims_.size()) + " once (1-based, as in Keras)");
  declare(std::move(options.input_shape), options.dtype);
}

Shape Permute::compute_output_shape(const Shape& in) const {
  if (in.ndim() != static_cast<int64_t>(dims_.size()))
    throw Error(name_, "dims " + Shape(dims_).str() + " do not fit inputs of shape " + in.batch_str() +
                           "; expected a permutation of 1.." + std::to_string(in.ndim()));
  std::vector<int64_t> out;
  for (const int64_t d : dims_) out.push_back(in[d - 1]);
  return Shape(out);
}

Tensor Permute::call(const Tensor& x, bool) {
  if (x.ndim() < 1) throw Error(name_, "input is a scalar; expected a batch [N, ...]");
  compute_output_shape(x.shape().drop_front());
  std::vector<int64_t> perm = {0};
  perm.insert(perm.end(), dims_.begin(), dims_.end());
  return permute(x, perm);
}

Config Permute::get_config() const { return {{"dims", dims_}}; }

Permute Permute::from_config(const Config& config) {
  const auto f = config_fields(config, "Permute");
  return Permute(f.extents("dims"));
}

}  // namespace kiln::layers
