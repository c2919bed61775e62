// Constant left operands packed once (see prepack_constant_a in tensor/gemm.h): a registry
// keyed by A's address, each entry holding its packed panels per kernel, made on first use.
#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>

#include "tensor/error.h"
#include "tensor/gemm.h"
#include "tensor/gemm_internal.h"

namespace scalpel {
namespace gemm_detail {
namespace {

struct ConstantA {
  int64_t M, K, lda;
  std::weak_ptr<const void> owner;
  // Packed panels per kernel (its name), made once under the registry's lock.
  std::map<std::string, std::shared_ptr<Buffer>> packed;
};

std::mutex g_mutex;
std::map<const float*, ConstantA> g_constants;
std::atomic<int64_t> g_registered{0};  // lets gemm() skip the lock while nothing was declared

// The entry for A with these sizes, or null; drops it when its owner is gone.
ConstantA* find_locked(const float* A, int64_t M, int64_t K, int64_t lda) {
  const auto it = g_constants.find(A);
  if (it == g_constants.end()) return nullptr;
  if (it->second.owner.expired()) {
    g_constants.erase(it);
    return nullptr;
  }
  const ConstantA& c = it->second;
  return c.M == M && c.K == K && c.lda == lda ? &it->second : nullptr;
}

// The packed panels of `A` for the kernel `name`, packed by pack(buffer) the first time. The
// buffer is shared with the caller, so dropping the entry meanwhile cannot free it mid-use;
// the returned pointer stays valid while the owner of A lives (the entry keeps it).
template <typename Pack>
const void* packed_for(const float* A, int64_t M, int64_t K, int64_t lda, const std::string& name, Pack&& pack) {
  std::lock_guard lock(g_mutex);
  ConstantA* c = find_locked(A, M, K, lda);
  if (!c) return nullptr;
  std::shared_ptr<Buffer>& buffer = c->packed[name];
  if (!buffer) {
    buffer = std::make_shared<Buffer>();
    pack(*buffer);
  }
  return buffer->get<std::byte>(0);
}

}  // namespace

const uint32_t* prepacked_a_bf16(const float* A, int64_t M, int64_t K, int64_t lda, const Bf16KernelInfo& ki) {
  if (g_registered.load(std::memory_order_relaxed) == 0) return nullptr;
  return static_cast<const uint32_t*>(packed_for(A, M, K, lda, ki.name, [&](Buffer& buffer) {
    const int64_t rows = round_up(M, ki.mr);
    uint32_t* out = buffer.get<uint32_t>(rows * ((K + 1) / 2));
    for (int64_t pc = 0; pc < K; pc += ki.kc)
      ki.pack_a(false, A, lda, 0, M, pc, std::min(ki.kc, K - pc), out + pc / 2 * rows);
  }));
}

}  // namespace gemm_detail

void prepack_constant_a(const float* A, int64_t M, int64_t K, int64_t lda, std::weak_ptr<const void> owner) {
  SCALPEL_CHECK(A && M > 0 && K > 0 && lda >= K, "prepack_constant_a: bad matrix M={} K={} lda={}", M, K, lda);
  std::lock_guard lock(gemm_detail::g_mutex);
  if (gemm_detail::find_locked(A, M, K, lda)) return;
  std::erase_if(gemm_detail::g_constants, [](const auto& entry) { return entry.second.owner.expired(); });  // their panels too
  gemm_detail::g_constants[A] = {M, K, lda, std::move(owner), {}};
  gemm_detail::g_registered.fetch_add(1, std::memory_order_relaxed);
}

int64_t prepacked_constant_count() {
  std::lock_guard lock(gemm_detail::g_mutex);
  int64_t live = 0;
  for (const auto& [a, c] : gemm_detail::g_constants) live += !c.owner.expired();
  return live;
}

void forget_prepacked_constants() {
  std::lock_guard lock(gemm_detail::g_mutex);
  gemm_detail::g_constants.clear();
}

}  // namespace scalpel
