// save_img: Keras' array_to_img value mapping, then PNG by libpng or JPEG by libjpeg into memory,
// written with write_file_atomically. As in image_decode.cpp, the libraries' error callbacks
// longjmp to a setjmp in a function whose locals have no destructors.
#include <algorithm>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "io/atomic_file.h"
#include "io/warning.h"
#include "kiln/error.h"
#include "kiln/utils/image_dataset.h"

#if KILN_WITH_JPEG
#include <jpeglib.h>
#endif
#if KILN_WITH_PNG
#include <png.h>
#endif

namespace kiln::utils {

namespace {

constexpr const char* kOp = "save_img";

std::string quoted(const std::string& s) { return "'" + s + "'"; }

// H x W x C bytes from the tensor's values: Keras' array_to_img in float32, truncated as astype.
std::vector<uint8_t> to_bytes(const Tensor& x, bool scale, const std::string& path) {
  const std::vector<float> v = x.to_vector<float>();
  std::vector<uint8_t> out(v.size());
  for (std::size_t i = 0; i < v.size(); ++i)
    if (!std::isfinite(v[i]))
      throw Error(kOp, "the image for " + quoted(path) + " has a non-finite value at element " + std::to_string(i) +
                           "; expected finite values");
  if (scale) {
    const float lo = *std::min_element(v.begin(), v.end());
    float hi = 0.0f;
    for (float value : v) hi = std::max(hi, value - lo);
    for (std::size_t i = 0; i < v.size(); ++i) {
      float y = v[i] - lo;
      if (hi != 0.0f) y /= hi;
      out[i] = static_cast<uint8_t>(std::clamp(y * 255.0f, 0.0f, 255.0f));
    }
    return out;
  }
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (v[i] < 0.0f || v[i] > 255.0f)
      throw Error(kOp, "the image for " + quoted(path) + " has " + std::to_string(v[i]) + " at element " +
                           std::to_string(i) + " with scale=false; expected values in [0, 255]");
    out[i] = static_cast<uint8_t>(v[i]);
  }
  return out;
}

#if KILN_WITH_PNG
struct PngWriter {
  png_structp png = nullptr;
  png_infop info = nullptr;
  std::vector<uint8_t>* out = nullptr;
  bool out_of_memory = false;
  char message[256] = {};
};

[[noreturn]] void png_write_fail(png_structp png, png_const_charp message) {
  auto* w = static_cast<PngWriter*>(png_get_error_ptr(png));
  std::snprintf(w->message, sizeof w->message, "%s", message);
  png_longjmp(png, 1);
}

void png_write_warning(png_structp /*png*/, png_const_charp /*message*/) {}

void png_append(png_structp png, png_bytep data, png_size_t length) {
  auto* w = static_cast<PngWriter*>(png_get_io_ptr(png));
  try {
    w->out->insert(w->out->end(), data, data + length);
  } catch (const std::bad_alloc&) {
    w->out_of_memory = true;
  }
  if (w->out_of_memory) png_error(png, "out of memory");
}

void png_flush_nothing(png_structp /*png*/) {}

bool png_write_phase(PngWriter& w, png_bytepp rows, png_uint_32 width, png_uint_32 height, int channels) {
  if (setjmp(png_jmpbuf(w.png))) return false;
  png_set_write_fn(w.png, &w, png_append, png_flush_nothing);
  const int color_type = channels == 1   ? PNG_COLOR_TYPE_GRAY
                         : channels == 3 ? PNG_COLOR_TYPE_RGB
                                         : PNG_COLOR_TYPE_RGB_ALPHA;
  png_set_IHDR(w.png, w.info, width, height, 8, color_type, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  png_write_info(w.png, w.info);
  png_write_image(w.png, rows);
  png_write_end(w.png, nullptr);
  return true;
}

std::vector<uint8_t> encode_png(std::vector<uint8_t>& pixels, int64_t height, int64_t width, int64_t channels,
                                const std::string& path) {
  std::vector<uint8_t> out;
  PngWriter w;
  w.out = &out;
  w.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &w, png_write_fail, png_write_warning);
  if (w.png == nullptr) throw Error(kOp, "libpng could not create a write structure (out of memory)");
  w.info = png_create_info_struct(w.png);
  struct Destroy {
    PngWriter& w;
    ~Destroy() { png_destroy_write_struct(&w.png, w.info != nullptr ? &w.info : nullptr); }
  } destroy{w};
  if (w.info == nullptr) throw Error(kOp, "libpng could not create an info structure (out of memory)");
  std::vector<png_bytep> rows(static_cast<std::size_t>(height));
  for (int64_t y = 0; y < height; ++y) rows[y] = pixels.data() + y * width * channels;
  if (!png_write_phase(w, rows.data(), static_cast<png_uint_32>(width), static_cast<png_uint_32>(height),
                       static_cast<int>(channels)))
    throw Error(kOp, "libpng could not encode " + quoted(path) + ": " + w.message);
  return out;
}
#endif

#if KILN_WITH_JPEG
struct JpegWriter {
  jpeg_compress_struct cinfo;
  jpeg_error_mgr mgr;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  bool created = false;
};

[[noreturn]] void jpeg_write_fail(j_common_ptr cinfo) {
  auto* w = static_cast<JpegWriter*>(cinfo->client_data);
  (*cinfo->err->format_message)(cinfo, w->message);
  std::longjmp(w->jump, 1);
}

bool jpeg_write_phase(JpegWriter& w, const uint8_t* pixels, JDIMENSION width, JDIMENSION height, int channels,
                      int quality) {
  w.cinfo.err = jpeg_std_error(&w.mgr);
  w.mgr.error_exit = jpeg_write_fail;
  w.cinfo.client_data = &w;
  if (setjmp(w.jump)) return false;
  jpeg_create_compress(&w.cinfo);
  w.created = true;
  jpeg_mem_dest(&w.cinfo, &w.buffer, &w.size);
  w.cinfo.image_width = width;
  w.cinfo.image_height = height;
  w.cinfo.input_components = channels;
  w.cinfo.in_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_set_defaults(&w.cinfo);
  jpeg_set_quality(&w.cinfo, quality, TRUE);
  jpeg_start_compress(&w.cinfo, TRUE);
  while (w.cinfo.next_scanline < w.cinfo.image_height) {
    // libjpeg's API takes non-const rows but does not write to them.
    JSAMPROW row[1] = {const_cast<uint8_t*>(pixels) +
                       static_cast<std::size_t>(w.cinfo.next_scanline) * width * channels};
    jpeg_write_scanlines(&w.cinfo, row, 1);
  }
  jpeg_finish_compress(&w.cinfo);
  return true;
}

std::vector<uint8_t> encode_jpeg(const std::vector<uint8_t>& pixels, int64_t height, int64_t width, int64_t channels,
                                 int quality, const std::string& path) {
  JpegWriter w{};
  struct Destroy {
    JpegWriter& w;
    ~Destroy() {
      if (w.created) jpeg_destroy_compress(&w.cinfo);
      std::free(w.buffer);
    }
  } destroy{w};
  if (!jpeg_write_phase(w, pixels.data(), static_cast<JDIMENSION>(width), static_cast<JDIMENSION>(height),
                        static_cast<int>(channels), quality))
    throw Error(kOp, "libjpeg could not encode " + quoted(path) + ": " + w.message);
  return {w.buffer, w.buffer + w.size};
}
#endif

}  // namespace

void save_img(const std::string& path, const Tensor& x, const SaveImgOptions& options) {
  if (!x.defined() || x.ndim() != 3 || (x.size(2) != 1 && x.size(2) != 3 && x.size(2) != 4) || x.size(0) < 1 ||
      x.size(1) < 1)
    throw Error(kOp, "the image for " + quoted(path) + " has shape " +
                         (x.defined() ? x.shape().str() : std::string("(undefined)")) +
                         "; expected [height, width, channels] with 1, 3 or 4 channels");
  const int64_t H = x.size(0), W = x.size(1);
  if (H > std::numeric_limits<int32_t>::max() / 4 || W > std::numeric_limits<int32_t>::max() / 4)
    throw Error(kOp, "the image for " + quoted(path) + " is too large; expected sides below 2^29");
  [[maybe_unused]] int64_t C = x.size(2);
  std::string format = options.file_format.value_or("");
  if (format.empty()) {
    const auto dot = path.find_last_of('.');
    format = dot == std::string::npos ? "" : path.substr(dot + 1);
  }
  std::transform(format.begin(), format.end(), format.begin(), [](unsigned char c) { return std::tolower(c); });
  if (format == "jpg") format = "jpeg";
  if (format != "png" && format != "jpeg")
    throw Error(kOp, "cannot tell a supported format for " + quoted(path) +
                         (options.file_format ? " from file_format " + quoted(*options.file_format) : "") +
                         "; expected file_format \"png\" or \"jpeg\" (or a .png, .jpg or .jpeg path)");
  if (format == "jpeg" && (options.quality < 1 || options.quality > 100))
    throw Error(kOp, "quality " + std::to_string(options.quality) + "; expected 1..100");
  std::vector<uint8_t> pixels = to_bytes(x, options.scale, path);
  std::vector<uint8_t> encoded;
  if (format == "png") {
#if KILN_WITH_PNG
    encoded = encode_png(pixels, H, W, C, path);
#else
    throw Error(kOp, "kiln was built without libpng; rebuild with libpng-dev installed to write " + quoted(path));
#endif
  } else {
#if KILN_WITH_JPEG
    if (C == 4) {
      io::warn(kOp, "JPEG does not support RGBA images; writing " + quoted(path) + " as RGB");
      for (int64_t p = 0; p < H * W; ++p)
        for (int c = 0; c < 3; ++c) pixels[p * 3 + c] = pixels[p * 4 + c];
      pixels.resize(static_cast<std::size_t>(H * W * 3));
      C = 3;
    }
    encoded = encode_jpeg(pixels, H, W, C, options.quality, path);
#else
    throw Error(kOp, "kiln was built without libjpeg; rebuild with libjpeg-dev installed to write " + quoted(path));
#endif
  }
  io::write_file_atomically(path, encoded);
}

}  // namespace kiln::utils
