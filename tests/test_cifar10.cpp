// CIFAR-10 reader: layout, labels and every error on synthetic batches; counts on the real data
// when KILN_CIFAR10_DIR names a prepared folder; replay of the fuzzer's regression inputs.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "kiln/datasets/cifar10.h"
#include "kiln/error.h"
#include "test_support.h"

namespace {

namespace fs = std::filesystem;
namespace c10 = kiln::datasets::cifar10;
using Bytes = std::vector<uint8_t>;

constexpr std::size_t kRecord = c10::kRecordBytes;

// `count` records with labels from `labels` (cycled) and pixels from a seeded generator, so any
// mix-up of planes, rows or records shows up as a mismatch.
Bytes synthetic_batch(int count, std::vector<uint8_t> labels, uint32_t seed) {
  std::mt19937 gen(seed);
  Bytes bytes(static_cast<std::size_t>(count) * kRecord);
  for (int r = 0; r < count; ++r) {
    uint8_t* rec = bytes.data() + static_cast<std::size_t>(r) * kRecord;
    rec[0] = labels[static_cast<std::size_t>(r) % labels.size()];
    for (std::size_t i = 1; i < kRecord; ++i) rec[i] = static_cast<uint8_t>(gen());
  }
  return bytes;
}

void write_file(const fs::path& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << "could not write " << path;
}

Bytes read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Checks `split` against the raw records `bytes` (first `count` of them), pixel by pixel:
// images[n, y, x, c] must be the byte at plane c, row y, column x of record n.
void expect_decoded(const c10::Split& split, const Bytes& bytes, int64_t count, int64_t first = 0) {
  ASSERT_GE(split.size(), first + count);
  const uint8_t* images = split.images.data<uint8_t>();
  const int32_t* labels = split.labels.data<int32_t>();
  for (int64_t n = 0; n < count; ++n) {
    const uint8_t* rec = bytes.data() + static_cast<std::size_t>(n) * kRecord;
    ASSERT_EQ(labels[first + n], rec[0]) << "record " << n;
    for (int64_t y = 0; y < 32; ++y)
      for (int64_t x = 0; x < 32; ++x)
        for (int64_t c = 0; c < 3; ++c)
          ASSERT_EQ(images[(((first + n) * 32 + y) * 32 + x) * 3 + c], rec[1 + c * 1024 + y * 32 + x])
              << "record " << n << " y " << y << " x " << x << " c " << c;
  }
}

// Runs `f` and returns the kiln::Error message it throws (fails the test when it throws nothing).
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const kiln::Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a kiln::Error";
  return "";
}

// A fresh folder per test, removed afterwards.
class Cifar10Files : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("kiln_cifar10_" + std::string(info->name()) + "_" + std::to_string(std::random_device{}()));
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // Writes a full synthetic dataset into dir_/cifar-10-batches-bin: train files of `train_counts`
  // records, a test file of `test_count`; returns the bytes written, train files then test.
  std::vector<Bytes> write_dataset(const std::array<int, 5>& train_counts, int test_count) {
    const fs::path folder = batches();
    fs::create_directories(folder);
    std::vector<Bytes> files;
    for (int i = 0; i < 5; ++i) {
      files.push_back(synthetic_batch(train_counts[i], {static_cast<uint8_t>(i), 9, 0, 4}, 100 + i));
      write_file(folder / ("data_batch_" + std::to_string(i + 1) + ".bin"), files.back());
    }
    files.push_back(synthetic_batch(test_count, {7, 2, 5}, 200));
    write_file(folder / "test_batch.bin", files.back());
    return files;
  }

  fs::path batches() const { return dir_ / "cifar-10-batches-bin"; }

  fs::path dir_;
};

// ---- parse_batch: layout and labels ----

TEST(Cifar10Parse, DecodesNhwcPixelByPixel) {
  const Bytes bytes = synthetic_batch(3, {3, 0, 9}, 1);
  const c10::Split s = c10::parse_batch(bytes, "mem");
  EXPECT_EQ(s.images.shape(), (kiln::Shape{3, 32, 32, 3}));
  EXPECT_EQ(s.images.dtype(), kiln::DType::UInt8);
  EXPECT_EQ(s.labels.shape(), (kiln::Shape{3}));
  EXPECT_EQ(s.labels.dtype(), kiln::DType::Int32);
  EXPECT_EQ(s.size(), 3);
  EXPECT_EQ(s.labels.to_vector<int32_t>(), (std::vector<int32_t>{3, 0, 9}));
  expect_decoded(s, bytes, 3);
}

TEST(Cifar10Parse, PlanesBecomeChannels) {
  // R plane 10 everywhere but (y=1, x=2) = 200, G plane 20, B plane 30.
  Bytes bytes(kRecord, 0);
  bytes[0] = 5;
  std::fill(bytes.begin() + 1, bytes.begin() + 1 + 1024, 10);
  std::fill(bytes.begin() + 1 + 1024, bytes.begin() + 1 + 2048, 20);
  std::fill(bytes.begin() + 1 + 2048, bytes.end(), 30);
  bytes[1 + 1 * 32 + 2] = 200;
  const c10::Split s = c10::parse_batch(bytes, "mem");
  const uint8_t* px = s.images.data<uint8_t>();
  EXPECT_EQ(px[(1 * 32 + 2) * 3 + 0], 200);
  EXPECT_EQ(px[(1 * 32 + 2) * 3 + 1], 20);
  EXPECT_EQ(px[(1 * 32 + 2) * 3 + 2], 30);
  EXPECT_EQ(px[(1 * 32 + 3) * 3 + 0], 10);
  EXPECT_EQ(px[(31 * 32 + 31) * 3 + 2], 30);
}

TEST(Cifar10Parse, LimitTakesTheFirstRecords) {
  const Bytes bytes = synthetic_batch(5, {1, 2, 3, 4, 5}, 2);
  const c10::Split two = c10::parse_batch(bytes, "mem", 2);
  EXPECT_EQ(two.size(), 2);
  expect_decoded(two, bytes, 2);
  EXPECT_EQ(c10::parse_batch(bytes, "mem", 100).size(), 5);
  const c10::Split none = c10::parse_batch(bytes, "mem", 0);
  EXPECT_EQ(none.images.shape(), (kiln::Shape{0, 32, 32, 3}));
}

TEST(Cifar10Parse, LabelsPastTheLimitAreNotChecked) {
  Bytes bytes = synthetic_batch(2, {1}, 3);
  bytes[kRecord] = 200;
  EXPECT_EQ(c10::parse_batch(bytes, "mem", 1).size(), 1);
}

// ---- parse_batch: errors ----

TEST(Cifar10Parse, EmptyInputIsAnError) {
  const std::string msg = error_of([] { c10::parse_batch({}, "empty.bin"); });
  EXPECT_NE(msg.find("[cifar10] 'empty.bin' is empty"), std::string::npos) << msg;
  EXPECT_NE(msg.find("expected at least one 3073-byte record"), std::string::npos) << msg;
}

TEST(Cifar10Parse, CountsOfOneAreSingular) {
  EXPECT_EQ(error_of([] { c10::parse_batch(Bytes(1, 0), "one"); }),
            "[cifar10] 'one' has 1 byte, not a multiple of 3073 (0 records and 1 byte over); expected whole records "
            "(1 label byte + 3072 pixel bytes per record)");
  EXPECT_EQ(error_of([] { c10::parse_batch(Bytes(kRecord + 1, 0), "two"); }),
            "[cifar10] 'two' has 3074 bytes, not a multiple of 3073 (1 record and 1 byte over); expected whole "
            "records (1 label byte + 3072 pixel bytes per record)");
}

TEST(Cifar10Parse, PartialRecordGivesTheSize) {
  const Bytes bytes(2 * kRecord + 5, 0);
  const std::string msg = error_of([&] { c10::parse_batch(bytes, "cut.bin"); });
  EXPECT_NE(msg.find("[cifar10] 'cut.bin' has 6151 bytes, not a multiple of 3073"), std::string::npos) << msg;
  EXPECT_NE(msg.find("2 records and 5 bytes over"), std::string::npos) << msg;
  EXPECT_NE(msg.find("; expected whole records"), std::string::npos) << msg;
}

TEST(Cifar10Parse, LabelAboveNineGivesRecordAndValue) {
  Bytes bytes = synthetic_batch(3, {1}, 4);
  bytes[1 * kRecord] = 10;
  std::string msg = error_of([&] { c10::parse_batch(bytes, "bad.bin"); });
  EXPECT_EQ(msg, "[cifar10] 'bad.bin' record 1 has label 10; expected a class index 0..9");
  bytes[1 * kRecord] = 1;
  bytes[2 * kRecord] = 255;
  msg = error_of([&] { c10::parse_batch(bytes, "bad.bin"); });
  EXPECT_EQ(msg, "[cifar10] 'bad.bin' record 2 has label 255; expected a class index 0..9");
}

TEST(Cifar10Parse, NegativeLimitIsAnError) {
  const Bytes bytes = synthetic_batch(1, {0}, 5);
  const std::string msg = error_of([&] { c10::parse_batch(bytes, "mem", -1); });
  EXPECT_EQ(msg, "[cifar10] limit -1 is negative; expected a record count >= 0");
}

// ---- files ----

TEST_F(Cifar10Files, LoadBatchFileMatchesTheBytes) {
  const Bytes bytes = synthetic_batch(4, {6, 1}, 6);
  write_file(dir_ / "one.bin", bytes);
  const c10::Split s = c10::load_batch_file((dir_ / "one.bin").string());
  EXPECT_EQ(s.size(), 4);
  expect_decoded(s, bytes, 4);
  EXPECT_EQ(c10::load_batch_file((dir_ / "one.bin").string(), 3).size(), 3);
}

TEST_F(Cifar10Files, LoadDataConcatenatesTrainFilesInOrder) {
  const auto files = write_dataset({2, 3, 1, 2, 2}, 4);
  for (const fs::path& dir : {dir_, batches()}) {  // the parent folder and the folder itself
    const auto [train, test] = c10::load_data(dir.string());
    EXPECT_EQ(train.images.shape(), (kiln::Shape{10, 32, 32, 3}));
    EXPECT_EQ(test.images.shape(), (kiln::Shape{4, 32, 32, 3}));
    int64_t first = 0;
    for (int i = 0; i < 5; ++i) {
      expect_decoded(train, files[i], static_cast<int64_t>(files[i].size() / kRecord), first);
      first += static_cast<int64_t>(files[i].size() / kRecord);
    }
    expect_decoded(test, files[5], 4);
    EXPECT_EQ(train.labels.to_vector<int32_t>(), (std::vector<int32_t>{0, 9, 1, 9, 0, 2, 3, 9, 4, 9}));
    EXPECT_EQ(test.labels.to_vector<int32_t>(), (std::vector<int32_t>{7, 2, 5, 7}));
  }
}

TEST_F(Cifar10Files, LoadDataLimitIsPerSplit) {
  const auto files = write_dataset({2, 3, 1, 2, 2}, 4);
  const c10::Cifar10 d = c10::load_data(dir_.string(), 4);
  EXPECT_EQ(d.train.size(), 4);
  EXPECT_EQ(d.test.size(), 4);
  expect_decoded(d.train, files[0], 2, 0);
  expect_decoded(d.train, files[1], 2, 2);
  const c10::Cifar10 small = c10::load_data(dir_.string(), 3);
  EXPECT_EQ(small.test.size(), 3);
  const c10::Cifar10 none = c10::load_data(dir_.string(), 0);
  EXPECT_EQ(none.train.images.shape(), (kiln::Shape{0, 32, 32, 3}));
  EXPECT_EQ(none.test.labels.shape(), (kiln::Shape{0}));
}

TEST_F(Cifar10Files, MissingDirectoryIsNamed) {
  const std::string dir = (dir_ / "nowhere").string();
  const std::string msg = error_of([&] { c10::load_data(dir); });
  EXPECT_EQ(msg, "[cifar10] directory '" + dir +
                     "' does not exist; expected the folder holding cifar-10-batches-bin/ or that folder itself");
}

TEST_F(Cifar10Files, DirectoryThatIsAFileIsAnError) {
  write_file(dir_ / "plain", Bytes(3, 0));
  const std::string msg = error_of([&] { c10::load_data((dir_ / "plain").string()); });
  EXPECT_NE(msg.find("is not a directory; expected"), std::string::npos) << msg;
}

TEST_F(Cifar10Files, MissingFilesAreListed) {
  write_dataset({1, 1, 1, 1, 1}, 1);
  fs::remove(batches() / "data_batch_2.bin");
  fs::remove(batches() / "test_batch.bin");
  const std::string msg = error_of([&] { c10::load_data(dir_.string()); });
  EXPECT_EQ(msg, "[cifar10] missing data_batch_2.bin, test_batch.bin in '" + batches().string() +
                     "'; expected data_batch_1.bin .. data_batch_5.bin and test_batch.bin (the CIFAR-10 binary "
                     "version)");
}

TEST_F(Cifar10Files, EmptyFolderListsEveryFile) {
  const std::string msg = error_of([&] { c10::load_data(dir_.string()); });
  EXPECT_NE(msg.find("missing data_batch_1.bin, data_batch_2.bin, data_batch_3.bin, data_batch_4.bin, "
                     "data_batch_5.bin, test_batch.bin in '" +
                     dir_.string() + "'"),
            std::string::npos)
      << msg;
}

TEST_F(Cifar10Files, BadSizeNamesTheFile) {
  write_dataset({1, 1, 1, 1, 1}, 1);
  write_file(batches() / "data_batch_3.bin", Bytes(kRecord + 1, 0));
  const std::string msg = error_of([&] { c10::load_data(dir_.string()); });
  EXPECT_NE(msg.find("[cifar10] '" + (batches() / "data_batch_3.bin").string() + "' has 3074 bytes"), std::string::npos)
      << msg;
}

TEST_F(Cifar10Files, BadSizeIsCaughtEvenPastTheLimit) {
  write_dataset({1, 1, 1, 1, 1}, 1);
  write_file(batches() / "data_batch_5.bin", Bytes(100, 0));
  const std::string msg = error_of([&] { c10::load_data(dir_.string(), 1); });
  EXPECT_NE(msg.find("data_batch_5.bin' has 100 bytes"), std::string::npos) << msg;
}

TEST_F(Cifar10Files, BadLabelNamesTheFileAndRecord) {
  write_dataset({1, 1, 1, 1, 1}, 3);
  Bytes test = synthetic_batch(3, {1}, 7);
  test[2 * kRecord] = 42;
  write_file(batches() / "test_batch.bin", test);
  const std::string msg = error_of([&] { c10::load_data(dir_.string()); });
  EXPECT_EQ(msg, "[cifar10] '" + (batches() / "test_batch.bin").string() +
                     "' record 2 has label 42; expected a class index 0..9");
}

TEST_F(Cifar10Files, EmptyFileNamesTheFile) {
  write_dataset({1, 1, 1, 1, 1}, 1);
  write_file(batches() / "data_batch_4.bin", Bytes{});
  const std::string msg = error_of([&] { c10::load_data(dir_.string()); });
  EXPECT_NE(msg.find("[cifar10] '" + (batches() / "data_batch_4.bin").string() + "' is empty"), std::string::npos)
      << msg;
}

TEST_F(Cifar10Files, UnreadableBatchFileIsAnError) {
  const std::string missing = (dir_ / "absent.bin").string();
  EXPECT_EQ(error_of([&] { c10::load_batch_file(missing); }),
            "[cifar10] '" + missing + "' does not exist; expected a CIFAR-10 binary batch file");
  // A folder where a file should be cannot be read as one.
  fs::create_directories(dir_ / "folder.bin");
  const std::string msg = error_of([&] { c10::load_batch_file((dir_ / "folder.bin").string()); });
  EXPECT_NE(msg.find("folder.bin' is a directory; expected a CIFAR-10 binary batch file"), std::string::npos) << msg;
}

TEST_F(Cifar10Files, FifoBatchFileIsRefusedByWhatItIs) {
#ifdef _WIN32
  GTEST_SKIP() << "Windows has no FIFOs in the file system (named pipes live in \\\\.\\pipe\\)";
#else
  const std::string fifo = (dir_ / "fifo.bin").string();
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_EQ(error_of([&] { c10::load_batch_file(fifo); }),
            "[cifar10] '" + fifo + "' is a FIFO (named pipe); expected a CIFAR-10 binary batch file");
#endif
}

TEST_F(Cifar10Files, LinkProblemsAreNamed) {
  REQUIRE_SYMLINKS(dir_);
  fs::create_symlink("loop_b.bin", dir_ / "loop_a.bin");
  fs::create_symlink("loop_a.bin", dir_ / "loop_b.bin");
  const std::string loop = (dir_ / "loop_a.bin").string();
  EXPECT_EQ(error_of([&] { c10::load_batch_file(loop); }),
            "[cifar10] '" + loop +
                "' is a symbolic link loop (too many levels of symbolic links); expected a CIFAR-10 binary batch file");
  fs::create_symlink("nothing.bin", dir_ / "dangling.bin");
  const std::string dangling = (dir_ / "dangling.bin").string();
  EXPECT_EQ(error_of([&] { c10::load_batch_file(dangling); }),
            "[cifar10] '" + dangling +
                "' is a dangling symbolic link (to 'nothing.bin'); expected a CIFAR-10 binary batch file");
  const std::string msg = error_of([&] { c10::load_data(loop); });
  EXPECT_EQ(msg, "[cifar10] '" + loop +
                     "' is a symbolic link loop (too many levels of symbolic links), not a directory; expected the "
                     "folder holding cifar-10-batches-bin/ or that folder itself");
}

TEST_F(Cifar10Files, FolderInPlaceOfABatchIsNamedAsSuch) {
  write_dataset({1, 1, 1, 1, 1}, 1);
  fs::remove(batches() / "data_batch_1.bin");
  fs::create_directories(batches() / "data_batch_1.bin");
  EXPECT_EQ(error_of([&] { c10::load_data(dir_.string()); }),
            "[cifar10] data_batch_1.bin is a directory in '" + batches().string() +
                "'; expected data_batch_1.bin .. data_batch_5.bin and test_batch.bin (the CIFAR-10 binary version)");
}

TEST_F(Cifar10Files, LinkLoopInPlaceOfABatchIsNamedBesideMissingFiles) {
  REQUIRE_SYMLINKS(dir_);
  write_dataset({1, 1, 1, 1, 1}, 1);
  fs::remove(batches() / "data_batch_2.bin");
  fs::remove(batches() / "test_batch.bin");
  fs::create_symlink("data_batch_2.bin", batches() / "data_batch_2.bin");
  EXPECT_EQ(error_of([&] { c10::load_data(dir_.string()); }),
            "[cifar10] missing test_batch.bin; data_batch_2.bin is a symbolic link loop (too many levels of symbolic "
            "links) in '" +
                batches().string() +
                "'; expected data_batch_1.bin .. data_batch_5.bin and test_batch.bin (the CIFAR-10 binary version)");
}

// ---- to_float and class names ----

TEST(Cifar10ToFloat, ScalesToUnitRange) {
  const kiln::Tensor images = kiln::Tensor::from_vector<uint8_t>({0, 1, 128, 254, 255, 51}, kiln::Shape{1, 2, 1, 3});
  const kiln::Tensor f = c10::to_float(images);
  EXPECT_EQ(f.dtype(), kiln::DType::Float32);
  EXPECT_EQ(f.shape(), images.shape());
  const std::vector<float> v = f.to_vector<float>();
  const std::vector<uint8_t> src = {0, 1, 128, 254, 255, 51};
  for (std::size_t i = 0; i < v.size(); ++i) EXPECT_EQ(v[i], static_cast<float>(src[i] / 255.0)) << i;
  EXPECT_EQ(v[0], 0.0f);
  EXPECT_EQ(v[4], 1.0f);
  EXPECT_EQ(v[5], 0.2f);
}

TEST(Cifar10ToFloat, RejectsNonByteImages) {
  const kiln::Tensor f = kiln::Tensor::zeros(kiln::Shape{2, 2});
  EXPECT_EQ(error_of([&] { c10::to_float(f); }),
            "[cifar10] to_float takes uint8 images, got float32; expected the images of load_data");
}

TEST(Cifar10ToFloat, ClassNames) {
  EXPECT_EQ(c10::class_names()[0], "airplane");
  EXPECT_EQ(c10::class_names()[3], "cat");
  EXPECT_EQ(c10::class_names()[9], "truck");
}

// ---- fuzzer regressions: every saved input must parse or throw kiln::Error, never crash ----

TEST(Cifar10Fuzz, RegressionInputsParseOrThrow) {
  const fs::path dir = fs::path(KILN_TESTS_DIR) / "fuzz" / "regressions" / "cifar10";
  int replayed = 0;
  std::error_code ec;
  if (fs::is_directory(dir, ec)) {
    for (const auto& entry : fs::directory_iterator(dir)) {
      if (!entry.is_regular_file() || entry.path().filename().string().starts_with(".")) continue;
      const Bytes bytes = read_bytes(entry.path());
      bool parsed = false;
      try {
        const c10::Split s = c10::parse_batch(bytes, entry.path().filename().string());
        EXPECT_EQ(s.images.numel(), s.size() * 3072) << entry.path();
        parsed = true;
      } catch (const kiln::Error&) {
        // A clear error is the right answer to a malformed input.
      }
      // The same input through the file-opening path: accepted exactly when the bytes are.
      try {
        c10::load_batch_file(entry.path().string());
        EXPECT_TRUE(parsed) << entry.path();
      } catch (const kiln::Error&) {
        EXPECT_FALSE(parsed) << entry.path();
      }
      ++replayed;
    }
  }
  RecordProperty("replayed", replayed);
  if (replayed == 0) GTEST_SKIP() << "no saved fuzzer inputs in " << dir.string();
}

// ---- the real data set (KILN_CIFAR10_DIR) ----

class Cifar10Real : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* env = std::getenv("KILN_CIFAR10_DIR");
    if (!env || !*env) GTEST_SKIP() << "KILN_CIFAR10_DIR is not set; point it at a prepared CIFAR-10 folder";
    dir_ = env;
    std::error_code ec;
    if (!fs::is_directory(dir_, ec)) GTEST_SKIP() << "KILN_CIFAR10_DIR='" << dir_.string() << "' is not a directory";
  }
  fs::path folder() const {
    return fs::is_directory(dir_ / "cifar-10-batches-bin") ? dir_ / "cifar-10-batches-bin" : dir_;
  }
  fs::path dir_;
};

TEST_F(Cifar10Real, CountsAndLabelHistogram) {
  const auto start = std::chrono::steady_clock::now();
  const auto [train, test] = c10::load_data(dir_.string());
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  RecordProperty("load_seconds", std::to_string(seconds));
  std::printf("[          ] load_data: %.3f s\n", seconds);
  EXPECT_LT(seconds, 5.0) << "loading 60,000 records should take well under a second";

  EXPECT_EQ(train.images.shape(), (kiln::Shape{50000, 32, 32, 3}));
  EXPECT_EQ(train.labels.shape(), (kiln::Shape{50000}));
  EXPECT_EQ(test.images.shape(), (kiln::Shape{10000, 32, 32, 3}));
  EXPECT_EQ(test.labels.shape(), (kiln::Shape{10000}));
  std::array<int, 10> train_hist{}, test_hist{};
  for (int32_t l : train.labels.to_vector<int32_t>()) ++train_hist.at(static_cast<std::size_t>(l));
  for (int32_t l : test.labels.to_vector<int32_t>()) ++test_hist.at(static_cast<std::size_t>(l));
  for (int k = 0; k < 10; ++k) {
    EXPECT_EQ(train_hist[k], 5000) << "class " << k;
    EXPECT_EQ(test_hist[k], 1000) << "class " << k;
  }
}

TEST_F(Cifar10Real, MatchesTheRawRecords) {
  const Bytes raw = read_bytes(folder() / "test_batch.bin");
  ASSERT_EQ(raw.size(), 10000 * kRecord);
  const c10::Split test = c10::load_batch_file((folder() / "test_batch.bin").string());
  expect_decoded(test, raw, 10000);
  // The second training file lands right after the first in load_data's train split.
  const Bytes second = read_bytes(folder() / "data_batch_2.bin");
  const c10::Cifar10 d = c10::load_data(dir_.string(), 10100);
  expect_decoded(d.train, second, 100, 10000);
}

TEST_F(Cifar10Real, ToFloatRange) {
  const c10::Split test = c10::load_batch_file((folder() / "test_batch.bin").string(), 500);
  const std::vector<float> v = c10::to_float(test.images).to_vector<float>();
  const auto [lo, hi] = std::minmax_element(v.begin(), v.end());
  EXPECT_GE(*lo, 0.0f);
  EXPECT_LE(*hi, 1.0f);
  EXPECT_GT(*hi, 0.9f);  // real photographs use the whole range
}

}  // namespace
