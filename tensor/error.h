#pragma once
// Errors: every failure a user can cause (bad shape, bad file, bad flag) throws scalpel::Error
// with a message naming the culprit. The CLI prints it as "error: <message>" and exits 1.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <stdexcept>
#include <string>

namespace scalpel {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace scalpel

// SCALPEL_CHECK(cond, "fmt", args...) throws scalpel::Error with the formatted message.
#define SCALPEL_CHECK(cond, ...)         \
  do {                                   \
    if (!(cond)) ::scalpel::fail(__VA_ARGS__); \
  } while (0)
