#pragma once
// Internals of the packed float GEMM (tensor/gemm.cpp), shared with its micro-kernel files
// (tensor/gemm_kernel_*.cpp) and with tests/gemm and bench/bench_gemm.cpp. Not a public API.
#include <cstdint>

#include "tensor/gemm.h"

namespace scalpel::gemm_detail {

// A micro-kernel computes one MR x NR tile of C from packed panels:
//   tile = Ap * Bp, where Ap is kc steps of MR floats (Ap[k*MR + i] = op(A)[i][k], alpha folded
//   in) and Bp is kc steps of NR floats (Bp[k*NR + j] = op(B)[k][j]), both 64-byte aligned;
//   then C[i*ldc + j] = tile[i][j] + beta * C[i*ldc + j] for the full MR x NR tile, where
//   beta == 0 means C is write-only. The driver handles partial edge tiles through a scratch
//   tile, so kernels only ever see full tiles.
using MicroKernel = void (*)(int64_t kc, const float* Ap, const float* Bp, float* C, int64_t ldc,
                             float beta);

// One micro-kernel with the cache blocking tuned for it (see the comment in gemm.cpp).
struct KernelInfo {
  const char* name;
  int mr, nr;          // register tile
  int64_t kc, mc, nc;  // cache blocks: kc deep, mc rows of A, nc columns of B
  MicroKernel fn;
};

enum class Kernel { generic, avx2, avx512 };

// Kernel descriptors, one per file. The AVX ones must only run where cpu_supports() says so.
KernelInfo generic_kernel();
KernelInfo avx2_kernel();
KernelInfo avx512_kernel();

bool cpu_supports(Kernel k);
KernelInfo kernel_info(Kernel k);
Kernel best_kernel();  // what gemm() uses: the widest kernel this CPU runs

// gemm() with a chosen micro-kernel (tests run every kernel the CPU supports) and thread count
// (threads <= 0: scalpel::num_threads()). Same contract as gemm() in tensor/gemm.h.
void gemm_with_kernel(Kernel kernel, int threads, bool trans_a, bool trans_b, int64_t M,
                      int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                      const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

}  // namespace scalpel::gemm_detail
