#pragma once
// Internals of the float GEMM (tensor/gemm.cpp), shared with its micro-kernel files
// (tensor/gemm_kernel_*.cpp) and with tests/gemm and bench/bench_gemm.cpp. Not a public API.
#include <cstddef>
#include <cstdint>
#include <memory>

#include "tensor/cpu_isa.h"
#include "tensor/gemm.h"

namespace scalpel::gemm_detail {

// A micro-kernel computes one R x W tile of C, R <= MR rows (one kernel per row count) and
// W = a whole number of vectors <= NR, of which it stores the first `cols` (W - vec < cols <= W):
//   tile[i][j] = sum_k A(i, k) * B(k, j)
//   C[i*ldc + j] = alpha * tile[i][j] + beta * C[i*ldc + j]   (beta == 0: C is write-only)
// for i < R, j < cols; C outside those columns is neither read nor written.
// B row k is read at b + k*b_step (a packed panel: b_step = NR; B in place: b_step = ldb):
// all W floats, or only the first `cols` when the kernel family has masked_b_loads. A(i, k)
// is read from a + k*a_step + i by the "k-major" kernels (a packed panel: a_step = MR; a
// transposed A in place: a_step = lda) and from a + i*a_step + k by the "row-major" kernels
// (a non-transposed A in place: a_step = lda); rows past R are never read.
// With a TileEpilogue (the tile's last K block), the kernel then applies it to what it stores:
// C[i*ldc + j] = the value apply_epilogue(e, row + i, col, cols, c + i*ldc) would leave, bit
// for bit; null: none.
struct TileEpilogue {
  const GemmEpilogue<float>& e;
  int64_t row, col;  // C's coordinates of the tile's element (0, 0)
};
using MicroKernel = void (*)(int64_t kc, const float* a, int64_t a_step, const float* b,
                             int64_t b_step, float* c, int64_t ldc, float alpha, float beta,
                             int64_t cols, const TileEpilogue* epilogue);
// A transposed kernel (the transposed product in gemm.cpp) reads A k-major and B as MicroKernel
// does, and stores the tile's row i as C's column i instead:
//   C[j*ldc + i] = alpha * tile[i][j] + beta * C[j*ldc + i]   for i < R, j < cols
// with the epilogue's row j and column i (TileEpilogue: row, col of C's element (0, 0)). Along
// its k steps it asks for rows [share * kc / shares, (share + 1) * kc / shares) of `panel`
// (the next B panel at the same K block, b_step apart; null: none) to be brought into L2.
struct PanelShare {
  const float* panel = nullptr;
  int64_t share = 0, shares = 1;
};
using TransposedKernel = void (*)(int64_t kc, const float* a, int64_t a_step, const float* b, int64_t b_step,
                                  const PanelShare& prefetch, float* c, int64_t ldc, float alpha, float beta,
                                  int64_t cols, const TileEpilogue* epilogue);
// The fallback of kernels that do not fuse an epilogue into their stores: apply_epilogue on
// each stored row, compiled for the caller's instruction set.
template <int MR>
[[gnu::always_inline]] inline void apply_tile_epilogue(const TileEpilogue& t, float* c, int64_t ldc, int64_t cols) {
  for (int i = 0; i < MR; ++i) apply_epilogue(t.e, t.row + i, t.col, cols, c + i * ldc);
}

// A matrix-vector kernel, for the GEMMs with one column (N = 1) or one row (M = 1):
//   y[i * y_step] = alpha * sum_{k < K} a[i * lda + k] * x[k] + beta * y[i * y_step],  i < m
// (beta == 0: y is write-only). a's rows and x are contiguous.
using GemvKernel = void (*)(int64_t m, int64_t K, const float* a, int64_t lda, const float* x,
                            float* y, int64_t y_step, float alpha, float beta);

// Applies `e` (tensor/gemm.h) to rows [row, row + rows) x columns [j0, j0 + cols) of C, whose
// element (row, j0) is at c (row stride ldc): apply_epilogue row by row, compiled for the
// kernel's instruction set; for the tiles that straddle items (gemm.cpp), which the kernel
// stores to a scratch tile first. Compiled for SSE2 (gemm.cpp's baseline), the bias + ReLU6 of
// mobilenet_v2's shallow products (24 multiply-adds per output) cost ~5 ms of its 44 at
// batch 8. Every set runs the same operations in the same order (none contracts into an FMA).
using EpilogueTile = void (*)(const GemmEpilogue<float>& e, int64_t row, int64_t rows, int64_t j0, int64_t cols,
                              float* c, int64_t ldc);
void epilogue_tile_baseline(const GemmEpilogue<float>& e, int64_t row, int64_t rows, int64_t j0, int64_t cols,
                            float* c, int64_t ldc);

constexpr int kMaxRows = 8;
constexpr int kMaxWidths = 4;

// One micro-kernel family with the cache blocking tuned for it (see the comment in gemm.cpp).
struct KernelInfo {
  const char* name;
  int mr;              // rows of the register tile
  int vec;             // floats per vector register; tile widths are 1..widths vectors
  int widths;          // NR = widths * vec
  int64_t kc, mc, nc;  // cache blocks: kc deep, mc rows of A, nc columns of B
  bool masked_b_loads;  // reads only `cols` columns of B: a ragged B needs no zero padding
  // [r][v]: r + 1 rows, tile width (v + 1) * vec; A read k-major or row-major.
  MicroKernel k_major[kMaxRows][kMaxWidths];
  MicroKernel row_major[kMaxRows][kMaxWidths];
  GemvKernel gemv;
  EpilogueTile epilogue = &epilogue_tile_baseline;
  // [r][v] as above; null where the family has none (no transposed product).
  TransposedKernel transposed[kMaxRows][kMaxWidths] = {};
  int nr() const { return widths * vec; }
};

// Whether operands are copied into packed panels. `automatic` packs an operand when it is
// reused enough to pay for the copy; `always` packs both; `never` reads A and B in place
// except where it cannot (a transposed B, ragged column panels for kernels without
// masked_b_loads). All give the same results; tests run each. Matrix-vector products
// (N = 1 with A not transposed, M = 1 with B transposed) take the GEMV kernel, which never
// packs, whatever the policy.
enum class Packing { automatic, always, never };

inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// Packing buffers are kept per thread and only grow, so steady-state calls do not allocate
// (and do not page-fault fresh memory). 64-byte alignment keeps packed rows on cache lines.
// Buffers of 1 MiB or more are 2 MiB aligned and asked to be backed by huge pages, so that
// streaming a packed block through the kernel does not walk a new 4 KiB page every few rows.
class Buffer {
 public:
  template <typename T = float>
  T* get(int64_t n) {
    return static_cast<T*>(get_bytes(static_cast<size_t>(n) * sizeof(T)));
  }

 private:
  void* get_bytes(size_t bytes);
  struct Free {
    size_t align;
    void operator()(std::byte* p) const { ::operator delete[](p, std::align_val_t(align)); }
  };
  std::unique_ptr<std::byte[], Free> data_;
  size_t size_ = 0;
};

// How gemm_with_kernel shares C among `threads` threads (threads <= 0: num_threads(); fewer
// when the product is small or the caller already runs in a parallel region): a tm x tn grid
// of rectangles of m_step rows (a multiple of mr) and n_step columns (a multiple of vec);
// thread t takes the rectangle at row t / tn, column t % tn.
struct ThreadGrid {
  int threads, tm, tn;
  int64_t m_step, n_step;
};
ThreadGrid thread_grid(int64_t M, int64_t N, int64_t K, int mr, int vec, int threads);

// Kernel descriptors, one per instruction set (tensor/cpu_isa.h) and file; the AVX ones must
// only run where cpu_supports() says so.
KernelInfo generic_kernel();
KernelInfo avx2_kernel();
KernelInfo avx512_kernel();

// What gemm() runs for `isa`: its kernel with the blocks fitted to this CPU's L2
// (fit_blocks_to_l2 with cpu_features().l2_bytes).
const KernelInfo& kernel_info(Isa isa);

// `ki` with nc lowered so that the packed kc x nc block of B fills at most half of an L2 of
// `l2_bytes` (the rest holds the A micro-panels and C tiles streaming past it), a multiple of
// nr and at least nr; never above the kernel's own nc, which was tuned on a 2 MiB L2
// (l2_bytes <= 0: unknown, ki unchanged). kc is kept: it fixes the order of each sum, so
// results depend on the kernel, not on the machine's caches.
KernelInfo fit_blocks_to_l2(KernelInfo ki, int64_t l2_bytes);

// Whether the product is a matrix-vector product the GEMV kernel takes: one column of C with
// A read by rows, or one row of C with B read by rows (B^T).
bool is_gemv(bool trans_a, bool trans_b, int64_t M, int64_t N);
Isa best_kernel();  // what gemm() uses: the widest kernel this CPU runs (best_isa())

// gemm() with a chosen micro-kernel, thread count (threads <= 0: scalpel::num_threads()) and
// packing policy. Same contract as gemm() in tensor/gemm.h, epilogue included.
void gemm_with_kernel(Isa kernel, int threads, Packing packing, bool trans_a, bool trans_b,
                      int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                      int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                      int64_t ldc, const GemmEpilogue<float>& epilogue = {});

// gemm_items() (tensor/gemm.h) with a chosen kernel, thread count and packing policy; B is
// always packed (its column panels may straddle items; a prologue is applied as it is packed).
void gemm_items_with_kernel(Isa kernel, int threads, Packing packing, bool trans_a, int64_t M, int64_t K,
                            const ColumnItems& items, float alpha, const float* A, int64_t lda, const float* B,
                            int64_t ldb, float beta, float* C, int64_t ldc, const GemmEpilogue<float>& epilogue = {},
                            const GemmPrologue<float>& prologue = {});

// A^T in the column panels the float kernel `ki` reads B from, packed once per shape from a
// declared constant A (prepack_constant_a; null when A was not declared or has lapsed):
// A(i, k) at panels[(i / nr * K + k) * nr + i % nr], nr = ki.nr(), rows past M zero. What
// gemm() reads as B when it runs C = A B as C^T = B^T A^T (gemm.cpp: the transposed product).
const float* prepacked_b_panels(const float* A, int64_t M, int64_t K, int64_t lda, const KernelInfo& ki);

// ---- bf16 (tensor/gemm_bf16.h) --------------------------------------------------------------
// Packed operands hold pairs: one uint32 = bf16(X[k]) in the low half, bf16(X[k+1]) in the
// high half, k even, the pair past an odd K's end zero; vdpbf16ps multiplies such pairs and
// adds both products to a float lane. An A panel of mr rows: Ap[p * mr + i] = pair p of
// op(A) row i; a B panel of nr columns: Bp[p * nr + j] = pair p of op(B) column j, columns
// past the matrix zero.
//   tile[i][j] = sum_p dot(Ap[p * a_step + i], Bp[p * b_step + j])   (pairs < kp)
//   C[i*ldc + j] = alpha * tile[i][j] + beta * C[i*ldc + j]   (beta == 0: C is write-only)
// for i < rows, j < cols (W - 16 < cols <= W, W = the kernel's width in vectors of 16), then
// the tile's epilogue as MicroKernel applies it (null: none).
using Bf16MicroKernel = void (*)(int64_t kp, const uint32_t* a, int64_t a_step,
                                 const uint32_t* b, int64_t b_step, float* c, int64_t ldc,
                                 float alpha, float beta, int64_t cols, const TileEpilogue* epilogue);

struct Bf16KernelInfo {
  const char* name;
  int mr, widths;      // tile rows; tile widths 1..widths vectors of 16 columns
  int64_t kc, mc, nc;  // cache blocks (kc in k, even)
  // Ap <- op(A)[i0 : i0+mc, p0 : p0+kc] as ceil(mc/mr) panels of ceil(kc/2) * mr pairs (rows
  // of the last panel past mc unwritten); Bp <- op(B)[p0 : p0+kc, j0 : j0+nc] likewise, as
  // panels of nr = widths * 16 columns, zero-padded.
  void (*pack_a)(bool trans_a, const float* A, int64_t lda, int64_t i0, int64_t mc, int64_t p0,
                 int64_t kc, uint32_t* Ap);
  void (*pack_b)(bool trans_b, const float* B, int64_t ldb, int64_t p0, int64_t kc, int64_t j0,
                 int64_t nc, uint32_t* Bp);
  Bf16MicroKernel kernels[kMaxRows][kMaxWidths];  // [r][v]: r + 1 rows, v + 1 vectors
  int nr() const { return widths * 16; }
};

// The pairs prepack_constant_a made of A for the bf16 kernel `ki` (null when A was not
// declared, has lapsed, or differs in M, K or lda): per K block pc (ki.kc deep, the last one
// shorter), at packed + pc / 2 * round_up(M, mr) + row * ceil(kc / 2) for the panel of rows
// [row, row + mr), row % mr == 0, what ki.pack_a writes.
const uint32_t* prepacked_a_bf16(const float* A, int64_t M, int64_t K, int64_t lda, const Bf16KernelInfo& ki);

// The AVX512_BF16 kernel (tensor/gemm_bf16_avx512.cpp); only where bf16_gemm_supported().
Bf16KernelInfo avx512_bf16_kernel();
// Its conversion of 32 floats to 16 pairs (x[2p], x[2p+1]), the last n < 32 floats zero:
// tests compare it with float_to_bf16.
void avx512_bf16_convert(const float* x, int64_t n, uint32_t* pairs);

}  // namespace scalpel::gemm_detail
