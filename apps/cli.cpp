#include "apps/cli.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <iostream>

#include "cuda/tensor_ops.h"
#include "tensor/error.h"

namespace scalpel::cli {

static std::vector<Command>& registry() {
  static std::vector<Command> all;
  return all;
}

bool register_command(Command command) {
  registry().push_back(std::move(command));
  std::sort(registry().begin(), registry().end(), [](const Command& a, const Command& b) { return a.name < b.name; });
  return true;
}

const std::vector<Command>& commands() { return registry(); }

static void print_help() {
  std::printf("scalpel %s - convolutional networks for medical images\n\n", SCALPEL_VERSION);
  std::printf("usage: scalpel <command> [options]   (scalpel <command> --help for details)\n\ncommands:\n");
  for (const Command& c : commands()) std::printf("  %-10s %s\n", c.name.c_str(), c.summary.c_str());
}

// Output that never reached its destination (`predict --json > /dev/full`, a full disk) is a
// failure, not an exit 0 with an empty file: stdout is flushed here and its error flag checked.
static void check_stdout_written() {
  std::cout.flush();
  errno = 0;
  const bool failed = std::fflush(stdout) != 0 || std::ferror(stdout) || std::cout.fail();
  // errno names the cause only when this flush hit it (an earlier failed write leaves just the flag).
  SCALPEL_CHECK(!failed, "cannot write to standard output{}", errno ? fmt::format(": {}", std::strerror(errno)) : "");
}

int run_main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  // `scalpel help train` is `scalpel train --help`.
  if (args.size() == 2 && args[0] == "help") args = {args[1], "--help"};
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    print_help();
    return args.empty() ? 2 : 0;
  }
  if (args[0] == "--version") {
    std::printf("scalpel %s\n", SCALPEL_VERSION);
    return 0;
  }
  try {
    cuda::init();  // the cuda-emu (and cuda) device: allocators, copies, elementwise ops
    for (const Command& c : commands())
      if (c.name == args[0]) {
        const int status = c.run(std::vector<std::string>(args.begin() + 1, args.end()));
        check_stdout_written();
        return status;
      }
    fail("unknown command '{}' (run 'scalpel --help' for the list)", args[0]);
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}

}  // namespace scalpel::cli
