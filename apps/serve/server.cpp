// The HTTP side of `scalpel serve` (see server.h). cpp-httplib does the sockets and the
// multipart parsing; everything model-related goes through the same functions as the CLI.
#include "apps/serve/server.h"

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <filesystem>
#include <numeric>
#include <set>
#include <thread>

#include "apps/gradcam.h"
#include "apps/model_flags.h"
#include "apps/serve/guarded_http.h"
#include "autograd/autograd.h"
#include "layers/functional.h"
#include "tensor/atomic_file.h"
#include "tensor/error.h"
#include "tensor/json.h"

namespace scalpel::serve {
namespace fs = std::filesystem;

namespace {

void send_error(httplib::Response& res, int status, const std::string& message) {
  Json body = Json::object();
  body["error"] = message;
  res.status = status;
  res.set_content(body.dump(), "application/json");
}

// RAII admission ticket: at most `limit` inference requests are in the server at once.
class Admission {
 public:
  Admission(std::atomic<int>& in_flight, int limit) : in_flight_(in_flight) {
    admitted_ = in_flight_.fetch_add(1) < limit;
  }
  ~Admission() { in_flight_.fetch_sub(1); }
  bool admitted() const { return admitted_; }

 private:
  std::atomic<int>& in_flight_;
  bool admitted_;
};

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

const char* content_type_of(const fs::path& path) {
  const std::string ext = path.extension().string();
  if (ext == ".html" || ext == ".htm") return "text/html; charset=utf-8";
  if (ext == ".png") return "image/png";
  if (ext == ".jpg" || ext == ".jpeg") return "image/jpeg";
  if (ext == ".json") return "application/json";
  if (ext == ".csv") return "text/csv";
  if (ext == ".svg") return "image/svg+xml";
  return "application/octet-stream";
}

// The optional `class` form field: a class index 0..classes-1, or -1 (the top class) when the
// field is absent or empty. Error naming the field for anything else (-5, 1e30, nan, 1.5).
int64_t class_field(const httplib::Request& req, size_t classes) {
  if (!req.has_file("class")) return -1;
  const std::string text = req.get_file_value("class").content;
  if (text.empty()) return -1;
  const bool digits = text.size() <= 9 && std::all_of(text.begin(), text.end(), [](unsigned char c) {
    return std::isdigit(c);
  });
  const int64_t index = digits ? std::stoll(text) : -1;
  SCALPEL_CHECK(index >= 0 && index < static_cast<int64_t>(classes),
                "field 'class': expected a class index 0..{}, got '{}'", classes - 1, text);
  return index;
}

// Content-Length as httplib would use it, checked before any of the body is read: a
// negative or malformed value is 400 and one above the upload limit 413 at once (httplib
// would wait for that many bytes to skip them); a POST with neither a length nor chunks is
// 411 (httplib would read its body until the client closes). Answers and returns true when
// refused.
bool refuse_content_length(const httplib::Request& req, httplib::Response& res, size_t max_bytes) {
  if (!req.has_header("Content-Length")) {
    if (req.method != "POST" || req.get_header_value("Transfer-Encoding") == "chunked") return false;
    send_error(res, 411, "a POST needs a Content-Length");
    res.set_header("Connection", "close");
    GuardedHttpServer::close_after_response();
    return true;
  }
  const std::string text = req.get_header_value("Content-Length");
  const bool digits = !text.empty() && std::all_of(text.begin(), text.end(), [](unsigned char c) {
    return std::isdigit(c);
  });
  if (!digits) {
    send_error(res, 400, "Content-Length '" + text + "' is not a byte count");
  } else if (text.size() > 18 || std::stoull(text) > max_bytes) {
    send_error(res, 413, "upload of " + text + " bytes is larger than the limit of " + std::to_string(max_bytes) +
                             " bytes");
  } else {
    return false;
  }
  res.set_header("Connection", "close");
  GuardedHttpServer::close_after_response();  // the body stays unread
  return true;
}

// An optional numeric form field; Error naming it when it is not a number.
double number_field(const httplib::Request& req, const std::string& name, double fallback) {
  if (!req.has_file(name)) return fallback;
  const std::string text = req.get_file_value(name).content;
  size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  SCALPEL_CHECK(used == text.size() && used > 0, "field '{}': expected a number, got '{}'", name, text);
  return value;
}

}  // namespace

struct Server::Impl {
  std::vector<std::shared_ptr<ServedModel>> models;
  ServeOptions options;
  fs::path reports_root;  // canonical, empty when disabled
  std::unique_ptr<GuardedHttpServer> http_server;  // made once the options are known
  std::atomic<int> in_flight{0};
  int port = -1;
  // run()/stop() hand-shake: httplib's stop() does nothing until listening has begun.
  std::atomic<bool> run_entered{false}, run_finished{false}, stop_requested{false};

  const ServedModel* find(const std::string& name) const {
    if (name.empty()) return models.front().get();
    for (const auto& m : models)
      if (m->name == name) return m.get();
    return nullptr;
  }

  // The upload and the model a predict/gradcam form names; answers the error itself and
  // returns null when the request cannot go on.
  ServedModel* parse_form(const httplib::Request& req, httplib::Response& res, data::Image& image) {
    if (!req.is_multipart_form_data() || !req.has_file("image")) {
      send_error(res, 400, "expected a multipart form with a file field 'image'");
      return nullptr;
    }
    const std::string name = req.has_file("model") ? req.get_file_value("model").content : "";
    ServedModel* m = const_cast<ServedModel*>(find(name));
    if (!m) {
      send_error(res, 404, "unknown model '" + name + "' (see /api/models)");
      return nullptr;
    }
    const httplib::MultipartFormData file = req.get_file_value("image");
    if (file.content.empty()) {
      send_error(res, 400, "the uploaded image '" + file.filename + "' is empty");
      return nullptr;
    }
    // decode_image throws an Error naming the upload for anything stb cannot decode.
    image = data::decode_image(file.content.data(), file.content.size(),
                               file.filename.empty() ? "upload" : file.filename);
    return m;
  }

  void predict(const httplib::Request& req, httplib::Response& res) {
    Admission ticket(in_flight, options.queue);
    if (!ticket.admitted()) return send_error(res, 503, "server busy: too many requests in progress, retry later");
    data::Image image;
    ServedModel* m = parse_form(req, res, image);
    if (!m) return;
    const Tensor x = data::preprocess(image, m->preprocess).to(m->device);
    std::vector<double> p;
    {
      std::lock_guard<std::mutex> lock(m->mutex);
      NoGradGuard no_grad;
      p = nn::softmax((*m->model)(x), 1).to(Device::cpu()).to_vector();
    }
    std::vector<size_t> order(p.size());
    std::iota(order.begin(), order.end(), size_t{0});
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return p[a] > p[b]; });
    Json top = Json::array(), probs = Json::object();
    for (size_t i = 0; i < std::min<size_t>(5, order.size()); ++i) {
      Json entry = Json::object();
      entry["class"] = m->class_names[order[i]];
      entry["p"] = p[order[i]];
      top.push_back(entry);
    }
    for (size_t i = 0; i < p.size(); ++i) probs[m->class_names[i]] = p[i];
    Json body = Json::object();
    body["model"] = m->name;
    body["top"] = top;
    body["probs"] = probs;
    res.set_content(body.dump(), "application/json");
  }

  void gradcam(const httplib::Request& req, httplib::Response& res) {
    Admission ticket(in_flight, options.queue);
    if (!ticket.admitted()) return send_error(res, 503, "server busy: too many requests in progress, retry later");
    data::Image image;
    ServedModel* m = parse_form(req, res, image);
    if (!m) return;
    const int64_t class_index = class_field(req, m->class_names.size());
    const double alpha = number_field(req, "alpha", 0.45);
    if (!(alpha >= 0 && alpha <= 1)) return send_error(res, 400, "field 'alpha': expected a number in [0, 1]");
    // Both answers at the uploaded image's own size, as `scalpel gradcam` writes it.
    std::vector<uint8_t> png;
    if (alpha == 0) {
      // The image alone, for the page to lay the heatmap over.
      png = data::encode_png(image);
    } else {
      const Tensor x = data::preprocess(image, m->preprocess).to(m->device);
      GradCamResult cam;
      {
        std::lock_guard<std::mutex> lock(m->mutex);
        cam = scalpel::gradcam(*m->model, x, class_index);
      }
      cam = heatmap_on_image(cam, image.width, image.height, m->preprocess);
      png = data::encode_png(gradcam_overlay(image, cam, alpha));
      res.set_header("X-Class", m->class_names[cam.class_index]);
      res.set_header("X-Probability", std::to_string(cam.probability));
    }
    res.set_content(std::string(png.begin(), png.end()), "image/png");
  }

  void models_list(httplib::Response& res) const {
    Json list = Json::array();
    for (const auto& m : models) {
      Json entry = Json::object();
      entry["name"] = m->name;
      Json classes = Json::array();
      for (const std::string& c : m->class_names) classes.push_back(c);
      entry["classes"] = classes;
      list.push_back(entry);
    }
    res.set_content(list.dump(), "application/json");
  }

  // Every report.html under the reports root, as paths relative to it.
  std::vector<std::string> report_pages() const {
    std::vector<std::string> pages;
    std::error_code ec;
    for (fs::recursive_directory_iterator it(reports_root, ec), end; !ec && it != end; it.increment(ec))
      if (it->is_regular_file() && it->path().filename() == "report.html")
        pages.push_back(fs::relative(it->path(), reports_root).generic_string());
    std::sort(pages.begin(), pages.end());
    return pages;
  }

  void reports_index(httplib::Response& res) const {
    std::string html =
        "<!doctype html><meta charset=utf-8><title>scalpel reports</title>"
        "<body style='font-family:sans-serif'><h1>Evaluation reports</h1><ul>";
    for (const std::string& page : report_pages())
      html += "<li><a href=\"/reports/" + html_escape(page) + "\">" + html_escape(page) + "</a></li>";
    html += "</ul><p><a href=\"/\">back</a></p></body>";
    res.set_content(html, "text/html; charset=utf-8");
  }

  // A file under the reports root: the request path may not leave it, neither by `..`
  // components nor through a symlink (its canonical path must stay under the root).
  void report_file(const std::string& relative, httplib::Response& res) const {
    const fs::path rel = fs::path(relative).lexically_normal();
    const bool escapes = rel.empty() || rel.is_absolute() || *rel.begin() == "..";
    std::error_code ec;
    const fs::path full = escapes ? fs::path() : fs::weakly_canonical(reports_root / rel, ec);
    const auto [root_end, _] = std::mismatch(reports_root.begin(), reports_root.end(), full.begin(), full.end());
    if (escapes || ec || root_end != reports_root.end() || !fs::is_regular_file(full))
      return send_error(res, 404, "no such report file: " + relative);
    res.set_content(read_file(full.string()), content_type_of(full));
  }

  void install_routes() {
    httplib::Server& http = *http_server;
    http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      return refuse_content_length(req, res, options.max_upload_bytes) ? httplib::Server::HandlerResponse::Handled
                                                                        : httplib::Server::HandlerResponse::Unhandled;
    });
    http.Get("/", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(page_html(!reports_root.empty()), "text/html; charset=utf-8");
    });
    http.Get("/api/models", [this](const httplib::Request&, httplib::Response& res) { models_list(res); });
    http.Post("/api/predict", [this](const httplib::Request& req, httplib::Response& res) { predict(req, res); });
    http.Post("/api/gradcam", [this](const httplib::Request& req, httplib::Response& res) { gradcam(req, res); });
    if (!reports_root.empty()) {
      http.Get("/reports", [this](const httplib::Request&, httplib::Response& res) { reports_index(res); });
      http.Get("/reports/(.+)", [this](const httplib::Request& req, httplib::Response& res) {
        report_file(req.matches[1].str(), res);
      });
    }
    // A scalpel::Error is the request's fault (an undecodable image, a bad class index);
    // anything else is ours, but still only fails this one request.
    http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
      try {
        std::rethrow_exception(ep);
      } catch (const Error& e) {
        send_error(res, 400, e.what());
      } catch (const std::exception& e) {
        send_error(res, 500, std::string("internal error: ") + e.what());
      } catch (...) {
        send_error(res, 500, "internal error");
      }
    });
    // httplib's own refusals (413 payload too large, 404 no route, 400 malformed) come
    // with an empty body; give them the JSON error shape too.
    http.set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return;
      if (const ArrivalFailure failure = GuardedHttpServer::arrival_failure(); failure != ArrivalFailure::none)
        send_error(res, GuardedHttpServer::failure_status(failure), http_server->failure_message(failure));
      else if (res.status == 413)
        send_error(res, 413, "upload larger than the limit of " + std::to_string(options.max_upload_bytes) + " bytes");
      else if (res.status == 404)
        send_error(res, 404, "no such page: " + req.path);
      else
        send_error(res, res.status, "bad request");
    });
  }
};

void ServeOptions::check() const {
  // Each admitted inference request holds a worker while it waits for its model, so a queue
  // as long as the workers could never refuse anything; one worker stays free for the page.
  SCALPEL_CHECK(queue >= 1 && queue < threads,
                "serve: --queue {} must be at least 1 and below --threads {} (each admitted request holds a worker "
                "thread, and one is kept for the page and quick requests)",
                queue, threads);
  SCALPEL_CHECK(timeout_s > 0, "serve: --timeout {}: must be positive", timeout_s);
  SCALPEL_CHECK(slow_after_s > 0, "serve: slow_after_s {}: must be positive", slow_after_s);
}

Server::Server(std::vector<std::shared_ptr<ServedModel>> models, ServeOptions options) : impl_(new Impl) {
  SCALPEL_CHECK(!models.empty(), "serve: no model to serve");
  std::set<std::string> names;
  for (const auto& m : models) {
    SCALPEL_CHECK(names.insert(m->name).second, "serve: two models are named '{}'", m->name);
    m->model->eval();
  }
  options.check();
  if (!options.reports_dir.empty()) {
    SCALPEL_CHECK(fs::is_directory(options.reports_dir), "--reports {}: not a directory", options.reports_dir);
    impl_->reports_root = fs::canonical(options.reports_dir);
  }
  impl_->models = std::move(models);
  impl_->options = options;
  ConnectionLimits limits;
  limits.threads = options.threads;
  limits.request_timeout = std::chrono::seconds(options.timeout_s);
  limits.slow_after = std::chrono::milliseconds(static_cast<int64_t>(options.slow_after_s * 1000));
  limits.write_timeout = std::chrono::seconds(options.timeout_s);
  // Idle keep-alive connections would hold a worker each; let them go quickly.
  limits.keep_alive_s = 2;
  impl_->http_server = std::make_unique<GuardedHttpServer>(limits);
  httplib::Server& http = *impl_->http_server;
  const int threads = options.threads;
  http.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  http.set_payload_max_length(options.max_upload_bytes);
  impl_->install_routes();
}

std::shared_ptr<ServedModel> load_served_model(const cli::Args& args, const std::string& name) {
  cli::ModelSetup s = cli::load_model_from_flags(args);
  SCALPEL_CHECK(s.info.task == "classification", "serve: {} is a {} model; serve needs a classifier", s.info.name,
                s.info.task);
  auto m = std::make_shared<ServedModel>();
  m->name = name.empty() ? s.info.name : name;
  m->model = s.model;
  m->device = s.device;
  m->preprocess = cli::eval_preprocess(s);
  m->class_names = s.class_names;
  const int64_t classes = s.model->options().classes;
  if (static_cast<int64_t>(m->class_names.size()) != classes) {
    m->class_names.clear();
    for (int64_t i = 0; i < classes; ++i) m->class_names.push_back(std::to_string(i));
  }
  return m;
}

Server::~Server() { stop(); }

int Server::bind() {
  ServeOptions& o = impl_->options;
  if (o.port == 0) {
    impl_->port = impl_->http_server->bind_to_any_port(o.host);
  } else {
    impl_->port = impl_->http_server->bind_to_port(o.host, o.port) ? o.port : -1;
  }
  SCALPEL_CHECK(impl_->port > 0, "serve: cannot listen on {}:{} (address in use or not local?)", o.host, o.port);
  impl_->http_server->widen_listen_backlog();
  return impl_->port;
}

bool Server::run() {
  impl_->run_entered = true;
  const bool listened = impl_->stop_requested || impl_->http_server->listen_after_bind();
  impl_->run_finished = true;
  return listened;
}

void Server::stop() {
  impl_->stop_requested = true;
  // Either run() sees stop_requested and never listens, or we see run_entered and wait until
  // httplib is listening (or gave up) so that its stop() takes effect.
  if (impl_->run_entered)
    while (!impl_->http_server->is_running() && !impl_->run_finished) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  impl_->http_server->stop();
}
int Server::port() const { return impl_->port; }

}  // namespace scalpel::serve
