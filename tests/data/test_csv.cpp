#include <gtest/gtest.h>

#include "data/csv.h"
#include "data_test_util.h"
#include "tensor/error.h"

namespace scalpel::data {
namespace {

TEST(Csv, Rfc4180Quoting) {
  const CsvTable t = parse_csv("\xEF\xBB\xBF" "a,b,c\r\n1,\"x, y\",\"say \"\"hi\"\"\"\r\n\n2,\"multi\nline\",\r\n", "t.csv");
  EXPECT_EQ(t.header, (std::vector<std::string>{"a", "b", "c"}));
  ASSERT_EQ(t.rows.size(), 2u);
  EXPECT_EQ(t.rows[0], (std::vector<std::string>{"1", "x, y", "say \"hi\""}));
  EXPECT_EQ(t.rows[1], (std::vector<std::string>{"2", "multi\nline", ""}));
  EXPECT_EQ(t.row_lines, (std::vector<int>{2, 4}));
  EXPECT_EQ(t.require("c"), 2);
  EXPECT_EQ(t.find("zzz"), -1);
  try {
    t.require("zzz");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("t.csv"), std::string::npos);
  }
}

TEST(Csv, ErrorsNameFileAndLine) {
  auto message = [](const std::string& text) {
    try {
      parse_csv(text, "bad.csv");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message("a,b\n1,2\n3\n").find("bad.csv' line 3"), std::string::npos);
  EXPECT_NE(message("a,b\n1,\"open\n").find("unterminated"), std::string::npos);
  EXPECT_NE(message("a,b\n1,\"x\"y\n").find("after a closing quote"), std::string::npos);
  EXPECT_EQ(parse_csv("h\n5'3\"\n").rows[0][0], "5'3\"");  // lenient: literal quote
  EXPECT_NE(message("").find("empty"), std::string::npos);
}

TEST(Csv, WriteThenReadRoundTrips) {
  testing::TempDir dir;
  const std::vector<std::string> header = {"path", "note"};
  const std::vector<std::vector<std::string>> rows = {{"a.png", "plain"}, {"b,c.png", "quote \" and\nnewline"}};
  write_csv(dir / "out.csv", header, rows);
  const CsvTable t = read_csv(dir / "out.csv");
  EXPECT_EQ(t.header, header);
  EXPECT_EQ(t.rows, rows);
  EXPECT_THROW(read_csv(dir / "missing.csv"), Error);
}

}  // namespace
}  // namespace scalpel::data
