#pragma once
// Helpers shared by the tests/io tests.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "support/errors.h"
#include "tensor/atomic_file.h"
#include "tensor/error.h"

namespace scalpel::io_test {

inline std::string fixture(const std::string& name) {
  return std::string(SCALPEL_FIXTURES) + "/io/" + name;
}
inline std::string fixture_bytes(const std::string& name) { return read_file(fixture(name)); }

using scalpel::test::error_of;

// Every strict prefix of `bytes` (all of them up to 4096 bytes, then every step-th) must throw
// Error; every single-byte corruption must either load or throw Error, never crash. `parse`
// takes the bytes.
template <typename Parse>
void expect_truncations_fail(const std::string& bytes, Parse&& parse, size_t step = 1) {
  for (size_t n = 0; n < bytes.size(); n += (n < 4096 ? 1 : step)) {
    EXPECT_THROW(parse(bytes.substr(0, n)), Error) << "prefix of " << n << " bytes";
  }
}
template <typename Parse>
void expect_corruptions_safe(const std::string& bytes, Parse&& parse) {
  for (size_t i = 0; i < bytes.size(); ++i) {
    for (const uint8_t flip : {uint8_t{0x01}, uint8_t{0x80}, uint8_t{0xFF}}) {
      std::string corrupt = bytes;
      corrupt[i] = static_cast<char>(static_cast<uint8_t>(corrupt[i]) ^ flip);
      try {
        parse(corrupt);
      } catch (const Error&) {
      }
    }
  }
}

}  // namespace scalpel::io_test
