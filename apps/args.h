#pragma once
// Flag parsing shared by every command: flags are declared with a help line and a default,
// `--help` prints them, and an unknown flag, a missing value or a malformed number is a
// scalpel::Error naming the flag. Flags take the forms `--name value`, `--name=value`, and
// for multi-value flags `--name v1 v2 ...` (e.g. --size H W, --image a.png b.png).
#include <array>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace scalpel::cli {

class Args {
 public:
  Args(std::string command, std::string usage);

  // Declarations (before parse). `values` > 1 means the flag takes that many values;
  // values == -1 means one or more (until the next --flag).
  Args& flag(const std::string& name, const std::string& help);  // boolean switch
  Args& option(const std::string& name, const std::string& help, const std::string& default_value = "",
               int values = 1);
  // Accepted for compatibility with the shared model flags when a command ignores them.
  Args& positional(const std::string& name, const std::string& help);

  // Returns false when --help was given (help already printed to stdout).
  bool parse(const std::vector<std::string>& args);

  bool declares(const std::string& name) const { return specs_.count(name) > 0; }
  bool has(const std::string& name) const;  // given on the command line (or a switch set)
  std::string get(const std::string& name) const;  // value or default ("" when none)
  std::vector<std::string> get_all(const std::string& name) const;
  std::string require(const std::string& name) const;  // Error "--name is required" when absent
  double get_double(const std::string& name) const;
  int64_t get_int(const std::string& name) const;
  // A two-value flag such as --size H W: both positive integers, else Error naming the flag.
  std::array<int64_t, 2> get_hw(const std::string& name) const;
  std::vector<std::string> positionals() const { return positionals_; }
  std::string help_text() const;

 private:
  struct Spec {
    std::string help, default_value;
    int values = 1;
    bool is_switch = false;
  };
  const Spec& spec(const std::string& name) const;
  std::string command_, usage_;
  std::vector<std::string> order_;
  std::map<std::string, Spec> specs_;
  std::vector<std::pair<std::string, std::string>> positional_specs_;
  std::map<std::string, std::vector<std::string>> given_;
  std::vector<std::string> positionals_;
};

}  // namespace scalpel::cli
