// image_dataset_from_directory: checks the options in Keras' order and with its messages' sense,
// indexes and shuffles the files (image_dataset_index.cpp), splits them, then decodes and resizes
// every image into one float32 tensor, one file per thread-pool chunk.
#include "kiln/utils/image_dataset.h"

#include <algorithm>
#include <atomic>
#include <exception>
#include <iostream>

#include "backend/cpu/thread_pool.h"
#include "io/file_read.h"
#include "io/warning.h"
#include "kiln/error.h"
#include "kiln/random.h"
#include "utils/image_dataset_index.h"
#include "utils/image_decode.h"
#include "utils/image_resize.h"

namespace kiln::utils {

namespace {

constexpr const char* kOp = "image_dataset_from_directory";

std::string quoted(const std::string& s) { return "'" + s + "'"; }

// The options once checked, in the form the loader uses.
struct Plan {
  LabelSource source = LabelSource::kInferred;
  std::vector<int32_t> explicit_labels;
  std::string label_mode;  // "" without labels
  int channels = 3;
  Interpolation interpolation = Interpolation::kBilinear;
  bool skip_corrupt = false;
};

Plan check_options(const ImageDatasetOptions& o) {
  Plan plan;
  if (!o.labels) {
    plan.source = LabelSource::kNone;
  } else if (const auto* text = std::get_if<std::string>(&*o.labels)) {
    if (*text != "inferred")
      throw Error(kOp, "labels " + quoted(*text) +
                           "; expected \"inferred\", a list of int labels (one per file) or std::nullopt (no labels)");
  } else {
    plan.source = LabelSource::kExplicit;
    plan.explicit_labels = std::get<std::vector<int32_t>>(*o.labels);
  }
  if (plan.source != LabelSource::kInferred && !o.class_names.empty())
    throw Error(kOp,
                "class_names is given with labels that are not \"inferred\"; expected class_names only with "
                "labels=\"inferred\" (explicit labels name their classes by their sorted values)");
  if (o.label_mode && *o.label_mode != "int" && *o.label_mode != "categorical" && *o.label_mode != "binary")
    throw Error(kOp, "label_mode " + quoted(*o.label_mode) +
                         "; expected \"int\", \"categorical\", \"binary\" or std::nullopt (no labels)");
  // As Keras: no labels or no label_mode means neither, and the whole tree is indexed.
  if (plan.source == LabelSource::kNone || !o.label_mode) {
    plan.source = LabelSource::kNone;
    plan.explicit_labels.clear();
    if (!o.class_names.empty())
      throw Error(kOp,
                  "class_names is given without labels (labels or label_mode is std::nullopt); expected "
                  "class_names only with labels=\"inferred\" and a label_mode");
  } else {
    plan.label_mode = *o.label_mode;
  }
  if (o.color_mode == "rgb") {
    plan.channels = 3;
  } else if (o.color_mode == "rgba") {
    plan.channels = 4;
  } else if (o.color_mode == "grayscale") {
    plan.channels = 1;
  } else {
    throw Error(kOp, "color_mode " + quoted(o.color_mode) + "; expected \"rgb\", \"rgba\" or \"grayscale\"");
  }
  if (o.batch_size < 1)
    throw Error(kOp, "batch_size " + std::to_string(o.batch_size) + "; expected a positive batch size");
  if (o.image_size[0] < 1 || o.image_size[1] < 1 || o.image_size[0] * o.image_size[1] > int64_t{1} << 28)
    throw Error(kOp, "image_size (" + std::to_string(o.image_size[0]) + ", " + std::to_string(o.image_size[1]) +
                         "); expected a positive (height, width) of at most 2^28 pixels");
  std::string interpolation = o.interpolation;
  std::transform(interpolation.begin(), interpolation.end(), interpolation.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  if (interpolation == "bilinear") {
    plan.interpolation = Interpolation::kBilinear;
  } else if (interpolation == "nearest") {
    plan.interpolation = Interpolation::kNearest;
  } else {
    const bool keras = interpolation == "bicubic" || interpolation == "area" || interpolation == "lanczos3" ||
                       interpolation == "lanczos5" || interpolation == "gaussian" || interpolation == "mitchellcubic";
    throw Error(kOp, "interpolation " + quoted(o.interpolation) +
                         (keras ? " is a Keras method kiln does not implement" : " is not an interpolation") +
                         "; expected \"bilinear\" or \"nearest\"");
  }
  // Keras' check_validation_split_arg; a split of 0 means none, as in Keras.
  const double split = o.validation_split.value_or(0.0);
  if (split != 0.0 && !(split > 0.0 && split < 1.0))
    throw Error(kOp, "validation_split " + std::to_string(split) + "; expected a fraction between 0 and 1");
  if ((split != 0.0) != o.subset.has_value())
    throw Error(kOp, std::string(o.subset ? "subset is set without validation_split"
                                          : "validation_split is set without subset") +
                         "; expected both or neither");
  if (o.subset && *o.subset != "training" && *o.subset != "validation" && *o.subset != "both")
    throw Error(kOp, "subset " + quoted(*o.subset) + "; expected \"training\", \"validation\" or \"both\"");
  if (split != 0.0 && o.shuffle && !o.seed)
    throw Error(kOp,
                "validation_split with shuffle=true needs a seed, so that the training and validation subsets "
                "do not overlap; expected .seed = <number>");
  if (o.on_corrupt == "skip") {
    plan.skip_corrupt = true;
  } else if (o.on_corrupt != "error") {
    throw Error(kOp, "on_corrupt " + quoted(o.on_corrupt) + "; expected \"error\" or \"skip\"");
  }
  return plan;
}

// The labels of the files, as label_mode asks; undefined without labels.
Tensor encode_labels(const std::vector<int32_t>& labels, const std::string& mode, int64_t classes) {
  const auto n = static_cast<int64_t>(labels.size());
  if (mode.empty()) return {};
  if (mode == "int") return Tensor::from_vector(labels, Shape{n});
  if (mode == "binary") {
    std::vector<float> values(labels.begin(), labels.end());
    return Tensor::from_vector(values, Shape{n, 1});
  }
  std::vector<float> one_hot(static_cast<std::size_t>(n * classes), 0.0f);
  for (int64_t i = 0; i < n; ++i) one_hot[i * classes + labels[i]] = 1.0f;
  return Tensor::from_vector(one_hot, Shape{n, classes});
}

// Decodes and resizes `paths` into a dataset; skipped files (on_corrupt="skip") leave no row.
ImageDataset load(std::vector<std::string> paths, std::vector<int32_t> labels, const FileIndex& index,
                  const ImageDatasetOptions& o, const Plan& plan) {
  const auto n = static_cast<int64_t>(paths.size());
  const int64_t H = o.image_size[0], W = o.image_size[1], C = plan.channels;
  const int64_t image_floats = H * W * C;
  Tensor images = Tensor::empty(Shape{n, H, W, C});
  float* out = images.data<float>();

  // Every file's outcome; with on_corrupt="error" files after the first failure are not decoded
  // (those before it are, so the error reported is always the first failing file in order).
  std::vector<std::exception_ptr> failures(static_cast<std::size_t>(n));
  std::vector<char> corrupt(static_cast<std::size_t>(n), 0);
  std::atomic<int64_t> first_failure{n};
  auto body = [&](int64_t i) {
    if (!plan.skip_corrupt && i > first_failure.load(std::memory_order_relaxed)) return;
    try {
      const std::vector<uint8_t> bytes = io::read_regular_file(paths[i], kOp, "an image file");
      try {
        const DecodedImage image = decode_image(bytes, paths[i], plan.channels);
        ImageView view{image.pixels.data(), image.height, image.width, image.channels, image.width * image.channels};
        if (o.crop_to_aspect_ratio) view = center_crop_to_aspect(view, H, W);
        resize_image(view, plan.interpolation, H, W, out + i * image_floats);
        return;
      } catch (const Error&) {
        corrupt[i] = 1;
        throw;
      }
    } catch (...) {
      failures[i] = std::current_exception();
    }
    if (!plan.skip_corrupt || !corrupt[i]) {
      int64_t seen = first_failure.load();
      while (i < seen && !first_failure.compare_exchange_weak(seen, i)) {
      }
    }
  };
  backend::parallel_chunks(n, body);

  int64_t kept = 0;
  std::vector<std::string> kept_paths;
  std::vector<int32_t> kept_labels;
  for (int64_t i = 0; i < n; ++i) {
    if (failures[i]) {
      if (!plan.skip_corrupt || !corrupt[i]) std::rethrow_exception(failures[i]);
      try {
        std::rethrow_exception(failures[i]);
      } catch (const Error& e) {
        io::warn(kOp, std::string("on_corrupt=\"skip\": leaving out ") + e.what());
      }
      continue;
    }
    if (kept != i) std::copy_n(out + i * image_floats, image_floats, out + kept * image_floats);
    kept_paths.push_back(std::move(paths[i]));
    if (!labels.empty()) kept_labels.push_back(labels[i]);
    ++kept;
  }
  if (kept == 0)
    throw Error(kOp, "every one of the " + std::to_string(n) +
                         " image files was left out as corrupt; expected at "
                         "least one image that decodes");

  ImageDataset ds;
  ds.images = kept == n ? images : images.slice_rows(0, kept).clone();
  ds.labels = encode_labels(kept_labels, plan.label_mode, static_cast<int64_t>(index.class_names.size()));
  ds.class_names = index.class_names;
  ds.file_paths = std::move(kept_paths);
  ds.batch_size = o.batch_size;
  return ds;
}

// Indexes, shuffles and splits; `subsets` says which of "training" and "validation" to load ("" for
// all files).
std::vector<ImageDataset> build(const std::string& directory, const ImageDatasetOptions& o,
                                const std::vector<std::string>& subsets) {
  const Plan plan = check_options(o);
  FileIndex index = index_directory(directory, plan.source, plan.explicit_labels, o.class_names, o.follow_links);
  const bool has_labels = plan.source != LabelSource::kNone;
  const auto classes = static_cast<int64_t>(index.class_names.size());
  if (plan.label_mode == "binary" && classes != 2)
    throw Error(kOp, "label_mode \"binary\" with " + std::to_string(classes) +
                         " classes; expected exactly 2 class names (or use \"categorical\" or \"int\")");
  if (plan.source == LabelSource::kExplicit)
    for (int32_t label : index.labels)
      if ((plan.label_mode == "categorical" && label >= classes) || (plan.label_mode == "binary" && label > 1))
        throw Error(kOp, "labels has " + std::to_string(label) + " among " + std::to_string(classes) +
                             " distinct labels; expected labels 0.." + std::to_string(classes - 1) +
                             " with label_mode " + quoted(plan.label_mode));
  if (!has_labels) index.labels.clear();
  if (o.verbose) {
    if (!has_labels)
      std::cout << "Found " << index.paths.size() << " files.\n";
    else
      std::cout << "Found " << index.paths.size() << " files belonging to " << classes << " classes.\n";
  }
  const auto n = static_cast<int64_t>(index.paths.size());
  if (n == 0)
    throw Error(kOp, "no images found in directory " + quoted(directory) +
                         (plan.source == LabelSource::kInferred ? " (looked in its class sub-folders)" : "") +
                         "; expected .jpeg, .jpg or .png files");

  if (o.shuffle) {
    // Keras shuffles the paths and the labels with two generators of the same seed: one permutation.
    const uint32_t seed = o.seed ? *o.seed : static_cast<uint32_t>(global_generator().below(1000000));
    const std::vector<int64_t> order = numpy_shuffle_order(n, seed);
    std::vector<std::string> paths(index.paths.size());
    std::vector<int32_t> labels(index.labels.size());
    for (int64_t k = 0; k < n; ++k) {
      paths[k] = index.paths[order[k]];
      if (!labels.empty()) labels[k] = index.labels[order[k]];
    }
    index.paths = std::move(paths);
    index.labels = std::move(labels);
  }

  const double split = o.validation_split.value_or(0.0);
  const auto num_val = static_cast<int64_t>(split * static_cast<double>(n));
  if (split != 0.0 && num_val == 0)
    throw Error(kOp, "validation_split " + std::to_string(split) + " of " + std::to_string(n) +
                         " files holds out no file (int(split * files) = 0); expected a split that leaves files to "
                         "both subsets");
  std::vector<ImageDataset> result;
  for (const std::string& subset : subsets) {
    int64_t begin = 0, end = n;
    if (subset == "training") {
      end = n - num_val;
      if (o.verbose) std::cout << "Using " << end << " files for training.\n";
    } else if (subset == "validation") {
      begin = n - num_val;
      if (o.verbose) std::cout << "Using " << num_val << " files for validation.\n";
    }
    std::vector<std::string> paths(index.paths.begin() + begin, index.paths.begin() + end);
    std::vector<int32_t> labels;
    if (!index.labels.empty()) labels.assign(index.labels.begin() + begin, index.labels.begin() + end);
    result.push_back(load(std::move(paths), std::move(labels), index, o, plan));
  }
  return result;
}

}  // namespace

ImageDataset image_dataset_from_directory(const std::string& directory, const ImageDatasetOptions& options) {
  if (options.subset == "both")
    throw Error(kOp,
                "subset \"both\" gives two datasets; expected image_dataset_from_directory_both for it, or "
                "subset \"training\" or \"validation\"");
  return std::move(build(directory, options, {options.subset.value_or("")}).front());
}

ImageDatasetSplit image_dataset_from_directory_both(const std::string& directory, const ImageDatasetOptions& options) {
  if (options.subset && *options.subset != "both")
    throw Error(kOp, "image_dataset_from_directory_both with subset " + quoted(*options.subset) +
                         "; expected subset \"both\" or unset (image_dataset_from_directory gives one subset)");
  ImageDatasetOptions o = options;
  o.subset = "both";
  if (!o.validation_split)
    throw Error(kOp, "image_dataset_from_directory_both without validation_split; expected a fraction in (0, 1)");
  std::vector<ImageDataset> both = build(directory, o, {"training", "validation"});
  return {std::move(both[0]), std::move(both[1])};
}

}  // namespace kiln::utils
