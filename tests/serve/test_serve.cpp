// `scalpel serve` over real HTTP: an in-process server on a free loopback port with a small
// randomly initialized resnet18 (3 classes, 64x64 input stored in its checkpoint).
#include <httplib.h>

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "apps/args.h"
#include "apps/model_flags.h"
#include "apps/serve/server.h"
#include "data/image.h"
#include "models/checkpoint.h"
#include "models/registry.h"
#include "tensor/json.h"

namespace scalpel {
namespace {
namespace fs = std::filesystem;

const std::vector<std::string> kClasses = {"benign", "malignant", "normal"};

std::string test_png() {
  data::Image image(48, 40, 3);
  for (int y = 0; y < image.height; ++y)
    for (int x = 0; x < image.width; ++x)
      for (int c = 0; c < 3; ++c) image.at(y, x, c) = static_cast<uint8_t>((x * 5 + y * 3 + c * 70) % 256);
  const std::vector<uint8_t> png = data::encode_png(image);
  return std::string(png.begin(), png.end());
}

class ServeTest : public ::testing::Test {
 protected:
  static constexpr size_t kMaxUpload = 256 * 1024;

  static void SetUpTestSuite() {
    root_ = fs::temp_directory_path() / ("scalpel_serve_" + std::to_string(::getpid()));
    fs::create_directories(root_ / "reports" / "run1");
    std::ofstream(root_ / "reports" / "run1" / "report.html") << "<html>run1 report</html>";
    std::ofstream(root_ / "secret.txt") << "top secret";
    fs::create_symlink(root_ / "secret.txt", root_ / "reports" / "link.txt");

    models::ModelOptions options;
    options.classes = 3;
    const auto model = models::create_model("resnet18", options);
    data::Preprocess p;
    p.width = p.height = 64;
    const std::string weights = (root_ / "tiny.safetensors").string();
    models::save_checkpoint(weights, *model, {"resnet18", options, kClasses, cli::preprocess_to_json(p)});

    cli::Args args("serve", "");
    cli::add_model_flags(args);
    args.parse({"--weights", weights});
    served_ = {serve::load_served_model(args, "tiny"), serve::load_served_model(args, "tiny2")};
    serve::ServeOptions o;
    o.port = 0;
    o.max_upload_bytes = kMaxUpload;
    o.threads = 4;
    o.queue = 3;
    o.timeout_s = 10;
    o.reports_dir = (root_ / "reports").string();
    server_ = new serve::Server(served_, o);
    port_ = server_->bind();
    thread_ = new std::thread([] { server_->run(); });
  }

  static void TearDownTestSuite() {
    server_->stop();
    thread_->join();
    delete thread_;
    delete server_;
    served_.clear();
    fs::remove_all(root_);
  }

  static httplib::Client client() {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(30, 0);
    return c;
  }

  static httplib::Result post(const std::string& route, const std::string& content, const std::string& model = "",
                              const std::string& filename = "x.png") {
    httplib::MultipartFormDataItems items = {{"image", content, filename, "application/octet-stream"}};
    if (!model.empty()) items.push_back({"model", model, "", ""});
    return client().Post(route.c_str(), items);
  }

  static void expect_json_error(const httplib::Result& r, int status) {
    ASSERT_TRUE(r) << httplib::to_string(r.error());
    EXPECT_EQ(r->status, status) << r->body;
    const Json body = Json::parse(r->body);
    EXPECT_FALSE(body["error"].as_string().empty());
  }

  static inline fs::path root_;
  static inline std::vector<std::shared_ptr<serve::ServedModel>> served_;
  static inline serve::Server* server_ = nullptr;
  static inline std::thread* thread_ = nullptr;
  static inline int port_ = 0;
};

TEST_F(ServeTest, PageIsSelfContained) {
  auto r = client().Get("/");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_NE(r->body.find("not a diagnosis"), std::string::npos);
  EXPECT_EQ(r->body.find("http://"), std::string::npos);  // no CDN or external fonts
  EXPECT_EQ(r->body.find("https://"), std::string::npos);
  EXPECT_NE(r->body.find("href=\"/reports\""), std::string::npos);  // this server has --reports
}

TEST(ServePage, LinksToReportsOnlyWhenServed) {
  EXPECT_NE(serve::page_html(true).find("href=\"/reports\""), std::string::npos);
  const std::string without = serve::page_html(false);
  EXPECT_EQ(without.find("/reports"), std::string::npos);
  EXPECT_NE(without.find("<header><h1>scalpel</h1>"), std::string::npos);  // the rest is intact
  EXPECT_NE(without.find("loadModels();"), std::string::npos);
}

TEST_F(ServeTest, ListsModels) {
  auto r = client().Get("/api/models");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  const Json list = Json::parse(r->body);
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0]["name"].as_string(), "tiny");
  EXPECT_EQ(list[1]["name"].as_string(), "tiny2");
  ASSERT_EQ(list[0]["classes"].size(), 3u);
  EXPECT_EQ(list[0]["classes"][1].as_string(), "malignant");
}

TEST_F(ServeTest, PredictsProbabilities) {
  auto r = post("/api/predict", test_png(), "tiny2");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const Json body = Json::parse(r->body);
  EXPECT_EQ(body["model"].as_string(), "tiny2");
  double sum = 0;
  for (const std::string& c : kClasses) sum += body["probs"][c].as_number();
  EXPECT_NEAR(sum, 1.0, 1e-5);
  ASSERT_EQ(body["top"].size(), 3u);
  const std::string best = body["top"][0]["class"].as_string();
  EXPECT_DOUBLE_EQ(body["top"][0]["p"].as_number(), body["probs"][best].as_number());
  EXPECT_GE(body["top"][0]["p"].as_number(), body["top"][1]["p"].as_number());
}

TEST_F(ServeTest, GradcamAnswersPngAtInputSize) {
  auto r = post("/api/gradcam", test_png());
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(r->get_header_value("Content-Type"), "image/png");
  const data::Image overlay = data::decode_image(r->body.data(), r->body.size(), "gradcam.png");
  EXPECT_EQ(overlay.width, 64);
  EXPECT_EQ(overlay.height, 64);
  EXPECT_NE(std::find(kClasses.begin(), kClasses.end(), r->get_header_value("X-Class")), kClasses.end());
}

TEST_F(ServeTest, BadUploadsAre400) {
  expect_json_error(post("/api/predict", "this is not an image", "", "notes.txt"), 400);
  const std::string png = test_png();
  expect_json_error(post("/api/predict", png.substr(0, png.size() / 2)), 400);  // truncated
  expect_json_error(post("/api/gradcam", png.substr(0, 40)), 400);
  expect_json_error(post("/api/predict", ""), 400);
  expect_json_error(client().Post("/api/predict", "{}", "application/json"), 400);  // not a form
  expect_json_error(post("/api/predict", png, "no_such_model"), 404);
}

TEST_F(ServeTest, OversizeUploadIsRefused) {
  auto r = post("/api/predict", std::string(2 * kMaxUpload, 'x'));
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  EXPECT_EQ(r->status, 413);
  EXPECT_EQ(client().Get("/api/models")->status, 200);
}

TEST_F(ServeTest, ReportsCannotEscapeTheirFolder) {
  auto index = client().Get("/reports");
  ASSERT_TRUE(index);
  EXPECT_NE(index->body.find("run1/report.html"), std::string::npos);
  auto page = client().Get("/reports/run1/report.html");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  EXPECT_EQ(page->body, "<html>run1 report</html>");
  for (const char* path : {"/reports/../secret.txt", "/reports/run1/../../secret.txt", "/reports/..%2Fsecret.txt",
                           "/reports/%2e%2e/secret.txt", "/reports/link.txt", "/reports//etc/passwd"}) {
    auto r = client().Get(path);
    ASSERT_TRUE(r) << path;
    EXPECT_NE(r->status, 200) << path;
    EXPECT_EQ(r->body.find("top secret"), std::string::npos) << path;
  }
}

TEST_F(ServeTest, BurstIsServedOrRefusedAndServerSurvives) {
  const std::string png = test_png();
  std::vector<int> status(20, 0);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < status.size(); ++i)
    threads.emplace_back([&, i] {
      auto r = post(i % 4 == 0 ? "/api/gradcam" : "/api/predict", png);
      status[i] = r ? r->status : -1;
    });
  for (auto& t : threads) t.join();
  int ok = 0;
  for (int s : status) {
    EXPECT_TRUE(s == 200 || s == 503) << s;
    ok += s == 200;
  }
  EXPECT_GE(ok, 1);
  auto after = post("/api/predict", png);
  ASSERT_TRUE(after);
  EXPECT_EQ(after->status, 200);
}

TEST_F(ServeTest, FullQueueAnswers503) {
  // A second server admitting one request: while the model's mutex is held, one of two
  // concurrent requests waits (admitted) and the other must be refused at once.
  serve::ServeOptions o;
  o.port = 0;
  o.queue = 1;
  serve::Server server(served_, o);
  const int port = server.bind();
  std::thread runner([&] { server.run(); });
  const std::string png = test_png();
  std::atomic<int> first{0};
  std::vector<int> status(2, 0);
  std::vector<std::thread> requests;
  {
    std::unique_lock<std::mutex> hold(served_[0]->mutex);
    for (int i = 0; i < 2; ++i)
      requests.emplace_back([&, i] {
        httplib::Client c("127.0.0.1", port);
        c.set_read_timeout(30, 0);
        auto r = c.Post("/api/predict", httplib::MultipartFormDataItems{{"image", png, "x.png", "image/png"}});
        status[i] = r ? r->status : -1;
        int expected = 0;
        first.compare_exchange_strong(expected, status[i]);
      });
    for (int waited = 0; first.load() == 0 && waited < 1000; ++waited)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT_EQ(first.load(), 503);  // answered while the other still waits for the model
  }
  for (auto& t : requests) t.join();
  std::sort(status.begin(), status.end());
  EXPECT_EQ(status, (std::vector<int>{200, 503}));
  server.stop();
  runner.join();
}

TEST_F(ServeTest, StopEndsRunWhateverTheOrder) {
  // httplib ignores a stop before it listens; Server::stop must not (a Ctrl-C right after
  // start-up would otherwise leave run() serving forever).
  serve::ServeOptions o;
  o.port = 0;
  serve::Server before_run(served_, o);
  before_run.bind();
  before_run.stop();
  EXPECT_TRUE(before_run.run());  // returns at once

  for (int attempt = 0; attempt < 20; ++attempt) {  // stop() racing with run()'s start-up
    serve::Server racing(served_, o);
    racing.bind();
    std::thread runner([&] { racing.run(); });
    racing.stop();
    runner.join();
  }
}

}  // namespace
}  // namespace scalpel
