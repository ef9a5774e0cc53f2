// NumPy's .npy and .npz: round trips of every dtype and shape, files written by NumPy itself
// (tests/data/numpy, made by make_fixtures.py there), Fortran order, every error message, and the
// fuzzers' regression inputs.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <numbers>

#include "io/numpy_bytes.h"
#include "io/zip_archive.h"
#include "kiln/io/numpy.h"
#include "kiln/kiln.h"
#include "test_support.h"

using namespace kiln;
namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;
using kiln::testing::message_of;
using kiln::testing::process_id;

namespace {

std::string fixture(const std::string& name) { return (fs::path(KILN_TESTS_DIR) / "data" / "numpy" / name).string(); }

Bytes read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const std::string& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

// A version 1.0 .npy file with `header` as its dict text and `data_bytes` zero bytes of data.
Bytes npy_file(const std::string& header, std::size_t data_bytes, uint8_t major = 1) {
  Bytes b{0x93, 'N', 'U', 'M', 'P', 'Y', major, 0};
  const std::size_t len = header.size();
  b.push_back(static_cast<uint8_t>(len));
  b.push_back(static_cast<uint8_t>(len >> 8));
  if (major != 1) {
    b.push_back(static_cast<uint8_t>(len >> 16));
    b.push_back(static_cast<uint8_t>(len >> 24));
  }
  b.insert(b.end(), header.begin(), header.end());
  b.resize(b.size() + data_bytes, 0);
  return b;
}

std::string dict(const std::string& descr, const std::string& fortran, const std::string& shape) {
  return "{'descr': '" + descr + "', 'fortran_order': " + fortran + ", 'shape': " + shape + ", }\n";
}

// The message load_npy_bytes gives for `bytes`.
std::string npy_error(const Bytes& bytes) {
  return message_of([&] { io::load_npy_bytes(bytes, "load_npy", "'t.npy'"); });
}

template <typename T>
std::vector<T> values_of(const Tensor& t) {
  return t.to_vector<T>();
}

class NumpyIo : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / ("kiln_numpy_" + std::to_string(process_id()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

template <typename T>
Tensor sample_of(const Shape& shape, double scale, double shift) {
  std::vector<T> v(static_cast<std::size_t>(shape.numel()));
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<T>(static_cast<double>(i) * scale + shift);
  return Tensor::from_vector(v, shape);
}

// A tensor of `dtype` and `shape` with distinct values (negative ones where the type has them).
Tensor sample(DType dtype, const Shape& shape) {
  switch (dtype) {
    case DType::Float32:
      return sample_of<float>(shape, 1.25, -3);
    case DType::Float64:
      return sample_of<double>(shape, 0.1, -3);
    case DType::Int32:
      return sample_of<int32_t>(shape, 7, -5);
    case DType::Int64:
      return sample_of<int64_t>(shape, 1e12, -5);
    case DType::UInt8:
      return sample_of<uint8_t>(shape, 20, 1);  // at most 12 elements here: below 256
    case DType::Float16:
    case DType::BFloat16:
      return sample_of<float>(shape, 1.25, -3).astype(dtype);  // exact in both
  }
  return {};
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() && a.nbytes() == b.nbytes() &&
         (a.nbytes() == 0 || std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0);
}

}  // namespace

// ---- round trips ----

TEST_F(NumpyIo, RoundTripsEveryDtypeAndShape) {
  const std::vector<Shape> shapes{Shape{}, Shape{0}, Shape{5}, Shape{0, 3}, Shape{2, 3}, Shape{2, 1, 3, 2}};
  int checked = 0;
  for (const DType dtype : {DType::Float32, DType::Float64, DType::Int32, DType::UInt8, DType::Int64, DType::Float16}) {
    for (const Shape& shape : shapes) {
      const Tensor t = sample(dtype, shape);
      const std::string p = path("t.npy");
      io::save_npy(p, t);
      const Tensor back = io::load_npy(p);
      EXPECT_TRUE(same_bytes(t, back)) << dtype_name(dtype) << " " << shape.str();
      // NumPy's layout: version 1.0 and the data 64-byte aligned after a '\n'-terminated header.
      const Bytes b = read_bytes(p);
      ASSERT_GE(b.size(), 10u);
      EXPECT_EQ(b[6], 1);
      const std::size_t header_len = b[8] | (b[9] << 8);
      EXPECT_EQ((10 + header_len) % 64, 0u);
      EXPECT_EQ(b[10 + header_len - 1], '\n');
      EXPECT_EQ(b.size(), 10 + header_len + t.nbytes());
      ++checked;
    }
  }
  EXPECT_EQ(checked, 36);
}

TEST_F(NumpyIo, SaveWritesNumpysHeaderText) {
  io::save_npy(path("a.npy"), Tensor::zeros({3}, DType::Int64));
  io::save_npy(path("s.npy"), Tensor::full({}, 2.0));
  const Bytes a = read_bytes(path("a.npy"));
  const Bytes s = read_bytes(path("s.npy"));
  EXPECT_EQ(std::string(a.begin() + 10, a.begin() + 10 + 60),
            "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }   ");
  EXPECT_EQ(std::string(s.begin() + 10, s.begin() + 10 + 57),
            "{'descr': '<f4', 'fortran_order': False, 'shape': (), }  ");
}

TEST_F(NumpyIo, SaveSwitchesToVersion2WhenTheHeaderNeedsIt) {
  // 22000 dimensions of extent 1 make a header of about 66 KB, past version 1.0's 65535 bytes.
  const Tensor t = Tensor::full(Shape(std::vector<int64_t>(22000, 1)), 7.0);
  io::save_npy(path("v2.npy"), t);
  const Bytes b = read_bytes(path("v2.npy"));
  EXPECT_EQ(b[6], 2);
  const std::size_t header_len = b[8] | (b[9] << 8) | (b[10] << 16) | (static_cast<std::size_t>(b[11]) << 24);
  EXPECT_GT(header_len, 65535u);
  EXPECT_EQ((12 + header_len) % 64, 0u);
  const Tensor back = io::load_npy(path("v2.npy"));
  EXPECT_EQ(back.shape(), t.shape());
  EXPECT_EQ(back.item(), 7.0);
}

TEST_F(NumpyIo, SaveRefusesAHeaderLoadCouldNotRead) {
  const Tensor t = Tensor::zeros(Shape(std::vector<int64_t>(400000, 1)));
  EXPECT_EQ(message_of([&] { io::save_npy(path("big.npy"), t); }),
            "[save_npy] a tensor of 400000 dimensions needs a header of 1200116 bytes; expected at most 1048576 "
            "(what load_npy reads)");
  EXPECT_FALSE(fs::exists(path("big.npy")));
}

TEST_F(NumpyIo, SaveReplacesAtomicallyAndNamesAFailure) {
  io::save_npy(path("a.npy"), Tensor::ones({2}));
  io::save_npy(path("a.npy"), Tensor::zeros({3}, DType::Int32));
  EXPECT_EQ(io::load_npy(path("a.npy")).dtype(), DType::Int32);
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir_)) files += e.is_regular_file();
  EXPECT_EQ(files, 1);  // no temporary file left beside it
  const std::string missing_dir = path("no/such/dir/a.npy");
  const std::string m = message_of([&] { io::save_npy(missing_dir, Tensor::ones({2})); });
  EXPECT_NE(m.find("[save]"), std::string::npos) << m;
  EXPECT_NE(m.find("no/such/dir"), std::string::npos) << m;
  EXPECT_EQ(message_of([&] { io::save_npy(path("u.npy"), Tensor()); }),
            "[save_npy] the tensor for '" + path("u.npy") + "' is undefined; expected a tensor");
}

// ---- files written by NumPy ----

TEST(NumpyFiles, ReadsEveryDtypeNumpyWrites) {
  const Tensor f4 = io::load_npy(fixture("f4_2x3.npy"));
  EXPECT_EQ(f4.dtype(), DType::Float32);
  EXPECT_EQ(f4.shape(), (Shape{2, 3}));
  EXPECT_EQ(values_of<float>(f4), (std::vector<float>{-1, -0.5f, 0, 0.5f, 1, 1.5f}));

  const Tensor f8 = io::load_npy(fixture("f8_5.npy"));
  EXPECT_EQ(f8.dtype(), DType::Float64);
  const std::vector<double> d = values_of<double>(f8);
  ASSERT_EQ(d.size(), 5u);
  EXPECT_EQ(d[0], 0.1);
  EXPECT_EQ(d[1], -2.5);
  EXPECT_EQ(d[2], 1e300);
  EXPECT_EQ(d[3], std::numbers::pi);
  EXPECT_TRUE(d[4] == 0.0 && std::signbit(d[4]));

  const Tensor i4 = io::load_npy(fixture("i4_3x2.npy"));
  EXPECT_EQ(i4.dtype(), DType::Int32);
  EXPECT_EQ(i4.shape(), (Shape{3, 2}));
  EXPECT_EQ(values_of<int32_t>(i4), (std::vector<int32_t>{-3, -2, -1, 0, 1, 2}));

  const Tensor i8 = io::load_npy(fixture("i8_4.npy"));
  EXPECT_EQ(i8.dtype(), DType::Int64);
  EXPECT_EQ(values_of<int64_t>(i8), (std::vector<int64_t>{-(int64_t{1} << 40), -1, 0, int64_t{1} << 62}));

  const Tensor u1 = io::load_npy(fixture("u1_2x2x2.npy"));
  EXPECT_EQ(u1.dtype(), DType::UInt8);
  EXPECT_EQ(u1.shape(), (Shape{2, 2, 2}));
  EXPECT_EQ(values_of<uint8_t>(u1), (std::vector<uint8_t>{0, 30, 60, 90, 120, 150, 180, 210}));
}

TEST(NumpyFiles, BoolIsReadAsUInt8ZeroOrOne) {
  const Tensor b = io::load_npy(fixture("b1_5.npy"));
  EXPECT_EQ(b.dtype(), DType::UInt8);
  EXPECT_EQ(values_of<uint8_t>(b), (std::vector<uint8_t>{1, 0, 1, 1, 0}));
  // A bool byte other than 0 or 1 still means true.
  Bytes bytes = read_bytes(fixture("b1_5.npy"));
  bytes[bytes.size() - 5] = 7;
  EXPECT_EQ(values_of<uint8_t>(io::load_npy_bytes(bytes, "load_npy", "'b.npy'")),
            (std::vector<uint8_t>{1, 0, 1, 1, 0}));
}

TEST(NumpyFiles, ZeroDimensionalAndEmptyArrays) {
  const Tensor s = io::load_npy(fixture("scalar_f4.npy"));
  EXPECT_EQ(s.shape(), Shape{});
  EXPECT_EQ(s.item(), 3.25);
  const Tensor e = io::load_npy(fixture("empty_0x3_f4.npy"));
  EXPECT_EQ(e.shape(), (Shape{0, 3}));
  EXPECT_EQ(e.numel(), 0);
}

TEST(NumpyFiles, FortranOrderIsReadIntoCOrder) {
  // The file's bytes are column-major (NumPy wrote np.asfortranarray); the tensor is row-major.
  const Bytes raw = read_bytes(fixture("fortran_i4_2x3x4.npy"));
  EXPECT_NE(std::string(raw.begin(), raw.begin() + 128).find("'fortran_order': True"), std::string::npos);
  const Tensor t = io::load_npy(fixture("fortran_i4_2x3x4.npy"));
  EXPECT_EQ(t.shape(), (Shape{2, 3, 4}));
  std::vector<int32_t> expected(24);
  for (int32_t i = 0; i < 24; ++i) expected[static_cast<std::size_t>(i)] = i;
  EXPECT_EQ(values_of<int32_t>(t), expected);

  const Tensor f = io::load_npy(fixture("fortran_f8_3x2.npy"));
  EXPECT_EQ(f.shape(), (Shape{3, 2}));
  EXPECT_EQ(values_of<double>(f), (std::vector<double>{0, 0.125, 0.25, 0.375, 0.5, 0.625}));
}

TEST(NumpyFiles, ReadsFormatVersions2And3) {
  for (const std::string name : {"v2_f4_2x3.npy", "v3_f4_2x3.npy"}) {
    const Bytes raw = read_bytes(fixture(name));
    EXPECT_EQ(raw[6], name[1] - '0');
    const Tensor t = io::load_npy(fixture(name));
    EXPECT_EQ(t.shape(), (Shape{2, 3})) << name;
    EXPECT_EQ(values_of<float>(t), (std::vector<float>{-1, -0.5f, 0, 0.5f, 1, 1.5f})) << name;
  }
}

TEST(NumpyFiles, RefusesDtypesKilnDoesNotHave) {
  const std::string list =
      "expected '<f4' (float32), '<f8' (float64), '<f2' (float16), '<i4' (int32), '<i8' (int64), '|u1' (uint8) or "
      "'|b1' (bool, read as uint8)";
  const std::string be = fixture("big_endian_f4.npy");
  EXPECT_EQ(message_of([&] { io::load_npy(be); }),
            "[load_npy] '" + be + "' has dtype '>f4' (big-endian), which kiln does not read; " + list);
  for (const auto& [name, descr] : {std::pair<std::string, std::string>{"complex_c8.npy", "<c8"},
                                    {"unicode_U3.npy", "<U3"},
                                    {"object_O.npy", "|O"}}) {
    const std::string p = fixture(name);
    EXPECT_EQ(message_of([&] { io::load_npy(p); }),
              "[load_npy] '" + p + "' has dtype '" + descr + "', which kiln does not read; " + list);
  }
  const std::string st = fixture("structured.npy");
  EXPECT_EQ(
      message_of([&] { io::load_npy(st); }),
      "[load_npy] '" + st +
          "' has a structured dtype (a list of fields); expected a plain dtype: '<f4' "
          "(float32), '<f8' (float64), '<f2' (float16), '<i4' (int32), '<i8' (int64), '|u1' (uint8) or '|b1' (bool, "
          "read as uint8)");
}

// ---- malformed files: every check of the header, with its message ----

TEST(NumpyHeader, PreambleErrors) {
  EXPECT_EQ(npy_error({'P', 'K', 3, 4}),
            "[load_npy] 't.npy' does not start with NumPy's magic \"\\x93NUMPY\"; expected a .npy file (np.save)");
  EXPECT_EQ(npy_error({0x93, 'N', 'U', 'M', 'P', 'Y', 4, 0, 0, 0}),
            "[load_npy] 't.npy' is .npy format version 4.0; expected version 1.0, 2.0 or 3.0");
  EXPECT_EQ(npy_error({0x93, 'N', 'U', 'M', 'P', 'Y', 1, 1, 0, 0}),
            "[load_npy] 't.npy' is .npy format version 1.1; expected version 1.0, 2.0 or 3.0");
  EXPECT_EQ(npy_error({0x93, 'N', 'U', 'M', 'P', 'Y', 2, 0, 5, 0}),
            "[load_npy] 't.npy' ends inside its preamble (10 bytes); expected 12 bytes before the header");
  EXPECT_EQ(npy_error({0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, 200, 0, '{', '}'}),
            "[load_npy] 't.npy' declares a header of 200 bytes but only 2 bytes follow the preamble; expected a "
            "whole file");
  EXPECT_EQ(npy_error({0x93, 'N', 'U', 'M', 'P', 'Y', 2, 0, 0, 0, 0, 1}),
            "[load_npy] 't.npy' declares a header of 16777216 bytes; expected at most 1048576");
}

TEST(NumpyHeader, DictErrors) {
  const std::string tail = "; expected NumPy's {'descr': ..., 'fortran_order': ..., 'shape': (...)}";
  const auto err = [&](const std::string& header) { return npy_error(npy_file(header, 0)); };
  EXPECT_EQ(err("'descr': '<f4'}"),
            "[load_npy] 't.npy' has a malformed header: '{' missing at byte 0 of the header" + tail);
  EXPECT_EQ(err("{'descr': '<f4', 'shape': (0,), }"),
            "[load_npy] 't.npy' has a malformed header: no 'fortran_order' at byte 33 of the header" + tail);
  EXPECT_EQ(err("{'fortran_order': False, 'shape': (0,)}"),
            "[load_npy] 't.npy' has a malformed header: no 'descr' at byte 39 of the header" + tail);
  EXPECT_EQ(err("{'descr': '<f4', 'fortran_order': False}"),
            "[load_npy] 't.npy' has a malformed header: no 'shape' at byte 40 of the header" + tail);
  EXPECT_EQ(err("{'descr': '<f4', 'descr': '<f4'}"),
            "[load_npy] 't.npy' has a malformed header: a second 'descr' at byte 25 of the header" + tail);
  EXPECT_EQ(err("{'descr': '<f4', 'fortran_order': False, 'fortran_order': True}"),
            "[load_npy] 't.npy' has a malformed header: a second 'fortran_order' at byte 57 of the header" + tail);
  EXPECT_EQ(err("{'shape': (), 'shape': ()}"),
            "[load_npy] 't.npy' has a malformed header: a second 'shape' at byte 22 of the header" + tail);
  EXPECT_EQ(err("{'descr': '<f4', 'extra': 1}"),
            "[load_npy] 't.npy' has a malformed header: an unknown key 'extra' at byte 25 of the header" + tail);
  EXPECT_EQ(err("{'fortran_order': 0}"),
            "[load_npy] 't.npy' has a malformed header: True or False missing at byte 18 of the header" + tail);
  EXPECT_EQ(err("{'shape': (-1,)}"),
            "[load_npy] 't.npy' has a malformed header: a negative dimension at byte 11 of the header" + tail);
  EXPECT_EQ(
      err("{'shape': (x,)}"),
      "[load_npy] 't.npy' has a malformed header: a dimension that is not an integer at byte 11 of the header" + tail);
  EXPECT_EQ(err("{'shape': (99999999999999999999,)}"),
            "[load_npy] 't.npy' has a malformed header: a dimension beyond 2^63 - 1 at byte 11 of the header" + tail);
  EXPECT_EQ(err("{'shape': (2 3)}"),
            "[load_npy] 't.npy' has a malformed header: ')' missing at byte 13 of the header" + tail);
  EXPECT_EQ(err("{'descr': '<f4}"),
            "[load_npy] 't.npy' has a malformed header: an unterminated string at byte 15 of the header" + tail);
  EXPECT_EQ(
      err("{'descr': '\\x'}"),
      "[load_npy] 't.npy' has a malformed header: an escape sequence in a string at byte 11 of the header" + tail);
  EXPECT_EQ(err("{descr: 1}"),
            "[load_npy] 't.npy' has a malformed header: a string missing at byte 1 of the header" + tail);
  EXPECT_EQ(err("{'descr' '<f4'}"),
            "[load_npy] 't.npy' has a malformed header: ':' missing at byte 9 of the header" + tail);
  EXPECT_EQ(err("{'descr': '<f4' 'x'}"),
            "[load_npy] 't.npy' has a malformed header: '}' missing at byte 16 of the header" + tail);
  EXPECT_EQ(err(dict("<f4", "False", "(0,)") + "x"),
            "[load_npy] 't.npy' has a malformed header: text after the closing '}' at byte 58 of the header" + tail);
}

TEST(NumpyHeader, SizeErrors) {
  EXPECT_EQ(npy_error(npy_file(dict("<f8", "False", "(4294967296, 4294967296)"), 0)),
            "[load_npy] 't.npy' has shape (4294967296, 4294967296), whose size overflows 2^63 bytes of <f8; expected "
            "an array that fits in memory");
  // A zero extent does not excuse the others' overflow.
  EXPECT_NE(npy_error(npy_file(dict("<f4", "False", "(0, 4611686018427387904, 4)"), 0)).find("overflows"),
            std::string::npos);
  EXPECT_EQ(npy_error(npy_file(dict("<i4", "False", "(2, 3)"), 20)),
            "[load_npy] 't.npy' holds 20 data bytes; expected 24 for shape (2, 3) of '<i4' (the file is truncated)");
  EXPECT_EQ(npy_error(npy_file(dict("<i4", "False", "(2,)"), 9)),
            "[load_npy] 't.npy' holds 9 data bytes; expected 8 for shape (2,) of '<i4' (and nothing after them)");
  // The checks above run before any allocation: a header claiming 2^60 bytes fails on the size check.
  EXPECT_NE(npy_error(npy_file(dict("|u1", "False", "(1152921504606846976,)"), 0)).find("the file is truncated"),
            std::string::npos);
  // Accepted: no trailing comma, double quotes, version 3.0 with the same dict.
  EXPECT_EQ(io::load_npy_bytes(npy_file("{\"descr\": \"<i4\", \"fortran_order\": False, \"shape\": (1,)}", 4, 3),
                               "load_npy", "'t.npy'")
                .shape(),
            Shape{1});
}

TEST(NumpyHeader, AFilesStartIsCheckedAgainstTheWholeFile) {
  const Bytes b = npy_file(dict("<f4", "False", "(2,)"), 8);
  const std::span<const uint8_t> all(b);
  EXPECT_EQ(io::parse_npy_header(all.first(b.size() - 8), b.size(), "load_npy", "'t.npy'").data_bytes, 8u);
  EXPECT_EQ(message_of([&] { io::parse_npy_header(all.first(9), b.size(), "load_npy", "'t.npy'"); }),
            "[load_npy] 't.npy': the reader was given less than the preamble");
  EXPECT_EQ(message_of([&] { io::parse_npy_header(all.first(40), b.size(), "load_npy", "'t.npy'"); }),
            "[load_npy] 't.npy': the reader was given less than the header");
  EXPECT_EQ(message_of([&] { io::parse_npy_header(all, b.size() + 4, "load_npy", "'t.npy'"); }),
            "[load_npy] 't.npy' holds 12 data bytes; expected 8 for shape (2,) of '<f4' (and nothing after them)");
}

TEST_F(NumpyIo, LargeFilesAreReadPastTheHeaderBlock) {
  // Larger than the first block load_npy reads (1 MiB + 12 bytes): the rest comes from the file.
  const Tensor t = sample(DType::Float32, {3, 700000});
  io::save_npy(path("big.npy"), t);
  EXPECT_TRUE(same_bytes(io::load_npy(path("big.npy")), t));
  // The same for a Fortran-ordered file: element (i, j) of a [600, 1000] array is stored at j * 600 + i.
  Bytes f = npy_file(dict("<i4", "True", "(600, 1000)"), 0);
  for (int32_t n = 0; n < 600 * 1000; ++n)
    for (int k = 0; k < 4; ++k) f.push_back(static_cast<uint8_t>(n >> (8 * k)));
  write_bytes(path("f.npy"), f);
  const std::vector<int32_t> v = io::load_npy(path("f.npy")).to_vector<int32_t>();
  ASSERT_EQ(v.size(), 600000u);
  EXPECT_EQ(v[0], 0);
  EXPECT_EQ(v[1], 600);
  EXPECT_EQ(v[1000], 1);
  EXPECT_EQ(v[599 * 1000 + 999], 599999);
  EXPECT_EQ(v[123 * 1000 + 456], 456 * 600 + 123);
  // A truncated large file is refused by its size before anything is read.
  f.resize(f.size() - 1);
  write_bytes(path("f.npy"), f);
  EXPECT_EQ(message_of([&] { io::load_npy(path("f.npy")); }),
            "[load_npy] '" + path("f.npy") +
                "' holds 2399999 data bytes; expected 2400000 for shape (600, 1000) of '<i4' (the file is truncated)");
}

TEST_F(NumpyIo, FileErrorsNameThePath) {
  EXPECT_EQ(message_of([&] { io::load_npy(path("missing.npy")); }),
            "[load_npy] '" + path("missing.npy") + "' does not exist; expected a .npy file (np.save)");
  EXPECT_EQ(message_of([&] { io::load_npy(dir_.string()); }),
            "[load_npy] '" + dir_.string() + "' is a directory; expected a .npy file (np.save)");
}

// ---- .npz ----

#if KILN_WITH_LIBZIP

TEST(NumpyNpz, ReadsWhatNumpySavezWrites) {
  for (const std::string name : {"arrays.npz", "arrays_compressed.npz"}) {
    const io::NpzArrays a = io::load_npz(fixture(name));
    EXPECT_EQ(a.names(), (std::vector<std::string>{"x", "y", "z"})) << name;
    EXPECT_EQ(values_of<float>(a.at("x")), (std::vector<float>{-1, -0.5f, 0, 0.5f, 1, 1.5f}));
    EXPECT_EQ(a.at("x").shape(), (Shape{2, 3}));
    EXPECT_EQ(values_of<int32_t>(a.at("y")), (std::vector<int32_t>{0, 1, 2}));
    EXPECT_EQ(a.at("z").dtype(), DType::Float64);
    EXPECT_EQ(a.at("z").shape(), Shape{});
    EXPECT_EQ(a.at("z").item(), 2.5);
    EXPECT_TRUE(a.contains("y"));
    EXPECT_FALSE(a.contains("w"));
    int n = 0;
    for (const auto& [member, tensor] : a) n += tensor.defined() && !member.empty();
    EXPECT_EQ(n, 3);
    EXPECT_EQ(message_of([&] { a.at("w"); }), "[npz] no array is named 'w'; expected one of 'x', 'y', 'z'");
  }
}

TEST_F(NumpyIo, NpzRoundTripsSeveralArraysStoredAndCompressed) {
  const std::vector<io::NpzArrays::Item> arrays{{"features", sample(DType::Float32, {4, 3})},
                                                {"labels", sample(DType::Int32, {4})},
                                                {"scale", sample(DType::Float64, {})},
                                                {"empty", sample(DType::Int64, {0, 2})},
                                                {"pixels", sample(DType::UInt8, {2, 2, 3})}};
  for (const bool compress : {false, true}) {
    const std::string p = path(compress ? "c.npz" : "s.npz");
    io::save_npz(p, arrays, compress);
    const io::NpzArrays back = io::load_npz(p);
    ASSERT_EQ(back.size(), arrays.size());
    for (std::size_t i = 0; i < arrays.size(); ++i) {
      EXPECT_EQ(back.items()[i].first, arrays[i].first);
      EXPECT_TRUE(same_bytes(back.items()[i].second, arrays[i].second)) << arrays[i].first;
    }
    // The members are what np.savez names them.
    std::vector<std::string> members;
    for (const io::ZipEntry& e : io::read_zip("test", p)) members.push_back(e.name);
    EXPECT_EQ(members,
              (std::vector<std::string>{"features.npy", "labels.npy", "scale.npy", "empty.npy", "pixels.npy"}));
  }
  // Deflating a tensor of zeros shrinks it; storing does not.
  io::save_npz(path("z0.npz"), {{"z", Tensor::zeros({1000})}}, false);
  io::save_npz(path("z1.npz"), {{"z", Tensor::zeros({1000})}}, true);
  EXPECT_GT(fs::file_size(path("z0.npz")), 4000u);
  EXPECT_LT(fs::file_size(path("z1.npz")), 1000u);
}

TEST_F(NumpyIo, EmptyNpzRoundTrips) {
  io::save_npz(path("e.npz"), {});
  EXPECT_EQ(fs::file_size(path("e.npz")), 22u);
  EXPECT_EQ(io::load_npz(path("e.npz")).size(), 0u);
}

TEST_F(NumpyIo, NpzErrors) {
  const std::string p = path("a.npz");
  EXPECT_EQ(message_of([&] {
              io::save_npz(p, {{"", Tensor::ones({1})}});
            }),
            "[save_npz] an array for '" + p + "' has an empty name; expected a name");
  EXPECT_EQ(message_of([&] {
              io::save_npz(p, {{"x", Tensor::ones({1})}, {"x", Tensor::ones({1})}});
            }),
            "[save_npz] two arrays for '" + p + "' are named 'x'; expected unique names");
  EXPECT_EQ(message_of([&] {
              io::save_npz(p, {{"x", Tensor()}});
            }),
            "[save_npz] array 'x' for '" + p + "' is undefined; expected a tensor");
  EXPECT_FALSE(fs::exists(p));
  EXPECT_EQ(message_of([&] {
              io::NpzArrays({{"x", Tensor::ones({1})}, {"x", Tensor::ones({1})}});
            }),
            "[npz] two arrays are named 'x'; expected unique names");

  const std::string dup = fixture("duplicate.npz");
  // libzip refuses an archive with two members of one name; the .npz layer checks again.
  EXPECT_EQ(message_of([&] { io::load_npz(dup); }),
            "[load_npz] '" + dup + "' is not a readable zip archive: File already exists");
  const Bytes member = read_bytes(fixture("f4_2x3.npy"));
  EXPECT_EQ(message_of([&] {
              io::npz_from_entries({{"a.npy", member}, {"a.npy", member}}, "load_npz", "'d.npz'");
            }),
            "[load_npz] 'd.npz' holds two members named 'a.npy'; expected one array per name");
  EXPECT_EQ(message_of([&] {
              io::npz_from_entries({{".npy", member}}, "load_npz", "'d.npz'");
            }),
            "[load_npz] 'd.npz' member '.npy' is not named '<name>.npy'; expected only arrays, as np.savez writes "
            "them");
  const std::string other = fixture("not_an_array.npz");
  EXPECT_EQ(message_of([&] { io::load_npz(other); }),
            "[load_npz] '" + other +
                "' member 'readme.txt' is not named '<name>.npy'; expected only arrays, as np.savez writes them");
  // A member's own .npy errors name the archive and the member.
  const std::string npy = fixture("f4_2x3.npy");
  EXPECT_EQ(message_of([&] { io::load_npz(npy); }).rfind("[load_npz] '" + npy + "' is not a readable zip archive: ", 0),
            0u);
  Bytes bad = read_bytes(fixture("f4_2x3.npy"));
  bad.pop_back();
  io::write_zip("test", p, {{"x.npy", bad}});
  EXPECT_EQ(message_of([&] { io::load_npz(p); }),
            "[load_npz] '" + p +
                "' member 'x.npy' holds 23 data bytes; expected 24 for shape (2, 3) of '<f4' (the file is truncated)");
  EXPECT_EQ(message_of([&] { io::load_npz(path("missing.npz")); }),
            "[load_npz] '" + path("missing.npz") + "' does not exist; expected a zip archive");
}

// ---- the zip layer under .npz (and .keras) ----

TEST(ZipArchive, LimitsAreCheckedBeforeInflating) {
  const Bytes archive = read_bytes(fixture("arrays_compressed.npz"));
  EXPECT_EQ(io::read_zip_bytes("t", archive).size(), 3u);
  EXPECT_EQ(message_of([&] { io::read_zip_bytes("t", archive, 100); }),
            "[t] the zip archive in memory member 'x.npy' declares 152 bytes uncompressed; expected at most 100");
  EXPECT_EQ(message_of([&] { io::read_zip_bytes("t", archive, 1000, 200); }),
            "[t] the zip archive in memory declares more than 200 uncompressed bytes in all (up to member 'y.npy'); "
            "expected at most that");
  EXPECT_EQ(message_of([&] {
              io::read_zip_bytes("t", Bytes{1, 2, 3});
            }),
            "[t] the zip archive in memory is not a readable zip archive: Not a zip archive");
}

namespace {
// `archive` with every header's uncompressed-size field of its first member set to `size` (the
// local header at offset 22, the central directory's at 24 after its signature).
Bytes with_declared_size(Bytes archive, uint32_t size) {
  const auto put = [&](std::size_t at) {
    for (int i = 0; i < 4; ++i) archive[at + i] = static_cast<uint8_t>(size >> (8 * i));
  };
  put(22);
  for (std::size_t i = 0; i + 4 <= archive.size(); ++i)
    if (archive[i] == 'P' && archive[i + 1] == 'K' && archive[i + 2] == 1 && archive[i + 3] == 2) {
      put(i + 24);
      break;
    }
  return archive;
}
}  // namespace

TEST_F(NumpyIo, InflatedSizeMustBeTheDeclaredOne) {
  io::save_npz(path("c.npz"), {{"z", Tensor::zeros({100})}}, true);
  const Bytes archive = read_bytes(path("c.npz"));
  const uint32_t actual = 128 + 400;
  EXPECT_EQ(io::read_zip_bytes("t", with_declared_size(archive, actual)).at(0).bytes.size(), actual);
  const std::string more = message_of([&] { io::read_zip_bytes("t", with_declared_size(archive, actual - 1)); });
  const std::string less = message_of([&] { io::read_zip_bytes("t", with_declared_size(archive, actual + 1)); });
  EXPECT_EQ(more,
            "[t] the zip archive in memory member 'z.npy' inflates to more than its declared 527 bytes; expected "
            "exactly that many");
  EXPECT_EQ(less, "[t] the zip archive in memory member 'z.npy' inflates to 528 bytes; expected its declared 529");
}

#else  // !KILN_WITH_LIBZIP

TEST_F(NumpyIo, NpzNeedsLibzip) {
  EXPECT_EQ(message_of([&] { io::load_npz(path("a.npz")); }),
            "[load_npz] kiln was built without libzip; rebuild with libzip-dev installed");
  EXPECT_EQ(message_of([&] {
              io::save_npz(path("a.npz"), {{"x", Tensor::ones({1})}});
            }),
            "[save_npz] kiln was built without libzip; rebuild with libzip-dev installed");
  EXPECT_FALSE(fs::exists(path("a.npz")));
}

#endif

// ---- fuzzer regressions: every saved input must parse or throw kiln::Error, never crash ----

TEST(NumpyFuzz, RegressionInputsParseOrThrow) {
  const fs::path root = fs::path(KILN_TESTS_DIR) / "fuzz" / "regressions";
  int replayed = 0;
  for (const std::string target : {"npy", "npz"}) {
    std::error_code ec;
    if (!fs::is_directory(root / target, ec)) continue;
    for (const auto& entry : fs::directory_iterator(root / target)) {
      if (!entry.is_regular_file() || entry.path().filename().string().starts_with(".")) continue;
      const Bytes bytes = read_bytes(entry.path().string());
      try {
        if (target == "npy") {
          io::load_npy_bytes(bytes, "load_npy", entry.path().filename().string());
        } else {
          io::npz_from_entries(io::read_zip_bytes("load_npz", bytes, uint64_t{1} << 24, uint64_t{1} << 26), "load_npz",
                               entry.path().filename().string());
        }
      } catch (const Error&) {
        // A clear error is the right answer to a malformed input.
      }
      ++replayed;
    }
  }
  RecordProperty("replayed", replayed);
  EXPECT_GT(replayed, 0) << "tests/fuzz/regressions/{npy,npz} hold edge inputs to replay";
}
