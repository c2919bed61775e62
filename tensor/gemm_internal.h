#pragma once
// Internals of the float GEMM (tensor/gemm.cpp), shared with its micro-kernel files
// (tensor/gemm_kernel_*.cpp) and with tests/gemm and bench/bench_gemm.cpp. Not a public API.
#include <cstdint>

#include "tensor/gemm.h"

namespace scalpel::gemm_detail {

// A micro-kernel computes one MR x W tile of C (W = a whole number of vectors, <= NR):
//   tile[i][j] = sum_k A(i, k) * B(k, j)
//   C[i*ldc + j] = alpha * tile[i][j] + beta * C[i*ldc + j]   (beta == 0: C is write-only)
// B row k is W contiguous floats at b + k*b_step (a packed panel: b_step = NR; B in place:
// b_step = ldb). A(i, k) is read from a + k*a_step + i by the "k-major" kernels (a packed
// panel: a_step = MR; a transposed A in place: a_step = lda) and from a + i*a_step + k by the
// "row-major" kernels (a non-transposed A in place: a_step = lda). The driver hands kernels
// only whole tiles; ragged edges go through packed, zero-padded panels and a scratch tile.
using MicroKernel = void (*)(int64_t kc, const float* a, int64_t a_step, const float* b,
                             int64_t b_step, float* c, int64_t ldc, float alpha, float beta);

constexpr int kMaxWidths = 4;

// One micro-kernel family with the cache blocking tuned for it (see the comment in gemm.cpp).
struct KernelInfo {
  const char* name;
  int mr;              // rows of the register tile
  int vec;             // floats per vector register; tile widths are 1..widths vectors
  int widths;          // NR = widths * vec
  int64_t kc, mc, nc;  // cache blocks: kc deep, mc rows of A, nc columns of B
  MicroKernel k_major[kMaxWidths];    // [v]: tile width (v + 1) * vec, A read k-major
  MicroKernel row_major[kMaxWidths];  // same, A read row-major
  int nr() const { return widths * vec; }
};

enum class Kernel { generic, avx2, avx512 };

// Whether operands are copied into packed panels. `automatic` packs an operand when it is
// reused enough to pay for the copy; `always` packs both; `never` reads A and B in place
// except where it cannot (a transposed B, ragged edge panels). All give the same results;
// tests run each.
enum class Packing { automatic, always, never };

// Kernel descriptors, one per file. The AVX ones must only run where cpu_supports() says so.
KernelInfo generic_kernel();
KernelInfo avx2_kernel();
KernelInfo avx512_kernel();

bool cpu_supports(Kernel k);
KernelInfo kernel_info(Kernel k);
Kernel best_kernel();  // what gemm() uses: the widest kernel this CPU runs

// gemm() with a chosen micro-kernel, thread count (threads <= 0: scalpel::num_threads()) and
// packing policy. Same contract as gemm() in tensor/gemm.h, epilogue included.
void gemm_with_kernel(Kernel kernel, int threads, Packing packing, bool trans_a, bool trans_b,
                      int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                      int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                      int64_t ldc, const GemmEpilogue<float>& epilogue = {});

}  // namespace scalpel::gemm_detail
