#pragma once
// Checking the scalpel::Error a call throws, for tests of every area:
//
//   EXPECT_NE(error_of([&] { load(path); }).find("truncated"), std::string::npos);
//   expect_error([&] { nn::max_pool2d(x, o, "features.pool4"); }, {"features.pool4", "[1, 2, 2, 2]"});
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tensor/error.h"

namespace scalpel::test {

// The message of the scalpel::Error that fn throws, or "" when it throws none (so a test may
// also check that a call succeeds). Any other exception escapes and fails the test.
template <typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// Expects fn to throw scalpel::Error whose message contains every one of `parts`.
template <typename Fn>
void expect_error(Fn&& fn, const std::vector<std::string>& parts) {
  try {
    fn();
    ADD_FAILURE() << "no error; expected one mentioning " << parts.front();
  } catch (const Error& e) {
    const std::string message = e.what();
    for (const std::string& p : parts)
      EXPECT_NE(message.find(p), std::string::npos) << "'" << p << "' missing from: " << message;
  }
}

}  // namespace scalpel::test
