// Decoding image files by their libraries: JPEG through libjpeg(-turbo), PNG through libpng. The
// format is told from the file's first bytes, not its name (as TensorFlow's decode_image), and the
// image comes out as H x W x C uint8 (HWC) with C the channel count asked for, converted by the
// libraries' own transforms. Both libraries report errors by longjmp out of a callback; each
// decoder keeps every C++ object with a destructor outside the function that calls setjmp, so the
// jump skips no destructor. Without a library, its format throws "[decode_image] kiln was built
// without lib...".
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace kiln::utils {

/// A decoded image: `pixels` holds height * width * channels bytes, row-major, channels last.
struct DecodedImage {
  int64_t height = 0;
  int64_t width = 0;
  int64_t channels = 0;
  std::vector<uint8_t> pixels;
};

/// Pixels a decoded image may have (2^28: a 16384 x 16384 image); a larger header is refused before
/// anything is allocated.
inline constexpr uint64_t kMaxImagePixels = uint64_t{1} << 28;

/// Decodes a JPEG or PNG file held in `bytes` into `channels` channels (1 grayscale, 3 RGB, 4 RGBA).
/// Grayscale from color uses the Rec. 601 weights (libjpeg's Y; libpng's rgb_to_gray with 0.299,
/// 0.587), as TensorFlow; palette and low-bit-depth PNGs are expanded, 16-bit samples keep their
/// high byte, a missing alpha channel is opaque (255). Throws kiln::Error "[decode_image] '<path>'
/// ..." naming `path_for_errors` on a format that is not JPEG or PNG (BMP and GIF are named as not
/// supported), a corrupt or truncated file (libjpeg's warnings included: its recovered pixels would
/// be made up), or an image over `max_pixels`.
DecodedImage decode_image(std::span<const uint8_t> bytes, const std::string& path_for_errors, int channels,
                          uint64_t max_pixels = kMaxImagePixels);

}  // namespace kiln::utils
