// `scalpel serve` over real HTTP: an in-process server on a free loopback port with a small
// randomly initialized resnet18 (3 classes, 64x64 input stored in its checkpoint).
#include <httplib.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "apps/args.h"
#include "apps/model_flags.h"
#include "apps/serve/server.h"
#include "data/image.h"
#include "models/checkpoint.h"
#include "models/registry.h"
#include "support/hostile_inputs.h"
#include "tensor/error.h"
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

// Starts one /api/predict thread per entry of `status`; each writes its HTTP status there (-1:
// no answer) and the first status to arrive goes to `first`.
std::vector<std::thread> start_predicts(int port, const std::string& png, std::vector<int>& status,
                                        std::atomic<int>& first) {
  std::vector<std::thread> requests;
  for (size_t i = 0; i < status.size(); ++i)
    requests.emplace_back([&, port, i] {
      httplib::Client c("127.0.0.1", port);
      c.set_read_timeout(30, 0);
      auto r = c.Post("/api/predict", httplib::MultipartFormDataItems{{"image", png, "x.png", "image/png"}});
      status[i] = r ? r->status : -1;
      int expected = 0;
      first.compare_exchange_strong(expected, status[i]);
    });
  return requests;
}

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

// A raw loopback connection, for what httplib's client never sends: a negative
// Content-Length, a request trickling in a byte at a time.
class RawConnection {
 public:
  explicit RawConnection(int port) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
  }
  ~RawConnection() { ::close(fd_); }
  bool connected() const { return connected_; }
  bool send(const std::string& bytes) {
    return ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size());
  }
  // Waits up to `limit` for the server to say something; then collects it until the server
  // closes the connection (ended() true) or `limit` has passed.
  std::string receive(std::chrono::milliseconds limit) {
    std::string got;
    const auto until = Clock::now() + limit;
    while (!ended_ && Clock::now() < until) {
      pollfd p{fd_, POLLIN, 0};
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
      if (::poll(&p, 1, static_cast<int>(std::max<int64_t>(left.count(), 0))) <= 0) break;
      char buffer[4096];
      const ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
      if (n <= 0) ended_ = true;
      else got.append(buffer, static_cast<size_t>(n));
    }
    return got;
  }
  bool ended() const { return ended_; }

 private:
  int fd_;
  bool connected_ = false, ended_ = false;
};

// A client that sends a request head one byte every `gap`, as slowloris does, until the
// server answers or closes the connection or `limit` passes (then it hangs up).
struct Trickle {
  std::string answer;  // what the server sent, empty when it never answered
  double seconds = 0;  // until the server answered or closed, or the limit
  bool server_ended = false;
};

Trickle trickle_request(int port, std::chrono::milliseconds gap, std::chrono::milliseconds limit) {
  const auto start = Clock::now();
  RawConnection c(port);
  Trickle t;
  if (!c.connected() || !c.send("POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")) return t;
  while (Clock::now() - start < limit) {
    t.answer += c.receive(gap);
    if (c.ended() || !t.answer.empty() || !c.send("a")) {
      t.answer += c.receive(std::chrono::milliseconds(1000));
      t.server_ended = true;
      break;
    }
  }
  t.seconds = seconds_since(start);
  return t;
}

int status_of(const std::string& answer) {
  return answer.starts_with("HTTP/1.1 ") && answer.size() >= 12 ? std::stoi(answer.substr(9, 3)) : -1;
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
                              const std::string& filename = "x.png",
                              const httplib::MultipartFormDataItems& fields = {}) {
    httplib::MultipartFormDataItems items = {{"image", content, filename, "application/octet-stream"}};
    if (!model.empty()) items.push_back({"model", model, "", ""});
    items.insert(items.end(), fields.begin(), fields.end());
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

// At the uploaded image's size (48x40), not the model's input size (64x64), as the CLI writes it;
// the page's base image (alpha 0) has the same size, so the overlay lies on it.
TEST_F(ServeTest, GradcamAnswersPngAtTheImagesSize) {
  auto r = post("/api/gradcam", test_png());
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(r->get_header_value("Content-Type"), "image/png");
  const data::Image overlay = data::decode_image(r->body.data(), r->body.size(), "gradcam.png");
  EXPECT_EQ(overlay.width, 48);
  EXPECT_EQ(overlay.height, 40);
  auto base = post("/api/gradcam", test_png(), "", "x.png", {{"alpha", "0", "", ""}});
  ASSERT_TRUE(base);
  ASSERT_EQ(base->status, 200) << base->body;
  const data::Image view = data::decode_image(base->body.data(), base->body.size(), "base.png");
  EXPECT_EQ(view.width, 48);
  EXPECT_EQ(view.height, 40);
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

TEST_F(ServeTest, GradcamClassIsValidatedAsTheCliDoes) {
  const std::string png = test_png();
  for (const char* bad : {"-5", "-1", "3", "1e30", "nan", "1.5", "one", " 1", "99999999999999999999"}) {
    auto r = post("/api/gradcam", png, "", "x.png", {{"class", bad, "", ""}});
    expect_json_error(r, 400);
    if (r) EXPECT_NE(r->body.find("class"), std::string::npos) << bad << ": " << r->body;
  }
  auto r = post("/api/gradcam", png, "", "x.png", {{"class", "1", "", ""}});
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(r->get_header_value("X-Class"), "malignant");
}

TEST_F(ServeTest, UploadDeclaringTooManyPixelsIsRefusedBeforeDecoding) {
  // 400 megapixels declared in a ~70-byte PNG: refused from its header (default limit 50 MP).
  for (const char* route : {"/api/predict", "/api/gradcam"}) {
    auto r = post(route, test::png_declaring(20000, 20000), "", "bomb.png");
    expect_json_error(r, 400);
    if (r) EXPECT_NE(r->body.find("bomb.png' declares 20000x20000"), std::string::npos) << r->body;
  }
}

TEST_F(ServeTest, BadContentLengthIsRefusedAtOnce) {
  // httplib reads a negative length as a huge one and waits to skip that many bytes (until
  // the read timeout); these must be answered before any body byte arrives.
  const auto ask = [](const std::string& length) {
    RawConnection c(port_);
    EXPECT_TRUE(c.connected());
    c.send("POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=b\r\n" +
           (length.empty() ? "" : "Content-Length: " + length + "\r\n") + "\r\n");
    const auto start = Clock::now();
    const std::string answer = c.receive(std::chrono::milliseconds(3000));
    EXPECT_LT(seconds_since(start), 2.0) << length;
    EXPECT_TRUE(c.ended()) << length << ": the connection stays open";
    return answer;
  };
  for (const char* length : {"-1", "-99999", "1e9", "12abc"}) {
    const std::string answer = ask(length);
    EXPECT_EQ(status_of(answer), 400) << length << ": " << answer;
    EXPECT_NE(answer.find("{\"error\""), std::string::npos) << answer;
  }
  // No length at all: httplib would read the body until the client closes.
  EXPECT_EQ(status_of(ask("")), 411);
  for (const std::string length : {std::to_string(kMaxUpload + 1), std::string("99999999999999999999")}) {
    const std::string answer = ask(length);
    EXPECT_EQ(status_of(answer), 413) << length << ": " << answer;
    EXPECT_NE(answer.find("larger than the limit"), std::string::npos) << answer;
  }
  EXPECT_EQ(client().Get("/api/models")->status, 200);
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
  std::vector<std::string> failure(status.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < status.size(); ++i)
    threads.emplace_back([&, i] {
      auto r = post(i % 4 == 0 ? "/api/gradcam" : "/api/predict", png);
      status[i] = r ? r->status : -1;
      if (!r) failure[i] = httplib::to_string(r.error());
    });
  for (auto& t : threads) t.join();
  int ok = 0;
  for (size_t i = 0; i < status.size(); ++i) {
    EXPECT_TRUE(status[i] == 200 || status[i] == 503) << "request " << i << ": " << status[i] << " " << failure[i];
    ok += status[i] == 200;
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
    requests = start_predicts(port, png, status, first);
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

TEST_F(ServeTest, DefaultsCanRefuseWhileTheModelIsBusy) {
  // With the default options every worker may hold an admitted request waiting for the
  // model, unless the queue is shorter than the workers: then the surplus request gets 503 at
  // once and a worker stays free for the page.
  serve::ServeOptions o;
  o.port = 0;
  EXPECT_LT(o.queue, o.threads);
  serve::Server server(served_, o);
  const int port = server.bind();
  std::thread runner([&] { server.run(); });
  const std::string png = test_png();
  std::atomic<int> first{0};
  std::vector<int> status(static_cast<size_t>(o.threads), 0);
  std::vector<std::thread> requests;
  {
    std::unique_lock<std::mutex> hold(served_[0]->mutex);
    requests = start_predicts(port, png, status, first);
    for (int waited = 0; first.load() == 0 && waited < 500; ++waited)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT_EQ(first.load(), 503);
    httplib::Client quick("127.0.0.1", port);
    quick.set_read_timeout(3, 0);
    auto page = quick.Get("/api/models");
    ASSERT_TRUE(page) << "no worker left for the page while the model is busy";
    EXPECT_EQ(page->status, 200);
  }
  for (auto& t : requests) t.join();
  EXPECT_EQ(std::count(status.begin(), status.end(), 503), 1);
  EXPECT_EQ(std::count(status.begin(), status.end(), 200), o.threads - 1);
  server.stop();
  runner.join();

  o.queue = o.threads;
  EXPECT_THROW(serve::Server(served_, o), Error);
}

TEST_F(ServeTest, RequestsHaveATotalDeadline) {
  // One byte every 200 ms never trips a per-read timeout of 2 s; the total deadline does.
  serve::ServeOptions o;
  o.port = 0;
  o.timeout_s = 2;
  serve::Server server(served_, o);
  const int port = server.bind();
  std::thread runner([&] { server.run(); });
  const Trickle t = trickle_request(port, std::chrono::milliseconds(200), std::chrono::milliseconds(6000));
  EXPECT_TRUE(t.server_ended) << "a request trickling in for 6 s was never cut off";
  EXPECT_GT(t.seconds, 1.5);
  EXPECT_LT(t.seconds, 4.0);
  EXPECT_EQ(status_of(t.answer), 408) << t.answer;
  server.stop();
  runner.join();
}

TEST_F(ServeTest, SlowClientsLeaveAWorkerForQuickRequests) {
  // Three clients trickling requests in at a byte per 200 ms on two workers: one of them may
  // hold a worker as a slow request, the others are refused once they turn slow, and a quick
  // request is served long before the trickles end.
  serve::ServeOptions o;
  o.port = 0;
  o.threads = 2;
  o.queue = 1;
  o.slow_after_s = 0.5;
  serve::Server server(served_, o);
  const int port = server.bind();
  std::thread runner([&] { server.run(); });
  std::vector<Trickle> slow(3);
  std::vector<std::thread> clients;
  for (size_t i = 0; i < slow.size(); ++i)
    clients.emplace_back([&, i] {
      slow[i] = trickle_request(port, std::chrono::milliseconds(200), std::chrono::milliseconds(5000));
    });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const auto start = Clock::now();
  httplib::Client quick("127.0.0.1", port);
  quick.set_read_timeout(10, 0);
  auto r = quick.Get("/api/models");
  const double waited = seconds_since(start);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_LT(waited, 3.0) << "the quick request waited for the slow ones";
  for (auto& c : clients) c.join();
  int refused = 0;
  for (const Trickle& t : slow) refused += status_of(t.answer) == 503;
  EXPECT_GE(refused, 2);
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
