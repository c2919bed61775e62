#pragma once
// Command registry of the `scalpel` binary. Each command lives in its own apps/cmd_*.cpp and
// registers itself; run_main turns every scalpel::Error into "error: ..." and exit status 1.
#include <functional>
#include <string>
#include <vector>

namespace scalpel::cli {

struct Command {
  std::string name;
  std::string summary;  // one line for `scalpel --help`
  std::function<int(const std::vector<std::string>& args)> run;  // args after the command name
};

// Called from static initializers in apps/cmd_*.cpp (see SCALPEL_REGISTER_COMMAND).
bool register_command(Command command);
const std::vector<Command>& commands();

int run_main(int argc, char** argv);

}  // namespace scalpel::cli

#define SCALPEL_CLI_CONCAT2(a, b) a##b
#define SCALPEL_CLI_CONCAT(a, b) SCALPEL_CLI_CONCAT2(a, b)
#define SCALPEL_REGISTER_COMMAND(...) \
  static const bool SCALPEL_CLI_CONCAT(registered_command_, __LINE__) = ::scalpel::cli::register_command(__VA_ARGS__)
