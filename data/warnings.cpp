#include "data/warnings.h"

#include <fmt/format.h>

#include "tensor/error.h"

namespace scalpel::data {

void Warnings::add(const std::string& message) {
  if (strict_) throw Error(message);
  std::lock_guard<std::mutex> lock(mutex_);
  messages_.push_back(message);
}

size_t Warnings::count() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return messages_.size();
}

std::vector<std::string> Warnings::messages() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return messages_;
}

std::string Warnings::report(size_t limit) const {
  std::lock_guard<std::mutex> lock(mutex_);
  if (messages_.empty()) return "";
  std::string out;
  for (size_t i = 0; i < messages_.size() && i < limit; ++i) out += "warning: " + messages_[i] + "\n";
  if (messages_.size() > limit) out += fmt::format("warning: ... and {} more\n", messages_.size() - limit);
  out += fmt::format("{} warning{} about input files\n", messages_.size(), messages_.size() == 1 ? "" : "s");
  return out;
}

}  // namespace scalpel::data
