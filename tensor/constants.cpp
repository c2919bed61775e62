#include "tensor/constants.h"

#include <atomic>
#include <map>
#include <mutex>

namespace scalpel {
namespace {

struct Constant {
  std::weak_ptr<const void> owner;
  std::map<std::string, std::shared_ptr<void>> derived;
};

std::mutex g_mutex;
std::map<const void*, Constant> g_constants;
std::atomic<int64_t> g_declared{0};  // lets lookups skip the lock while nothing was ever declared

// The live entry of `data`, or null; drops it (and what was derived) when its owner is gone.
Constant* find_locked(const void* data) {
  const auto it = g_constants.find(data);
  if (it == g_constants.end()) return nullptr;
  if (it->second.owner.expired()) {
    g_constants.erase(it);
    return nullptr;
  }
  return &it->second;
}

}  // namespace

void declare_constant(const void* data, std::weak_ptr<const void> owner) {
  std::lock_guard lock(g_mutex);
  if (find_locked(data)) return;
  std::erase_if(g_constants, [](const auto& entry) { return entry.second.owner.expired(); });
  g_constants[data] = {std::move(owner), {}};
  g_declared.fetch_add(1, std::memory_order_relaxed);
}

bool is_declared_constant(const void* data) {
  if (g_declared.load(std::memory_order_relaxed) == 0) return false;
  std::lock_guard lock(g_mutex);
  return find_locked(data) != nullptr;
}

const void* derived_from_constant(const void* data, const std::string& key,
                                  const std::function<std::shared_ptr<void>()>& make) {
  if (g_declared.load(std::memory_order_relaxed) == 0) return nullptr;
  std::lock_guard lock(g_mutex);
  Constant* c = find_locked(data);
  if (!c) return nullptr;
  std::shared_ptr<void>& derived = c->derived[key];
  if (!derived) derived = make();
  return derived.get();
}

int64_t declared_constant_count() {
  std::lock_guard lock(g_mutex);
  int64_t live = 0;
  for (const auto& [data, c] : g_constants) live += !c.owner.expired();
  return live;
}

int64_t derived_value_count() {
  std::lock_guard lock(g_mutex);
  int64_t made = 0;
  for (const auto& [data, c] : g_constants)
    if (!c.owner.expired()) made += static_cast<int64_t>(c.derived.size());
  return made;
}

void forget_declared_constants() {
  std::lock_guard lock(g_mutex);
  g_constants.clear();
}

}  // namespace scalpel
