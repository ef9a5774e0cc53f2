// JPEG and PNG decoding by libjpeg(-turbo) and libpng (see image_decode.h).
//
// Each library reports an error by calling back into kiln, which must not return to it. The
// callbacks longjmp to a setjmp in a "phase" function (read the header; read the pixels) whose
// locals are all trivially destructible, so the jump skips no destructor; decode_image itself
// owns the C++ objects and turns a failed phase into a kiln::Error naming the file. The image size
// is checked between the two phases, before the pixels are allocated.
#include "utils/image_decode.h"

#include <algorithm>
#include <csetjmp>
#include <cstdio>
#include <cstring>

#include "kiln/error.h"

#if KILN_WITH_JPEG
#include <jpeglib.h>
#endif
#if KILN_WITH_PNG
#include <png.h>
#endif

namespace kiln::utils {

namespace {

constexpr const char* kOp = "decode_image";
constexpr uint8_t kPngSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

std::string quoted(const std::string& s) { return "'" + s + "'"; }

bool starts_with(std::span<const uint8_t> bytes, std::span<const uint8_t> prefix) {
  return bytes.size() >= prefix.size() && std::memcmp(bytes.data(), prefix.data(), prefix.size()) == 0;
}

#if KILN_WITH_JPEG || KILN_WITH_PNG
void check_size(uint64_t width, uint64_t height, uint64_t max_pixels, const std::string& path) {
  if (width == 0 || height == 0)
    throw Error(kOp, quoted(path) + " is a " + std::to_string(width) + "x" + std::to_string(height) +
                         " image; expected at least one pixel");
  // width and height are below 2^32 in both formats, so the product does not overflow.
  if (width * height > max_pixels)
    throw Error(kOp, quoted(path) + " is a " + std::to_string(width) + "x" + std::to_string(height) +
                         " image; expected at most " + std::to_string(max_pixels) + " pixels");
}
#endif

#if KILN_WITH_JPEG
// ---- JPEG ----
struct JpegError {
  jpeg_error_mgr mgr;  // first member: libjpeg hands the callbacks a pointer to it
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

[[noreturn]] void jpeg_fail(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<JpegError*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

// A warning means libjpeg went on with made-up data (a truncated file gets a fake end marker,
// corrupt entropy data gray blocks): the image counts as corrupt. Trace messages (level > 0) are
// ignored.
void jpeg_message(j_common_ptr cinfo, int level) {
  if (level < 0) jpeg_fail(cinfo);
}

struct JpegState {
  jpeg_decompress_struct cinfo;
  JpegError err;
  bool created = false;
};

bool jpeg_header_phase(JpegState& s, std::span<const uint8_t> bytes, int channels) {
  s.cinfo.err = jpeg_std_error(&s.err.mgr);
  s.err.mgr.error_exit = jpeg_fail;
  s.err.mgr.emit_message = jpeg_message;
  s.err.message[0] = '\0';
  if (setjmp(s.err.jump)) return false;
  jpeg_create_decompress(&s.cinfo);
  s.created = true;
  jpeg_mem_src(&s.cinfo, bytes.data(), static_cast<unsigned long>(bytes.size()));
  jpeg_read_header(&s.cinfo, TRUE);
  if (s.cinfo.jpeg_color_space == JCS_CMYK || s.cinfo.jpeg_color_space == JCS_YCCK) {
    // TensorFlow converts CMYK to RGB itself and refuses it as grayscale; so does kiln.
    if (channels == 1) {
      std::snprintf(s.err.message, sizeof s.err.message, "a CMYK JPEG cannot be read as grayscale");
      return false;
    }
    s.cinfo.out_color_space = JCS_CMYK;
  } else {
    s.cinfo.out_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
  }
  // TensorFlow's decode_image default (UncompressFlags::dct_method): the fast integer IDCT, so the
  // pixels are the ones Keras trains on.
  s.cinfo.dct_method = JDCT_IFAST;
  return true;
}

// One row of libjpeg's CMYK output to RGB with TensorFlow's formula (jpeg_mem.cc): Adobe's
// inverted CMYK is r = k * c / 255, plain CMYK r = (255 - k) * (255 - c) / 255.
void cmyk_to_rgb(const uint8_t* cmyk, uint8_t* rgb, std::size_t width, bool adobe) {
  for (std::size_t x = 0; x < width; ++x) {
    const int c = cmyk[4 * x], m = cmyk[4 * x + 1], y = cmyk[4 * x + 2], k = cmyk[4 * x + 3];
    if (adobe) {
      rgb[3 * x] = static_cast<uint8_t>(k * c / 255);
      rgb[3 * x + 1] = static_cast<uint8_t>(k * m / 255);
      rgb[3 * x + 2] = static_cast<uint8_t>(k * y / 255);
    } else {
      rgb[3 * x] = static_cast<uint8_t>((255 - k) * (255 - c) / 255);
      rgb[3 * x + 1] = static_cast<uint8_t>((255 - k) * (255 - m) / 255);
      rgb[3 * x + 2] = static_cast<uint8_t>((255 - k) * (255 - y) / 255);
    }
  }
}

// Decodes into `out` (height x width x channels). libjpeg gives 1 or 3 channels (or CMYK, made RGB
// here); for 4 channels or CMYK each row goes through `row` (width x 4) and `rgb` (width x 3), and
// an opaque alpha channel is added for 4.
bool jpeg_pixels_phase(JpegState& s, uint8_t* out, uint8_t* row, uint8_t* rgb, int channels) {
  if (setjmp(s.err.jump)) return false;
  jpeg_start_decompress(&s.cinfo);
  const std::size_t width = s.cinfo.output_width;
  const bool cmyk = s.cinfo.out_color_space == JCS_CMYK;
  const bool direct = !cmyk && channels != 4;
  while (s.cinfo.output_scanline < s.cinfo.output_height) {
    uint8_t* dst = out + static_cast<std::size_t>(s.cinfo.output_scanline) * width * channels;
    JSAMPROW rows[1] = {direct ? dst : row};
    if (jpeg_read_scanlines(&s.cinfo, rows, 1) != 1) {
      std::snprintf(s.err.message, sizeof s.err.message, "libjpeg returned no scanline");
      return false;
    }
    if (direct) continue;
    if (cmyk) {
      cmyk_to_rgb(row, channels == 3 ? dst : rgb, width, s.cinfo.saw_Adobe_marker != 0);
      if (channels == 3) continue;
    } else {
      std::memcpy(rgb, row, width * 3);
    }
    const uint8_t* src = rgb;
    if (channels == 4)
      for (std::size_t x = 0; x < width; ++x) {
        dst[4 * x] = src[3 * x];
        dst[4 * x + 1] = src[3 * x + 1];
        dst[4 * x + 2] = src[3 * x + 2];
        dst[4 * x + 3] = 255;
      }
  }
  jpeg_finish_decompress(&s.cinfo);
  return true;
}

DecodedImage decode_jpeg(std::span<const uint8_t> bytes, const std::string& path, int channels, uint64_t max_pixels) {
  JpegState s{};
  struct Destroy {
    JpegState& s;
    ~Destroy() {
      if (s.created) jpeg_destroy_decompress(&s.cinfo);
    }
  } destroy{s};
  const auto fail = [&] { return Error(kOp, quoted(path) + " is not a valid JPEG image: " + s.err.message); };
  if (!jpeg_header_phase(s, bytes, channels)) throw fail();
  check_size(s.cinfo.image_width, s.cinfo.image_height, max_pixels, path);
  DecodedImage image{.height = s.cinfo.image_height, .width = s.cinfo.image_width, .channels = channels, .pixels = {}};
  image.pixels.resize(static_cast<std::size_t>(image.height * image.width * channels));
  std::vector<uint8_t> row(static_cast<std::size_t>(image.width) * 4), rgb(static_cast<std::size_t>(image.width) * 3);
  if (!jpeg_pixels_phase(s, image.pixels.data(), row.data(), rgb.data(), channels)) throw fail();
  // Scaling is off, so libjpeg's output size is the header's; checked all the same.
  const int components = s.cinfo.out_color_space == JCS_CMYK ? 4 : channels == 1 ? 1 : 3;
  if (s.cinfo.output_width != s.cinfo.image_width || s.cinfo.output_height != s.cinfo.image_height ||
      s.cinfo.output_components != components)
    throw Error(kOp, quoted(path) + ": libjpeg decoded an unexpected layout");
  return image;
}
#endif

#if KILN_WITH_PNG
// ---- PNG ----
struct PngState {
  png_structp png = nullptr;
  png_infop info = nullptr;
  std::span<const uint8_t> bytes;
  std::size_t offset = 0;
  char message[256] = {};
};

[[noreturn]] void png_fail(png_structp png, png_const_charp message) {
  auto* s = static_cast<PngState*>(png_get_error_ptr(png));
  std::snprintf(s->message, sizeof s->message, "%s", message);
  png_longjmp(png, 1);
}

// Ancillary-chunk problems (a bad sRGB profile, a CRC error in a text chunk) leave the pixels
// intact: ignored.
void png_warning_ignored(png_structp /*png*/, png_const_charp /*message*/) {}

void png_read_bytes(png_structp png, png_bytep out, png_size_t length) {
  auto* s = static_cast<PngState*>(png_get_io_ptr(png));
  if (length > s->bytes.size() - s->offset) png_error(png, "the file ends inside a chunk (truncated)");
  std::memcpy(out, s->bytes.data() + s->offset, length);
  s->offset += length;
}

bool png_header_phase(PngState& s) {
  if (setjmp(png_jmpbuf(s.png))) return false;
  png_set_read_fn(s.png, &s, png_read_bytes);
  png_read_info(s.png, s.info);
  return true;
}

// Sets the transforms that give `channels` 8-bit channels (expand palette, low bit depths and
// tRNS; strip 16 to 8 bits; gray <-> RGB; add or strip alpha), then reads the rows.
bool png_pixels_phase(PngState& s, int channels, png_bytepp rows, std::size_t row_bytes) {
  if (setjmp(png_jmpbuf(s.png))) return false;
  const int color_type = png_get_color_type(s.png, s.info);
  const bool has_alpha = (color_type & PNG_COLOR_MASK_ALPHA) != 0 || png_get_valid(s.png, s.info, PNG_INFO_tRNS);
  const bool is_color = (color_type & PNG_COLOR_MASK_COLOR) != 0;
  png_set_expand(s.png);
  png_set_strip_16(s.png);
  if (channels == 1) {
    if (is_color) png_set_rgb_to_gray_fixed(s.png, 1, 29900, 58700);
  } else if (!is_color) {
    png_set_gray_to_rgb(s.png);
  }
  if (channels == 4) {
    if (!has_alpha) png_set_add_alpha(s.png, 0xff, PNG_FILLER_AFTER);
  } else if (has_alpha) {
    png_set_strip_alpha(s.png);
  }
  png_set_interlace_handling(s.png);
  png_read_update_info(s.png, s.info);
  if (png_get_channels(s.png, s.info) != channels || png_get_bit_depth(s.png, s.info) != 8 ||
      png_get_rowbytes(s.png, s.info) != row_bytes) {
    std::snprintf(s.message, sizeof s.message, "libpng's transforms gave %d channels of %d bits",
                  png_get_channels(s.png, s.info), png_get_bit_depth(s.png, s.info));
    return false;
  }
  png_read_image(s.png, rows);
  png_read_end(s.png, nullptr);
  return true;
}

// libpng allocates an ancillary chunk's claimed length before it reads the data, and when reading
// its "chunk data is too large" check is only a warning: a chunk header claiming 2 GB inside a file
// of a hundred bytes would allocate 2 GB. So every chunk up to IEND is checked against the bytes
// that follow it first. A header cut short, or a chunk type that is not four ASCII letters, is left
// to libpng, which refuses it without allocating.
void check_png_chunk_lengths(std::span<const uint8_t> bytes, const std::string& path) {
  constexpr std::size_t kHeader = 8, kCrc = 4;
  std::size_t offset = sizeof kPngSignature;
  while (bytes.size() - offset >= kHeader) {
    const uint8_t* chunk = bytes.data() + offset;
    const uint32_t length =
        (uint32_t{chunk[0]} << 24) | (uint32_t{chunk[1]} << 16) | (uint32_t{chunk[2]} << 8) | chunk[3];
    const std::string type(reinterpret_cast<const char*>(chunk + 4), 4);
    if (!std::all_of(type.begin(), type.end(), [](char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }))
      return;
    const std::size_t follow = bytes.size() - offset - kHeader;
    if (follow < kCrc || length > follow - kCrc)
      throw Error(kOp, quoted(path) + " is not a valid PNG image: its '" + type + "' chunk claims " +
                           std::to_string(length) + " bytes of data, but only " +
                           std::to_string(follow < kCrc ? 0 : follow - kCrc) +
                           " follow before its checksum (truncated or corrupt)");
    if (type == "IEND") return;
    offset += kHeader + length + kCrc;
  }
}

DecodedImage decode_png(std::span<const uint8_t> bytes, const std::string& path, int channels, uint64_t max_pixels) {
  check_png_chunk_lengths(bytes, path);
  PngState s;
  s.bytes = bytes;
  s.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &s, png_fail, png_warning_ignored);
  if (s.png == nullptr) throw Error(kOp, "libpng could not create a read structure (out of memory)");
  s.info = png_create_info_struct(s.png);
  struct Destroy {
    PngState& s;
    ~Destroy() { png_destroy_read_struct(&s.png, s.info != nullptr ? &s.info : nullptr, nullptr); }
  } destroy{s};
  if (s.info == nullptr) throw Error(kOp, "libpng could not create an info structure (out of memory)");
  const auto fail = [&] { return Error(kOp, quoted(path) + " is not a valid PNG image: " + s.message); };
  if (!png_header_phase(s)) throw fail();
  const png_uint_32 width = png_get_image_width(s.png, s.info);
  const png_uint_32 height = png_get_image_height(s.png, s.info);
  check_size(width, height, max_pixels, path);
  DecodedImage image{.height = height, .width = width, .channels = channels, .pixels = {}};
  const std::size_t row_bytes = static_cast<std::size_t>(width) * channels;
  image.pixels.resize(row_bytes * height);
  std::vector<png_bytep> rows(height);
  for (png_uint_32 y = 0; y < height; ++y) rows[y] = image.pixels.data() + row_bytes * y;
  if (!png_pixels_phase(s, channels, rows.data(), row_bytes)) throw fail();
  return image;
}
#endif

}  // namespace

DecodedImage decode_image(std::span<const uint8_t> bytes, const std::string& path_for_errors, int channels,
                          [[maybe_unused]] uint64_t max_pixels) {
  if (channels != 1 && channels != 3 && channels != 4)
    throw Error(kOp, "channels " + std::to_string(channels) + " for " + quoted(path_for_errors) +
                         "; expected 1 (grayscale), 3 (RGB) or 4 (RGBA)");
  constexpr uint8_t kJpeg[3] = {0xff, 0xd8, 0xff};
  constexpr uint8_t kGif[4] = {'G', 'I', 'F', '8'};
  constexpr uint8_t kBmp[2] = {'B', 'M'};
  if (starts_with(bytes, kJpeg)) {
#if KILN_WITH_JPEG
    return decode_jpeg(bytes, path_for_errors, channels, max_pixels);
#else
    throw Error(
        kOp, "kiln was built without libjpeg; rebuild with libjpeg-dev installed to read " + quoted(path_for_errors));
#endif
  }
  if (starts_with(bytes, kPngSignature)) {
#if KILN_WITH_PNG
    return decode_png(bytes, path_for_errors, channels, max_pixels);
#else
    throw Error(kOp,
                "kiln was built without libpng; rebuild with libpng-dev installed to read " + quoted(path_for_errors));
#endif
  }
  const char* other = starts_with(bytes, kGif) ? "a GIF image" : starts_with(bytes, kBmp) ? "a BMP image" : nullptr;
  if (other != nullptr)
    throw Error(kOp, quoted(path_for_errors) + " is " + other + ", which kiln does not decode; expected JPEG or PNG");
  if (bytes.empty()) throw Error(kOp, quoted(path_for_errors) + " is empty; expected a JPEG or PNG image");
  throw Error(kOp, quoted(path_for_errors) +
                       " is not a JPEG or PNG image (its first bytes are neither signature); expected JPEG or PNG");
}

}  // namespace kiln::utils
