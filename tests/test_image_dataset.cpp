// image_dataset_from_directory: class inference, label modes, Keras' shuffle and split, resizing
// against hand-computed values, decoding of every PNG/JPEG variant against TensorFlow's
// decode_image, corrupt files (error and skip), and every option and directory error. Images are
// written at test time with save_img; the PNG/JPEG variants save_img does not write (palette, 16-bit,
// CMYK, progressive...) are small files in tests/data/images/.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include "kiln/error.h"
#include "kiln/utils/image_dataset.h"
#include "test_support.h"
#include "utils/image_dataset_index.h"
#include "utils/image_decode.h"
#include "utils/image_resize.h"

namespace {

namespace fs = std::filesystem;
using kiln::Error;
using kiln::Shape;
using kiln::Tensor;
using kiln::testing::message_of;
namespace ku = kiln::utils;
using Bytes = std::vector<uint8_t>;

const fs::path kImages = fs::path(KILN_TESTS_DIR) / "data" / "images";

Bytes read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

#if KILN_WITH_PNG && KILN_WITH_JPEG
void write_bytes(const fs::path& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}
#endif

// A fresh folder per test, removed afterwards.
class ImageDatasetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / ("kiln_img_" + std::to_string(kiln::testing::process_id()) + "_" +
                                        info->test_suite_name() + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& rel) const { return (dir_ / rel).string(); }

  // Writes an h x w image whose every channel value is `value` (so a resized image keeps it) at
  // `rel`, creating its folder; PNG or JPEG by extension.
  void image(const std::string& rel, float value, int64_t h = 6, int64_t w = 5, int64_t c = 3) const {
    fs::create_directories((dir_ / rel).parent_path());
    ku::save_img(path(rel), Tensor::full(Shape{h, w, c}, value), {.scale = false, .quality = 100});
  }
  fs::path dir_;
};

// Options for deterministic, quiet loads of small images.
#if KILN_WITH_PNG && KILN_WITH_JPEG
ku::ImageDatasetOptions small(ku::ImageDatasetOptions o = {}) {
  o.image_size = {4, 3};
  o.verbose = false;
  return o;
}

std::vector<float> first_values(const ku::ImageDataset& ds) {
  std::vector<float> firsts;
  const auto all = ds.images.to_vector<float>();
  const int64_t per = ds.images.numel() / std::max<int64_t>(ds.size(), 1);
  for (int64_t i = 0; i < ds.size(); ++i) firsts.push_back(all[i * per]);
  return firsts;
}
#endif

// ---- numpy's shuffle and TensorFlow's resize (no image library needed) ----

TEST(ImageDatasetIndex, ShuffleOrderIsNumpys) {
  // np.random.seed(0); np.random.permutation(10) and RandomState(1337).shuffle(list(range(12))).
  EXPECT_EQ(ku::numpy_shuffle_order(10, 0), (std::vector<int64_t>{2, 8, 4, 9, 1, 6, 7, 3, 0, 5}));
  EXPECT_EQ(ku::numpy_shuffle_order(12, 1337), (std::vector<int64_t>{5, 3, 1, 0, 4, 6, 10, 2, 9, 11, 8, 7}));
  EXPECT_EQ(ku::numpy_shuffle_order(1, 5), (std::vector<int64_t>{0}));
  EXPECT_TRUE(ku::numpy_shuffle_order(0, 5).empty());
}

TEST(ImageResize, BilinearTwoByTwoToFourByFour) {
  // Half-pixel centers: output x maps to (x + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25, so along
  // each axis the outputs are p0, 0.75 p0 + 0.25 p1, 0.25 p0 + 0.75 p1, p1 (clamped at the edges).
  // Rows first: [0, 100] -> 0 25 75 100 and [200, 40] -> 200 160 80 40, then between the rows.
  // tf.image.resize(x, (4, 4)) (TensorFlow 2.21) returns exactly these values; all are exact in
  // float32, so the comparison is exact.
  const uint8_t px[4] = {0, 100, 200, 40};
  std::vector<float> out(16);
  ku::resize_image({px, 2, 2, 1, 2}, ku::Interpolation::kBilinear, 4, 4, out.data());
  EXPECT_EQ(out,
            (std::vector<float>{0, 25, 75, 100, 50, 58.75f, 76.25f, 85, 150, 126.25f, 78.75f, 55, 200, 160, 80, 40}));
  // Nearest: floor((x + 0.5) * 0.5) = 0, 0, 1, 1.
  ku::resize_image({px, 2, 2, 1, 2}, ku::Interpolation::kNearest, 4, 4, out.data());
  EXPECT_EQ(out, (std::vector<float>{0, 0, 100, 100, 0, 0, 100, 100, 200, 200, 40, 40, 200, 200, 40, 40}));
}

TEST(ImageResize, BilinearDownscaleSamplesWithoutAntialias) {
  // 4 -> 2 columns: x maps to (x + 0.5) * 2 - 0.5 = 0.5, 2.5: the mean of pixels 0,1 and of 2,3;
  // pixels 0 and 3 of a 1x8 -> 1x2 resize are never read (no antialiasing, as TensorFlow).
  const uint8_t row[4] = {10, 20, 30, 50};
  std::vector<float> out(2);
  ku::resize_image({row, 1, 4, 1, 4}, ku::Interpolation::kBilinear, 1, 2, out.data());
  EXPECT_EQ(out, (std::vector<float>{15, 40}));
}

TEST(ImageResize, CropToAspectRatioTakesTheCenteredWindow) {
  // A 2x6 image to a 2x2 target: Keras' smart_resize crops the centered 2x2 window (columns 2, 3).
  const uint8_t px[12] = {0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15};
  const ku::ImageView crop = ku::center_crop_to_aspect({px, 2, 6, 1, 6}, 2, 2);
  EXPECT_EQ(crop.height, 2);
  EXPECT_EQ(crop.width, 2);
  EXPECT_EQ(crop.data, px + 2);
  std::vector<float> out(4);
  ku::resize_image(crop, ku::Interpolation::kBilinear, 2, 2, out.data());
  EXPECT_EQ(out, (std::vector<float>{2, 3, 12, 13}));
}

#if KILN_WITH_PNG && KILN_WITH_JPEG

// ---- decoding, against tf.image.decode_image(channels=c) of TensorFlow 2.21 ----

std::vector<int> decoded(const std::string& name, int channels) {
  const ku::DecodedImage img = ku::decode_image(read_bytes(kImages / name), name, channels);
  return {img.pixels.begin(), img.pixels.end()};
}

TEST(ImageDecode, PngVariantsMatchTensorFlow) {
  // Palette with a transparent entry (tRNS): grayscale uses Rec. 601 weights.
  EXPECT_EQ(decoded("palette_trns.png", 1), (std::vector<int>{18, 124, 149, 124}));
  EXPECT_EQ(decoded("palette_trns.png", 3), (std::vector<int>{10, 20, 30, 200, 100, 50, 0, 255, 0, 200, 100, 50}));
  EXPECT_EQ(decoded("palette_trns.png", 4),
            (std::vector<int>{10, 20, 30, 0, 200, 100, 50, 255, 0, 255, 0, 255, 200, 100, 50, 255}));
  // 16-bit gray [0, 1000, 40000, 65535]: the high byte.
  EXPECT_EQ(decoded("gray16.png", 1), (std::vector<int>{0, 3, 156, 255}));
  EXPECT_EQ(decoded("gray16.png", 4),
            (std::vector<int>{0, 0, 0, 255, 3, 3, 3, 255, 156, 156, 156, 255, 255, 255, 255, 255}));
  EXPECT_EQ(decoded("gray_alpha.png", 1), (std::vector<int>{0, 100, 200, 255}));
  EXPECT_EQ(decoded("gray_alpha.png", 3), (std::vector<int>{0, 0, 0, 100, 100, 100, 200, 200, 200, 255, 255, 255}));
  EXPECT_EQ(decoded("gray_alpha.png", 4),
            (std::vector<int>{0, 0, 0, 255, 100, 100, 100, 128, 200, 200, 200, 0, 255, 255, 255, 64}));
  EXPECT_EQ(decoded("bits1.png", 1), (std::vector<int>{0, 255, 0, 255, 255, 0}));
  EXPECT_EQ(decoded("bits1.png", 3),
            (std::vector<int>{0, 0, 0, 255, 255, 255, 0, 0, 0, 255, 255, 255, 255, 255, 255, 0, 0, 0}));
  // TensorFlow gives this 1-bit image an alpha of 1; kiln gives the opaque 255 it gives every image
  // without alpha.
  EXPECT_EQ(decoded("bits1.png", 4), (std::vector<int>{0,   0,   0,   255, 255, 255, 255, 255, 0, 0, 0, 255,
                                                       255, 255, 255, 255, 255, 255, 255, 255, 0, 0, 0, 255}));
}

int sum_of(const std::vector<int>& v) { return std::accumulate(v.begin(), v.end(), 0); }

TEST(ImageDecode, JpegVariantsMatchTensorFlow) {
  // Baseline grayscale 8x8, quality 90: every pixel as TensorFlow's libjpeg-turbo decodes it.
  EXPECT_EQ(decoded("gray.jpg", 1),
            (std::vector<int>{170, 189, 195, 214, 36,  215, 57,  39,  90,  28,  5,   209, 250, 188, 222, 26,
                              141, 191, 125, 204, 171, 114, 32,  164, 35,  19,  107, 33,  52,  59,  120, 83,
                              146, 131, 84,  6,   133, 201, 234, 141, 22,  112, 52,  159, 196, 116, 159, 136,
                              210, 147, 0,   42,  24,  119, 157, 194, 226, 53,  43,  33,  47,  0,   37,  37}));
  EXPECT_EQ(sum_of(decoded("gray.jpg", 3)), 21540);
  // Progressive RGB 8x8 with 4:2:0 chroma (fancy upsampling, islow IDCT, as TensorFlow).
  const std::vector<int> rgb = decoded("progressive.jpg", 3);
  EXPECT_EQ(sum_of(rgb), 22938);
  EXPECT_EQ(std::vector<int>(rgb.begin(), rgb.begin() + 12),
            (std::vector<int>{112, 65, 145, 146, 108, 169, 126, 106, 131, 130, 98, 111}));
  const std::vector<int> gray = decoded("progressive.jpg", 1);
  EXPECT_EQ(std::vector<int>(gray.begin(), gray.begin() + 8), (std::vector<int>{88, 126, 115, 109, 68, 129, 152, 83}));
  // CMYK (Adobe): converted to RGB with TensorFlow's formula.
  const std::vector<int> cmyk = decoded("cmyk.jpg", 3);
  EXPECT_EQ(sum_of(cmyk), 22946);
  EXPECT_EQ(std::vector<int>(cmyk.begin(), cmyk.begin() + 12),
            (std::vector<int>{166, 48, 114, 197, 74, 255, 196, 100, 4, 211, 17, 249}));
  // RGBA from a JPEG (TensorFlow refuses it): the RGB values and an opaque alpha.
  const std::vector<int> rgba = decoded("progressive.jpg", 4);
  ASSERT_EQ(rgba.size(), 256u);
  for (std::size_t p = 0; p < 64; ++p) {
    EXPECT_EQ(rgba[4 * p + 3], 255);
    EXPECT_EQ(rgba[4 * p], rgb[3 * p]);
  }
  EXPECT_EQ(message_of([] { decoded("cmyk.jpg", 1); }),
            "[decode_image] 'cmyk.jpg' is not a valid JPEG image: a CMYK JPEG cannot be read as grayscale");
}

TEST(ImageDecode, RefusesWhatItCannotDecode) {
  const Bytes png = read_bytes(kImages / "gray16.png");
  EXPECT_EQ(message_of([&] { ku::decode_image(png, "x.png", 3, 3); }),
            "[decode_image] 'x.png' is a 2x2 image; expected at most 3 pixels");
  EXPECT_EQ(message_of([&] { ku::decode_image(png, "x.png", 2); }),
            "[decode_image] channels 2 for 'x.png'; expected 1 (grayscale), 3 (RGB) or 4 (RGBA)");
  const Bytes truncated(png.begin(), png.begin() + 40);
  EXPECT_EQ(message_of([&] { ku::decode_image(truncated, "t.png", 3); }),
            "[decode_image] 't.png' is not a valid PNG image: the file ends inside a chunk (truncated)");
  // A chunk claiming more bytes than follow it is refused before libpng allocates its claim (this
  // fuzzer finding's 'sPLT' chunk claims 1.9 GB in a file of 123 bytes).
  EXPECT_EQ(message_of([&] {
              ku::decode_image(
                  read_bytes(fs::path(KILN_TESTS_DIR) / "fuzz" / "regressions" / "image_decode" / "chunk_length_huge"),
                  "s.png", 3);
            }),
            "[decode_image] 's.png' is not a valid PNG image: its 'sPLT' chunk claims 1936946035 bytes of data, "
            "but only 54 follow before its checksum (truncated or corrupt)");
  const Bytes jpeg = read_bytes(kImages / "gray.jpg");
  const Bytes cut(jpeg.begin(), jpeg.begin() + static_cast<std::ptrdiff_t>(jpeg.size() / 2));
  EXPECT_EQ(message_of([&] { ku::decode_image(cut, "t.jpg", 3); }),
            "[decode_image] 't.jpg' is not a valid JPEG image: Premature end of JPEG file");
  const Bytes gif = {'G', 'I', 'F', '8', '9', 'a', 1, 0, 1, 0};
  EXPECT_EQ(message_of([&] { ku::decode_image(gif, "a.gif", 3); }),
            "[decode_image] 'a.gif' is a GIF image, which kiln does not decode; expected JPEG or PNG");
  const Bytes bmp = {'B', 'M', 0, 0};
  EXPECT_EQ(message_of([&] { ku::decode_image(bmp, "a.bmp", 3); }),
            "[decode_image] 'a.bmp' is a BMP image, which kiln does not decode; expected JPEG or PNG");
  EXPECT_EQ(message_of([&] { ku::decode_image(Bytes{}, "e.png", 3); }),
            "[decode_image] 'e.png' is empty; expected a JPEG or PNG image");
  const Bytes text = {'h', 'e', 'l', 'l', 'o'};
  EXPECT_EQ(message_of([&] { ku::decode_image(text, "h.jpg", 3); }),
            "[decode_image] 'h.jpg' is not a JPEG or PNG image (its first bytes are neither signature); expected "
            "JPEG or PNG");
}

// Every committed seed and every saved fuzzer finding decodes or throws kiln::Error.
TEST(ImageDecode, FuzzSeedsAndRegressionsDecodeOrThrow) {
  int replayed = 0;
  for (const char* folder : {"seeds", "regressions"}) {
    const fs::path dir = fs::path(KILN_TESTS_DIR) / "fuzz" / folder / "image_decode";
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) continue;
    for (const auto& entry : fs::directory_iterator(dir)) {
      if (!entry.is_regular_file() || entry.path().filename().string().starts_with(".")) continue;
      const Bytes bytes = read_bytes(entry.path());
      for (int channels : {1, 3, 4}) {
        try {
          ku::decode_image(bytes, entry.path().filename().string(), channels, 1 << 20);
        } catch (const Error&) {
        }
      }
      ++replayed;
    }
  }
  EXPECT_GE(replayed, 2);  // the two seeds at least
}

// ---- the dataset ----

TEST_F(ImageDatasetTest, InfersClassesFromSortedSubfolders) {
  image("b_dogs/d1.png", 10);
  image("b_dogs/d0.JPG", 11);
  image("a_cats/c2.png", 20);
  image("a_cats/c1.jpeg", 21);
  image("a_cats/nested/c0.png", 22);                  // nested folders belong to their class
  image("a_cats/zz/../c3.png", 23);                   // plain path
  image(".hidden/h.png", 30);                         // a class folder starting with '.' is not a class
  image("top.png", 40);                               // files beside the class folders are not read
  write_bytes(dir_ / "a_cats" / "notes.txt", {'x'});  // not an image extension
  const ku::ImageDataset ds = ku::image_dataset_from_directory(dir_.string(), small({.shuffle = false}));
  EXPECT_EQ(ds.class_names, (std::vector<std::string>{"a_cats", "b_dogs"}));
  const std::string d = dir_.string();
  // Keras' order: class by class; inside a class by folder path, then file name.
  EXPECT_EQ(ds.file_paths,
            (std::vector<std::string>{d + "/a_cats/c1.jpeg", d + "/a_cats/c2.png", d + "/a_cats/c3.png",
                                      d + "/a_cats/nested/c0.png", d + "/b_dogs/d0.JPG", d + "/b_dogs/d1.png"}));
  EXPECT_EQ(ds.images.shape(), (Shape{6, 4, 3, 3}));
  EXPECT_EQ(ds.images.dtype(), kiln::DType::Float32);
  EXPECT_EQ(ds.labels.dtype(), kiln::DType::Int32);
  EXPECT_EQ(ds.labels.to_vector<int32_t>(), (std::vector<int32_t>{0, 0, 0, 0, 1, 1}));
  // Flat images stay flat through the resize; the JPEGs within a unit of their value.
  const std::vector<float> firsts = first_values(ds);
  EXPECT_EQ(firsts[1], 20.0f);
  EXPECT_EQ(firsts[3], 22.0f);
  EXPECT_NEAR(firsts[0], 21.0f, 1.0f);
  EXPECT_NEAR(firsts[4], 11.0f, 1.0f);
  EXPECT_EQ(ds.batch_size, 32);
}

TEST_F(ImageDatasetTest, ClassNamesSetTheOrderAndMustBeFolders) {
  image("a/1.png", 1);
  image("b/2.png", 2);
  image("c/3.png", 3);
  const ku::ImageDataset ds =
      ku::image_dataset_from_directory(dir_.string(), small({.class_names = {"c", "a"}, .shuffle = false}));
  EXPECT_EQ(ds.class_names, (std::vector<std::string>{"c", "a"}));
  EXPECT_EQ(ds.labels.to_vector<int32_t>(), (std::vector<int32_t>{0, 1}));
  EXPECT_EQ(first_values(ds), (std::vector<float>{3, 1}));
  EXPECT_EQ(message_of([&] {
              ku::image_dataset_from_directory(dir_.string(), small({.class_names = {"a", "dogs"}}));
            }),
            "[image_dataset_from_directory] class_names has 'dogs', which is not a sub-folder of '" + dir_.string() +
                "'; expected names among ['a', 'b', 'c']");
  EXPECT_EQ(message_of([&] {
              ku::image_dataset_from_directory(dir_.string(), small({.class_names = {"a", "a"}}));
            }),
            "[image_dataset_from_directory] class_names has 'a' twice; expected each class once");
}

TEST_F(ImageDatasetTest, LabelModes) {
  image("x/1.png", 1);
  image("y/2.png", 2);
  image("y/3.png", 3);
  const auto load = [&](std::optional<std::string> mode) {
    return ku::image_dataset_from_directory(dir_.string(), small({.label_mode = std::move(mode), .shuffle = false}));
  };
  const ku::ImageDataset categorical = load("categorical");
  EXPECT_EQ(categorical.labels.shape(), (Shape{3, 2}));
  EXPECT_EQ(categorical.labels.to_vector<float>(), (std::vector<float>{1, 0, 0, 1, 0, 1}));
  const ku::ImageDataset binary = load("binary");
  EXPECT_EQ(binary.labels.shape(), (Shape{3, 1}));
  EXPECT_EQ(binary.labels.dtype(), kiln::DType::Float32);
  EXPECT_EQ(binary.labels.to_vector<float>(), (std::vector<float>{0, 1, 1}));
  // No label_mode: no labels, and (as Keras) the whole tree is read.
  image("top.png", 4);
  const ku::ImageDataset none = load(std::nullopt);
  EXPECT_FALSE(none.labels.defined());
  EXPECT_TRUE(none.class_names.empty());
  EXPECT_EQ(none.size(), 4);
  image("z/5.png", 5);
  EXPECT_EQ(message_of([&] { load("binary"); }),
            "[image_dataset_from_directory] label_mode \"binary\" with 3 classes; expected exactly 2 class names (or "
            "use \"categorical\" or \"int\")");
}

TEST_F(ImageDatasetTest, ExplicitLabelsFollowSortedPaths) {
  image("b/1.png", 1);
  image("a/2.png", 2);
  image("3.png", 3);
  // Sorted walk: 3.png (the top folder), a/2.png, b/1.png.
  const ku::ImageDataset ds = ku::image_dataset_from_directory(
      dir_.string(), small({.labels = std::vector<int32_t>{2, 0, 1}, .label_mode = "categorical", .shuffle = false}));
  EXPECT_EQ(first_values(ds), (std::vector<float>{3, 2, 1}));
  EXPECT_EQ(ds.class_names, (std::vector<std::string>{"0", "1", "2"}));
  EXPECT_EQ(ds.labels.to_vector<float>(), (std::vector<float>{0, 0, 1, 1, 0, 0, 0, 1, 0}));
  EXPECT_EQ(message_of([&] {
              ku::image_dataset_from_directory(dir_.string(), small({.labels = std::vector<int32_t>{0, 1}}));
            }),
            "[image_dataset_from_directory] labels has 2 entries but '" + dir_.string() +
                "' holds 3 image files; expected one label per file");
  EXPECT_EQ(message_of([&] {
              ku::image_dataset_from_directory(dir_.string(), small({.labels = std::vector<int32_t>{0, -1, 1}}));
            }),
            "[image_dataset_from_directory] labels has -1; expected class indices >= 0");
  EXPECT_EQ(message_of([&] {
              ku::image_dataset_from_directory(
                  dir_.string(), small({.labels = std::vector<int32_t>{0, 5, 0}, .label_mode = "categorical"}));
            }),
            "[image_dataset_from_directory] labels has 5 among 2 distinct labels; expected labels 0..1 with "
            "label_mode 'categorical'");
  EXPECT_EQ(message_of([&] {
              ku::image_dataset_from_directory(dir_.string(),
                                               small({.labels = std::vector<int32_t>{0, 1, 0}, .class_names = {"a"}}));
            }),
            "[image_dataset_from_directory] class_names is given with labels that are not \"inferred\"; expected "
            "class_names only with labels=\"inferred\" (explicit labels name their classes by their sorted values)");
}

TEST_F(ImageDatasetTest, SplitIsKerasShuffleThenLastFraction) {
  for (int i = 0; i < 10; ++i) image((i < 5 ? "a/" : "b/") + std::to_string(i) + ".png", static_cast<float>(i));
  auto options = small({.seed = 1337, .validation_split = 0.2, .subset = "both"});
  const auto [train, val] = ku::image_dataset_from_directory_both(dir_.string(), options);
  EXPECT_EQ(train.size(), 8);
  EXPECT_EQ(val.size(), 2);
  EXPECT_EQ(train.images.shape(), (Shape{8, 4, 3, 3}));
  // numpy's RandomState(1337).shuffle of the 10 sorted files is 6 3 0 4 5 2 1 9 8 7: the last 2
  // are validation (Keras' file_paths for this folder and seed).
  EXPECT_EQ(first_values(train), (std::vector<float>{6, 3, 0, 4, 5, 2, 1, 9}));
  EXPECT_EQ(first_values(val), (std::vector<float>{8, 7}));
  EXPECT_EQ(val.labels.to_vector<int32_t>(), (std::vector<int32_t>{1, 1}));
  std::vector<float> all = first_values(train);
  for (float v : first_values(val)) all.push_back(v);
  EXPECT_EQ(std::set<float>(all.begin(), all.end()).size(), 10u);  // disjoint and complete
  // Labels travel with their images.
  const auto train_labels = train.labels.to_vector<int32_t>();
  const auto train_firsts = first_values(train);
  for (int64_t i = 0; i < train.size(); ++i) EXPECT_EQ(train_labels[i], train_firsts[i] < 5 ? 0 : 1);
  // One subset at a time gives the same files; the same seed the same order.
  options.subset = "training";
  EXPECT_EQ(ku::image_dataset_from_directory(dir_.string(), options).file_paths, train.file_paths);
  options.subset = "validation";
  EXPECT_EQ(ku::image_dataset_from_directory(dir_.string(), options).file_paths, val.file_paths);
  options.seed = 1;
  EXPECT_NE(ku::image_dataset_from_directory(dir_.string(), options).file_paths, val.file_paths);
  // A split that holds out nothing is refused (Keras would return an empty training set).
  EXPECT_EQ(message_of([&] {
              ku::image_dataset_from_directory(dir_.string(),
                                               small({.seed = 1, .validation_split = 0.05, .subset = "training"}));
            }),
            "[image_dataset_from_directory] validation_split 0.050000 of 10 files holds out no file (int(split * "
            "files) = 0); expected a split that leaves files to both subsets");
}

TEST_F(ImageDatasetTest, ColorModesAndResize) {
  // A 2x2 grayscale image resized to 4x4 gives the hand-computed values of ImageResize above.
  fs::create_directories(dir_ / "g");
  ku::save_img(path("g/px.png"), Tensor::from_vector(std::vector<float>{0, 100, 200, 40}, Shape{2, 2, 1}),
               {.scale = false});
  const ku::ImageDataset gray = ku::image_dataset_from_directory(
      dir_.string(), {.color_mode = "grayscale", .image_size = {4, 4}, .shuffle = false, .verbose = false});
  EXPECT_EQ(gray.images.shape(), (Shape{1, 4, 4, 1}));
  EXPECT_EQ(gray.images.to_vector<float>(),
            (std::vector<float>{0, 25, 75, 100, 50, 58.75f, 76.25f, 85, 150, 126.25f, 78.75f, 55, 200, 160, 80, 40}));
  // Gray read as RGB repeats the value; RGBA adds an opaque alpha.
  const ku::ImageDataset rgba = ku::image_dataset_from_directory(
      dir_.string(), {.color_mode = "rgba", .image_size = {2, 2}, .shuffle = false, .verbose = false});
  EXPECT_EQ(rgba.images.to_vector<float>(),
            (std::vector<float>{0, 0, 0, 255, 100, 100, 100, 255, 200, 200, 200, 255, 40, 40, 40, 255}));
  // crop_to_aspect_ratio: a 2x6 image to 2x2 keeps its center columns.
  fs::remove_all(dir_ / "g");
  fs::create_directories(dir_ / "w");
  ku::save_img(path("w/wide.png"),
               Tensor::from_vector(std::vector<float>{0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15}, Shape{2, 6, 1}),
               {.scale = false});
  const ku::ImageDataset crop = ku::image_dataset_from_directory(dir_.string(), {.color_mode = "grayscale",
                                                                                 .image_size = {2, 2},
                                                                                 .shuffle = false,
                                                                                 .crop_to_aspect_ratio = true,
                                                                                 .verbose = false});
  EXPECT_EQ(crop.images.to_vector<float>(), (std::vector<float>{2, 3, 12, 13}));
}

TEST_F(ImageDatasetTest, CorruptFilesStopOrAreSkipped) {
  image("a/1.png", 1);
  image("a/2.png", 2);
  image("b/3.png", 3);
  Bytes broken = read_bytes(dir_ / "a" / "2.png");
  broken.resize(broken.size() - 20);
  write_bytes(dir_ / "a" / "2.png", broken);
  write_bytes(dir_ / "b" / "anim.gif", {'G', 'I', 'F', '8', '9', 'a', 1, 0, 1, 0});
  const std::string d = dir_.string();
  EXPECT_EQ(message_of([&] { ku::image_dataset_from_directory(d, small({.shuffle = false})); }),
            "[decode_image] '" + d +
                "/a/2.png' is not a valid PNG image: its 'IDAT' chunk claims 18 bytes of data, but only 10 follow "
                "before its checksum (truncated or corrupt)");
  ::testing::internal::CaptureStderr();
  const ku::ImageDataset ds = ku::image_dataset_from_directory(d, small({.shuffle = false, .on_corrupt = "skip"}));
  const std::string warnings = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(ds.file_paths, (std::vector<std::string>{d + "/a/1.png", d + "/b/3.png"}));
  EXPECT_EQ(ds.labels.to_vector<int32_t>(), (std::vector<int32_t>{0, 1}));
  EXPECT_EQ(first_values(ds), (std::vector<float>{1, 3}));
  EXPECT_EQ(ds.images.shape(), (Shape{2, 4, 3, 3}));
  EXPECT_NE(warnings.find("kiln: warning: [image_dataset_from_directory] on_corrupt=\"skip\": leaving out "
                          "[decode_image] '" +
                          d + "/a/2.png' is not a valid PNG image"),
            std::string::npos)
      << warnings;
  EXPECT_NE(warnings.find("'" + d + "/b/anim.gif' is a GIF image, which kiln does not decode"), std::string::npos)
      << warnings;
  // Nothing left: an error, not an empty dataset.
  fs::remove(dir_ / "a" / "1.png");
  fs::remove(dir_ / "b" / "3.png");
  EXPECT_EQ(message_of([&] { ku::image_dataset_from_directory(d, small({.on_corrupt = "skip"})); }),
            "[image_dataset_from_directory] every one of the 2 image files was left out as corrupt; expected at least "
            "one image that decodes");
}

TEST_F(ImageDatasetTest, FollowLinks) {
  REQUIRE_SYMLINKS(dir_);
  image("data/a/1.png", 1);
  image("elsewhere/2.png", 2);
  fs::create_directory_symlink(dir_ / "elsewhere", dir_ / "data" / "a" / "linked");
  const std::string d = path("data");
  EXPECT_EQ(ku::image_dataset_from_directory(d, small({.shuffle = false})).size(), 1);
  EXPECT_EQ(ku::image_dataset_from_directory(d, small({.shuffle = false, .follow_links = true})).size(), 2);
  fs::create_directory_symlink(dir_ / "data" / "a", dir_ / "data" / "a" / "loop");
  EXPECT_EQ(ku::image_dataset_from_directory(d, small({.shuffle = false})).size(), 1);
  EXPECT_EQ(message_of([&] { ku::image_dataset_from_directory(d, small({.follow_links = true})); }),
            "[image_dataset_from_directory] folder '" + d +
                "/a/loop' is a symbolic link to a folder that contains it (a loop); expected a tree (remove the link "
                "or set follow_links=false)");
}

TEST_F(ImageDatasetTest, MissingAndEmptyDirectories) {
  EXPECT_EQ(
      message_of([&] { ku::image_dataset_from_directory(path("nope"), small()); }),
      "[image_dataset_from_directory] directory '" + path("nope") + "' does not exist; expected a folder of images");
  write_bytes(dir_ / "file.png", {1});
  EXPECT_EQ(
      message_of([&] { ku::image_dataset_from_directory(path("file.png"), small()); }),
      "[image_dataset_from_directory] '" + path("file.png") + "' is not a directory; expected a folder of images");
  fs::create_directories(dir_ / "empty" / "class_a");
  EXPECT_EQ(message_of([&] { ku::image_dataset_from_directory(path("empty"), small()); }),
            "[image_dataset_from_directory] no images found in directory '" + path("empty") +
                "' (looked in its class sub-folders); expected .jpeg, .jpg or .png files");
  EXPECT_EQ(message_of([&] { ku::image_dataset_from_directory(path("empty"), small({.labels = std::nullopt})); }),
            "[image_dataset_from_directory] no images found in directory '" + path("empty") +
                "'; expected .jpeg, .jpg or .png files");
}

TEST_F(ImageDatasetTest, VerbosePrintsKerasCounts) {
  image("a/1.png", 1);
  image("b/2.png", 2);
  image("b/3.png", 3);
  ::testing::internal::CaptureStdout();
  ku::image_dataset_from_directory_both(dir_.string(), {.image_size = {2, 2}, .seed = 3, .validation_split = 0.4});
  EXPECT_EQ(::testing::internal::GetCapturedStdout(),
            "Found 3 files belonging to 2 classes.\nUsing 2 files for training.\nUsing 1 files for validation.\n");
}

TEST(SaveImg, RefusesBadInput) {
  const std::string p = (fs::temp_directory_path() / "kiln_save_img_refused.png").string();
  EXPECT_EQ(message_of([&] {
              ku::save_img(p, Tensor::zeros(Shape{2, 2}));
            }),
            "[save_img] the image for '" + p +
                "' has shape [2, 2]; expected [height, width, channels] with 1, 3 or 4 "
                "channels");
  EXPECT_EQ(message_of([&] {
              ku::save_img("x.tiff", Tensor::zeros(Shape{2, 2, 3}));
            }),
            "[save_img] cannot tell a supported format for 'x.tiff'; expected file_format \"png\" or \"jpeg\" (or a "
            ".png, .jpg or .jpeg path)");
  EXPECT_EQ(message_of([&] {
              ku::save_img(p, Tensor::full(Shape{1, 1, 1}, 300.0), {.scale = false});
            }),
            "[save_img] the image for '" + p +
                "' has 300.000000 at element 0 with scale=false; expected values in "
                "[0, 255]");
  EXPECT_EQ(message_of([&] {
              ku::save_img("x.jpg", Tensor::zeros(Shape{1, 1, 3}), {.quality = 0});
            }),
            "[save_img] quality 0; expected 1..100");
  EXPECT_FALSE(fs::exists(p));
}

#else  // without libjpeg or libpng

TEST(ImageDecode, NeedsTheLibraries) {
#if !KILN_WITH_PNG
  EXPECT_EQ(message_of([] { ku::decode_image(read_bytes(kImages / "gray16.png"), "g.png", 3); }),
            "[decode_image] kiln was built without libpng; rebuild with libpng-dev installed to read 'g.png'");
  EXPECT_EQ(message_of([] {
              ku::save_img("x.png", Tensor::zeros(Shape{1, 1, 3}));
            }),
            "[save_img] kiln was built without libpng; rebuild with libpng-dev installed to write 'x.png'");
#endif
#if !KILN_WITH_JPEG
  EXPECT_EQ(message_of([] { ku::decode_image(read_bytes(kImages / "gray.jpg"), "g.jpg", 3); }),
            "[decode_image] kiln was built without libjpeg; rebuild with libjpeg-dev installed to read 'g.jpg'");
#endif
}

#endif

// ---- option errors (checked before any file is read) ----

TEST(ImageDatasetOptions, BadValuesAreRefusedWithTheAcceptedOnes) {
  const auto error = [](ku::ImageDatasetOptions o) {
    o.verbose = false;
    return message_of([&] { ku::image_dataset_from_directory("/nonexistent-kiln-dir", o); });
  };
  const std::string p = "[image_dataset_from_directory] ";
  EXPECT_EQ(error({.labels = "auto"}), p + "labels 'auto'; expected \"inferred\", a list of int labels (one per file) "
                                           "or std::nullopt (no labels)");
  EXPECT_EQ(error({.label_mode = "sparse"}),
            p + "label_mode 'sparse'; expected \"int\", \"categorical\", \"binary\" or std::nullopt (no labels)");
  EXPECT_EQ(error({.label_mode = std::nullopt, .class_names = {"a"}}),
            p + "class_names is given without labels (labels or label_mode is std::nullopt); expected class_names "
                "only with labels=\"inferred\" and a label_mode");
  EXPECT_EQ(error({.color_mode = "hsv"}), p + "color_mode 'hsv'; expected \"rgb\", \"rgba\" or \"grayscale\"");
  EXPECT_EQ(error({.batch_size = 0}), p + "batch_size 0; expected a positive batch size");
  EXPECT_EQ(error({.image_size = {0, 5}}),
            p + "image_size (0, 5); expected a positive (height, width) of at most 2^28 pixels");
  EXPECT_EQ(error({.interpolation = "bicubic"}),
            p + "interpolation 'bicubic' is a Keras method kiln does not implement; expected \"bilinear\" or "
                "\"nearest\"");
  EXPECT_EQ(error({.interpolation = "cubic"}),
            p + "interpolation 'cubic' is not an interpolation; expected \"bilinear\" or \"nearest\"");
  EXPECT_EQ(error({.validation_split = 1.5, .subset = "training"}),
            p + "validation_split 1.500000; expected a fraction between 0 and 1");
  EXPECT_EQ(error({.seed = 1, .subset = "training"}),
            p + "subset is set without validation_split; expected both or neither");
  EXPECT_EQ(error({.seed = 1, .validation_split = 0.2}),
            p + "validation_split is set without subset; expected both or neither");
  EXPECT_EQ(error({.seed = 1, .validation_split = 0.2, .subset = "test"}),
            p + "subset 'test'; expected \"training\", \"validation\" or \"both\"");
  EXPECT_EQ(error({.validation_split = 0.2, .subset = "training"}),
            p + "validation_split with shuffle=true needs a seed, so that the training and validation subsets do not "
                "overlap; expected .seed = <number>");
  EXPECT_EQ(error({.on_corrupt = "ignore"}), p + "on_corrupt 'ignore'; expected \"error\" or \"skip\"");
  EXPECT_EQ(error({.seed = 1, .validation_split = 0.2, .subset = "both"}),
            p + "subset \"both\" gives two datasets; expected image_dataset_from_directory_both for it, or subset "
                "\"training\" or \"validation\"");
  EXPECT_EQ(message_of([] {
              ku::image_dataset_from_directory_both("/nonexistent-kiln-dir",
                                                    {.seed = 1, .validation_split = 0.2, .subset = "training"});
            }),
            p + "image_dataset_from_directory_both with subset 'training'; expected subset \"both\" or unset "
                "(image_dataset_from_directory gives one subset)");
  EXPECT_EQ(message_of([] { ku::image_dataset_from_directory_both("/nonexistent-kiln-dir", {.seed = 1}); }),
            p + "image_dataset_from_directory_both without validation_split; expected a fraction in (0, 1)");
}

}  // namespace
