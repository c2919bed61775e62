#pragma once
// cpp-httplib's server with its per-connection loop replaced, so that slow clients cannot
// hold the workers (httplib's read timeout restarts on every byte: six clients sending a
// byte a second blocked every request for as long as they kept going).
//  - A request's headers and body must arrive within `request_timeout` in total, counted
//    from its first byte; the client then gets 408.
//  - A request still arriving after `slow_after` holds its worker as a slow one. At most
//    threads - 1 requests may be slow at once, so one worker always comes free for requests
//    that arrive at once; the next request to turn slow gets 503 instead. While that many are
//    slow, the last worker gives a request only `last_worker_grace` to turn up, so that slow
//    clients queued before a quick one cost it little.
//  - close_after_response() (from a handler) ends the connection after the answer, for a
//    request refused before its body was read; such a connection is closed with a short
//    linger so that the client reads the answer instead of a reset.
// Keep-alive (idle wait, requests per connection) and the write timeout work as in httplib.
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <string>

namespace scalpel::serve {

struct ConnectionLimits {
  int threads = 4;  // httplib workers; threads - 1 of them may serve slow requests
  std::chrono::milliseconds request_timeout{30000};
  std::chrono::milliseconds slow_after{2000};
  std::chrono::milliseconds last_worker_grace{500};
  std::chrono::milliseconds write_timeout{30000};  // each socket write, as httplib's
  int keep_alive_s = 2;                            // idle wait for the next request
  size_t max_requests_per_connection = 5;
};

// Why the request on the calling thread could not be read in full, if that is the case.
enum class ArrivalFailure { none, deadline, too_many_slow };

class GuardedHttpServer : public httplib::Server {
 public:
  explicit GuardedHttpServer(const ConnectionLimits& limits);

  // About the request being served on the calling thread (httplib runs a connection's
  // handlers, error handler included, on the thread that reads it).
  static ArrivalFailure arrival_failure();
  static void close_after_response();
  // The answer to a failed arrival: 408 or 503, and a sentence saying why.
  static int failure_status(ArrivalFailure failure);
  std::string failure_message(ArrivalFailure failure) const;
  // Once bound: lets the kernel queue up to SOMAXCONN connections not yet accepted instead of
  // httplib's 5, so that a burst of clients is queued rather than dropped and reset.
  void widen_listen_backlog();

 private:
  bool process_and_close_socket(socket_t sock) override;  // a private virtual of httplib::Server

  ConnectionLimits limits_;
  std::atomic<int> slow_requests_{0};
};

}  // namespace scalpel::serve
