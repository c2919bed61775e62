#pragma once
// Sums over the samples of a batch, added as a balanced binary tree: samples [begin, end) split
// into [begin, mid) and [mid, end), mid = begin + (end - begin) / 2, each half summed the same
// way down to single samples. The rounding then depends only on which samples are summed, not
// on the batch's size or the thread count: 2^k data-parallel ranks, whose shards of a global
// batch are nodes of that tree (data/loader.h) and whose sums the allreduce adds pairwise, get
// the bits of one process with the whole batch (tests/distributed). Used by the reductions
// over the batch of the CPU kernels: conv, depthwise and linear weight (and bias) gradients,
// batch-norm statistics and their gradients.
#include <array>
#include <cstdint>
#include <utility>
#include <vector>

#include "tensor/parallel.h"

namespace scalpel::ops {

// Sums of terms(i) over one sample's plane, i in [0, s), in double: kSums sums at once, each in
// kPlaneLanes independent partial sums added at the end as a tree (one running sum is a chain of
// dependent adds, a few cycles per element; independent lanes vectorize). The order depends
// only on s, so a plane's sums have the same bits in every kernel that uses this (batch norm's
// and sync batch norm's) and on every rank.
constexpr int64_t kPlaneLanes = 8;

template <int kSums, typename Terms>
std::array<double, kSums> plane_sums(int64_t s, const Terms& terms) {
  double lane[kSums][kPlaneLanes] = {};
  int64_t i = 0;
  for (; i + kPlaneLanes <= s; i += kPlaneLanes)
    for (int64_t j = 0; j < kPlaneLanes; ++j) {
      const std::array<double, kSums> t = terms(i + j);
      for (int k = 0; k < kSums; ++k) lane[k][j] += t[k];
    }
  std::array<double, kSums> total{};
  for (int k = 0; k < kSums; ++k) {
    const double* l = lane[k];
    total[k] = ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
  }
  for (; i < s; ++i) {
    const std::array<double, kSums> t = terms(i);
    for (int k = 0; k < kSums; ++k) total[k] += t[k];
  }
  return total;
}

inline int64_t batch_tree_split(int64_t begin, int64_t end) { return begin + (end - begin) / 2; }

// Levels of the tree below its root for n samples: the scratch vectors batch_tree_sum_into needs.
inline int64_t batch_tree_levels(int64_t n) {
  int64_t levels = 0;
  while ((int64_t{1} << levels) < n) ++levels;
  return levels;
}

// The sum of leaf(i) over i in [begin, end), added as the tree (V{} when empty).
template <typename V, typename Leaf>
V batch_tree_sum(int64_t begin, int64_t end, const Leaf& leaf) {
  if (end <= begin) return V{};
  if (end - begin == 1) return leaf(begin);
  const int64_t mid = batch_tree_split(begin, end);
  const V left = batch_tree_sum<V>(begin, mid, leaf);
  return left + batch_tree_sum<V>(mid, end, leaf);
}

// dst[i] += src[i] for i < width (threads for long vectors; the same bits either way).
template <typename T>
void batch_tree_add(T* dst, const T* src, int64_t width) {
  parallel_for(width, 1 << 14, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) dst[i] += src[i];
  });
}

// out[0, width) = the sum over samples [begin, end) of the vectors that leaf(i, dst) writes
// (every entry) into dst, added as the tree. `levels` holds batch_tree_levels(end - begin) *
// width scratch entries: the left half sums into out, the right one into levels[0, width).
template <typename T, typename Leaf>
void batch_tree_sum_into(int64_t begin, int64_t end, int64_t width, T* out, T* levels, const Leaf& leaf) {
  if (end - begin == 1) return leaf(begin, out);
  const int64_t mid = batch_tree_split(begin, end);
  batch_tree_sum_into(begin, mid, width, out, levels, leaf);
  batch_tree_sum_into(mid, end, width, levels, levels + width, leaf);
  batch_tree_add(out, levels, width);
}

// The same sum in place over rows [begin, end) of `rows` (sample i's vector in row i, `width`
// entries each): it ends in row `begin`; the other rows are overwritten.
template <typename T>
void batch_tree_sum_rows(int64_t begin, int64_t end, int64_t width, T* rows) {
  if (end - begin <= 1) return;
  const int64_t mid = batch_tree_split(begin, end);
  batch_tree_sum_rows(begin, mid, width, rows);
  batch_tree_sum_rows(mid, end, width, rows);
  batch_tree_add(rows + begin * width, rows + mid * width, width);
}

// Entries of partial buffers the conv weight gradients' threaded trees may use.
constexpr int64_t kBatchTreePartialBudget = int64_t{1} << 22;

// out[0, width) = the sum over samples [0, batch) of the vectors leaf(i, dst) writes, added as
// the tree (batch_tree_sum_into), with the same bits however it runs. When `parallel` (the
// caller's judgement that the samples are worth spreading over threads), the tree's nodes
// batch_tree_levels(num_threads()) levels down are summed one per task on the threads (each
// leaf then runs inside a parallel region), the first into out and the others into partial
// buffers, then added up the tree; unless those buffers would pass `budget` entries, in which
// case the samples run one after another (each leaf free to use every thread). The conv
// weight gradients pass kBatchTreePartialBudget.
template <typename T, typename Leaf>
void batch_tree_sum_threaded(int64_t batch, int64_t width, T* out, bool parallel, int64_t budget, const Leaf& leaf) {
  auto grown = [](std::vector<T>& buffer, int64_t size) {
    if (static_cast<int64_t>(buffer.size()) < size) buffer.resize(size);
    return buffer.data();
  };
  thread_local std::vector<T> levels_buffer;
  const int64_t depth = batch_tree_levels(num_threads());
  std::vector<std::pair<int64_t, int64_t>> nodes = {{0, batch}};
  for (int64_t d = 0; d < depth; ++d) {
    std::vector<std::pair<int64_t, int64_t>> next;
    for (const auto& [begin, end] : nodes) {
      const int64_t mid = batch_tree_split(begin, end);
      if (mid > begin) next.push_back({begin, mid});  // a single sample stays whole
      next.push_back({mid, end});
    }
    nodes = std::move(next);
  }
  const auto tasks = static_cast<int64_t>(nodes.size());
  const int64_t task_levels = batch_tree_levels((batch + tasks - 1) / tasks);  // the largest node
  if (!parallel || (tasks - 1 + num_threads() * task_levels) * width > budget) {
    batch_tree_sum_into(int64_t{0}, batch, width, out, grown(levels_buffer, batch_tree_levels(batch) * width), leaf);
    return;
  }
  thread_local std::vector<T> tops_buffer;
  T* const tops = grown(tops_buffer, (tasks - 1) * width);
  auto result_of = [&](int64_t node) { return node == 0 ? out : tops + (node - 1) * width; };
  parallel_for(tasks, 1, [&](int64_t first, int64_t last) {
    T* levels = grown(levels_buffer, task_levels * width);
    for (int64_t i = first; i < last; ++i)
      batch_tree_sum_into(nodes[i].first, nodes[i].second, width, result_of(i), levels, leaf);
  });
  // Up the tree: the node [begin, end) adds its right half's result into its left half's.
  auto combine = [&](auto& self, int64_t begin, int64_t end) -> T* {
    for (int64_t i = 0; i < tasks; ++i) {
      if (nodes[i] == std::pair{begin, end}) return result_of(i);
    }
    const int64_t mid = batch_tree_split(begin, end);
    T* left = self(self, begin, mid);
    batch_tree_add(left, self(self, mid, end), width);
    return left;
  };
  combine(combine, int64_t{0}, batch);
}

}  // namespace scalpel::ops
