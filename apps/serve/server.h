#pragma once
// The `scalpel serve` web server: an offline single-page UI at `/` and a JSON API
// (../shared/interface.md):
//   GET  /api/models   [{"name", "classes": [names]}, ...]
//   POST /api/predict  multipart, file field `image`, optional field `model`
//                      -> {"model", "top": [{"class", "p"}...], "probs": {name: p}}
//   POST /api/gradcam  same form, optional `class` (index 0..classes-1, default the top class;
//                      anything else is 400) and `alpha`
//                      (heatmap weight, default 0.45) -> image/png overlay at the uploaded
//                      image's size (X-Class header names the class); alpha 0 returns the
//                      image itself without running Grad-CAM
//   GET  /reports      (with reports_dir) links to every report.html under it;
//   GET  /reports/<relative path>  one file under reports_dir (no `..`, no symlink escape).
// Errors are JSON {"error": "..."}: 400 bad upload (also a malformed or negative
// Content-Length, answered before any body is read), 404 unknown model/route, 408 request not
// arrived in time, 411 a POST without Content-Length (nor chunks), 413 too large (also
// announced by Content-Length alone), 503 when the
// inference queue is full or too many slow requests hold workers. Any scalpel::Error raised by
// a request answers 400 (an image declaring more than data::max_image_pixels() pixels is one);
// no request can stop the server.
//
// Concurrency: httplib serves connections on `threads` workers (apps/serve/guarded_http.h):
// a request's headers and body must arrive within `timeout_s` in total, and at most
// threads - 1 requests may still be arriving after `slow_after_s`. At most `queue` predict /
// gradcam requests are admitted at once (the rest get 503); queue < threads, so one worker
// stays free for the page and quick requests. Inference on one model is serialized by its
// mutex because modules are not thread-safe.
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "apps/args.h"
#include "data/preprocess.h"
#include "models/model.h"
#include "tensor/device.h"

namespace scalpel::serve {

struct ServedModel {
  std::string name;                      // what the page and the `model` field use
  std::shared_ptr<models::Model> model;  // put in evaluation mode by the server
  Device device;
  data::Preprocess preprocess;
  std::vector<std::string> class_names;  // one per output; indices when the weights name none
  std::mutex mutex;                      // serializes inference on `model`
};

// The model the shared model flags (apps/model_flags.h) describe, ready to serve: its
// checkpoint's preprocessing and class names, else the model's defaults and indices.
// Error when it is not a classifier.
std::shared_ptr<ServedModel> load_served_model(const cli::Args& args, const std::string& name = "");

struct ServeOptions {
  std::string host = "127.0.0.1";  // loopback unless asked otherwise
  int port = 8080;                 // 0: any free port (see Server::port)
  size_t max_upload_bytes = 20u << 20;
  int threads = 4;                 // connection workers
  int queue = 3;                   // admitted inference requests (running + waiting), < threads
  int timeout_s = 30;              // total time for a request's headers and body; each socket write
  double slow_after_s = 2;         // a request still arriving after this is a slow one
  std::string reports_dir;         // empty: no /reports pages

  // Error naming the flag unless queue is in 1..threads-1 and the times are positive.
  void check() const;
};

class Server {
 public:
  // Error when `models` is empty, a name repeats, reports_dir is not a directory, or
  // options.check() fails.
  Server(std::vector<std::shared_ptr<ServedModel>> models, ServeOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds host:port (Error naming them on failure); returns the bound port.
  int bind();
  // Serves until stop(); call after bind(), from any one thread. False when listening
  // failed for another reason than stop().
  bool run();
  // Thread-safe, also while run() is still starting up; run() returns soon after (at once
  // when it has not begun).
  void stop();
  int port() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The embedded page (apps/serve/page.cpp): self-contained HTML, no external resources. The
// header links to /reports only when the server has a reports folder.
std::string page_html(bool reports_link);

}  // namespace scalpel::serve
