#include "tensor/json.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "io/io_test_util.h"

namespace scalpel {
namespace {

using io_test::error_of;

TEST(Json, ParsesEveryType) {
  const Json j = Json::parse(R"( {"a": null, "b": [true, false], "c": -12.5e1, "d": "x\ty",
                                  "e": {}, "f": []} )");
  EXPECT_TRUE(j.at("a").is_null());
  EXPECT_TRUE(j.at("b")[0].as_bool());
  EXPECT_FALSE(j.at("b")[1].as_bool());
  EXPECT_EQ(j.at("c").as_number(), -125.0);
  EXPECT_EQ(j.at("d").as_string(), "x\ty");
  EXPECT_EQ(j.at("e").size(), 0u);
  EXPECT_EQ(j.at("f").size(), 0u);
  EXPECT_EQ(j.size(), 6u);
}

TEST(Json, KeepsInsertionOrder) {
  Json j = Json::object();
  j["zeta"] = 1;
  j["alpha"] = 2;
  j["mid"] = 3;
  j["alpha"] = 4;  // assignment keeps the original position
  EXPECT_EQ(j.dump(), R"({"zeta":1,"alpha":4,"mid":3})");
  const Json parsed = Json::parse(R"({"b": 1, "a": 2})");
  EXPECT_EQ(parsed.as_object()[0].first, "b");
  EXPECT_EQ(parsed.as_object()[1].first, "a");
}

TEST(Json, BuildsAndDumpsPretty) {
  Json j;
  j["model"] = "resnet18";
  j["classes"] = Json::array({"cat", "dog"});
  j["metrics"]["accuracy"] = 0.75;
  j["empty"] = Json::object();
  Json list;
  list.push_back(1);
  list.push_back(Json());
  j["list"] = list;
  EXPECT_EQ(j.dump(2),
            "{\n"
            "  \"model\": \"resnet18\",\n"
            "  \"classes\": [\n    \"cat\",\n    \"dog\"\n  ],\n"
            "  \"metrics\": {\n    \"accuracy\": 0.75\n  },\n"
            "  \"empty\": {},\n"
            "  \"list\": [\n    1,\n    null\n  ]\n"
            "}");
  EXPECT_EQ(Json::parse(j.dump(2)), j);
  EXPECT_EQ(Json::parse(j.dump()), j);
}

TEST(Json, DoublesRoundTripExactly) {
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<uint64_t> bits;
  int tested = 0;
  while (tested < 2000) {
    const uint64_t b = bits(rng);
    double value;
    std::memcpy(&value, &b, sizeof value);
    if (!std::isfinite(value)) continue;
    const Json parsed = Json::parse(Json(value).dump());
    ASSERT_EQ(parsed.as_number(), value) << Json(value).dump();
    ++tested;
  }
  for (const double value : {0.1, 1.0 / 3.0, 1e-320, 5e-324, 1.7976931348623157e308, -0.0, 1e21}) {
    EXPECT_EQ(Json::parse(Json(value).dump()).as_number(), value) << Json(value).dump();
  }
  EXPECT_EQ(Json(3).dump(), "3");
  EXPECT_EQ(Json(int64_t{9007199254740992}).dump(), "9007199254740992");
}

TEST(Json, NonFiniteNumbersDumpAsNull) {
  EXPECT_EQ(Json(std::numeric_limits<double>::quiet_NaN()).dump(), "null");
  EXPECT_EQ(Json(std::numeric_limits<double>::infinity()).dump(), "null");
}

TEST(Json, StringsEscapeAndUnicode) {
  const std::string tricky = "quote\" backslash\\ newline\n tab\t bell\x07 caf\xc3\xa9 \xf0\x9f\x98\x80";
  const std::string text = Json(tricky).dump();
  EXPECT_EQ(text, "\"quote\\\" backslash\\\\ newline\\n tab\\t bell\\u0007 caf\xc3\xa9 \xf0\x9f\x98\x80\"");
  EXPECT_EQ(Json::parse(text).as_string(), tricky);
  // \u escapes, including a surrogate pair, decode to UTF-8.
  EXPECT_EQ(Json::parse(R"("\u00e9\ud83d\ude00\/")").as_string(), "\xc3\xa9\xf0\x9f\x98\x80/");
}

TEST(Json, IntegersAreChecked) {
  EXPECT_EQ(Json::parse("123456789012").as_int(), 123456789012);
  EXPECT_EQ(Json::parse("-4").as_int(), -4);
  EXPECT_NE(error_of([] { Json::parse("1.5").as_int(); }).find("expected an integer"),
            std::string::npos);
  EXPECT_NE(error_of([] { Json::parse("1e30").as_int(); }).find("expected an integer"),
            std::string::npos);
}

TEST(Json, AccessErrorsNameTheProblem) {
  const Json j = Json::parse(R"({"present": 1, "list": [1]})");
  EXPECT_EQ(error_of([&] { j.at("absent"); }), "JSON: missing key \"absent\"");
  EXPECT_EQ(error_of([&] { j["absent"]; }), "JSON: missing key \"absent\"");  // const: no insert
  EXPECT_EQ(j["present"].as_int(), 1);
  EXPECT_EQ(error_of([&] { j.at("present").as_string(); }), "JSON: expected string, got number");
  EXPECT_EQ(error_of([&] { j.at("list").at(3); }), "JSON: index 3 out of range for an array of 1");
  EXPECT_EQ(error_of([&] { j.at("list").at("x"); }), "JSON: expected object, got array");
  EXPECT_FALSE(j.contains("absent"));
  EXPECT_EQ(j.find("absent"), nullptr);
}

TEST(Json, ParseErrorsGivePosition) {
  EXPECT_EQ(error_of([] { Json::parse("{\n  \"a\": 1,\n  \"b\" 2\n}", "config.json"); }),
            "config.json: invalid JSON at line 3, column 7 (byte 18): expected ':' after object key");
  EXPECT_EQ(error_of([] { Json::parse(R"({"a": 1, "a": 2})"); }),
            "JSON: invalid JSON at line 1, column 10 (byte 9): duplicate key \"a\"");
}

TEST(Json, RejectsInvalidText) {
  const char* bad[] = {
      "",          "   ",        "nul",        "[1,]",         "{\"a\":1,}",  "[1 2]",
      "01",        "-",          "1.",         ".5",           "1e",          "+1",
      "\"abc",     "\"\\x\"",    "\"\\u12\"",  "\"\\ud800\"",  "\"\\udc00\"", "\"a\nb\"",
      "{a:1}",     "[1] [2]",    "'a'",        "NaN",          "Infinity",    "1e400",
      "\"\xff\"",  "\"\xc0\xaf\"", "\"\xed\xa0\x80\"", "// c\n1", "[",         "{\"a\"",
  };
  for (const char* text : bad) {
    EXPECT_THROW(Json::parse(text), Error) << "accepted: " << text;
  }
  EXPECT_THROW(Json::parse(std::string(600, '[') + std::string(600, ']')), Error);
  EXPECT_NO_THROW(Json::parse(std::string(500, '[') + std::string(500, ']')));
}

}  // namespace
}  // namespace scalpel
