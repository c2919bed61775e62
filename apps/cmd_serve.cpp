// scalpel serve: the web page and JSON API of apps/serve/server.h for one or more models.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <thread>

#include "apps/cli.h"
#include "apps/image_inputs.h"
#include "apps/model_flags.h"
#include "apps/serve/server.h"
#include "tensor/atomic_file.h"
#include "tensor/error.h"
#include "tensor/json.h"

namespace scalpel::cli {
namespace {

// SIGINT/SIGTERM stop serving cleanly. A signal handler may only call async-signal-safe
// functions, so it just writes a byte to this pipe; the main thread waits on the pipe and
// stops the server (the serving thread also writes to it if listening ends on its own).
int g_wake_pipe_write = -1;

extern "C" void wake_main_thread(int) {
  const int saved_errno = errno;
  const char byte = 0;
  [[maybe_unused]] const ssize_t written = write(g_wake_pipe_write, &byte, 1);  // full pipe: already woken
  errno = saved_errno;
}

// --config FILE: a JSON list of models, each an object of model flags without the dashes
// plus an optional "name", e.g. [{"name": "chest", "model": "resnet18", "weights": "a.st"}].
std::vector<std::shared_ptr<serve::ServedModel>> models_from_config(const std::string& path) {
  const Json config = Json::parse(read_file(path), path);
  SCALPEL_CHECK(config.is_array(), "--config {}: expected a JSON list of models", path);
  std::vector<std::shared_ptr<serve::ServedModel>> out;
  for (const Json& entry : config.as_array()) {
    SCALPEL_CHECK(entry.is_object(), "--config {}: each model must be a JSON object", path);
    std::vector<std::string> argv;
    std::string name;
    for (const auto& [key, value] : entry.as_object()) {
      const std::string v = value.is_string() ? value.as_string() : value.dump();
      if (key == "name") {
        name = v;
      } else {
        argv.push_back("--" + key);
        argv.push_back(v);
      }
    }
    Args args("serve", "(config entry)");
    add_model_flags(args);
    args.parse(argv);
    out.push_back(serve::load_served_model(args, name));
  }
  return out;
}

// Runs `server` on a second thread until SIGINT or SIGTERM, then stops it from this thread.
// False when listening ended on its own (a socket failure).
bool serve_until_stop_signal(serve::Server& server) {
  int wake_pipe[2];
  SCALPEL_CHECK(pipe2(wake_pipe, O_CLOEXEC) == 0, "serve: cannot create a pipe");
  fcntl(wake_pipe[1], F_SETFL, O_NONBLOCK);  // a handler must never block
  g_wake_pipe_write = wake_pipe[1];
  struct sigaction on_stop = {};
  on_stop.sa_handler = wake_main_thread;
  sigemptyset(&on_stop.sa_mask);
  sigaction(SIGINT, &on_stop, nullptr);
  sigaction(SIGTERM, &on_stop, nullptr);

  bool listened = true;
  std::thread serving([&] {
    listened = server.run();
    wake_main_thread(0);
  });
  char byte = 0;
  while (read(wake_pipe[0], &byte, 1) < 0 && errno == EINTR) {
  }
  server.stop();
  serving.join();

  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  g_wake_pipe_write = -1;
  close(wake_pipe[0]);
  close(wake_pipe[1]);
  return listened;
}

int run_serve(const std::vector<std::string>& argv) {
  Args args("serve",
            "--weights W [--model M] [--port P] [--host H] [--name N] [--config MODELS.json] [--reports DIR] ...");
  add_model_flags(args);
  args.option("port", "TCP port (0: any free port)", "8080")
      .option("host", "address to listen on: the default is loopback only, 0.0.0.0 exposes the server", "127.0.0.1")
      .option("name", "name of the --model on the page and in the API (default: the model name)")
      .option("config", "JSON list of further models: [{\"name\": N, \"model\": M, \"weights\": W, ...}]")
      .option("reports", "folder whose report.html files (scalpel eval) the /reports page lists")
      .option("max-upload-mb", "largest accepted upload in MB", "20")
      .option("threads", "connection worker threads", "4")
      .option("queue", "inference requests admitted at once, below --threads (one worker stays free for the page); "
                       "more get HTTP 503", "3")
      .option("timeout", "seconds a request's headers and body may take to arrive, in total (then HTTP 408); "
                         "also the limit of each socket write", "30");
  add_max_pixels_flag(args);
  add_precision_flag(args);
  if (!args.parse(argv)) return 0;
  apply_max_pixels_flag(args);
  apply_precision_flag(args, parse_device(args.get("device")));

  // Options are checked before the (slow) model loading.
  serve::ServeOptions o;
  o.host = args.get("host");
  o.port = static_cast<int>(args.get_int("port"));
  SCALPEL_CHECK(o.port >= 0 && o.port <= 65535, "--port {}: expected 0..65535", o.port);
  const double mb = args.get_double("max-upload-mb");
  SCALPEL_CHECK(mb > 0, "--max-upload-mb {}: must be positive", mb);
  o.max_upload_bytes = static_cast<size_t>(mb * 1024 * 1024);
  o.threads = static_cast<int>(args.get_int("threads"));
  o.queue = static_cast<int>(args.get_int("queue"));
  o.timeout_s = static_cast<int>(args.get_int("timeout"));
  o.check();
  o.reports_dir = args.get("reports");

  std::vector<std::shared_ptr<serve::ServedModel>> models;
  if (args.has("model") || args.has("weights")) models.push_back(serve::load_served_model(args, args.get("name")));
  if (args.has("config"))
    for (auto& m : models_from_config(args.get("config"))) models.push_back(std::move(m));
  SCALPEL_CHECK(!models.empty(), "serve: give --model M --weights W or --config MODELS.json");

  serve::Server server(models, o);
  const int port = server.bind();
  std::printf("serving %zu model(s) on http://%s:%d/ (Ctrl-C to stop)\n", models.size(), o.host.c_str(), port);
  std::fflush(stdout);

  SCALPEL_CHECK(serve_until_stop_signal(server), "serve: listening on {}:{} failed", o.host, port);
  return 0;
}

SCALPEL_REGISTER_COMMAND({"serve", "web page and JSON API for predictions and Grad-CAM", run_serve});

}  // namespace
}  // namespace scalpel::cli
