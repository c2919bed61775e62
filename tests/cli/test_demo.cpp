// `scalpel demo` end to end in a tiny setting (12 synthetic images per class at 32x32, one
// epoch of mobilenet_v2 x0.35): the report, metrics.json and the headline.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "support/cli_runner.h"
#include "tensor/json.h"

namespace scalpel::test {
namespace {

namespace fs = std::filesystem;

TEST(Demo, TinyRunWritesTheReportAndPrintsTheHeadline) {
  const fs::path out = fs::temp_directory_path() / fmt::format("scalpel-demo-{}", getpid());
  fs::remove_all(out);
  const auto t0 = std::chrono::steady_clock::now();
  const CliResult r = run_cli({"demo", "--out", out.string(), "--images", "12", "--size", "32", "--epochs", "1",
                               "--batch", "8", "--model", "mobilenet_v2"});
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  RecordProperty("seconds", fmt::format("{:.1f}", seconds));

  EXPECT_NE(r.out.find("SYNTHETIC"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("accuracy"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("macro AUC"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(fmt::format("report: {}/report/report.html", out.string())), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find('\r'), std::string::npos) << "no progress bar when stdout is a file";
  EXPECT_TRUE(fs::is_regular_file(out / "report" / "report.html"));

  std::ifstream in(out / "report" / "metrics.json");
  std::stringstream text;
  text << in.rdbuf();
  const Json metrics = Json::parse(text.str(), "metrics.json");
  ASSERT_EQ(metrics.at("classes").size(), 2u);
  const double accuracy = metrics.at("accuracy").as_number();
  EXPECT_GE(accuracy, 0.0);
  EXPECT_LE(accuracy, 1.0);
  // The headline prints the same accuracy as metrics.json.
  EXPECT_NE(r.out.find(fmt::format("accuracy {:.3f}", accuracy)), std::string::npos) << r.out;
  fs::remove_all(out);
}

}  // namespace
}  // namespace scalpel::test
