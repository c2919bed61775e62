#pragma once
// One threading mechanism for the whole library: OpenMP, with a settable thread count.
#include <cstdint>
#include <functional>

namespace scalpel {

void set_num_threads(int n);  // n <= 0 restores the default (all cores)
int num_threads();

// Runs fn(begin, end) over [0, n) split into chunks of at least `grain` items across the
// threads. Serial when n is small or when already inside a parallel region.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

}  // namespace scalpel
