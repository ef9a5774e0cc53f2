// libFuzzer target for the image decoder behind image_dataset_from_directory: arbitrary bytes
// through decode_image as grayscale, RGB and RGBA (libjpeg for a JPEG signature, libpng for a PNG
// one). A malformed input must end in kiln::Error; an accepted one must come back with the size it
// claims, and the three channel counts must agree on the image's dimensions. The pixel limit is
// lowered so that a header claiming a huge image is refused instead of exhausting memory, and
// image_decode.flags caps any one allocation at 256 MB (a 2^22-pixel image needs 16 MB), so that an
// allocation sized by a claim the decoder should have refused is a finding on its own rather than
// memory that builds up over a run.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "kiln/error.h"
#include "utils/image_decode.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> bytes(data, size);
  int64_t height = -1, width = -1;
  for (int channels : {1, 3, 4}) {
    try {
      const kiln::utils::DecodedImage image =
          kiln::utils::decode_image(bytes, "fuzz-input", channels, uint64_t{1} << 22);
      if (image.channels != channels || image.height < 1 || image.width < 1 ||
          image.pixels.size() != static_cast<std::size_t>(image.height * image.width * channels))
        std::abort();
      if (height >= 0 && (image.height != height || image.width != width)) std::abort();
      height = image.height;
      width = image.width;
    } catch (const kiln::Error&) {
      // A clear error is the right answer to a malformed input.
    }
  }
  return 0;
}
