#include "apps/serve/guarded_http.h"

#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>

#include <fmt/format.h>

namespace scalpel::serve {
namespace {

using Clock = std::chrono::steady_clock;

// The longest single wait on a socket, so that a stopping server is noticed soon.
constexpr auto kPollSlice = std::chrono::milliseconds(100);
// How long a connection closed before its request was read in full keeps draining what the
// client still sends, so that the client reads the answer rather than a reset.
constexpr auto kLinger = std::chrono::milliseconds(1000);

// Waits up to `d` (at most one slice) for `events`; > 0 ready, 0 not yet, < 0 error.
int wait_socket(socket_t sock, short events, Clock::duration d) {
  const auto ms = std::chrono::ceil<std::chrono::milliseconds>(std::clamp<Clock::duration>(d, {}, kPollSlice));
  pollfd p{sock, events, 0};
  const int r = ::poll(&p, 1, static_cast<int>(ms.count()));
  return r < 0 && errno == EINTR ? 0 : r;
}

void address_of(const sockaddr_storage& addr, socklen_t len, std::string& ip, int& port) {
  char host[NI_MAXHOST] = {};
  if (::getnameinfo(reinterpret_cast<const sockaddr*>(&addr), len, host, sizeof host, nullptr, 0, NI_NUMERICHOST) == 0)
    ip = host;
  if (addr.ss_family == AF_INET) port = ntohs(reinterpret_cast<const sockaddr_in&>(addr).sin_port);
  if (addr.ss_family == AF_INET6) port = ntohs(reinterpret_cast<const sockaddr_in6&>(addr).sin6_port);
}

// One connection's socket as httplib's Stream: buffered reads under the request's deadline
// and slow mark, writes under the write timeout.
class RequestStream final : public httplib::Stream {
 public:
  RequestStream(socket_t sock, const ConnectionLimits& limits, std::atomic<int>& slow_requests,
                const std::atomic<socket_t>& listening)
      : sock_(sock), limits_(limits), slow_requests_(slow_requests), listening_(listening) {}
  ~RequestStream() override { end_request(); }

  // Waits up to the keep-alive time for the first byte of the next request.
  bool wait_for_request() {
    if (begin_ < end_) return true;
    const auto until = Clock::now() + std::chrono::seconds(limits_.keep_alive_s);
    for (auto now = Clock::now(); now < until && !stopping(); now = Clock::now()) {
      const int r = wait_socket(sock_, POLLIN, until - now);
      if (r != 0) return r > 0;
    }
    return false;
  }
  void begin_request() {
    const auto now = Clock::now();
    deadline_ = now + limits_.request_timeout;
    const bool last_worker = slow_requests_.load() >= limits_.threads - 1;
    slow_at_ = now + (last_worker ? std::min(limits_.slow_after, limits_.last_worker_grace) : limits_.slow_after);
  }
  // The request has arrived (its answer is being written) or is over: no longer slow.
  void end_request() {
    if (slow_) slow_requests_.fetch_sub(1);
    slow_ = false;
  }
  ArrivalFailure failure() const { return failure_; }
  bool wrote() const { return wrote_; }
  bool close_requested() const { return close_requested_; }
  void request_close() { close_requested_ = true; }

  bool is_readable() const override { return begin_ < end_ || wait_socket(sock_, POLLIN, {}) > 0; }
  bool is_writable() const override { return wait_socket(sock_, POLLOUT, {}) > 0; }

  ssize_t read(char* ptr, size_t size) override {
    if (begin_ == end_) {
      const ssize_t n = fill();
      if (n <= 0) return n;
    }
    const size_t n = std::min(size, end_ - begin_);
    std::copy_n(buffer_ + begin_, n, ptr);
    begin_ += n;
    return static_cast<ssize_t>(n);
  }

  ssize_t write(const char* ptr, size_t size) override {
    end_request();
    wrote_ = true;
    const auto until = Clock::now() + limits_.write_timeout;
    for (auto now = Clock::now(); now < until; now = Clock::now()) {
      const int r = wait_socket(sock_, POLLOUT, until - now);
      if (r < 0) return -1;
      if (r == 0) continue;
      const ssize_t n = ::send(sock_, ptr, size, MSG_NOSIGNAL);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      return n;
    }
    return -1;
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    if (::getpeername(sock_, reinterpret_cast<sockaddr*>(&addr), &len) == 0) address_of(addr, len, ip, port);
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    if (::getsockname(sock_, reinterpret_cast<sockaddr*>(&addr), &len) == 0) address_of(addr, len, ip, port);
  }
  socket_t socket() const override { return sock_; }

 private:
  bool stopping() const { return listening_ == INVALID_SOCKET; }

  // Refills the buffer: > 0 bytes read, 0 end of stream, -1 failure (failure_ says when it
  // is the deadline or the slow-request limit).
  ssize_t fill() {
    for (;;) {
      if (stopping()) return -1;
      const auto now = Clock::now();
      if (now >= deadline_) {
        failure_ = ArrivalFailure::deadline;
        return -1;
      }
      if (!slow_ && now >= slow_at_) {
        if (slow_requests_.fetch_add(1) >= limits_.threads - 1) {
          slow_requests_.fetch_sub(1);
          failure_ = ArrivalFailure::too_many_slow;
          return -1;
        }
        slow_ = true;
      }
      const auto wake = slow_ ? deadline_ : std::min(deadline_, slow_at_);
      const int r = wait_socket(sock_, POLLIN, wake - now);
      if (r < 0) return -1;
      if (r == 0) continue;
      const ssize_t n = ::recv(sock_, buffer_, sizeof buffer_, 0);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (n > 0) {
        begin_ = 0;
        end_ = static_cast<size_t>(n);
      }
      return n;
    }
  }

  socket_t sock_;
  const ConnectionLimits& limits_;
  std::atomic<int>& slow_requests_;
  const std::atomic<socket_t>& listening_;
  Clock::time_point deadline_{}, slow_at_{};
  bool slow_ = false, wrote_ = false, close_requested_ = false;
  ArrivalFailure failure_ = ArrivalFailure::none;
  char buffer_[4096];
  size_t begin_ = 0, end_ = 0;
};

thread_local RequestStream* t_stream = nullptr;

// Sends FIN, reads and drops what the client still sends for a short while, then closes.
void close_with_linger(socket_t sock) {
  ::shutdown(sock, SHUT_WR);
  char scratch[4096];
  const auto until = Clock::now() + kLinger;
  for (auto now = Clock::now(); now < until; now = Clock::now()) {
    const int r = wait_socket(sock, POLLIN, until - now);
    if (r < 0) break;
    if (r > 0 && ::recv(sock, scratch, sizeof scratch, 0) <= 0) break;
  }
  ::close(sock);
}

}  // namespace

GuardedHttpServer::GuardedHttpServer(const ConnectionLimits& limits) : limits_(limits) {
  // What httplib announces in its Keep-Alive header; the loop below enforces them.
  set_keep_alive_timeout(limits.keep_alive_s);
  set_keep_alive_max_count(limits.max_requests_per_connection);
}

ArrivalFailure GuardedHttpServer::arrival_failure() { return t_stream ? t_stream->failure() : ArrivalFailure::none; }

void GuardedHttpServer::close_after_response() {
  if (t_stream) t_stream->request_close();
}

int GuardedHttpServer::failure_status(ArrivalFailure failure) {
  return failure == ArrivalFailure::deadline ? 408 : 503;
}

std::string GuardedHttpServer::failure_message(ArrivalFailure failure) const {
  if (failure == ArrivalFailure::deadline)
    return fmt::format("the request's headers and body did not arrive within {:g} s",
                       std::chrono::duration<double>(limits_.request_timeout).count());
  return "server busy with slow uploads, retry later";
}

void GuardedHttpServer::widen_listen_backlog() {
  // Calling listen() again on a listening socket only changes its backlog.
  if (svr_sock_ != INVALID_SOCKET) ::listen(svr_sock_, SOMAXCONN);
}

bool GuardedHttpServer::process_and_close_socket(socket_t sock) {
  RequestStream stream(sock, limits_, slow_requests_, svr_sock_);
  t_stream = &stream;
  bool ok = false;
  for (size_t left = limits_.max_requests_per_connection; left > 0 && stream.wait_for_request(); --left) {
    stream.begin_request();
    bool connection_closed = false;
    ok = process_request(stream, /*close_connection=*/left == 1, connection_closed, nullptr);
    stream.end_request();
    if (!ok || connection_closed || stream.close_requested() || stream.failure() != ArrivalFailure::none) break;
  }
  // httplib answers nothing when even the request line did not arrive: say why.
  if (stream.failure() != ArrivalFailure::none && !stream.wrote()) {
    const std::string body = "{\"error\": \"" + failure_message(stream.failure()) + "\"}";
    const std::string head = "HTTP/1.1 " + std::to_string(failure_status(stream.failure())) +
                             " Error\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: " +
                             std::to_string(body.size()) + "\r\n\r\n";
    const std::string answer = head + body;
    stream.write(answer.data(), answer.size());
  }
  t_stream = nullptr;
  if (stream.close_requested() || stream.failure() != ArrivalFailure::none) {
    close_with_linger(sock);
  } else {
    ::shutdown(sock, SHUT_RDWR);
    ::close(sock);
  }
  return ok;
}

}  // namespace scalpel::serve
