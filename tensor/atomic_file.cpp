#include "tensor/atomic_file.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "tensor/error.h"

namespace scalpel {

namespace {

std::string temporary_path(const std::string& path) { return fmt::format("{}.tmp.{}", path, ::getpid()); }

// Writes and fsyncs the temporary of `path`; on failure removes it and throws naming `path`.
void write_temporary(const std::string& path, std::string_view bytes) {
  const std::string tmp = temporary_path(path);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  SCALPEL_CHECK(fd >= 0, "cannot write {}: {}", path, std::strerror(errno));
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      fail("cannot write {}: {}", path, std::strerror(err));
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    fail("cannot write {}: {}", path, std::strerror(err));
  }
}

void publish_temporary(const std::string& path) {
  const std::string tmp = temporary_path(path);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    fail("cannot write {}: {}", path, std::strerror(err));
  }
}

}  // namespace

void write_file_atomic(const std::string& path, std::string_view bytes) {
  write_temporary(path, bytes);
  publish_temporary(path);
}

void write_files_atomic(const std::vector<std::pair<std::string, std::string>>& path_and_bytes) {
  size_t written = 0;
  try {
    for (; written < path_and_bytes.size(); ++written)
      write_temporary(path_and_bytes[written].first, path_and_bytes[written].second);
    // The one way a rename in the same folder fails in practice, checked before any is done.
    for (const auto& [path, bytes] : path_and_bytes)
      SCALPEL_CHECK(!std::filesystem::is_directory(path), "cannot write {}: {}", path, std::strerror(EISDIR));
  } catch (const Error&) {
    for (size_t i = 0; i < written; ++i) ::unlink(temporary_path(path_and_bytes[i].first).c_str());
    throw;
  }
  for (const auto& [path, bytes] : path_and_bytes) publish_temporary(path);
}

std::vector<std::string> remove_stale_temporaries(const std::string& dir) {
  std::vector<std::string> removed;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    const size_t at = name.rfind(".tmp.");
    if (at == std::string::npos || at == 0) continue;
    const std::string pid_text = name.substr(at + 5);
    if (pid_text.empty() || pid_text.size() > 9 ||
        !std::all_of(pid_text.begin(), pid_text.end(), [](char c) { return c >= '0' && c <= '9'; }))
      continue;
    const pid_t pid = static_cast<pid_t>(std::stol(pid_text));
    // kill(pid, 0) probes without signalling; ESRCH: no such process (EPERM: alive, not ours).
    if (pid <= 0 || pid == ::getpid() || ::kill(pid, 0) == 0 || errno != ESRCH) continue;
    if (std::filesystem::remove(entry.path(), ec)) removed.push_back(entry.path().string());
  }
  return removed;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  SCALPEL_CHECK(in.good(), "cannot open {}: {}", path, std::strerror(errno));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace scalpel
