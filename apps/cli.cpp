#include "apps/cli.h"

#include <algorithm>
#include <cstdio>
#include <exception>

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

int run_main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
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
      if (c.name == args[0]) return c.run(std::vector<std::string>(args.begin() + 1, args.end()));
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
