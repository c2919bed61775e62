#pragma once
// Runs the scalpel binary (SCALPEL_BINARY) from a test, the way a user would, and captures
// what it printed:
//
//   CliResult r = run_cli({"predict", "--model", "resnet18", "--weights", path, ...});
//   EXPECT_EQ(r.exit_code, 1);
//   EXPECT_TRUE(r.err.starts_with("error: ")) << r.err;
//
// No shell is involved (posix_spawn with the arguments as given, so paths need no quoting).
// stdout and stderr go to temporary files, read back after the process exits (no pipe can
// fill up and block it). exit_code is the exit status, or 128 + signal when it was killed
// (a crash reads as 139 for SIGSEGV, 134 for SIGABRT).
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "support/files.h"

extern char** environ;

namespace scalpel::test {

struct CliResult {
  int exit_code = -1;
  std::string out, err;
  // The first line of stderr (the `error: ...` line of a failure).
  std::string first_err_line() const { return err.substr(0, err.find('\n')); }
};

namespace detail {

// A fresh empty file under the temporary directory; returns its path.
inline std::string temp_file(const char* tag) {
  std::string pattern = (std::filesystem::temp_directory_path() / (std::string("scalpel-cli-") + tag + "-XXXXXX")).string();
  const int fd = mkstemp(pattern.data());
  if (fd < 0) throw std::runtime_error("cli_runner: mkstemp failed for " + pattern);
  close(fd);
  return pattern;
}

}  // namespace detail

// Runs `binary` with `args`; `binary` defaults to the scalpel CLI of this build.
inline CliResult run_cli(const std::vector<std::string>& args, const std::string& binary = SCALPEL_BINARY) {
  const std::string out_path = detail::temp_file("out"), err_path = detail::temp_file("err");
  std::vector<std::string> argv_storage = {binary};
  argv_storage.insert(argv_storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : argv_storage) argv.push_back(a.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, out_path.c_str(), O_WRONLY | O_TRUNC, 0);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err_path.c_str(), O_WRONLY | O_TRUNC, 0);
  pid_t pid = 0;
  const int spawn_error = posix_spawn(&pid, binary.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);

  CliResult result;
  if (spawn_error == 0) {
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    result.out = slurp(out_path);
    result.err = slurp(err_path);
  } else {
    result.err = "cli_runner: cannot start " + binary + ": " + std::to_string(spawn_error);
  }
  std::filesystem::remove(out_path);
  std::filesystem::remove(err_path);
  return result;
}

}  // namespace scalpel::test
