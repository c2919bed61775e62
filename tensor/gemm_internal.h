#pragma once
// Internals of the float GEMM (tensor/gemm.cpp), shared with its micro-kernel files
// (tensor/gemm_kernel_*.cpp) and with tests/gemm and bench/bench_gemm.cpp. Not a public API.
#include <cstdint>

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
using MicroKernel = void (*)(int64_t kc, const float* a, int64_t a_step, const float* b,
                             int64_t b_step, float* c, int64_t ldc, float alpha, float beta,
                             int64_t cols);

// A matrix-vector kernel, for the GEMMs with one column (N = 1) or one row (M = 1):
//   y[i * y_step] = alpha * sum_{k < K} a[i * lda + k] * x[k] + beta * y[i * y_step],  i < m
// (beta == 0: y is write-only). a's rows and x are contiguous.
using GemvKernel = void (*)(int64_t m, int64_t K, const float* a, int64_t lda, const float* x,
                            float* y, int64_t y_step, float alpha, float beta);

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
  int nr() const { return widths * vec; }
};

// Whether operands are copied into packed panels. `automatic` packs an operand when it is
// reused enough to pay for the copy; `always` packs both; `never` reads A and B in place
// except where it cannot (a transposed B, ragged column panels for kernels without
// masked_b_loads). All give the same results; tests run each. Matrix-vector products
// (N = 1 with A not transposed, M = 1 with B transposed) take the GEMV kernel, which never
// packs, whatever the policy.
enum class Packing { automatic, always, never };

// Kernel descriptors, one per instruction set (tensor/cpu_isa.h) and file; the AVX ones must
// only run where cpu_supports() says so.
KernelInfo generic_kernel();
KernelInfo avx2_kernel();
KernelInfo avx512_kernel();

const KernelInfo& kernel_info(Isa isa);
Isa best_kernel();  // what gemm() uses: the widest kernel this CPU runs (best_isa())

// gemm() with a chosen micro-kernel, thread count (threads <= 0: scalpel::num_threads()) and
// packing policy. Same contract as gemm() in tensor/gemm.h, epilogue included.
void gemm_with_kernel(Isa kernel, int threads, Packing packing, bool trans_a, bool trans_b,
                      int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                      int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                      int64_t ldc, const GemmEpilogue<float>& epilogue = {});

}  // namespace scalpel::gemm_detail
