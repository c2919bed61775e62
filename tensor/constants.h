#pragma once
// Values a caller declares constant while an owner lives (a fused model's weights), and data
// kernels derive from them once instead of per call: the bf16 GEMM's packed panels
// (tensor/gemm_prepack.cpp), Winograd's transformed weights (layers/ops/conv2d_winograd.cpp).
//
// Keyed by address. An entry lapses when its owner's last reference goes, so freed and reused
// memory is never mistaken for it; writing to declared data while its owner lives is the
// caller's bug. Thread-safe.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace scalpel {

// Declares that the values at `data` do not change while `owner` lives. Again: a no-op.
void declare_constant(const void* data, std::weak_ptr<const void> owner);
bool is_declared_constant(const void* data);

// What make() derives from the declared `data`, made once per `key` (the key names everything
// the result depends on besides data's values: shapes, kernel, layout) and kept with the entry;
// null when data is not declared or its owner is gone. The pointer stays valid while data's
// owner lives. make() runs under the registry's lock and must not use the registry itself.
const void* derived_from_constant(const void* data, const std::string& key,
                                  const std::function<std::shared_ptr<void>()>& make);

int64_t declared_constant_count();  // live entries (tests, reports)
int64_t derived_value_count();      // what live entries hold derived (tests, reports)
void forget_declared_constants();   // drops every entry and what was derived (tests)

}  // namespace scalpel
