#include "tensor/atomic_file.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

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

namespace {

const char* file_kind(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "a special file";
}

}  // namespace

int open_regular_file(const std::string& path, std::string& why) {
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    why = std::strerror(errno);
    return -1;
  }
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    why = std::strerror(errno);
    ::close(fd);
    return -1;
  }
  if (!S_ISREG(info.st_mode)) {
    why = fmt::format("not a regular file ({})", file_kind(info.st_mode));
    ::close(fd);
    return -1;
  }
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  return fd;
}

std::string read_file(const std::string& path) {
  std::string why;
  const int fd = open_regular_file(path, why);
  SCALPEL_CHECK(fd >= 0, "cannot read {}: {}", path, why);
  std::string bytes;
  char buffer[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      fail("cannot read {}: {}", path, std::strerror(err));
    }
    if (n == 0) break;
    bytes.append(buffer, static_cast<size_t>(n));
  }
  ::close(fd);
  return bytes;
}

}  // namespace scalpel
