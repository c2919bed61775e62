#include "tensor/parallel.h"

#include <omp.h>

#include <algorithm>

namespace scalpel {
namespace {
int g_threads = 0;  // 0 = OpenMP's default
}

void set_num_threads(int n) {
  g_threads = n > 0 ? n : 0;
  omp_set_num_threads(n > 0 ? n : omp_get_num_procs());
}

int num_threads() { return g_threads > 0 ? g_threads : omp_get_max_threads(); }

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  int threads = static_cast<int>(std::min<int64_t>(num_threads(), (n + grain - 1) / grain));
  if (threads <= 1 || omp_in_parallel()) {
    fn(0, n);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    int t = omp_get_thread_num();
    int nt = omp_get_num_threads();
    int64_t chunk = (n + nt - 1) / nt;
    int64_t begin = std::min<int64_t>(n, t * chunk);
    int64_t end = std::min<int64_t>(n, begin + chunk);
    if (begin < end) fn(begin, end);
  }
}

}  // namespace scalpel
