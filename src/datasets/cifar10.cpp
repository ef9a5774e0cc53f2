// CIFAR-10 reader: checks and decodes the official binary batches (CHW planes -> NHWC tensors).
//
// A record is 1 label byte followed by 3072 pixel bytes: the R plane, then G, then B, each 32x32
// row-major (C=3, H=32, W=32). Keras hands out images as [N, H, W, C], so each record is
// transposed from CHW to HWC while it is copied out of the file buffer.
#include "kiln/datasets/cifar10.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <vector>

#include "backend/cpu/thread_pool.h"
#include "io/file_read.h"
#include "kiln/error.h"

namespace kiln::datasets::cifar10 {

namespace fs = std::filesystem;

namespace {

constexpr const char* kOp = "cifar10";
constexpr std::size_t kPlane = kHeight * kWidth;
constexpr std::array<const char*, 5> kTrainFiles = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                                                    "data_batch_4.bin", "data_batch_5.bin"};
constexpr const char* kTestFile = "test_batch.bin";
constexpr const char* kFormat = "(1 label byte + 3072 pixel bytes per record)";

std::string quoted(const std::string& s) { return "'" + s + "'"; }

// Number of records in a file of `size` bytes; throws when it is not a whole, non-zero number.
int64_t record_count(std::uintmax_t size, const std::string& name) {
  if (size == 0) throw Error(kOp, quoted(name) + " is empty; expected at least one 3073-byte record " + kFormat);
  if (size % kRecordBytes != 0)
    throw Error(kOp, quoted(name) + " has " + io::count_of(size, "byte") + ", not a multiple of 3073 (" +
                         io::count_of(size / kRecordBytes, "record") + " and " +
                         io::count_of(size % kRecordBytes, "byte") + " over); expected whole records " + kFormat);
  return static_cast<int64_t>(size / kRecordBytes);
}

int64_t checked_limit(std::optional<int64_t> limit) {
  if (!limit) return INT64_MAX;
  if (*limit < 0) throw Error(kOp, "limit " + std::to_string(*limit) + " is negative; expected a record count >= 0");
  return *limit;
}

// Checks the labels of the first `count` records of `records` (already sized to hold them) and
// decodes them into `images` (count * 3072 bytes, HWC) and `labels` (count ints).
void decode(std::span<const uint8_t> records, int64_t count, const std::string& name, uint8_t* images,
            int32_t* labels) {
  if (records.size() / kRecordBytes < static_cast<std::size_t>(count))
    throw Error(kOp, quoted(name) + " holds " + io::count_of(records.size() / kRecordBytes, "record") + ", " +
                         std::to_string(count) + (count == 1 ? " was" : " were") +
                         " asked for; expected at least that many");
  // Labels first, so a bad file is rejected before any pixel is copied.
  for (int64_t r = 0; r < count; ++r) {
    const uint8_t label = records[static_cast<std::size_t>(r) * kRecordBytes];
    if (label >= kNumClasses)
      throw Error(kOp, quoted(name) + " record " + std::to_string(r) + " has label " + std::to_string(label) +
                           "; expected a class index 0..9");
    labels[r] = label;
  }
  const uint8_t* base = records.data();
  backend::parallel_for_work(count, count * static_cast<int64_t>(kImageBytes), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const uint8_t* red = base + static_cast<std::size_t>(r) * kRecordBytes + 1;
      const uint8_t* green = red + kPlane;
      const uint8_t* blue = green + kPlane;
      uint8_t* out = images + static_cast<std::size_t>(r) * kImageBytes;
      for (std::size_t p = 0; p < kPlane; ++p) {
        out[3 * p + 0] = red[p];
        out[3 * p + 1] = green[p];
        out[3 * p + 2] = blue[p];
      }
    }
  });
}

Split make_split(int64_t count) {
  return {Tensor::empty(Shape{count, kHeight, kWidth, kChannels}, DType::UInt8),
          Tensor::empty(Shape{count}, DType::Int32)};
}

// The size of regular file `path`, with errors that name it and say what is there instead.
std::uintmax_t batch_file_size(const fs::path& path) {
  if (const io::FileProblem problem = io::irregular_file_problem(path.string()))
    throw Error(kOp, quoted(path.string()) + " " + problem.text + "; expected a CIFAR-10 binary batch file");
  std::error_code ec;
  const std::uintmax_t size = fs::file_size(path, ec);
  if (ec) throw Error(kOp, "cannot stat " + quoted(path.string()) + ": " + ec.message() + "; expected a readable file");
  return size;
}

// Reads the first `size` bytes of `path` in one call into `buffer` (grown as needed, never shrunk,
// so one buffer serves every file of a split). `whole_file`: `size` is the file's full size, so
// more bytes mean the file changed after its size was checked.
void read_file(const fs::path& path, std::size_t size, bool whole_file, std::unique_ptr<uint8_t[]>& buffer,
               std::size_t& capacity) {
  const std::string name = path.string();
  // Opened without blocking: a FIFO swapped in after the size check is refused, not waited on.
  io::OpenedFile opened = io::open_regular_file(name);
  if (!opened.file)
    throw Error(kOp, "cannot open " + quoted(name) + ": " + opened.problem + "; expected a readable regular file");
  const auto& f = opened.file;
  if (capacity < size) {
    buffer.reset(new uint8_t[size]);  // not value-initialised: every byte is overwritten below
    capacity = size;
  }
  const std::size_t got = std::fread(buffer.get(), 1, size, f.get());
  if (got != size) {
    const std::string why = std::ferror(f.get()) ? std::string(std::strerror(errno)) : "end of file";
    throw Error(kOp, "read of " + quoted(name) + " stopped at byte " + std::to_string(got) + " of " +
                         std::to_string(size) + " (" + why + "); expected the whole file");
  }
  if (whole_file && std::fgetc(f.get()) != EOF)
    throw Error(kOp, quoted(name) + " grew while it was read (more than " + std::to_string(size) +
                         " bytes); expected a file that does not change");
}

// The folder that holds the batch files: `dir`/cifar-10-batches-bin when present, else `dir`.
fs::path batches_folder(const std::string& dir) {
  std::error_code ec;
  const std::string expected = "expected the folder holding cifar-10-batches-bin/ or that folder itself";
  const io::FileProblem problem = io::irregular_file_problem(dir);
  if (problem.missing) throw Error(kOp, "directory " + quoted(dir) + " does not exist; " + expected);
  if (!fs::is_directory(dir, ec))
    throw Error(kOp, quoted(dir) + (problem ? " " + problem.text + ", not a directory" : " is not a directory") + "; " +
                         expected);
  const fs::path nested = fs::path(dir) / "cifar-10-batches-bin";
  return fs::is_directory(nested, ec) ? nested : fs::path(dir);
}

// Reads the files of one split into one pair of tensors, at most `limit` records in file order.
Split load_split(const std::vector<fs::path>& files, int64_t limit) {
  std::vector<int64_t> take(files.size());
  std::vector<std::uintmax_t> sizes(files.size());
  int64_t total = 0;
  for (std::size_t i = 0; i < files.size(); ++i) {
    sizes[i] = batch_file_size(files[i]);
    const int64_t in_file = record_count(sizes[i], files[i].string());
    take[i] = std::min(in_file, limit - total);
    total += take[i];
  }
  Split split = make_split(total);
  uint8_t* images = split.images.data<uint8_t>();
  int32_t* labels = split.labels.data<int32_t>();
  std::unique_ptr<uint8_t[]> buffer;
  std::size_t capacity = 0;
  for (std::size_t i = 0; i < files.size() && take[i] > 0; ++i) {
    // Only the records taken are read: the size check above already covered the whole file.
    const std::size_t bytes = static_cast<std::size_t>(take[i]) * kRecordBytes;
    read_file(files[i], bytes, bytes == sizes[i], buffer, capacity);
    decode({buffer.get(), bytes}, take[i], files[i].string(), images, labels);
    images += static_cast<std::size_t>(take[i]) * kImageBytes;
    labels += take[i];
  }
  return split;
}

}  // namespace

Split parse_batch(std::span<const uint8_t> bytes, const std::string& name, std::optional<int64_t> limit) {
  const int64_t count = std::min(record_count(bytes.size(), name), checked_limit(limit));
  Split split = make_split(count);
  decode(bytes, count, name, split.images.data<uint8_t>(), split.labels.data<int32_t>());
  return split;
}

Split load_batch_file(const std::string& path, std::optional<int64_t> limit) {
  checked_limit(limit);
  const std::uintmax_t size = batch_file_size(path);
  std::unique_ptr<uint8_t[]> buffer;
  std::size_t capacity = 0;
  read_file(path, static_cast<std::size_t>(size), true, buffer, capacity);
  return parse_batch({buffer.get(), static_cast<std::size_t>(size)}, path, limit);
}

Cifar10 load_data(const std::string& dir, std::optional<int64_t> limit) {
  const int64_t max_records = checked_limit(limit);
  const fs::path folder = batches_folder(dir);
  std::vector<fs::path> train_files;
  train_files.reserve(std::size(kTrainFiles));
  for (const char* f : kTrainFiles) train_files.push_back(folder / f);
  const fs::path test_file = folder / kTestFile;

  // Name every missing file at once, so one message says what the folder lacks, and say what is
  // there instead of a file (a directory, a symbolic link loop) rather than calling it missing.
  std::string missing, wrong;
  std::vector<fs::path> all = train_files;
  all.push_back(test_file);
  for (const fs::path& p : all) {
    const io::FileProblem problem = io::irregular_file_problem(p.string());
    if (!problem) continue;
    std::string& list = problem.missing ? missing : wrong;
    list += (list.empty() ? "" : ", ") + p.filename().string() + (problem.missing ? "" : " " + problem.text);
  }
  if (!missing.empty() || !wrong.empty())
    throw Error(kOp, (missing.empty() ? "" : "missing " + missing) + (missing.empty() || wrong.empty() ? "" : "; ") +
                         wrong + " in " + quoted(folder.string()) +
                         "; expected data_batch_1.bin .. data_batch_5.bin and test_batch.bin "
                         "(the CIFAR-10 binary version)");

  return {load_split(train_files, max_records), load_split({test_file}, max_records)};
}

Tensor to_float(const Tensor& images) {
  if (!images.defined()) throw Error(kOp, "to_float of an undefined tensor; expected uint8 images");
  if (images.dtype() != DType::UInt8)
    throw Error(
        kOp, "to_float takes uint8 images, got " + dtype_name(images.dtype()) + "; expected the images of load_data");
  // x / 255 in float64 rounded to float32 matches numpy's `images / 255.0` cast to float32; a
  // 256-entry table makes that exact rounding free.
  static const std::array<float, 256> scale = [] {
    std::array<float, 256> t{};
    for (int i = 0; i < 256; ++i) t[i] = static_cast<float>(i / 255.0);
    return t;
  }();
  const Tensor host = images.cpu();
  Tensor out = Tensor::empty(host.shape(), DType::Float32);
  const uint8_t* src = host.data<uint8_t>();
  float* dst = out.data<float>();
  const int64_t n = host.numel();
  backend::parallel_for_work(n, n, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) dst[i] = scale[src[i]];
  });
  return images.device().is_cpu() ? out : out.to(images.device());
}

const std::array<std::string_view, kNumClasses>& class_names() {
  static constexpr std::array<std::string_view, kNumClasses> names = {
      "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"};
  return names;
}

}  // namespace kiln::datasets::cifar10
