/// Images from a folder tree as training data: Keras' keras.utils.image_dataset_from_directory.
///
/// Keras returns a tf.data.Dataset that decodes batches lazily and reshuffles every epoch. kiln
/// returns the decoded, resized images as one float32 tensor [N, H, W, C] (values 0..255, as Keras
/// yields them) and the labels as one tensor, for Model::fit, which batches and shuffles before
/// every epoch. So the whole set lives in memory (N * H * W * C * 4 bytes), and batch_size is only
/// carried over to the result for fit. Files are decoded by libjpeg and libpng.
///
///   auto [train, val] = kiln::utils::image_dataset_from_directory_both(
///       "flowers", {.image_size = {180, 180}, .seed = 123, .validation_split = 0.2, .subset = "both"});
///   model.fit(train.images, train.labels,
///             {.batch_size = train.batch_size, .validation_data = {{val.images, val.labels}}});
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "kiln/tensor.h"

namespace kiln::utils {

/// Options of image_dataset_from_directory, with Keras' names and defaults.
struct ImageDatasetOptions {
  /// "inferred": one class per sub-folder of the directory (files directly in it are ignored), in
  /// sorted order or class_names' order; a list: one int label per file, the files in sorted path
  /// order (Keras' os.walk order), the whole tree walked; std::nullopt (Keras' None): no labels.
  std::optional<std::variant<std::string, std::vector<int32_t>>> labels = "inferred";
  /// "int" (int32 [N]), "categorical" (float32 one-hot [N, classes]), "binary" (float32 [N, 1], two
  /// classes only) or std::nullopt: no labels.
  std::optional<std::string> label_mode = "int";
  /// With labels="inferred": the classes in this order, each a sub-folder name (others are left out).
  std::vector<std::string> class_names = {};
  /// "rgb" (3 channels), "grayscale" (1) or "rgba" (4).
  std::string color_mode = "rgb";
  /// Carried to ImageDataset::batch_size for fit; kiln does not batch here (Keras' None, unbatched,
  /// has no counterpart).
  int64_t batch_size = 32;
  /// (height, width) every image is resized to.
  std::array<int64_t, 2> image_size = {256, 256};
  /// Shuffles the file list with `seed` (numpy's RandomState(seed).shuffle, so the same seed gives
  /// Keras' order and split); false keeps sorted order.
  bool shuffle = true;
  /// Seed of the shuffle; unset draws one from kiln's global generator (utils::set_random_seed).
  std::optional<uint32_t> seed = std::nullopt;
  /// Fraction of the files, in (0, 1), held out for validation: the last int(split * N) files of the
  /// shuffled list. Needs `subset`, and `seed` when shuffling.
  std::optional<double> validation_split = std::nullopt;
  /// "training", "validation" or "both" (image_dataset_from_directory_both); only with validation_split.
  std::optional<std::string> subset = std::nullopt;
  /// "bilinear" or "nearest" (tf.image.resize, no antialiasing); Keras' other methods are refused.
  std::string interpolation = "bilinear";
  /// Descends into sub-folders that are symbolic links.
  bool follow_links = false;
  /// Resizes the largest centered window of the target aspect ratio (Keras' smart_resize) instead of
  /// stretching the whole image.
  bool crop_to_aspect_ratio = false;
  /// Prints "Found N files belonging to K classes." and the split sizes, as Keras.
  bool verbose = true;
  /// kiln's own option: "error" (default) stops at the first file that cannot be decoded (corrupt,
  /// truncated, too large, or a .bmp/.gif file: Keras lists those, kiln does not decode them);
  /// "skip" leaves such files out with a warning on stderr and drops their labels.
  std::string on_corrupt = "error";
};

/// Images and labels of one subset, in file_paths' order (the shuffled order when shuffling).
struct ImageDataset {
  /// float32 [N, height, width, channels], values 0..255 (rescale in the model, e.g. Rescaling(1/255)).
  Tensor images;
  /// int32 [N], float32 [N, classes] or float32 [N, 1] by label_mode; undefined without labels.
  Tensor labels;
  /// The class names, indexed by label (sub-folder names, or the sorted labels as text).
  std::vector<std::string> class_names;
  /// The path of every image (the directory joined with its relative path), one per row.
  std::vector<std::string> file_paths;
  /// The batch_size option, for fit.
  int64_t batch_size = 32;
  /// Number of images N.
  int64_t size() const { return static_cast<int64_t>(file_paths.size()); }
};

/// The two subsets of subset="both".
struct ImageDatasetSplit {
  ImageDataset training;    ///< all files but the last int(validation_split * N)
  ImageDataset validation;  ///< the last int(validation_split * N) files
};

/// Reads every .jpeg, .jpg and .png file under `directory` (extensions in any case; .bmp and .gif
/// are found, as Keras, and refused), decodes it to color_mode's channels, resizes it to image_size
/// and returns the images with their labels. Errors are kiln::Error naming the directory, file or
/// option: a missing or empty directory, no image in the chosen subset, a class name without a
/// folder, an option value Keras refuses (each message names the accepted values), subset "both"
/// (use image_dataset_from_directory_both), an image that cannot be decoded (unless on_corrupt is
/// "skip"), or kiln built without libjpeg or libpng when such a file is met.
ImageDataset image_dataset_from_directory(const std::string& directory, const ImageDatasetOptions& options = {});

/// subset="both": the training and validation subsets of one shuffle (Keras returns both as a
/// tuple). `options.subset` must be "both" or unset; validation_split and seed are required.
ImageDatasetSplit image_dataset_from_directory_both(const std::string& directory,
                                                    const ImageDatasetOptions& options = {});

/// Options of save_img.
struct SaveImgOptions {
  /// "png" or "jpeg" ("jpg"); unset takes it from the path's extension.
  std::optional<std::string> file_format = std::nullopt;
  /// Maps the values linearly to 0..255 (x - min, / max, * 255; Keras' array_to_img); false
  /// requires values in [0, 255]. Values are truncated to integers, as Keras' astype("uint8").
  bool scale = true;
  /// JPEG quality, 1..100 (Pillow's default, 75).
  int quality = 75;
};

/// Writes an image tensor [height, width, channels] (1, 3 or 4 channels; float32, float64 or uint8)
/// as a PNG or JPEG file (Keras' keras.utils.save_img). RGBA saved as JPEG loses its alpha channel
/// with a warning, as Keras. Throws kiln::Error on a bad shape, format or value, a failed write, or
/// kiln built without the format's library.
void save_img(const std::string& path, const Tensor& x, const SaveImgOptions& options = {});

}  // namespace kiln::utils
