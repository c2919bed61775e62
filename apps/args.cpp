#include "apps/args.h"

#include <cstdio>
#include <cstdlib>

#include "tensor/error.h"

namespace scalpel::cli {

Args::Args(std::string command, std::string usage) : command_(std::move(command)), usage_(std::move(usage)) {}

Args& Args::flag(const std::string& name, const std::string& help) {
  specs_[name] = Spec{help, "", 0, true};
  order_.push_back(name);
  return *this;
}

Args& Args::option(const std::string& name, const std::string& help, const std::string& default_value, int values) {
  // A command may declare a shared flag again with its own help and default: listed once.
  if (!specs_.count(name)) order_.push_back(name);
  specs_[name] = Spec{help, default_value, values, false};
  return *this;
}

Args& Args::positional(const std::string& name, const std::string& help) {
  positional_specs_.emplace_back(name, help);
  return *this;
}

const Args::Spec& Args::spec(const std::string& name) const {
  auto it = specs_.find(name);
  SCALPEL_CHECK(it != specs_.end(), "internal: flag --{} is not declared for 'scalpel {}'", name, command_);
  return it->second;
}

std::string Args::help_text() const {
  std::string out = fmt::format("usage: scalpel {} {}\n", command_, usage_);
  if (!positional_specs_.empty()) {
    out += "\narguments:\n";
    for (const auto& [name, help] : positional_specs_) out += fmt::format("  {:<24} {}\n", name, help);
  }
  out += "\noptions:\n";
  for (const std::string& name : order_) {
    const Spec& s = specs_.at(name);
    std::string left = "--" + name;
    if (!s.is_switch) left += s.values == 1 ? " X" : (s.values < 0 ? " X..." : fmt::format(" X*{}", s.values));
    std::string right = s.help;
    // A help line that explains its default itself keeps that wording alone.
    if (!s.default_value.empty() && right.find("(default") == std::string::npos)
      right += fmt::format(" (default {})", s.default_value);
    out += fmt::format("  {:<24} {}\n", left, right);
  }
  out += fmt::format("  {:<24} {}\n", "--help", "show this help");
  return out;
}

bool Args::parse(const std::vector<std::string>& args) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--help" || a == "-h") {
      std::fputs(help_text().c_str(), stdout);
      return false;
    }
    if (!a.starts_with("--")) {
      SCALPEL_CHECK(positionals_.size() < positional_specs_.size(), "unexpected argument '{}' for 'scalpel {}' (see --help)",
                    a, command_);
      positionals_.push_back(a);
      continue;
    }
    std::string name = a.substr(2), inline_value;
    bool has_inline = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      inline_value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_inline = true;
    }
    auto it = specs_.find(name);
    SCALPEL_CHECK(it != specs_.end(), "unknown flag --{} for 'scalpel {}' (see scalpel {} --help)", name, command_, command_);
    const Spec& s = it->second;
    std::vector<std::string>& values = given_[name];
    values.clear();
    if (s.is_switch) {
      SCALPEL_CHECK(!has_inline, "flag --{} takes no value", name);
      continue;
    }
    if (has_inline) {
      values.push_back(inline_value);
      continue;
    }
    if (s.values < 0) {
      while (i + 1 < args.size() && !args[i + 1].starts_with("--")) values.push_back(args[++i]);
      SCALPEL_CHECK(!values.empty(), "flag --{} needs at least one value", name);
    } else {
      for (int k = 0; k < s.values; ++k) {
        SCALPEL_CHECK(i + 1 < args.size() && (!args[i + 1].starts_with("--") || args[i + 1].size() == 2),
                      "flag --{} needs {} value{}", name, s.values, s.values > 1 ? "s" : "");
        values.push_back(args[++i]);
      }
    }
  }
  return true;
}

bool Args::has(const std::string& name) const {
  spec(name);
  return given_.count(name) > 0;
}

std::string Args::get(const std::string& name) const {
  const Spec& s = spec(name);
  auto it = given_.find(name);
  if (it == given_.end() || it->second.empty()) return s.default_value;
  return it->second.front();
}

std::vector<std::string> Args::get_all(const std::string& name) const {
  const Spec& s = spec(name);
  auto it = given_.find(name);
  if (it != given_.end()) return it->second;
  if (s.default_value.empty()) return {};
  // Multi-value defaults are written space-separated ("224 224").
  std::vector<std::string> out;
  size_t start = 0;
  while (start < s.default_value.size()) {
    size_t end = s.default_value.find(' ', start);
    if (end == std::string::npos) end = s.default_value.size();
    if (end > start) out.push_back(s.default_value.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

std::string Args::require(const std::string& name) const {
  std::string v = get(name);
  SCALPEL_CHECK(!v.empty(), "--{} is required for 'scalpel {}' (see scalpel {} --help)", name, command_, command_);
  return v;
}

double Args::get_double(const std::string& name) const {
  std::string v = get(name);
  char* end = nullptr;
  double d = std::strtod(v.c_str(), &end);
  SCALPEL_CHECK(!v.empty() && end && *end == '\0', "--{} expects a number, got '{}'", name, v);
  return d;
}

int64_t Args::get_int(const std::string& name) const {
  std::string v = get(name);
  char* end = nullptr;
  long long d = std::strtoll(v.c_str(), &end, 10);
  SCALPEL_CHECK(!v.empty() && end && *end == '\0', "--{} expects an integer, got '{}'", name, v);
  return d;
}

}  // namespace scalpel::cli

namespace scalpel::cli {

std::array<int64_t, 2> Args::get_hw(const std::string& name) const {
  const auto hw = get_all(name);
  SCALPEL_CHECK(hw.size() == 2, "--{} expects two positive integers H W", name);
  char *end_h = nullptr, *end_w = nullptr;
  const int64_t h = std::strtoll(hw[0].c_str(), &end_h, 10), w = std::strtoll(hw[1].c_str(), &end_w, 10);
  SCALPEL_CHECK(!hw[0].empty() && !hw[1].empty() && *end_h == '\0' && *end_w == '\0' && h > 0 && w > 0,
                "--{} expects two positive integers H W, got {} {}", name, hw[0], hw[1]);
  return {h, w};
}

}  // namespace scalpel::cli
