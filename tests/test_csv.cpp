// load_csv: header and no header, column and label selection by name and position, RFC 4180
// quoting, the numbers std::from_chars reads, every error message, a file NumPy wrote, and the
// fuzzer's regression inputs.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "kiln/kiln.h"
#include "kiln/utils/csv.h"
#include "test_support.h"
#include "utils/csv_parse.h"

using namespace kiln;
namespace fs = std::filesystem;
using kiln::testing::message_of;
using kiln::testing::process_id;
using utils::CsvData;
using utils::CsvOptions;

namespace {

// The CSV text `text` read as the file "data.csv".
CsvData parse(const std::string& text, const CsvOptions& options = {}) {
  return utils::parse_csv(text, "data.csv", options);
}

std::string error_of(const std::string& text, const CsvOptions& options = {}) {
  return message_of([&] { parse(text, options); });
}

std::vector<float> values(const Tensor& t) { return t.to_vector<float>(); }

}  // namespace

TEST(Csv, HeaderAndLabelByName) {
  const CsvData d = parse("x1,x2,price\n1,2,10\n3,4,20\n5,6,30\n", {.label_column = "price"});
  EXPECT_EQ(d.features.shape(), (Shape{3, 2}));
  EXPECT_EQ(d.features.dtype(), DType::Float32);
  EXPECT_EQ(values(d.features), (std::vector<float>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(d.labels.shape(), (Shape{3, 1}));
  EXPECT_EQ(values(d.labels), (std::vector<float>{10, 20, 30}));
  EXPECT_EQ(d.feature_names, (std::vector<std::string>{"x1", "x2"}));
  EXPECT_EQ(d.label_name, "price");
}

TEST(Csv, WithoutLabelEveryColumnIsAFeature) {
  const CsvData d = parse("a,b\n1,2\n3,4\n");
  EXPECT_EQ(d.features.shape(), (Shape{2, 2}));
  EXPECT_FALSE(d.labels.defined());
  EXPECT_TRUE(d.label_name.empty());
}

TEST(Csv, LabelByPositionAndFromTheEnd) {
  const std::string text = "7,1,2\n8,3,4\n";
  const CsvData first = parse(text, {.header = false, .label_column = 0});
  EXPECT_EQ(values(first.labels), (std::vector<float>{7, 8}));
  EXPECT_EQ(values(first.features), (std::vector<float>{1, 2, 3, 4}));
  EXPECT_EQ(first.feature_names, (std::vector<std::string>{"1", "2"}));
  EXPECT_EQ(first.label_name, "0");
  const CsvData last = parse(text, {.header = false, .label_column = -1});
  EXPECT_EQ(values(last.labels), (std::vector<float>{2, 4}));
  EXPECT_EQ(values(last.features), (std::vector<float>{7, 1, 8, 3}));
}

TEST(Csv, ColumnsSelectAndOrderFeatures) {
  // Only the selected columns must be numbers: the name column holds text.
  const std::string text = "name,a,b,c\nann,1,2,3\nbob,4,5,6\n";
  const CsvData d = parse(text, {.columns = {"c", "a"}, .label_column = "b"});
  EXPECT_EQ(values(d.features), (std::vector<float>{3, 1, 6, 4}));
  EXPECT_EQ(d.feature_names, (std::vector<std::string>{"c", "a"}));
  EXPECT_EQ(values(d.labels), (std::vector<float>{2, 5}));
  const CsvData by_position = parse(text, {.columns = {3, "a"}});
  EXPECT_EQ(values(by_position.features), (std::vector<float>{3, 1, 6, 4}));
}

TEST(Csv, QuotedFieldsFollowRfc4180) {
  const std::string text =
      "\"id\",\"note\",\"value\"\r\n"
      "\"1\",\"Smith, John\",\" 2.5 \"\r\n"
      "2,\"said \"\"hi\"\"\",\"3\"\r\n"
      "3,\"two\nlines\",4\r\n"
      "4,\"\",5\r\n";
  const CsvData d = parse(text, {.columns = {"id"}, .label_column = "value"});
  EXPECT_EQ(values(d.features), (std::vector<float>{1, 2, 3, 4}));
  EXPECT_EQ(values(d.labels), (std::vector<float>{2.5f, 3, 4, 5}));
  // A line break inside quotes is counted: the record after it starts on line 7.
  EXPECT_EQ(error_of(text + "x,a,1\r\n", {.columns = {"id"}, .label_column = "value"}),
            "[load_csv] data.csv line 7, column 'id': 'x' is not a number; expected a decimal number such as 3, -2.5, "
            "1e-3, nan or inf");
}

TEST(Csv, BomBlankLinesSpacesAndLineEndings) {
  const CsvData d = parse(
      "\xEF\xBB\xBF"
      "a , b\n\n 1 ,\t2\r\n   \n3,4\r5,6",
      {.label_column = "b"});
  EXPECT_EQ(d.feature_names, (std::vector<std::string>{"a"}));
  EXPECT_EQ(values(d.features), (std::vector<float>{1, 3, 5}));
  EXPECT_EQ(values(d.labels), (std::vector<float>{2, 4, 6}));
}

TEST(Csv, NumbersAsFromCharsReadsThem) {
  const CsvData d = parse("v\n+1.5\n-2\n1e-3\n.5\n1e-50\nnan\n-inf\n16777217\n", {});
  const std::vector<float> v = values(d.features);
  ASSERT_EQ(v.size(), 8u);
  EXPECT_EQ(v[0], 1.5f);
  EXPECT_EQ(v[1], -2.0f);
  EXPECT_EQ(v[2], 1e-3f);
  EXPECT_EQ(v[3], 0.5f);
  EXPECT_EQ(v[4], 0.0f);  // below float32's smallest subnormal: rounds to zero
  EXPECT_TRUE(std::isnan(v[5]));
  EXPECT_TRUE(std::isinf(v[6]) && v[6] < 0);
  EXPECT_EQ(v[7], 16777216.0f);  // rounded to the nearest float32
}

TEST(Csv, NumberErrorsNameFileLineAndColumn) {
  const std::string tail = "; expected a decimal number such as 3, -2.5, 1e-3, nan or inf";
  EXPECT_EQ(error_of("a,price\n1,2\n1,2\n1,2\n1,2\n1,2\n1,abc\n"),
            "[load_csv] data.csv line 7, column 'price': 'abc' is not a number" + tail);
  EXPECT_EQ(error_of("1,2\n3,4x\n", {.header = false}),
            "[load_csv] data.csv line 2, column 1: '4x' is not a number" + tail);
  EXPECT_EQ(error_of("a,b\n1,\n"),
            "[load_csv] data.csv line 2, column 'b': the field is empty; expected a number (kiln does not fill in "
            "missing values)");
  EXPECT_EQ(error_of("a\n1e39\n"),
            "[load_csv] data.csv line 2, column 'a': '1e39' is out of float32's range; expected a magnitude below "
            "3.4e38");
  EXPECT_EQ(error_of("a\n1e999\n"),
            "[load_csv] data.csv line 2, column 'a': '1e999' is out of float32's range; expected a magnitude below "
            "3.4e38");
  EXPECT_EQ(error_of("a\n+-1\n"), "[load_csv] data.csv line 2, column 'a': '+-1' is not a number" + tail);
  // A label is checked as a number too.
  EXPECT_EQ(error_of("a,y\n1,cat\n", {.label_column = "y"}),
            "[load_csv] data.csv line 2, column 'y': 'cat' is not a number" + tail);
}

TEST(Csv, ShapeErrors) {
  EXPECT_EQ(error_of("a,b\n1,2\n3\n"), "[load_csv] data.csv line 3 has 1 fields; expected 2 (as line 1)");
  EXPECT_EQ(error_of("a,b\n1,2,3\n"), "[load_csv] data.csv line 2 has 3 fields; expected 2 (as line 1)");
  EXPECT_EQ(error_of(""), "[load_csv] data.csv has no records; expected a header row and at least one row of numbers");
  EXPECT_EQ(error_of("\n\n", {.header = false}),
            "[load_csv] data.csv has no records; expected at least one row of numbers");
  EXPECT_EQ(error_of("a,b\n"),
            "[load_csv] data.csv has a header but no data rows; expected at least one row of numbers");
}

TEST(Csv, ColumnErrors) {
  const std::string text = "a,b,a\n1,2,3\n";
  EXPECT_EQ(error_of(text, {.label_column = "price"}),
            "[load_csv] data.csv has no column 'price' (label_column); expected one of 'a', 'b', 'a'");
  EXPECT_EQ(error_of(text, {.columns = {"c"}}),
            "[load_csv] data.csv has no column 'c' (columns entry); expected one of 'a', 'b', 'a'");
  EXPECT_EQ(error_of(text, {.columns = {"a"}}),
            "[load_csv] data.csv has 2 columns named 'a' (columns entry); expected a unique name, or a 0-based "
            "position");
  EXPECT_EQ(error_of(text, {.label_column = 3}),
            "[load_csv] label_column 3 is past the columns of data.csv (3); expected -3 to 2");
  EXPECT_EQ(error_of(text, {.columns = {-4}}),
            "[load_csv] columns entry -4 is past the columns of data.csv (3); expected -3 to 2");
  EXPECT_EQ(error_of("1,2\n", {.header = false, .label_column = "y"}),
            "[load_csv] label_column 'y' is a name, but data.csv is read without a header (header = false); expected "
            "a 0-based position");
  EXPECT_EQ(error_of(text, {.columns = {1, 2}, .label_column = "b"}),
            "[load_csv] column 'b' of data.csv is both the label column and a feature column; expected it in one of "
            "them");
  EXPECT_EQ(error_of("1\n2\n", {.header = false, .label_column = 0}),
            "[load_csv] data.csv has no feature column besides the label column 0; expected at least one");
}

TEST(Csv, QuoteErrors) {
  EXPECT_EQ(error_of("a,b\n1,2\"3\n"),
            "[load_csv] data.csv line 2, field 1: a quote inside an unquoted field; expected the whole field in "
            "quotes, with each quote in it doubled");
  EXPECT_EQ(error_of("a,b\n1,\"2\"3\n"),
            "[load_csv] data.csv line 2, field 1: '3' after a closing quote; expected a comma or the end of the line");
  EXPECT_EQ(error_of("a,b\n1,2\n3,\"4\n5,6\n"),
            "[load_csv] data.csv line 3, field 1: a quoted field is not closed before the end of the file; expected a "
            "closing '\"'");
}

class CsvFile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("kiln_csv_" + std::to_string(process_id()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(CsvFile, ReadsAFileNumpyWrote) {
  // np.savetxt("houses.csv", ..., delimiter=",", header="bedrooms,price", comments="", fmt="%g")
  const std::string p = (fs::path(KILN_TESTS_DIR) / "data" / "numpy" / "houses.csv").string();
  const CsvData d = utils::load_csv(p, {.label_column = "price"});
  EXPECT_EQ(values(d.features), (std::vector<float>{1, 2, 3}));
  EXPECT_EQ(values(d.labels), (std::vector<float>{5, 6.5f, 8}));
  EXPECT_EQ(d.feature_names, (std::vector<std::string>{"bedrooms"}));
}

TEST_F(CsvFile, ErrorsNameThePath) {
  const std::string p = (dir_ / "data.csv").string();
  EXPECT_EQ(message_of([&] { utils::load_csv(p); }), "[load_csv] '" + p + "' does not exist; expected a CSV file");
  std::ofstream(p) << "x,y\n1,oops\n";
  EXPECT_EQ(message_of([&] { utils::load_csv(p); }),
            "[load_csv] " + p +
                " line 2, column 'y': 'oops' is not a number; expected a decimal number such as 3, -2.5, 1e-3, nan or "
                "inf");
}

TEST(CsvFuzz, RegressionInputsParseOrThrow) {
  const fs::path dir = fs::path(KILN_TESTS_DIR) / "fuzz" / "regressions" / "csv";
  int replayed = 0;
  std::error_code ec;
  if (fs::is_directory(dir, ec)) {
    for (const auto& entry : fs::directory_iterator(dir)) {
      if (!entry.is_regular_file() || entry.path().filename().string().starts_with(".")) continue;
      std::ifstream in(entry.path(), std::ios::binary);
      const std::string bytes((std::istreambuf_iterator<char>(in)), {});
      if (bytes.empty()) continue;
      // The first byte picks the options, as fuzz_csv.cpp decodes it.
      const auto b = static_cast<uint8_t>(bytes[0]);
      CsvOptions options{.header = (b & 1) != 0};
      if (b & 2) options.label_column = static_cast<int64_t>((b >> 2) & 3) - 1;
      if (b & 32) options.columns = {int64_t{0}};
      try {
        utils::parse_csv(std::string_view(bytes).substr(1), entry.path().filename().string(), options);
      } catch (const Error&) {
        // A clear error is the right answer to a malformed input.
      }
      ++replayed;
    }
  }
  RecordProperty("replayed", replayed);
  EXPECT_GT(replayed, 0) << "tests/fuzz/regressions/csv holds edge inputs to replay";
}
