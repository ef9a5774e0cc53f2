// Saving and loading: safetensors round trips, whole-model checkpoints with optimizer state,
// resuming training bit-identically, every malformed-file message, atomic writes under SIGKILL,
// and replay of the fuzzers' regression inputs.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#ifdef _WIN32
#include <process.h>
#else
#include <sys/wait.h>
#include <unistd.h>
#endif

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "io/atomic_file.h"
#include "io/model_config.h"
#include "io/safetensors.h"
#include "kiln/kiln.h"
#include "test_support.h"

using namespace kiln;
namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;
using kiln::testing::process_id;

namespace {

// A fresh directory per test, removed afterwards. Models start on the CPU: bit-identical resumes
// need deterministic kernels, and the SIGKILL test forks (a CUDA context does not survive fork).
class IoTest : public kiln::testing::CpuTestInFolder {};

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

Bytes read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), {});
}

void write_file(const std::string& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

// A safetensors file from a header given as JSON text and `data_size` zero bytes of data.
Bytes raw_file(const std::string& header, std::size_t data_size = 0) {
  Bytes out(8 + header.size() + data_size);
  const uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  std::copy(header.begin(), header.end(), out.begin() + 8);
  return out;
}

std::string parse_error(const Bytes& bytes) {
  return message_of([&] { io::parse_safetensors(bytes, "x.safetensors"); });
}

bool same_bits(const Tensor& a, const Tensor& b) {
  const Tensor ca = a.cpu(), cb = b.cpu();
  return ca.shape() == cb.shape() && ca.dtype() == cb.dtype() &&
         std::memcmp(ca.raw_data(), cb.raw_data(), ca.nbytes()) == 0;
}

void expect_same_weights(const Sequential& a, const Sequential& b) {
  const auto wa = a.trainable_weights(), wb = b.trainable_weights();
  ASSERT_EQ(wa.size(), wb.size());
  for (std::size_t i = 0; i < wa.size(); ++i) EXPECT_TRUE(same_bits(wa[i], wb[i])) << "weight " << i;
}

// A small CNN of the CIFAR seed's shape, on 8x8x3 images with 4 classes.
Sequential small_cnn(uint64_t seed) {
  utils::set_random_seed(seed);
  return Sequential({layers::Conv2D(4, {3, 3}, {.activation = "relu", .input_shape = {8, 8, 3}}),
                     layers::MaxPooling2D({2, 2}), layers::Flatten(), layers::Dense(8, {.activation = "relu"}),
                     layers::Dense(4)});
}

struct Data {
  Tensor x, y;
};

Data cnn_data(int64_t n = 24) {
  Generator gen(7);
  Tensor x = Tensor::uniform({n, 8, 8, 3}, 0.0, 1.0, gen);
  std::vector<int32_t> labels(static_cast<std::size_t>(n));
  for (auto& l : labels) l = static_cast<int32_t>(gen.below(4));
  return {x, Tensor::from_vector(labels)};
}

void compile_adam(Sequential& m) {
  m.compile(optimizers::Adam({.learning_rate = 0.01}), losses::SparseCategoricalCrossentropy({.from_logits = true}),
            {"accuracy"});
}

// Rewrites the model config inside a checkpoint with `edit`, keeping its tensors.
void edit_config(const std::string& path, const std::function<void(nlohmann::json&)>& edit) {
  io::SafetensorsFile file = io::read_safetensors(path);
  nlohmann::json config = nlohmann::json::parse(file.view.metadata.at("kiln_config"));
  edit(config);
  std::map<std::string, std::string> meta = file.view.metadata;
  meta["kiln_config"] = config.dump();
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& t : file.view.tensors) tensors.emplace_back(t.name, io::to_tensor(t));
  write_file(path, io::serialize_safetensors(tensors, meta));
}

}  // namespace

// ---- safetensors ----

TEST(IoSafetensors, RoundTripsEveryDtypeAndMetadata) {
  const std::vector<std::pair<std::string, Tensor>> tensors = {
      {"a/f32", Tensor::from_vector<float>({1.5f, -2.0f, 3.25f, 0.0f, 1e-30f, 7.0f}, {2, 3})},
      {"b/f64", Tensor::from_vector<double>({0.1, 0.2}, {2})},
      {"c/i32", Tensor::from_vector<int32_t>({-1, 2, 3}, {3, 1})},
      {"d/u8", Tensor::from_vector<uint8_t>({0, 255, 7}, {3})},
      {"e/empty", Tensor::zeros({0, 4})},
      {"f/scalar", Tensor::full({}, 4.0)}};
  const Bytes bytes = io::serialize_safetensors(tensors, {{"k", "v"}, {"format", "kiln"}});
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ(n % 8, 0u) << "tensor data starts 8-byte aligned";
  const io::SafetensorsView view = io::parse_safetensors(bytes, "mem");
  ASSERT_EQ(view.tensors.size(), tensors.size());
  EXPECT_EQ(view.metadata.at("k"), "v");
  for (const auto& [name, t] : tensors) {
    const io::SafetensorsEntry* e = view.find(name);
    ASSERT_NE(e, nullptr) << name;
    EXPECT_TRUE(same_bits(io::to_tensor(*e), t)) << name;
  }
}

TEST(IoSafetensors, HeaderIsWhatPythonReadersExpect) {
  utils::set_random_seed(0);
  Sequential m({layers::Dense(3, {.input_shape = {2}}), layers::Dense(1)});
  const Bytes bytes = io::serialize_safetensors({{"dense/kernel", m.layers()[0]->weights()[0]}}, {});
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  const auto header = nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + static_cast<std::ptrdiff_t>(n));
  EXPECT_EQ(header["dense/kernel"]["dtype"], "F32");
  EXPECT_EQ(header["dense/kernel"]["shape"], nlohmann::json::array({2, 3}));  // Keras' [in, units]
  EXPECT_EQ(header["dense/kernel"]["data_offsets"], nlohmann::json::array({0, 24}));
}

TEST(IoSafetensors, MalformedBuffersGiveClearErrors) {
  EXPECT_EQ(parse_error(Bytes{1, 2, 3}),
            "[safetensors] x.safetensors: the file is 3 bytes, too short for the 8-byte header length; expected a "
            "safetensors file");
  {
    Bytes b = raw_file("{}");
    const uint64_t n = 1000;
    std::memcpy(b.data(), &n, 8);
    EXPECT_EQ(parse_error(b),
              "[safetensors] x.safetensors: the header length is 1000 bytes but only 2 bytes follow; "
              "expected a complete file (truncated?)");
  }
  {
    Bytes b = raw_file("{}");
    const uint64_t n = uint64_t{1} << 62;
    std::memcpy(b.data(), &n, 8);
    EXPECT_EQ(parse_error(b),
              "[safetensors] x.safetensors: the header length is 4611686018427387904 bytes; expected "
              "at most 100000000 (is this a safetensors file?)");
  }
  EXPECT_NE(parse_error(raw_file("[1, 2]")).find("the header does not start with '{'"), std::string::npos);
  EXPECT_NE(parse_error(raw_file("{\"a\": ")).find("the header is not valid JSON ("), std::string::npos);
  EXPECT_NE(parse_error(raw_file("{\"a\": ")).find("; expected a JSON object"), std::string::npos);
  EXPECT_EQ(parse_error(raw_file(R"({"a": {"dtype": "I16", "shape": [1], "data_offsets": [0, 2]}})", 2)),
            "[safetensors] x.safetensors: tensor 'a' has dtype \"I16\"; expected one of F32, F64, F16, BF16, I32, U8, "
            "I64");
  EXPECT_EQ(parse_error(raw_file(R"({"a": {"shape": [1], "data_offsets": [0, 4]}})", 4)),
            "[safetensors] x.safetensors: tensor 'a' has no string \"dtype\"; expected one of F32, F64, F16, BF16, "
            "I32, U8, I64");
  EXPECT_EQ(parse_error(raw_file(R"({"a": {"dtype": "F32", "data_offsets": [0, 4]}})", 4)),
            "[safetensors] x.safetensors: tensor 'a' has no \"shape\" array; expected a list of non-negative integers");
  EXPECT_EQ(parse_error(raw_file(R"({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})", 4)),
            "[safetensors] x.safetensors: tensor 'a' has a shape entry -1; expected non-negative integers");
  EXPECT_EQ(parse_error(raw_file(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0]}})", 4)),
            "[safetensors] x.safetensors: tensor 'a' has no valid \"data_offsets\"; expected [begin, end] as "
            "non-negative integers");
  EXPECT_EQ(
      parse_error(raw_file(R"({"a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 8]}})", 8)),
      "[safetensors] x.safetensors: tensor 'a' is F32 [2, 2] but spans 8 bytes; expected shape product x 4 bytes");
  EXPECT_EQ(
      parse_error(raw_file(R"({"a": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 0]}})")),
      "[safetensors] x.safetensors: tensor 'a' is F32 [4294967296, 4294967296] but spans 0 bytes; expected "
      "shape product x 4 bytes");
  EXPECT_EQ(parse_error(raw_file(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})", 4)),
            "[safetensors] x.safetensors: tensor 'a' has data_offsets [0, 8] beyond the data section of 4 bytes; "
            "expected offsets inside it (truncated?)");
  EXPECT_EQ(parse_error(raw_file(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}})", 4)),
            "[safetensors] x.safetensors: tensor 'a' has data_offsets [4, 0]; expected begin <= end");
  EXPECT_EQ(parse_error(raw_file(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                     "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})",
                                 8)),
            "[safetensors] x.safetensors: tensor 'b' [4, 8) overlaps tensor 'a' [0, 8); expected disjoint byte ranges");
  EXPECT_EQ(parse_error(raw_file(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})", 8)),
            "[safetensors] x.safetensors: bytes [0, 4) of the data section belong to no tensor; expected tensors to "
            "cover it contiguously");
  EXPECT_EQ(parse_error(raw_file(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})", 12)),
            "[safetensors] x.safetensors: bytes [4, 12) of the data section belong to no tensor; expected tensors to "
            "cover it exactly");
  EXPECT_EQ(parse_error(raw_file(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                                     "a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})",
                                 8)),
            "[safetensors] x.safetensors: the header names 'a' twice; expected unique keys");
  EXPECT_EQ(parse_error(raw_file(R"({"__metadata__": {"k": 1}})")),
            "[safetensors] x.safetensors: __metadata__ value of 'k' is not a string; expected strings only");
}

TEST(IoSafetensors, CountsOfOneAreSingular) {
  EXPECT_EQ(parse_error(Bytes{1}),
            "[safetensors] x.safetensors: the file is 1 byte, too short for the 8-byte header length; expected a "
            "safetensors file");
  Bytes one_follows(8, 0);
  one_follows[0] = 3;
  one_follows.push_back('{');
  EXPECT_EQ(parse_error(one_follows),
            "[safetensors] x.safetensors: the header length is 3 bytes but only 1 byte follows; expected a complete "
            "file (truncated?)");
  EXPECT_EQ(parse_error(raw_file(R"({"a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 1]}})", 1)),
            "[safetensors] x.safetensors: tensor 'a' is U8 [2] but spans 1 byte; expected shape product x 1 byte");
}

TEST_F(IoTest, MissingFileNamesPathAndReason) {
  EXPECT_EQ(message_of([&] { load_model(path("none.kiln")); }),
            "[load_model] '" + path("none.kiln") + "' does not exist; expected a safetensors file");
}

// ---- what a path names: only regular files are read ----

#ifndef _WIN32
namespace {

// Runs `read` on a FIFO that nobody writes to. A reader that opens it blocks until a writer comes,
// so after two seconds a writer opens and closes it: the reader then returns (or throws) instead
// of hanging the test, and the test fails because it blocked.
std::string read_fifo_without_blocking(const std::string& fifo, const std::function<void()>& read) {
  std::atomic<bool> done{false};
  std::atomic<bool> rescued{false};
  std::thread watchdog([&] {
    for (int i = 0; i < 200 && !done; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (done) return;
    rescued = true;
    const int fd = ::open(fifo.c_str(), O_WRONLY);
    if (fd >= 0) ::close(fd);
  });
  const std::string message = message_of(read);
  done = true;
  watchdog.join();
  return rescued ? "(blocked on the FIFO) " + message : message;
}

}  // namespace
#endif  // FIFOs: POSIX only

TEST_F(IoTest, ReadersRefuseDirectoriesFifosAndLinkLoops) {
  fs::create_directories(path("dir.kiln"));
  Sequential m({layers::Dense(2, {.input_shape = {3}})});
  EXPECT_EQ(message_of([&] { load_model(path("dir.kiln")); }),
            "[load_model] '" + path("dir.kiln") + "' is a directory; expected a safetensors file");
  EXPECT_EQ(message_of([&] { m.load_weights(path("dir.kiln")); }),
            "[load_weights] '" + path("dir.kiln") + "' is a directory; expected a safetensors file");
  EXPECT_EQ(message_of([&] { checkpoint_epoch(path("dir.kiln")); }),
            "[checkpoint_epoch] '" + path("dir.kiln") + "' is a directory; expected a safetensors file");

#ifndef _WIN32  // Windows has no FIFOs in the file system (its named pipes live in \\.\pipe\)
  ASSERT_EQ(::mkfifo(path("fifo.kiln").c_str(), 0600), 0) << std::strerror(errno);
  const std::string fifo_error = "' is a FIFO (named pipe); expected a safetensors file";
  EXPECT_EQ(read_fifo_without_blocking(path("fifo.kiln"), [&] { load_model(path("fifo.kiln")); }),
            "[load_model] '" + path("fifo.kiln") + fifo_error);
  EXPECT_EQ(read_fifo_without_blocking(path("fifo.kiln"), [&] { m.load_weights(path("fifo.kiln")); }),
            "[load_weights] '" + path("fifo.kiln") + fifo_error);
  EXPECT_EQ(read_fifo_without_blocking(path("fifo.kiln"), [&] { checkpoint_epoch(path("fifo.kiln")); }),
            "[checkpoint_epoch] '" + path("fifo.kiln") + fifo_error);
#endif

  REQUIRE_SYMLINKS(dir_);
  fs::create_symlink("loop_b.kiln", path("loop_a.kiln"));
  fs::create_symlink("loop_a.kiln", path("loop_b.kiln"));
  EXPECT_EQ(message_of([&] { load_model(path("loop_a.kiln")); }),
            "[load_model] '" + path("loop_a.kiln") +
                "' is a symbolic link loop (too many levels of symbolic links); expected a safetensors file");
  fs::create_symlink("gone.kiln", path("dangling.kiln"));
  EXPECT_EQ(message_of([&] { load_model(path("dangling.kiln")); }),
            "[load_model] '" + path("dangling.kiln") +
                "' is a dangling symbolic link (to 'gone.kiln'); expected a safetensors file");
  // A link to a regular file reads that file.
  m.save(path("real.kiln"));
  fs::create_symlink("real.kiln", path("link.kiln"));
  expect_same_weights(m, load_model(path("link.kiln")));
}

// ---- weights ----

TEST_F(IoTest, SaveWeightsLoadWeightsPredictsBitIdentically) {
  const Data d = cnn_data();
  Sequential a = small_cnn(1);
  compile_adam(a);
  a.fit(d.x, d.y, {.batch_size = 8, .epochs = 1, .verbose = 0});
  a.save_weights(path("w.safetensors"));
  Sequential b = small_cnn(2);  // different initial weights
  b.load_weights(path("w.safetensors"));
  expect_same_weights(a, b);
  EXPECT_TRUE(same_bits(a.predict(d.x), b.predict(d.x)));
  const io::SafetensorsFile f = io::read_safetensors(path("w.safetensors"));
  std::vector<std::string> names;
  for (const auto& t : f.view.tensors) names.push_back(t.name);
  EXPECT_EQ(names, (std::vector<std::string>{"conv2d/kernel", "conv2d/bias", "dense/kernel", "dense/bias",
                                             "dense_1/kernel", "dense_1/bias"}));
  EXPECT_EQ(f.view.find("conv2d/kernel")->shape, (Shape{3, 3, 3, 4}));  // Keras' [KH, KW, C, F]
  EXPECT_EQ(checkpoint_epoch(path("w.safetensors")), -1);
}

TEST_F(IoTest, LoadWeightsRefusesMismatchesAndChangesNothing) {
  utils::set_random_seed(0);
  Sequential two({layers::Dense(2, {.input_shape = {1}})});
  two.save_weights(path("two.safetensors"));
  utils::set_random_seed(5);
  Sequential three({layers::Dense(3, {.input_shape = {1}})});
  const Tensor before = three.trainable_weights()[0].clone();
  EXPECT_EQ(message_of([&] { three.load_weights(path("two.safetensors")); }),
            "[load_weights] " + path("two.safetensors") +
                ": tensor 'dense/kernel' is F32 [1, 2]; expected F32 [1, 3] as in the model");
  EXPECT_TRUE(same_bits(before, three.trainable_weights()[0]));

  write_file(path("f64.safetensors"),
             io::serialize_safetensors(
                 {{"dense/kernel", Tensor::zeros({1, 3}, DType::Float64)}, {"dense/bias", Tensor::zeros({3})}}, {}));
  EXPECT_EQ(message_of([&] { three.load_weights(path("f64.safetensors")); }),
            "[load_weights] " + path("f64.safetensors") +
                ": tensor 'dense/kernel' is F64 [1, 3]; expected F32 [1, 3] as in the model");

  write_file(path("missing.safetensors"), io::serialize_safetensors({{"dense/kernel", Tensor::zeros({1, 3})}}, {}));
  EXPECT_EQ(message_of([&] { three.load_weights(path("missing.safetensors")); }),
            "[load_weights] " + path("missing.safetensors") +
                ": no tensor 'dense/bias'; expected one for every weight of the model (the file holds dense/kernel)");

  write_file(path("extra.safetensors"), io::serialize_safetensors({{"dense/kernel", Tensor::zeros({1, 3})},
                                                                   {"dense/bias", Tensor::zeros({3})},
                                                                   {"dense_9/kernel", Tensor::zeros({1})}},
                                                                  {}));
  EXPECT_EQ(message_of([&] { three.load_weights(path("extra.safetensors")); }),
            "[load_weights] " + path("extra.safetensors") +
                ": tensor 'dense_9/kernel' matches no weight of the model; expected only \"<layer>/<weight>\" names "
                "of its layers");
  EXPECT_TRUE(same_bits(before, three.trainable_weights()[0]));
}

TEST_F(IoTest, LoadsWeightsWrittenByPythonSafetensors) {
  // Bytes of safetensors.numpy.save_file({"dense/kernel": [[2.5]], "dense/bias": [0.75]}) (float32).
  Bytes bytes = raw_file(R"({"dense/bias":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                         R"("dense/kernel":{"dtype":"F32","shape":[1,1],"data_offsets":[4,8]}}       )");
  for (uint8_t b : {0x00, 0x00, 0x40, 0x3f, 0x00, 0x00, 0x20, 0x40}) bytes.push_back(b);
  write_file(path("py.safetensors"), bytes);
  Sequential m({layers::Dense(1, {.input_shape = {1}})});
  m.load_weights(path("py.safetensors"));
  EXPECT_EQ(m.predict(Tensor::from_vector<float>({2.0f}, {1, 1})).item(), 5.75);
}

// ---- whole models ----

TEST_F(IoTest, SaveLoadModelAdamKeepsEverything) {
  const Data d = cnn_data();
  Sequential a = small_cnn(3);
  compile_adam(a);
  a.fit(d.x, d.y, {.batch_size = 8, .epochs = 2, .verbose = 0});
  a.save(path("m.kiln"));
  Sequential b = load_model(path("m.kiln"));
  ASSERT_EQ(b.layers().size(), a.layers().size());
  for (std::size_t i = 0; i < a.layers().size(); ++i) {
    EXPECT_EQ(b.layers()[i]->name(), a.layers()[i]->name());
    EXPECT_EQ(b.layers()[i]->class_name(), a.layers()[i]->class_name());
    EXPECT_EQ(b.layers()[i]->get_config(), a.layers()[i]->get_config());
  }
  EXPECT_EQ(b.name(), a.name());
  EXPECT_EQ(b.input_shape(), a.input_shape());
  expect_same_weights(a, b);
  EXPECT_TRUE(same_bits(a.predict(d.x), b.predict(d.x)));
  ASSERT_NE(b.optimizer(), nullptr);
  EXPECT_EQ(b.optimizer()->name(), "Adam");
  EXPECT_EQ(dynamic_cast<optimizers::Adam&>(*b.optimizer()).options().learning_rate, 0.01);
  EXPECT_EQ(b.optimizer()->iterations(), a.optimizer()->iterations());
  EXPECT_EQ(b.optimizer()->iterations(), 6);
  ASSERT_EQ(b.optimizer()->slots().size(), a.optimizer()->slots().size());
  for (std::size_t i = 0; i < a.optimizer()->slots().size(); ++i)
    for (std::size_t s = 0; s < 2; ++s)
      EXPECT_TRUE(same_bits(a.optimizer()->slots()[i][s], b.optimizer()->slots()[i][s])) << i << "/" << s;
  EXPECT_TRUE(dynamic_cast<const losses::SparseCategoricalCrossentropy&>(*b.loss()).from_logits());
  EXPECT_EQ(b.metrics(), std::vector<std::string>{"accuracy"});
  EXPECT_EQ(a.evaluate(d.x, d.y, {.verbose = 0}), b.evaluate(d.x, d.y, {.verbose = 0}));
  // Slots use Keras' names beside the weights.
  const io::SafetensorsFile f = io::read_safetensors(path("m.kiln"));
  EXPECT_NE(f.view.find("optimizer/0/momentum"), nullptr);
  EXPECT_NE(f.view.find("optimizer/5/velocity"), nullptr);
}

TEST_F(IoTest, SaveLoadModelSgdMomentumTrainsOnIdentically) {
  const Data d = cnn_data();
  Sequential a = small_cnn(4);
  a.compile(optimizers::SGD({.learning_rate = 0.05, .momentum = 0.9, .nesterov = true}),
            losses::SparseCategoricalCrossentropy({.from_logits = true}));
  a.fit(d.x, d.y, {.batch_size = 8, .epochs = 1, .verbose = 0});
  a.save(path("m.kiln"));
  // Both continue from the saved generator state: `a` directly, `b` because load_model restores it.
  a.fit(d.x, d.y, {.batch_size = 8, .epochs = 2, .verbose = 0});
  Sequential b = load_model(path("m.kiln"));
  const auto& sgd = dynamic_cast<optimizers::SGD&>(*b.optimizer());
  EXPECT_EQ(sgd.options().momentum, 0.9);
  EXPECT_TRUE(sgd.options().nesterov);
  EXPECT_EQ(b.optimizer()->slots().size(), 6u);
  b.fit(d.x, d.y, {.batch_size = 8, .epochs = 2, .verbose = 0});
  expect_same_weights(a, b);
  EXPECT_EQ(a.optimizer()->iterations(), b.optimizer()->iterations());
}

TEST_F(IoTest, HousePriceModelSavedBeforeTrainingAndUncompiledModels) {
  utils::set_random_seed(0);
  Sequential m({layers::Dense(1, {.input_shape = {1}})});
  m.save(path("uncompiled.kiln"));
  Sequential u = load_model(path("uncompiled.kiln"));
  EXPECT_EQ(u.optimizer(), nullptr);
  expect_same_weights(m, u);
  m.compile("sgd", "mean_squared_error");
  m.save(path("fresh.kiln"));  // compiled, never stepped: no slots yet
  Sequential f = load_model(path("fresh.kiln"));
  EXPECT_EQ(f.optimizer()->iterations(), 0);
  EXPECT_EQ(f.loss()->name(), "mean_squared_error");
  // A model built by fit (no declared input_shape) keeps its input shape too.
  Sequential lazy({layers::Dense(2), layers::Dense(1)});
  lazy.compile("adam", "mse");
  lazy.fit(Tensor::ones({4, 3}), Tensor::ones({4, 1}), {.epochs = 1, .verbose = 0});
  lazy.save(path("lazy.kiln"));
  Sequential l = load_model(path("lazy.kiln"));
  EXPECT_EQ(l.input_shape(), (Shape{3}));
  expect_same_weights(lazy, l);
}

TEST_F(IoTest, GpuModelSavesAndLoadsBack) {
  if (test::gpu_device_name().empty()) GTEST_SKIP() << "no usable GPU";
  set_default_device(Device::gpu());
  const Data d = cnn_data();
  Sequential a = small_cnn(6);
  compile_adam(a);
  a.fit(d.x, d.y, {.batch_size = 8, .epochs = 2, .verbose = 0});
  a.save(path("gpu.kiln"));
  Sequential b = load_model(path("gpu.kiln"));
  EXPECT_TRUE(b.device().is_cuda());
  expect_same_weights(a, b);
  EXPECT_TRUE(same_bits(a.predict(d.x), b.predict(d.x)));
  for (std::size_t i = 0; i < a.optimizer()->slots().size(); ++i)
    for (std::size_t s = 0; s < 2; ++s)
      EXPECT_TRUE(same_bits(a.optimizer()->slots()[i][s], b.optimizer()->slots()[i][s]));
  // Training goes on from the restored state, on the GPU (slots move there at the first update);
  // loading again puts the generator back where `a` found it.
  a.fit(d.x, d.y, {.batch_size = 8, .epochs = 1, .verbose = 0});
  Sequential c = load_model(path("gpu.kiln"));
  c.fit(d.x, d.y, {.batch_size = 8, .epochs = 1, .verbose = 0});
  const auto wa = a.trainable_weights(), wb = c.trainable_weights();
  for (std::size_t i = 0; i < wa.size(); ++i) {
    const auto va = wa[i].to_vector<float>(), vb = wb[i].to_vector<float>();
    for (std::size_t k = 0; k < va.size(); ++k) EXPECT_NEAR(va[k], vb[k], 1e-5f) << "weight " << i;
  }
}

// ---- resuming ----

TEST_F(IoTest, CheckpointResumeMatchesUninterruptedTraining) {
  const int threads = get_num_threads();
  set_num_threads(1);  // reductions in a fixed order
  const Data d = cnn_data(30);
  const FitOptions base{.batch_size = 7, .epochs = 5, .verbose = 0};

  Sequential straight = small_cnn(11);
  compile_adam(straight);
  straight.fit(d.x, d.y, base);

  // 3 epochs with a checkpoint after each, then a "new process": load_model and 2 more epochs.
  Sequential first = small_cnn(11);
  compile_adam(first);
  FitOptions three = base;
  three.epochs = 3;
  three.callbacks = {std::make_shared<callbacks::ModelCheckpoint>(path("ckpt.kiln"))};
  first.fit(d.x, d.y, three);
  utils::set_random_seed(12345);  // whatever happens in between, the checkpoint holds the generator state
  const int epoch = checkpoint_epoch(path("ckpt.kiln"));
  EXPECT_EQ(epoch, 2);
  Sequential resumed = load_model(path("ckpt.kiln"));
  FitOptions rest = base;
  rest.initial_epoch = epoch + 1;
  const History h = resumed.fit(d.x, d.y, rest);
  EXPECT_EQ(h.epoch, (std::vector<int>{3, 4}));
  expect_same_weights(straight, resumed);
  EXPECT_EQ(straight.optimizer()->iterations(), resumed.optimizer()->iterations());

  // The same with a plain save() after fit.
  Sequential second = small_cnn(11);
  compile_adam(second);
  second.fit(d.x, d.y, {.batch_size = 7, .epochs = 3, .verbose = 0});
  second.save(path("plain.kiln"));
  EXPECT_EQ(checkpoint_epoch(path("plain.kiln")), -1);
  Sequential resumed2 = load_model(path("plain.kiln"));
  resumed2.fit(d.x, d.y, {.batch_size = 7, .epochs = 5, .verbose = 0, .initial_epoch = 3});
  expect_same_weights(straight, resumed2);
  set_num_threads(threads);
}

TEST_F(IoTest, ModelCheckpointOptions) {
  const Data d = cnn_data();
  Sequential m = small_cnn(5);
  compile_adam(m);
  auto per_epoch = std::make_shared<callbacks::ModelCheckpoint>(path("e{epoch}.kiln"));
  auto best = std::make_shared<callbacks::ModelCheckpoint>(
      path("best.safetensors"),
      callbacks::ModelCheckpointOptions{.monitor = "loss", .save_best_only = true, .save_weights_only = true});
  m.fit(d.x, d.y, {.batch_size = 8, .epochs = 2, .verbose = 0, .callbacks = {per_epoch, best}});
  EXPECT_EQ(checkpoint_epoch(path("e1.kiln")), 0);
  EXPECT_EQ(checkpoint_epoch(path("e2.kiln")), 1);
  EXPECT_GE(checkpoint_epoch(path("best.safetensors")), 0);
  EXPECT_TRUE(std::isfinite(best->best()));
  auto missing = std::make_shared<callbacks::ModelCheckpoint>(
      path("x.kiln"), callbacks::ModelCheckpointOptions{.save_best_only = true});
  EXPECT_EQ(message_of([&] { m.fit(d.x, d.y, {.batch_size = 8, .epochs = 1, .verbose = 0, .callbacks = {missing}}); }),
            "[ModelCheckpoint] monitor \"val_loss\" is not among the epoch's logs (accuracy, loss); expected one of "
            "them (val_* logs need validation_data)");
  EXPECT_EQ(message_of([] { callbacks::ModelCheckpoint("x", {.mode = "up"}); }),
            "[ModelCheckpoint] mode \"up\" is unknown; expected \"auto\", \"min\" or \"max\"");
}

// ---- malformed checkpoints ----

TEST_F(IoTest, MalformedCheckpointsGiveClearErrors) {
  utils::set_random_seed(0);
  Sequential m({layers::Dense(2, {.input_shape = {3}}), layers::Dense(1)});
  m.compile("adam", "mse");
  m.fit(Tensor::ones({4, 3}), Tensor::ones({4, 1}), {.epochs = 1, .verbose = 0});
  const std::string p = path("m.kiln");
  const auto fresh = [&] { m.save(p); };
  const auto load_error = [&] { return message_of([&] { load_model(p); }); };

  fresh();
  const Bytes good = read_file(p);
  write_file(p, Bytes(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(good.size() - 10)));
  EXPECT_NE(load_error().find("beyond the data section of"), std::string::npos) << load_error();
  EXPECT_NE(load_error().find("(truncated?)"), std::string::npos);
  write_file(p, Bytes(good.begin(), good.begin() + 100));
  EXPECT_NE(load_error().find("bytes follow; expected a complete file (truncated?)"), std::string::npos)
      << load_error();

  fresh();
  edit_config(p, [](nlohmann::json& c) { c["layers"][1]["class_name"] = "Dense3D"; });
  EXPECT_EQ(load_error().rfind("[load_model] " + p +
                                   ": layer 1: class_name \"Dense3D\" is not a registered layer class; expected one "
                                   "of ",
                               0),
            0u)
      << load_error();
  EXPECT_NE(load_error().find(", Conv2D, Cropping2D, Dense, "), std::string::npos) << load_error();
  fresh();
  edit_config(p, [](nlohmann::json& c) { c["compile"]["optimizer"]["class_name"] = "Nadam"; });
  EXPECT_EQ(load_error(), "[load_model] " + p +
                              ": compile optimizer: class_name \"Nadam\" is not a registered optimizer class; "
                              "expected one of Adagrad, Adam, AdamW, LossScaleOptimizer, Muon, RMSprop, SGD, adagrad, "
                              "adam, adamw, muon, rmsprop, sgd");
  fresh();
  edit_config(p, [](nlohmann::json& c) { c["compile"]["loss"]["class_name"] = "Poisson"; });
  const std::string unknown_loss = load_error();
  EXPECT_EQ(unknown_loss.rfind("[load_model] " + p +
                                   ": compile loss: class_name \"Poisson\" is not a registered loss class; expected "
                                   "one of ",
                               0),
            0u)
      << unknown_loss;
  EXPECT_NE(unknown_loss.find(", MeanSquaredError, "), std::string::npos) << unknown_loss;
  fresh();
  edit_config(p, [](nlohmann::json& c) { c["layers"][0]["config"]["units"] = 0; });
  EXPECT_EQ(load_error(), "[load_model] " + p +
                              ": layer 0: the Dense config: \"units\" is 0; expected an integer in [1, 2147483648]");
  fresh();
  edit_config(p, [](nlohmann::json& c) { c["layers"][0]["config"]["activation"] = "swoosh"; });
  EXPECT_NE(load_error().find("[load_model] " + p + ": layer 0: [dense] "), std::string::npos) << load_error();
  fresh();
  edit_config(p, [](nlohmann::json& c) { c["layers"][0]["config"]["units"] = 5; });  // weights are [3, 2]
  EXPECT_EQ(load_error(),
            "[load_model] " + p + ": tensor 'dense/kernel' is F32 [3, 2]; expected F32 [3, 5] as in the model");
  fresh();
  edit_config(p, [](nlohmann::json& c) { c["layers"][0]["config"]["units"] = 1 << 30; });
  EXPECT_NE(load_error().find("the config describes 5368709121 weights but the file is"), std::string::npos)
      << load_error();
  fresh();
  edit_config(p, [](nlohmann::json& c) { c["format_version"] = 2; });
  EXPECT_EQ(load_error(), "[load_model] " + p +
                              ": the model config: format_version 2 is newer than this kiln reads; expected at most 1 "
                              "(upgrade kiln)");
  fresh();
  edit_config(p, [](nlohmann::json& c) { c["optimizer_state"]["slot_groups"] = 3; });
  EXPECT_EQ(load_error(),
            "[load_model] " + p + ": optimizer_state has slots for 3 parameters; expected 4 (one per weight)");
  fresh();
  edit_config(p, [](nlohmann::json& c) { c["layers"][1]["name"] = "dense"; });
  EXPECT_EQ(load_error(),
            "[load_model] " + p + ": layer 1 ('dense'): the name is used by layer 0 too; expected unique layer names");
  fresh();
  edit_config(p, [](nlohmann::json& c) { c["input_shape"] = {3, 3}; });
  EXPECT_EQ(load_error(), "[load_model] " + p +
                              ": the model config: \"input_shape\" [3, 3] disagrees with layer 0's input_shape [3]; "
                              "expected the same shape");

  // Bad JSON inside the metadata, and a weights-only file.
  fresh();
  {
    io::SafetensorsFile f = io::read_safetensors(p);
    std::vector<std::pair<std::string, Tensor>> tensors;
    for (const auto& t : f.view.tensors) tensors.emplace_back(t.name, io::to_tensor(t));
    write_file(p, io::serialize_safetensors(tensors, {{"format", "kiln"}, {"kiln_config", "{\"layers\": ["}}));
  }
  EXPECT_NE(load_error().find("[load_model] " + p + ": the model config is not valid JSON ("), std::string::npos)
      << load_error();
  m.save_weights(p);
  EXPECT_EQ(load_error(), "[load_model] " + p +
                              ": the file has no kiln model config in its __metadata__; expected a file written by "
                              "Model::save (use load_weights for weights-only files)");
  // A checkpoint's tensors read as weights too (its optimizer slots are skipped).
  fresh();
  Sequential w({layers::Dense(2, {.input_shape = {3}}), layers::Dense(1)});
  w.load_weights(p);
  expect_same_weights(m, w);
}

TEST_F(IoTest, RefusedLoadLeavesGeneratorAlone) {
  utils::set_random_seed(0);
  Sequential m({layers::Dense(2, {.input_shape = {3}})});
  m.save(path("m.kiln"));
  edit_config(path("m.kiln"), [](nlohmann::json& c) { c["layers"][0]["config"]["units"] = 7; });
  utils::set_random_seed(99);
  const double expected = Generator(99).uniform();
  EXPECT_NE(message_of([&] { load_model(path("m.kiln")); }), "(no error)");
  EXPECT_EQ(global_generator().uniform(), expected);
}

// Rewrites tensor `name` of the file at `path` with `edit` applied to its float32 values.
void edit_tensor(const std::string& path, const std::string& name,
                 const std::function<void(std::vector<float>&)>& edit) {
  io::SafetensorsFile file = io::read_safetensors(path);
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& t : file.view.tensors) {
    Tensor x = io::to_tensor(t);
    if (t.name == name) {
      std::vector<float> v = x.to_vector<float>();
      edit(v);
      x = Tensor::from_vector<float>(v, x.shape());
    }
    tensors.emplace_back(t.name, x);
  }
  ASSERT_NE(file.view.find(name), nullptr) << name;
  write_file(path, io::serialize_safetensors(tensors, file.view.metadata));
}

TEST_F(IoTest, CorruptOptimizerSlotsAreRefused) {
  const Data d = cnn_data(8);
  Sequential a = small_cnn(3);
  compile_adam(a);
  a.fit(d.x, d.y, {.batch_size = 8, .epochs = 1, .verbose = 0});
  const std::string p = path("m.kiln");
  const auto load_error = [&] { return message_of([&] { load_model(p); }); };
  // A negative velocity is under a square root at the next step: every conv weight would turn NaN.
  a.save(p);
  edit_tensor(p, "optimizer/0/velocity", [](std::vector<float>& v) { v[3] = -1.0f; });
  EXPECT_EQ(load_error(), "[load_model] " + p +
                              ": tensor 'optimizer/0/velocity' holds -1 at element 3; expected finite values >= 0 "
                              "(Adam's velocity is a running mean of squared gradients)");
  a.save(p);
  edit_tensor(p, "optimizer/1/velocity", [](std::vector<float>& v) { v[0] = std::numeric_limits<float>::infinity(); });
  EXPECT_NE(load_error().find("tensor 'optimizer/1/velocity' holds inf at element 0; expected finite values >= 0"),
            std::string::npos)
      << load_error();
  a.save(p);
  edit_tensor(p, "optimizer/4/momentum", [](std::vector<float>& v) { v[1] = std::nanf(""); });
  EXPECT_EQ(load_error(), "[load_model] " + p +
                              ": tensor 'optimizer/4/momentum' holds nan at element 1; expected finite values (an "
                              "optimizer slot)");
  // Negative momentum is ordinary, and so is any finite weight.
  a.save(p);
  edit_tensor(p, "optimizer/0/momentum", [](std::vector<float>& v) { v[0] = -5.0f; });
  edit_tensor(p, "conv2d/kernel", [](std::vector<float>& v) { v[0] = -1e30f; });
  Sequential b = load_model(p);
  b.fit(d.x, d.y, {.batch_size = 8, .epochs = 1, .verbose = 0});
  for (const Tensor& w : b.trainable_weights())
    for (float x : w.to_vector<float>()) ASSERT_FALSE(std::isnan(x));
  // SGD's momentum is checked the same way.
  Sequential s({layers::Dense(2, {.input_shape = {3}})});
  s.compile(optimizers::SGD({.momentum = 0.9}), losses::MeanSquaredError());
  s.fit(Tensor::ones({4, 3}), Tensor::ones({4, 2}), {.epochs = 1, .verbose = 0});
  s.save(p);
  edit_tensor(p, "optimizer/1/momentum", [](std::vector<float>& v) { v[1] = -std::numeric_limits<float>::infinity(); });
  EXPECT_EQ(load_error(), "[load_model] " + p +
                              ": tensor 'optimizer/1/momentum' holds -inf at element 1; expected finite values (an "
                              "optimizer slot)");
}

TEST_F(IoTest, UnbuiltConfigsCannotAskForWeightsTheFileLacks) {
  utils::set_random_seed(0);
  Sequential m({layers::Dense(2, {.input_shape = {3}}), layers::Dense(1)});
  m.compile("adam", "mse");
  m.fit(Tensor::ones({4, 3}), Tensor::ones({4, 1}), {.epochs = 1, .verbose = 0});
  const std::string p = path("m.kiln");
  const auto load_error = [&] { return message_of([&] { load_model(p); }); };
  const auto unbuilt = [](nlohmann::json& c) {
    c["input_shape"] = nullptr;
    c["layers"][0]["config"].erase("input_shape");
  };
  const std::string refusal =
      ": the config has no \"input_shape\", so the model was never built and no layer weights are in the file; "
      "expected a model saved after it was built (an input_shape on layer 0, build() or fit() before save)";
  // 2^31 units: once loaded, the first predict would allocate hundreds of GiB.
  m.save(p);
  edit_config(p, [&](nlohmann::json& c) {
    unbuilt(c);
    c["layers"][0]["config"]["units"] = 2147483648LL;
    c["compile"] = nullptr;
  });
  EXPECT_EQ(load_error(), "[load_model] " + p + ": layer 0 ('dense')" + refusal);
  // 2^22 units would silently build 155 M parameters that the file never held.
  m.save(p);
  edit_config(p, [&](nlohmann::json& c) {
    unbuilt(c);
    c["layers"][1]["config"]["units"] = 4194304;
  });
  // With compile settings and slots the layer is still what is blamed, not the optimizer's slot count.
  EXPECT_EQ(load_error(), "[load_model] " + p + ": layer 0 ('dense')" + refusal);
  m.save(p);
  edit_config(p, [&](nlohmann::json& c) {
    c["input_shape"] = nullptr;
    c["layers"] = nlohmann::json::array({c["layers"][1]});
    c["layers"][0]["config"]["units"] = 4194304;
    c["compile"] = nullptr;
  });
  EXPECT_EQ(load_error(), "[load_model] " + p + ": layer 0 ('dense_1')" + refusal);
  // Saving such a model is refused too, rather than writing a file load_model refuses.
  Sequential lazy({layers::Dense(2), layers::Dense(1)});
  EXPECT_EQ(message_of([&] { lazy.save(p); }),
            "[save] the model is not built, so its layers have no weights yet and the file could not be loaded; "
            "expected build(input_shape), fit() or an input_shape on layer 0 before save");
  // A model without layers needs no input shape.
  Sequential empty;
  empty.save(path("empty.kiln"));
  Sequential e = load_model(path("empty.kiln"));
  EXPECT_FALSE(e.built());
  EXPECT_TRUE(e.layers().empty());
}

// ---- atomic writes ----

TEST_F(IoTest, SaveThroughSymlinkReplacesItsTarget) {
  REQUIRE_SYMLINKS(dir_);
  utils::set_random_seed(0);
  Sequential a({layers::Dense(2, {.input_shape = {3}})});
  Sequential b({layers::Dense(2, {.input_shape = {3}})});
  fs::create_directories(path("runs"));
  a.save(path("runs/v1.kiln"));
  fs::create_symlink("runs/v1.kiln", path("latest.kiln"));  // relative, as `ln -s` makes them
  fs::create_symlink(path("latest.kiln"), path("chain.kiln"));
  b.save(path("chain.kiln"));
  EXPECT_TRUE(fs::is_symlink(path("chain.kiln")));
  EXPECT_TRUE(fs::is_symlink(path("latest.kiln")));
  expect_same_weights(b, load_model(path("runs/v1.kiln")));
  for (const auto& e : fs::directory_iterator(path("runs")))
    EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << e.path();
  // A dangling link: the save creates the file it names.
  fs::create_symlink("runs/v2.kiln", path("next.kiln"));
  a.save(path("next.kiln"));
  EXPECT_TRUE(fs::is_symlink(path("next.kiln")));
  expect_same_weights(a, load_model(path("runs/v2.kiln")));
  // A loop is refused and leaves both links as they were.
  fs::create_symlink("loop_b", path("loop_a"));
  fs::create_symlink("loop_a", path("loop_b"));
  EXPECT_EQ(
      message_of([&] { a.save(path("loop_a")); }),
      "[save] " + path("loop_a") + ": is a symbolic link loop (more than 40 links); expected a file or a link to one");
  EXPECT_TRUE(fs::is_symlink(path("loop_a")));
}

TEST_F(IoTest, UnsyncableDirectoryIsAWarningNotAnError) {
#ifdef _WIN32
  GTEST_SKIP()
      << "Windows has no directory fsync to fail (MoveFileEx writes through), and the test needs fork and setuid";
#else
  // A directory with write and search permission but no read permission: the file can be created
  // and renamed, but the directory cannot be opened to fsync it. Root ignores permissions, so the
  // save runs in a child that drops to an unprivileged user first.
  utils::set_random_seed(0);
  Sequential m({layers::Dense(2, {.input_shape = {3}})});
  const fs::path box = dir_ / "write_only";
  fs::create_directories(box);
  fs::permissions(box, fs::perms::owner_write | fs::perms::owner_exec | fs::perms::group_write | fs::perms::group_exec |
                           fs::perms::others_write | fs::perms::others_exec);
  const std::string target = (box / "m.kiln").string();
  const std::string log = (box / "stderr.txt").string();
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (::geteuid() == 0 && (::setgid(65534) != 0 || ::setuid(65534) != 0)) ::_exit(77);
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) ::_exit(78);
    ::dup2(fd, 2);
    try {
      m.save(target);
    } catch (const Error& e) {
      std::fprintf(stderr, "error: %s\n", e.what());
      std::fflush(stderr);
      ::_exit(1);
    }
    ::_exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  if (WEXITSTATUS(status) == 77) GTEST_SKIP() << "cannot drop root privileges here";
  ASSERT_NE(WEXITSTATUS(status), 78) << "the child could not write its stderr log";
  const Bytes err = read_file(log);
  const std::string text(err.begin(), err.end());
  EXPECT_EQ(WEXITSTATUS(status), 0) << text;
  EXPECT_EQ(text, "kiln: warning: [save] " + target + ": saved, but opening directory " + box.string() +
                      " to fsync it failed: Permission denied; the new file is in place but may not survive a power "
                      "loss\n");
  expect_same_weights(m, load_model(target));
  fs::permissions(box, fs::perms::owner_all);
#endif
}

TEST_F(IoTest, SaveRemovesTempFilesOfDeadWritersOnly) {
#ifdef _WIN32
  GTEST_SKIP() << "needs fork() for the id of a process that has ended";
#else
  const std::string target = path("orphans.bin");
  const pid_t dead = ::fork();
  if (dead == 0) ::_exit(0);
  ASSERT_GT(dead, 0);
  ::waitpid(dead, nullptr, 0);  // reaped: no process has this pid now
  const std::string orphan = target + ".tmp-" + std::to_string(dead) + "-0";
  const std::string live = target + ".tmp-1-0";  // pid 1 always exists
  const std::string unrelated = target + ".tmp-notes";
  for (const auto& f : {orphan, live, unrelated}) std::ofstream(f) << "x";
  io::AtomicFile file(target);
  file.write(std::vector<uint8_t>{1, 2, 3});
  file.commit();
  EXPECT_FALSE(fs::exists(orphan));
  EXPECT_TRUE(fs::exists(live));
  EXPECT_TRUE(fs::exists(unrelated));
#endif
}

TEST_F(IoTest, FailedWriteKeepsOldFileAndRemovesTemp) {
  utils::set_random_seed(0);
  Sequential m({layers::Dense(2, {.input_shape = {3}})});
  EXPECT_EQ(message_of([&] {
              m.save(path("no/such/dir/m.kiln"));
            }).rfind("[save] " + path("no/such/dir/m.kiln") + ": cannot create the temporary file ", 0),
            0u);
  EXPECT_NE(message_of([&] { m.save(path("no/such/dir/m.kiln")); }).find("No such file or directory"),
            std::string::npos);
  // The target is a non-empty directory: the rename fails after the data was written.
  fs::create_directories(path("occupied/inside"));
  const std::string err = message_of([&] { m.save(path("occupied")); });
  EXPECT_NE(err.find("renaming"), std::string::npos) << err;
  EXPECT_NE(err.find(path("occupied") + " is unchanged"), std::string::npos) << err;
  EXPECT_TRUE(fs::is_directory(path("occupied/inside")));
  for (const auto& e : fs::directory_iterator(dir_))
    EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << e.path();
  // An AtomicFile dropped before commit leaves the target as it was.
  m.save(path("m.kiln"));
  const Bytes before = read_file(path("m.kiln"));
  {
    io::AtomicFile f(path("m.kiln"));
    f.write(Bytes{1, 2, 3});
  }
  EXPECT_EQ(read_file(path("m.kiln")), before);
}

TEST_F(IoTest, CheckpointSurvivesSigkillDuringSaves) {
#ifdef _WIN32
  GTEST_SKIP() << "needs fork() and SIGKILL to kill a writer mid-save";
#else
  // A model large enough that a save takes a while, so kills land mid-write; version k has
  // every bias equal to k.
  utils::set_random_seed(0);
  Sequential m({layers::Dense(512, {.input_shape = {256}}), layers::Dense(64)});
  m.compile("adam", "mse");
  const std::string p = path("ckpt.kiln");
  const auto set_version = [&](int k) {
    for (const auto& layer : m.layers()) {
      Tensor bias = layer->named_weights()[1].second;
      float* b = bias.data<float>();
      for (int64_t i = 0; i < bias.numel(); ++i) b[i] = static_cast<float>(k);
    }
  };
  set_version(0);
  m.save(p);
  std::mt19937 rng(1234);
  int last_seen = 0;
  for (int round = 0; round < 6; ++round) {
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      // Only host memory writes and file I/O here: no thread pools in the forked child.
      for (int k = 1000 * (round + 1);; ++k) {
        set_version(k);
        try {
          m.save(p);
        } catch (...) {
          ::_exit(3);
        }
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5 + rng() % 60));
    ::kill(child, SIGKILL);
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFSIGNALED(status)) << "the saving child ended by itself";
    Sequential loaded = load_model(p);  // must be complete
    const float v = loaded.layers()[0]->named_weights()[1].second.to_vector<float>()[0];
    const int k = static_cast<int>(v);
    EXPECT_EQ(static_cast<float>(k), v);
    EXPECT_TRUE(k == last_seen || (k >= 1000 * (round + 1) && k < 1000 * (round + 2))) << "version " << k;
    for (const auto& layer : loaded.layers())
      for (float b : layer->named_weights()[1].second.to_vector<float>()) ASSERT_EQ(b, v) << "a torn checkpoint";
    last_seen = k;
  }
  // A kill that landed mid-write leaves a temporary file beside the checkpoint (and nothing worse);
  // the next save of that checkpoint removes the orphans of writers that no longer exist.
  auto temp_files = [&] {
    int n = 0;
    for (const auto& e : fs::directory_iterator(dir_))
      n += e.path().filename().string().find(".tmp-") != std::string::npos;
    return n;
  };
  RecordProperty("temp_files_after_last_kill", temp_files());
  load_model(p).save(p);
  EXPECT_EQ(temp_files(), 0);
#endif
}

// ---- the public header ----

TEST(IoPublicHeader, KilnHeaderIncludesTheDatasets) {
  // Compiles only when <kiln/kiln.h> brings in the CIFAR-10 reader.
  EXPECT_EQ(datasets::cifar10::kRecordBytes, 3073u);
  EXPECT_EQ(datasets::cifar10::class_names()[0], "airplane");
}

// ---- fuzzer regressions: every saved input must parse or throw kiln::Error, never crash ----

TEST(IoFuzz, RegressionInputsParseOrThrow) {
  const fs::path root = fs::path(KILN_TESTS_DIR) / "fuzz" / "regressions";
  const fs::path file = fs::temp_directory_path() / ("kiln_io_replay_" + std::to_string(process_id()) + ".kiln");
  int replayed = 0;
  for (const std::string target : {"safetensors", "model_config", "model_file"}) {
    std::error_code ec;
    if (!fs::is_directory(root / target, ec)) continue;
    for (const auto& entry : fs::directory_iterator(root / target)) {
      if (!entry.is_regular_file() || entry.path().filename().string().starts_with(".")) continue;
      const Bytes bytes = read_file(entry.path().string());
      try {
        if (target == "safetensors") {
          io::parse_safetensors(bytes, entry.path().filename().string());
        } else if (target == "model_config") {
          io::parse_model_config(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()),
                                 entry.path().filename().string());
        } else {
          write_file(file.string(), bytes);
          load_model(file.string());
        }
      } catch (const Error&) {
        // A clear error is the right answer to a malformed input.
      }
      ++replayed;
    }
  }
  fs::remove(file);
  RecordProperty("replayed", replayed);
  EXPECT_GT(replayed, 0) << "tests/fuzz/regressions/{safetensors,model_config} hold edge inputs to replay";
}

// The fuzzers' seeds for model files are what Sequential::save writes for a small model of the
// CIFAR seed's shape, compiled with Adam and trained one step: the fuzzers start from a file that
// passes every check and mutate from there. With KILN_WRITE_FUZZ_SEEDS=1 this test writes them
// again (after a change of the file format); either way it checks that every seed loads.
namespace {

struct Seed {
  std::string target, name;
  Bytes bytes;
};

std::vector<Seed> make_fuzz_seeds(const fs::path& scratch) {
  const Device before = model_device();
  set_default_device(Device::cpu());
  utils::set_random_seed(0);
  Sequential m({layers::Conv2D(2, {3, 3}, {.activation = "relu", .input_shape = {6, 6, 1}}),
                layers::MaxPooling2D({2, 2}), layers::Flatten(), layers::Dense(3)});
  m.compile(optimizers::Adam(), losses::SparseCategoricalCrossentropy({.from_logits = true}), {"accuracy"});
  Generator gen(7);
  m.fit(Tensor::uniform({2, 6, 6, 1}, 0.0, 1.0, gen), Tensor::from_vector(std::vector<int32_t>{0, 2}),
        {.batch_size = 2, .epochs = 1, .verbose = 0});
  const std::string model = (scratch / "model.kiln").string(), weights = (scratch / "weights.safetensors").string();
  m.save(model);
  m.save_weights(weights);
  const Bytes model_bytes = read_file(model), weight_bytes = read_file(weights);
  const std::string config = io::read_safetensors(model).view.metadata.at("kiln_config");
  set_default_device(before);
  return {{"safetensors", "model.kiln", model_bytes},
          {"safetensors", "weights.safetensors", weight_bytes},
          {"model_file", "model.kiln", model_bytes},
          {"model_file", "weights.safetensors", weight_bytes},
          {"model_config", "model.json", Bytes(config.begin(), config.end())}};
}

}  // namespace

TEST_F(IoTest, FuzzSeedsAreRealSavesThatLoad) {
  const fs::path seeds = fs::path(KILN_TESTS_DIR) / "fuzz" / "seeds";
  const std::vector<Seed> fresh = make_fuzz_seeds(dir_);
  if (const char* env = std::getenv("KILN_WRITE_FUZZ_SEEDS"); env && std::string(env) == "1")
    for (const Seed& s : fresh) {
      fs::create_directories(seeds / s.target);
      write_file((seeds / s.target / s.name).string(), s.bytes);
    }
  for (const Seed& s : fresh) {
    const fs::path p = seeds / s.target / s.name;
    ASSERT_TRUE(fs::is_regular_file(p)) << p << " is missing; run with KILN_WRITE_FUZZ_SEEDS=1 to write it";
    const Bytes bytes = read_file(p.string());
    EXPECT_LT(bytes.size(), 16u * 1024) << p << ": seeds should stay small";
    if (s.target == "model_config") {
      const io::ModelConfig cfg = io::parse_model_config(
          std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), p.string());
      EXPECT_EQ(cfg.layers.size(), 4u);
      EXPECT_EQ(cfg.slot_groups, 4);
      continue;
    }
    const io::SafetensorsFile file = io::read_safetensors(p.string());
    EXPECT_EQ(file.view.find("dense/kernel")->shape, (Shape{8, 3})) << p;
    if (s.name != "model.kiln") continue;
    // The committed seed is a complete checkpoint: it loads, and its optimizer has stepped once.
    Sequential m = load_model(p.string());
    EXPECT_EQ(m.optimizer()->iterations(), 1);
    EXPECT_EQ(m.predict(Tensor::zeros({1, 6, 6, 1})).shape(), (Shape{1, 3}));
  }
}
