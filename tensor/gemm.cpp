// CPU GEMM. See tensor/gemm.h for the contract and tensor/gemm_internal.h for the kernels.
//
// How the float path is organised (GotoBLAS / BLIS style), for learners
// ----------------------------------------------------------------------
// C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C is cut into blocks so that each level
// of the loop nest works on data that sits in one level of the cache:
//
//   for ic in M step MC:              A block  MC x KC, lives in L3
//     for pc in K step KC:
//       pack A[ic:+MC, pc:+KC] -> Ap  (row panels of MR rows, k-major)
//       for jc in N step NC:
//         pack B[pc:+KC, jc:+NC] -> Bp  B block KC x NC lives in L2 (~1 MiB)
//         for ir in MC step MR:         one A micro-panel (MR x KC) stays in L1 ...
//           for jr in NC step NR:       ... while the B micro-panels stream from L2
//             micro-kernel: C[ir:+MR, jr:+NR] (+)= Ap[ir] * Bp[jr]   (registers)
//
// Packing copies a block into the exact order the micro-kernel reads it (contiguous,
// zero-padded to whole MR x NR tiles, on huge pages), absorbing trans_a/trans_b and lda/ldb.
// The micro-kernel keeps an MR x NR tile of C in vector registers and, per k, does MR
// broadcasts of A, NR/16 vector loads of B and MR*NR/16 FMAs (8 x 48 on AVX-512: 24 FMAs
// for 11 loads). The first K block applies beta (beta == 0: C is write-only); later K
// blocks accumulate (beta = 1); alpha is applied when the tile is stored.
//
// Packing is a copy, and it only pays when the copy is reused: B's block is reused by every
// row panel of A, A's panel by every column panel of B. Convolution GEMMs are often skinny
// (64 x 3136 x 576, 2048 x 49 x 512), so each thread packs B only when it owns at least
// kPackBMinRows rows of C and A only when it owns at least kPackAMinCols columns; otherwise
// the kernels read the operand in place through a stride (see MicroKernel). Ragged edges are
// computed in place: there is a kernel for every row count 1..MR and width of 1..3 vectors,
// and the last vector of a tile is stored under a mask, so the bottom edge of M = 20 costs a
// 4-row tile and the right edge of N = 49 a 16-wide tile with 1 column stored. The AVX-512
// kernels also load B's last vector under a mask; the others need a ragged B panel packed
// (zero-padded) when they read B in place.
//
// gemm_items (several products sharing A, e.g. a 1x1 conv's samples) runs the same loop nest
// over the items' columns side by side: B's packing gathers each column from its item, and a
// tile of C that straddles two items is stored through a small buffer (store_straddling_tile).
//
// Matrix-vector products (N = 1, e.g. the squeeze-excite convs on one pixel, or M = 1, a
// linear layer at batch 1) would use one column or row of each tile; they go to a GEMV
// kernel instead, which streams the matrix once, unpacked.
//
// Threads split C into a grid of rectangles (e.g. 2 threads: top/bottom or left/right,
// whichever wastes less padding), and each thread runs the loop nest above on its own
// rectangle with its own packing buffers. The shared operand is then packed once per thread
// instead of once, which costs little (packing is O(MK + KN), the product O(MNK)) and keeps
// threads free of barriers.
//
// The block sizes (MC, KC, NC) come with each micro-kernel (KernelInfo); they were tuned on
// the development machine (Xeon Sapphire Rapids: 48 KiB L1d, 2 MiB L2 per core) with
// bench/bench_gemm.cpp. There the 8 x 48 kernel alone, hot in cache, runs at ~140 GFLOP/s
// per core against ~158 for the FMA probe: any mix of ~11 loads per 24 FMAs measured the same
// ceiling, so that is the kernel's bound, and blocking/packing lose the rest. NC is lowered on
// CPUs with a smaller L2 (fit_blocks_to_l2: B's block in half the L2); on AMD Zen 5 (1 MiB,
// NC 480 -> 240) the gain is within that guest's run-to-run noise (docs/performance.md).
// Double precision goes through Eigen: it is only used by gradient checks.
#include "tensor/gemm.h"

#include <omp.h>

#include <Eigen/Core>
#include <algorithm>
#include <cstdlib>
#include <memory>
#include <new>
#include <vector>

#include <sys/mman.h>

#include "tensor/error.h"
#include "tensor/gemm_bf16.h"
#include "tensor/gemm_internal.h"
#include "tensor/parallel.h"

namespace scalpel {
namespace {

void check_args(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, int64_t lda,
                int64_t ldb, int64_t ldc) {
  SCALPEL_CHECK(M >= 0 && N >= 0 && K >= 0, "gemm: negative size M={} N={} K={}", M, N, K);
  const int64_t a_cols = trans_a ? M : K, b_cols = trans_b ? K : N;
  SCALPEL_CHECK(lda >= std::max<int64_t>(a_cols, 1), "gemm: lda={} < {} columns of A", lda,
                a_cols);
  SCALPEL_CHECK(ldb >= std::max<int64_t>(b_cols, 1), "gemm: ldb={} < {} columns of B", ldb,
                b_cols);
  SCALPEL_CHECK(ldc >= std::max<int64_t>(N, 1), "gemm: ldc={} < N={}", ldc, N);
}

// C = beta * C over M x N, with beta == 0 writing zeros (old NaNs included).
template <typename T>
void scale_c(int64_t M, int64_t N, T beta, T* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i) {
    T* row = C + i * ldc;
    if (beta == T(0))
      std::fill(row, row + N, T(0));
    else if (beta != T(1))
      for (int64_t j = 0; j < N; ++j) row[j] *= beta;
  }
}

// The epilogue over all of C, row by row (paths that do not go through the tiled loop nest).
template <typename T>
void apply_epilogue_rows(const GemmEpilogue<T>& e, int64_t M, int64_t N, T* C, int64_t ldc) {
  if (e.empty()) return;
  for (int64_t i = 0; i < M; ++i) apply_epilogue(e, i, 0, N, C + i * ldc);
}

// The epilogue as item `item` of C sees it: its residual moves with C.
template <typename T>
GemmEpilogue<T> item_epilogue(const GemmEpilogue<T>& epilogue, int64_t item, int64_t c_stride) {
  GemmEpilogue<T> e = epilogue;
  if (e.residual) e.residual += item * c_stride;
  return e;
}

// B's items with their rows transformed by a prologue, what the products that do not pack B
// read instead of B: item s's K x width matrix at s * K * width, row stride width.
template <typename T>
struct TransformedB {
  std::vector<T> values;
  ColumnItems items;
  int64_t ldb;
};

template <typename T>
TransformedB<T> transformed_b(int64_t K, const ColumnItems& items, const T* B, int64_t ldb,
                              const GemmPrologue<T>& prologue) {
  TransformedB<T> t{std::vector<T>(items.count * K * items.width),
                    {items.count, items.width, K * items.width, items.c_stride}, items.width};
  for (int64_t s = 0; s < items.count; ++s)
    for (int64_t k = 0; k < K; ++k)
      apply_prologue(prologue.for_item(s), k, B + s * items.b_stride + k * ldb, items.width,
                     t.values.data() + (s * K + k) * items.width);
  return t;
}

// gemm_items as one gemm() per item (a prologue: on a transformed copy of B).
template <typename T>
void gemm_each_item(bool trans_a, int64_t M, int64_t K, const ColumnItems& items, T alpha, const T* A, int64_t lda,
                    const T* B, int64_t ldb, T beta, T* C, int64_t ldc, const GemmEpilogue<T>& epilogue,
                    const GemmPrologue<T>& prologue = {}) {
  if (!prologue.empty()) {
    const TransformedB<T> t = transformed_b(K, items, B, ldb, prologue);
    return gemm_each_item(trans_a, M, K, t.items, alpha, A, lda, t.values.data(), t.ldb, beta, C, ldc, epilogue);
  }
  for (int64_t s = 0; s < items.count; ++s)
    gemm(trans_a, false, M, items.width, K, alpha, A, lda, B + s * items.b_stride, ldb, beta, C + s * items.c_stride,
         ldc, item_epilogue(epilogue, s, items.c_stride));
}

}  // namespace

namespace gemm_detail {
namespace {

// ---- packing -------------------------------------------------------------------------------

// Ap <- op(A)[i0 : i0+mc, p0 : p0+kc] as ceil(mc/mr) panels; panel p holds
// Ap[p*mr*kc + k*mr + i] = op(A)[i0 + p*mr + i][p0 + k]. The last panel's rows past mc are
// left unwritten: its kernel has that many fewer rows and never reads them.
void pack_a(bool trans_a, const float* A, int64_t lda, int64_t i0, int64_t mc, int64_t p0,
            int64_t kc, int mr, float* Ap) {
  for (int64_t ip = 0; ip < mc; ip += mr, Ap += mr * kc) {
    const int64_t rows = std::min<int64_t>(mr, mc - ip);
    for (int64_t k = 0; k < kc; ++k) {
      float* dst = Ap + k * mr;
      if (trans_a) {  // op(A)[i][k] = A[k][i]: the panel's rows are contiguous in A
        const float* src = A + (p0 + k) * lda + i0 + ip;
        std::copy(src, src + rows, dst);
      } else {
        const float* src = A + (i0 + ip) * lda + p0 + k;
        for (int64_t i = 0; i < rows; ++i) dst[i] = src[i * lda];
      }
    }
  }
}

// Bp <- op(B)[p0 : p0+kc, j0 : j0+nc] as ceil(nc/nr) panels; panel p holds
// Bp[p*nr*kc + k*nr + j] = op(B)[p0 + k][j0 + p*nr + j], columns past nc are zero. Column j of
// a non-transposed B is column j % width of item j / width (ColumnItems; one item: width = N).
void pack_b(bool trans_b, const float* B, int64_t ldb, const ColumnItems& items, const GemmPrologue<float>& prologue,
            int64_t p0, int64_t kc, int64_t j0, int64_t nc, int nr, float* Bp) {
  // op(B)[k][j] = B[j][k]: walk each column j of the panel along k. (A prologue comes only
  // from gemm_items, whose B is never transposed.)
  if (trans_b) {
    for (int64_t jp = 0; jp < nc; jp += nr, Bp += nr * kc) {
      const int64_t cols = std::min<int64_t>(nr, nc - jp);
      for (int64_t j = 0; j < cols; ++j) {
        const float* src = B + (j0 + jp + j) * ldb + p0;
        for (int64_t k = 0; k < kc; ++k) Bp[k * nr + j] = src[k];
      }
      for (int64_t k = 0; k < kc; ++k) std::fill(Bp + k * nr + cols, Bp + (k + 1) * nr, 0.0f);
    }
    return;
  }
  // Row by row, so B is read sequentially whatever its row stride, in runs that end at panel
  // and item edges.
  for (int64_t k = 0; k < kc; ++k) {
    float* dst = Bp + k * nr;
    for (int64_t j = 0; j < nc;) {
      const int64_t col = j0 + j, item = col / items.width, at = col % items.width;
      const int64_t run = std::min({nr - j % nr, items.width - at, nc - j});
      const float* src = B + item * items.b_stride + (p0 + k) * ldb + at;
      if (prologue.empty())
        std::copy(src, src + run, dst + j / nr * nr * kc + j % nr);
      else
        apply_prologue(prologue.for_item(item), p0 + k, src, run, dst + j / nr * nr * kc + j % nr);
      j += run;
    }
    if (nc % nr) {
      float* last = dst + nc / nr * nr * kc;
      std::fill(last + nc % nr, last + nr, 0.0f);
    }
  }
}

// ---- the blocked loop nest on one thread's rectangle of C ----------------------------------

struct Problem {
  bool trans_a, trans_b;
  int64_t K;
  float alpha;
  const float* A;
  int64_t lda;
  const float* B;
  int64_t ldb;
  float beta;
  float* C;
  int64_t ldc;
  const GemmEpilogue<float>& epilogue;
  ColumnItems items;  // B's and C's columns (one item of N columns for a plain gemm)
  GemmPrologue<float> prologue{};  // applied to B as it is packed (B is then always packed)
};

// Stores an R x `cols` tile of C whose columns [j, j + cols) straddle items: the kernel writes
// it to `tile` (row stride nr; with beta != 0 it first gathers C's old values there), then each
// item's run of columns is copied out and given the epilogue. With 49-column items about every
// other tile straddles; the copies stay in L1.
template <typename Kernel>
void store_straddling_tile(const KernelInfo& ki, const Problem& p, Kernel&& kernel, int64_t nr, int64_t row,
                           int64_t rows, int64_t j, int64_t cols, float beta, bool last_k_block, float* tile) {
  const int64_t w = p.items.width;
  // fn(item, column in the item, C's first element of the run in row 0, offset in the tile, length)
  auto for_runs = [&](auto&& fn) {
    for (int64_t t = 0; t < cols;) {
      const int64_t item = (j + t) / w, at = (j + t) % w, run = std::min(w - at, cols - t);
      fn(item, at, p.C + item * p.items.c_stride + row * p.ldc + at, t, run);
      t += run;
    }
  };
  if (beta != 0.0f)
    for_runs([&](int64_t, int64_t, float* c, int64_t t, int64_t run) {
      for (int64_t i = 0; i < rows; ++i) std::copy(c + i * p.ldc, c + i * p.ldc + run, tile + i * nr + t);
    });
  kernel(tile, nr);
  for_runs([&](int64_t item, int64_t at, float* c, int64_t t, int64_t run) {
    for (int64_t i = 0; i < rows; ++i) std::copy(tile + i * nr + t, tile + i * nr + t + run, c + i * p.ldc);
    if (!last_k_block || p.epilogue.empty()) return;
    ki.epilogue(item_epilogue(p.epilogue, item, p.items.c_stride), row, rows, at, run, c, p.ldc);
  });
}

// Where a kernel reads an MR-row panel of A or a column panel of B (see MicroKernel).
struct PanelA {
  const float* p;
  int64_t step;
  bool row_major;
};
struct PanelB {
  const float* p;
  int64_t step;
};

// Packing B pays when its block is reused by many row panels: below this many rows of C a
// thread reads B in place. Each thread packs its whole share of B, and with the weights (A)
// cold, as at inference, the copy was the dearer on Zen 4 (1 MiB L2) for the conv shapes, which
// own 16-256 rows per thread: B in place 3-17 % faster on conv GEMMs, resnet50's 7x7 stem 10 %;
// square_2048 (1024 rows per thread) keeps its packed B (87 % of the FMA probe against 85).
// docs/performance.md, session 13.
constexpr int64_t kPackBMinRows = 512;
// Packing A pays when its panels are reused by several column blocks.
constexpr int64_t kPackAMinCols = 1024;

void gemm_block(const KernelInfo& ki, Packing packing, const Problem& p, int64_t m0, int64_t m1,
                int64_t n0, int64_t n1) {
  const int64_t mr = ki.mr, nr = ki.nr(), vec = ki.vec;
  const bool pack_all = packing == Packing::always, pack_none = packing == Packing::never;
  const bool packed_a = pack_all || (!pack_none && n1 - n0 >= kPackAMinCols);
  const bool packed_b = p.trans_b || p.items.count > 1 || !p.prologue.empty() || pack_all ||
                        (!pack_none && m1 - m0 >= kPackBMinRows);

  thread_local Buffer a_buffer, b_buffer, b_edge_buffer;
  float* Ap = packed_a ? a_buffer.get(round_up(std::min(ki.mc, m1 - m0), mr) * ki.kc) : nullptr;
  float* Bp = packed_b ? b_buffer.get(round_up(std::min(ki.nc, n1 - n0), nr) * ki.kc) : nullptr;
  float* b_edge = packed_b ? nullptr : b_edge_buffer.get(nr * ki.kc);  // a ragged B panel
  alignas(64) float tile[kMaxRows * kMaxWidths * 16];                   // a tile straddling items

  for (int64_t ic = m0; ic < m1; ic += ki.mc) {
    const int64_t mc = std::min(ki.mc, m1 - ic);
    for (int64_t pc = 0; pc < p.K; pc += ki.kc) {
      const int64_t kc = std::min(ki.kc, p.K - pc);
      const float beta = pc == 0 ? p.beta : 1.0f;  // later K blocks accumulate
      const bool last_k_block = pc + kc == p.K;       // the tiles are final: apply the epilogue
      if (packed_a) pack_a(p.trans_a, p.A, p.lda, ic, mc, pc, kc, mr, Ap);

      for (int64_t jc = n0; jc < n1; jc += ki.nc) {
        const int64_t nc = std::min(ki.nc, n1 - jc);
        // Read in place, B's last column panel is packed (zero-padded) when it does not fill
        // whole vectors and the kernel would read past the end of B's rows.
        const int64_t last_panel = (nc - 1) / nr * nr;
        const bool pad_b_edge = !packed_b && nc % vec && !ki.masked_b_loads;
        if (packed_b)
          pack_b(p.trans_b, p.B, p.ldb, p.items, p.prologue, pc, kc, jc, nc, nr, Bp);
        else if (pad_b_edge)
          pack_b(false, p.B, p.ldb, p.items, {}, pc, kc, jc + last_panel, nc - last_panel, nr, b_edge);

        for (int64_t ir = 0; ir < mc; ir += mr) {
          const int64_t rows = std::min(mr, mc - ir);
          PanelA a;
          if (packed_a) a = {Ap + ir * kc, mr, false};
          else if (p.trans_a) a = {p.A + pc * p.lda + ic + ir, p.lda, false};
          else a = {p.A + (ic + ir) * p.lda + pc, p.lda, true};
          const MicroKernel* kernels = (a.row_major ? ki.row_major : ki.k_major)[rows - 1];

          for (int64_t jr = 0; jr < nc; jr += nr) {
            const int64_t cols = std::min(nr, nc - jr);
            const int64_t width = round_up(cols, vec);  // a whole number of vectors
            PanelB b;
            if (packed_b) b = {Bp + jr * kc, nr};
            else if (pad_b_edge && jr == last_panel) b = {b_edge, nr};
            else b = {p.B + pc * p.ldb + jc + jr, p.ldb};
            const MicroKernel kernel = kernels[width / vec - 1];
            const int64_t j = jc + jr, item = j / p.items.width, at = j % p.items.width;
            if (at + cols > p.items.width) {
              store_straddling_tile(
                  ki, p,
                  [&](float* c, int64_t ldc) {
                    kernel(kc, a.p, a.step, b.p, b.step, c, ldc, p.alpha, beta, cols, nullptr);
                  },
                  nr, ic + ir, rows, j, cols, beta, last_k_block, tile);
              continue;
            }
            float* c = p.C + item * p.items.c_stride + (ic + ir) * p.ldc + at;
            if (!last_k_block || p.epilogue.empty()) {
              kernel(kc, a.p, a.step, b.p, b.step, c, p.ldc, p.alpha, beta, cols, nullptr);
              continue;
            }
            const GemmEpilogue<float> e = item_epilogue(p.epilogue, item, p.items.c_stride);
            const TileEpilogue tile_epilogue{e, ic + ir, at};
            kernel(kc, a.p, a.step, b.p, b.step, c, p.ldc, p.alpha, beta, cols, &tile_epilogue);
          }
        }
      }
    }
  }
}

// Below this many multiply-adds per thread, waking another thread costs more than it saves.
constexpr int64_t kMinMacsPerThread = int64_t(1) << 18;

// The thread count for `macs` multiply-adds: at most `threads`, at least one.
int threads_for(int64_t macs, int threads) {
  if (threads <= 0) threads = num_threads();
  if (omp_in_parallel()) return 1;
  return static_cast<int>(std::clamp<int64_t>(macs / kMinMacsPerThread, 1, threads));
}


// block(m0, m1, n0, n1) on each thread's rectangle of the thread grid of an M x N product.
template <typename Block>
void run_on_grid(const KernelInfo& ki, int threads, int64_t M, int64_t N, int64_t K, Block&& block) {
  const ThreadGrid grid = thread_grid(M, N, K, ki.mr, ki.vec, threads);
  auto run = [&](int t) {
    const int64_t m0 = (t / grid.tn) * grid.m_step, n0 = (t % grid.tn) * grid.n_step;
    if (m0 < M && n0 < N) block(m0, std::min(M, m0 + grid.m_step), n0, std::min(N, n0 + grid.n_step));
  };
  if (grid.threads == 1) return run(0);
#pragma omp parallel num_threads(grid.threads)
  run(omp_get_thread_num());
}

// The loop nest of gemm_block over the thread grid, on p's M x N columns.
void run_blocks(const KernelInfo& ki, int threads, Packing packing, const Problem& p, int64_t M, int64_t N) {
  run_on_grid(ki, threads, M, N, p.K,
              [&](int64_t m0, int64_t m1, int64_t n0, int64_t n1) { gemm_block(ki, packing, p, m0, m1, n0, n1); });
}

// ---- the transposed product ----------------------------------------------------------------
// A conv's GEMM has the pixels as columns (N = H*W), and when N is not a whole number of
// vectors the kernels fill few of their lanes: a 7x7 plane's 49 columns take a 48-wide tile and
// a 16-wide one holding 1 column, 49 of 64 lanes. Where A is a declared constant (a fused
// model's conv weights), C^T = B^T A^T runs instead: the pixels become the kernel's rows (B
// read k-major) and the output channels its vectors, from A^T packed once into column panels
// (prepacked_b_panels); the kernels store their tiles transposed, straight into C. Each
// element is the same sum in the same order (the same K blocks; fma(a, b, acc) = fma(b, a,
// acc)) and is stored by the same operations, so the bits do not change.
//
// At batch 1 the panels (the weights) come from memory, read once. Panel by panel, each row
// tile of pixels also asks for its share of the next panel's rows (TransposedKernel), so that
// the stream is spread over all the panel's tiles instead of stalling the first: layer4's
// 512 x 49 x 4608 with cold weights 1.16-1.19 vs 1.27-1.34 ms on Zen 4.

// Transposed only when that fills clearly more lanes (the transposed store costs shuffles).
constexpr double kMinLaneUse = 0.9;
double lane_use(int64_t n, int64_t vec) { return static_cast<double>(n) / static_cast<double>(round_up(n, vec)); }

// A^T's panels when gemm() should run C = A B transposed, else null.
const float* transposed_panels(const KernelInfo& ki, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                               const float* A, int64_t lda) {
  if (!ki.transposed[0][0] || trans_a || trans_b || M < ki.nr() || N < 2 || lane_use(N, ki.vec) >= kMinLaneUse ||
      lane_use(M, ki.vec) < kMinLaneUse)
    return nullptr;
  return prepacked_b_panels(A, M, K, lda, ki);  // null unless A is a declared constant
}

struct TransposedProblem {
  int64_t M, K;  // C's rows: the kernel's columns, in A^T's panels
  float alpha;
  const float* panels;  // A^T (prepacked_b_panels)
  const float* B;       // the kernel's rows are B's columns, read k-major
  int64_t ldb;
  float beta;
  float* C;
  int64_t ldc;
  const GemmEpilogue<float>& epilogue;
};

// The tiles of B's columns [j0, j1) (the kernel's rows) x C's rows [i0, i1), panel by panel.
void transposed_block(const KernelInfo& ki, Packing packing, const TransposedProblem& p, int64_t j0, int64_t j1,
                      int64_t i0, int64_t i1) {
  const int64_t mr = ki.mr, nr = ki.nr(), vec = ki.vec, pixels = j1 - j0;
  const bool packed = packing == Packing::always || (packing == Packing::automatic && i1 - i0 >= kPackAMinCols);
  thread_local Buffer a_buffer;
  float* Bp = packed ? a_buffer.get(round_up(pixels, mr) * ki.kc) : nullptr;
  const int64_t shares = (pixels + mr - 1) / mr;
  for (int64_t pc = 0; pc < p.K; pc += ki.kc) {
    const int64_t kc = std::min(ki.kc, p.K - pc);
    const float beta = pc == 0 ? p.beta : 1.0f;  // later K blocks accumulate
    const bool last_k_block = pc + kc == p.K;
    if (packed) pack_a(true, p.B, p.ldb, j0, pixels, pc, kc, mr, Bp);
    for (int64_t i = i0, cols; i < i1; i += cols) {
      cols = std::min(nr - i % nr, i1 - i);  // a tile ends where its panel does
      const float* panel = p.panels + (i / nr * p.K + pc) * nr + i % nr;
      const float* next = i + cols < i1 ? p.panels + ((i / nr + 1) * p.K + pc) * nr : nullptr;
      for (int64_t jr = 0, share = 0; jr < pixels; jr += mr, ++share) {
        const int64_t rows = std::min(mr, pixels - jr);
        const float* a = packed ? Bp + jr * kc : p.B + pc * p.ldb + j0 + jr;
        const int64_t a_step = packed ? mr : p.ldb;
        const TransposedKernel kernel = ki.transposed[rows - 1][round_up(cols, vec) / vec - 1];
        float* c = p.C + i * p.ldc + j0 + jr;
        const PanelShare prefetch{next, share, shares};
        if (!last_k_block || p.epilogue.empty()) {
          kernel(kc, a, a_step, panel, nr, prefetch, c, p.ldc, p.alpha, beta, cols, nullptr);
          continue;
        }
        const TileEpilogue tile_epilogue{p.epilogue, i, j0 + jr};
        kernel(kc, a, a_step, panel, nr, prefetch, c, p.ldc, p.alpha, beta, cols, &tile_epilogue);
      }
    }
  }
}

void transposed_product(const KernelInfo& ki, int threads, Packing packing, const TransposedProblem& p, int64_t N) {
  run_on_grid(ki, threads, N, p.M, p.K, [&](int64_t j0, int64_t j1, int64_t i0, int64_t i1) {
    transposed_block(ki, packing, p, j0, j1, i0, i1);
  });
}

// C = alpha * op(A) op(B) + beta * C, then the epilogue, for the shapes is_gemv() accepts:
// y = alpha * mat x + beta * y, where mat is A (y: C's column) or B (y: C's row) and x is
// the other operand's single column or row, gathered when it is strided.
void gemv_product(const KernelInfo& ki, int threads, bool trans_a, bool trans_b, int64_t M,
                  int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                  const float* B, int64_t ldb, float beta, float* C, int64_t ldc,
                  const GemmEpilogue<float>& epilogue) {
  const bool column = N == 1 && !trans_a;
  const float* mat = column ? A : B;
  const int64_t ld = column ? lda : ldb, m = column ? M : N, y_step = column ? ldc : 1;
  const float* x = column ? B : A;
  const int64_t x_step = column ? (trans_b ? 1 : ldb) : (trans_a ? lda : 1);
  if (x_step != 1) {
    thread_local Buffer x_buffer;
    float* gathered = x_buffer.get(K);
    for (int64_t k = 0; k < K; ++k) gathered[k] = x[k * x_step];
    x = gathered;
  }
  auto run = [&](int64_t i0, int64_t i1) {
    ki.gemv(i1 - i0, K, mat + i0 * ld, ld, x, C + i0 * y_step, y_step, alpha, beta);
    if (epilogue.empty()) return;
    if (column)
      for (int64_t i = i0; i < i1; ++i) apply_epilogue(epilogue, i, 0, 1, C + i * ldc);
    else
      apply_epilogue(epilogue, 0, i0, i1 - i0, C + i0);
  };
  threads = threads_for(m * K, threads);
  if (threads == 1) return run(0, m);
  const int64_t step = round_up((m + threads - 1) / threads, 16);  // whole cache lines of y
#pragma omp parallel num_threads(threads)
  {
    const int64_t i0 = std::min(m, omp_get_thread_num() * step);
    run(i0, std::min(m, i0 + step));
  }
}

}  // namespace

void epilogue_tile_baseline(const GemmEpilogue<float>& e, int64_t row, int64_t rows, int64_t j0, int64_t cols,
                            float* c, int64_t ldc) {
  for (int64_t i = 0; i < rows; ++i) apply_epilogue(e, row + i, j0, cols, c + i * ldc);
}

ThreadGrid thread_grid(int64_t M, int64_t N, int64_t K, int mr, int vec, int threads) {
  threads = threads_for(M * N * K, threads);
  // Thread grid tm x tn: the factorisation whose largest rectangle holds the fewest MR x vec
  // tiles (the kernels' work, padding included); among equals, the one whose threads read the
  // least of A and B (M/tm rows and N/tn columns each). E.g. 1152 x 49: 576 x 49 per thread
  // rather than 1152 x 32 and 1152 x 17. Rectangles are cut on tile rows and vectors.
  const auto ceil_div = [](int64_t x, int64_t d) { return (x + d - 1) / d; };
  const int64_t m_tiles = ceil_div(M, mr), n_vecs = ceil_div(N, vec);
  int tm = 1, tn = threads;
  int64_t best_tiles = -1, best_reads = -1;
  for (int f = 1; f <= threads; ++f) {
    if (threads % f != 0) continue;
    const int64_t tiles = ceil_div(m_tiles, f) * ceil_div(n_vecs, threads / f);
    const int64_t reads = ceil_div(M, f) + ceil_div(N, threads / f);
    if (best_tiles < 0 || tiles < best_tiles || (tiles == best_tiles && reads < best_reads))
      best_tiles = tiles, best_reads = reads, tm = f, tn = threads / f;
  }
  return {threads, tm, tn, ceil_div(m_tiles, tm) * mr, ceil_div(n_vecs, tn) * vec};
}

void* Buffer::get_bytes(size_t bytes) {
  if (bytes > size_) {
    constexpr size_t kHugePage = size_t(2) << 20;
    const size_t align = bytes >= kHugePage / 2 ? kHugePage : 64;
    const size_t rounded = round_up(bytes, align);
    data_ = {static_cast<std::byte*>(::operator new[](rounded, std::align_val_t(align))), Free{align}};
#ifdef MADV_HUGEPAGE
    if (align == kHugePage) madvise(data_.get(), rounded, MADV_HUGEPAGE);  // a hint only
#endif
    size_ = bytes;
  }
  return data_.get();
}

KernelInfo fit_blocks_to_l2(KernelInfo ki, int64_t l2_bytes) {
  if (l2_bytes <= 0) return ki;
  const int64_t nr = ki.nr(), fits = l2_bytes / 2 / (ki.kc * int64_t(sizeof(float)));
  ki.nc = std::clamp<int64_t>(fits / nr * nr, nr, std::max<int64_t>(ki.nc, nr));
  return ki;
}

const KernelInfo& kernel_info(Isa k) {
  static const KernelInfo generic = fit_blocks_to_l2(generic_kernel(), cpu_features().l2_bytes),
                          avx2 = fit_blocks_to_l2(avx2_kernel(), cpu_features().l2_bytes),
                          avx512 = fit_blocks_to_l2(avx512_kernel(), cpu_features().l2_bytes);
  switch (k) {
    case Isa::baseline:
      return generic;
    case Isa::avx2:
      return avx2;
    case Isa::avx512:
      return avx512;
  }
  fail("gemm: unknown kernel {}", static_cast<int>(k));
}

Isa best_kernel() { return best_isa(); }

bool is_gemv(bool trans_a, bool trans_b, int64_t M, int64_t N) {
  return (N == 1 && !trans_a) || (M == 1 && trans_b);
}

void gemm_with_kernel(Isa kernel, int threads, Packing packing, bool trans_a, bool trans_b,
                      int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                      int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                      int64_t ldc, const GemmEpilogue<float>& epilogue) {
  check_args(trans_a, trans_b, M, N, K, lda, ldb, ldc);
  SCALPEL_CHECK(cpu_supports(kernel), "gemm: this CPU cannot run the {} kernel",
                kernel_info(kernel).name);
  if (M == 0 || N == 0) return;
  if (K == 0 || alpha == 0.0f) {
    scale_c(M, N, beta, C, ldc);
    return apply_epilogue_rows(epilogue, M, N, C, ldc);
  }

  const KernelInfo& ki = kernel_info(kernel);
  if (is_gemv(trans_a, trans_b, M, N))
    return gemv_product(ki, threads, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C,
                        ldc, epilogue);
  if (const float* panels = transposed_panels(ki, trans_a, trans_b, M, N, K, A, lda))
    return transposed_product(ki, threads, packing, {M, K, alpha, panels, B, ldb, beta, C, ldc, epilogue}, N);
  run_blocks(ki, threads, packing, {trans_a, trans_b, K, alpha, A, lda, B, ldb, beta, C, ldc, epilogue, {1, N, 0, 0}},
             M, N);
}

void gemm_items_with_kernel(Isa kernel, int threads, Packing packing, bool trans_a, int64_t M, int64_t K,
                            const ColumnItems& items, float alpha, const float* A, int64_t lda, const float* B,
                            int64_t ldb, float beta, float* C, int64_t ldc, const GemmEpilogue<float>& epilogue,
                            const GemmPrologue<float>& prologue) {
  SCALPEL_CHECK(items.count >= 0 && items.width >= 0, "gemm_items: negative size {} x {}", items.count, items.width);
  if (!prologue.empty()) {  // the loop nest below applies it as it packs B
    check_args(trans_a, false, M, items.width, K, lda, ldb, ldc);  // before B is read
    const bool packs_b = M > 0 && items.count * items.width > 0 && K > 0 && alpha != 0.0f &&
                         !is_gemv(trans_a, false, M, items.width);
    if (!packs_b) {  // the other products never pack B: they read a transformed copy
      const TransformedB<float> t = transformed_b(K, items, B, ldb, prologue);
      return gemm_items_with_kernel(kernel, threads, packing, trans_a, M, K, t.items, alpha, A, lda, t.values.data(),
                                    t.ldb, beta, C, ldc, epilogue);
    }
  } else if (items.count <= 1) {
    return gemm_with_kernel(kernel, threads, packing, trans_a, false, M, items.count * items.width, K, alpha, A, lda,
                            B, ldb, beta, C, ldc, epilogue);
  } else if (is_gemv(trans_a, false, M, items.width)) {  // one column per item: each is the GEMV gemm() runs
    for (int64_t s = 0; s < items.count; ++s)
      gemm_with_kernel(kernel, threads, packing, trans_a, false, M, 1, K, alpha, A, lda, B + s * items.b_stride, ldb,
                       beta, C + s * items.c_stride, ldc, item_epilogue(epilogue, s, items.c_stride));
    return;
  }
  check_args(trans_a, false, M, items.width, K, lda, ldb, ldc);
  SCALPEL_CHECK(cpu_supports(kernel), "gemm: this CPU cannot run the {} kernel", kernel_info(kernel).name);
  const int64_t N = items.count * items.width;
  if (M == 0 || N == 0) return;
  if (K == 0 || alpha == 0.0f) {
    for (int64_t s = 0; s < items.count; ++s) {
      float* c = C + s * items.c_stride;
      scale_c(M, items.width, beta, c, ldc);
      apply_epilogue_rows(item_epilogue(epilogue, s, items.c_stride), M, items.width, c, ldc);
    }
    return;
  }
  run_blocks(kernel_info(kernel), threads, packing,
             {trans_a, false, K, alpha, A, lda, B, ldb, beta, C, ldc, epilogue, items, prologue}, M, N);
}

}  // namespace gemm_detail

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
          const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
          int64_t ldc) {
  gemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, GemmEpilogue<float>{});
}

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
          const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
          int64_t ldc, const GemmEpilogue<float>& epilogue) {
  if (float32_matmul_precision() == MatmulPrecision::bf16 &&
      !gemm_detail::is_gemv(trans_a, trans_b, M, N))
    return gemm_bf16(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, epilogue);
  gemm_detail::gemm_with_kernel(gemm_detail::best_kernel(), 0, gemm_detail::Packing::automatic,
                                trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc,
                                epilogue);
}

void gemm_items(bool trans_a, int64_t M, int64_t K, const ColumnItems& items, float alpha, const float* A,
                int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc,
                const GemmEpilogue<float>& epilogue, const GemmPrologue<float>& prologue) {
  if (float32_matmul_precision() != MatmulPrecision::bf16)
    return gemm_detail::gemm_items_with_kernel(gemm_detail::best_kernel(), 0, gemm_detail::Packing::automatic,
                                               trans_a, M, K, items, alpha, A, lda, B, ldb, beta, C, ldc, epilogue,
                                               prologue);
  gemm_each_item(trans_a, M, K, items, alpha, A, lda, B, ldb, beta, C, ldc, epilogue, prologue);  // bf16: item by item
}

void gemm_items(bool trans_a, int64_t M, int64_t K, const ColumnItems& items, double alpha, const double* A,
                int64_t lda, const double* B, int64_t ldb, double beta, double* C, int64_t ldc,
                const GemmEpilogue<double>& epilogue, const GemmPrologue<double>& prologue) {
  gemm_each_item(trans_a, M, K, items, alpha, A, lda, B, ldb, beta, C, ldc, epilogue, prologue);
}

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha,
          const double* A, int64_t lda, const double* B, int64_t ldb, double beta, double* C,
          int64_t ldc, const GemmEpilogue<double>& epilogue) {
  gemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  apply_epilogue_rows(epilogue, M, N, C, ldc);
}

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha,
          const double* A, int64_t lda, const double* B, int64_t ldb, double beta, double* C,
          int64_t ldc) {
  check_args(trans_a, trans_b, M, N, K, lda, ldb, ldc);
  if (M == 0 || N == 0) return;
  if (K == 0 || alpha == 0.0) return scale_c(M, N, beta, C, ldc);
  using Matrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using ConstMap = Eigen::Map<const Matrix, Eigen::Unaligned, Eigen::OuterStride<>>;
  Eigen::Map<Matrix, Eigen::Unaligned, Eigen::OuterStride<>> c(C, M, N,
                                                               Eigen::OuterStride<>(ldc));
  ConstMap a(A, trans_a ? K : M, trans_a ? M : K, Eigen::OuterStride<>(lda));
  ConstMap b(B, trans_b ? N : K, trans_b ? K : N, Eigen::OuterStride<>(ldb));
  scale_c(M, N, beta, C, ldc);
  if (trans_a && trans_b)
    c.noalias() += alpha * a.transpose() * b.transpose();
  else if (trans_a)
    c.noalias() += alpha * a.transpose() * b;
  else if (trans_b)
    c.noalias() += alpha * a * b.transpose();
  else
    c.noalias() += alpha * a * b;
}

}  // namespace scalpel

// This op's row of README.md's op table (scripts/op_table.py writes the table from these rows).
// op table: | GEMM | `gemm_reference` in `tensor/gemm.h` | packed, cache-blocked AVX-512/AVX2 kernels (`tensor/gemm*.cpp`) chosen by
//   CPUID through `tensor/cpu_isa.h`, the one place every fast path asks what the CPU runs | `gemm.cu` (numbered variants:
//   `docs/kernels.md`) | (cuBLAS in the kernel lab, `cuda/lab/`) |
