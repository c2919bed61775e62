// The bf16 GEMM driver (see tensor/gemm_bf16.h), the reference loops and the precision switch.
// The loop nest is the float GEMM's (tensor/gemm.cpp) with both operands always packed: the
// packing is where floats become bf16, so nothing is read in place. Threads split C as the
// float GEMM does (thread_grid), each packing its own blocks.
#include "tensor/gemm_bf16.h"

#include <omp.h>

#include <algorithm>
#include <atomic>

#include "tensor/error.h"
#include "tensor/gemm_internal.h"

namespace scalpel {
namespace {

std::atomic<MatmulPrecision> g_precision{MatmulPrecision::fp32};

const gemm_detail::Bf16KernelInfo& bf16_kernel() {
  static const gemm_detail::Bf16KernelInfo ki = gemm_detail::avx512_bf16_kernel();
  return ki;
}

struct Bf16Problem {
  bool trans_a, trans_b;
  int64_t M, K;
  float alpha;
  const float* A;
  int64_t lda;
  const float* B;
  int64_t ldb;
  float beta;
  float* C;
  int64_t ldc;
  const GemmEpilogue<float>& epilogue;
  const uint32_t* prepacked_a;  // prepacked_a_bf16()'s pairs of A, or null
};

void gemm_bf16_block(const gemm_detail::Bf16KernelInfo& ki, const Bf16Problem& p, int64_t m0, int64_t m1,
                     int64_t n0, int64_t n1) {
  using gemm_detail::round_up;
  const int64_t mr = ki.mr, nr = ki.nr(), kp_max = ki.kc / 2;
  thread_local gemm_detail::Buffer a_buffer, b_buffer;
  const int64_t prepacked_rows = round_up(p.M, mr);
  uint32_t* Ap = p.prepacked_a ? nullptr : a_buffer.get<uint32_t>(round_up(std::min(ki.mc, m1 - m0), mr) * kp_max);
  uint32_t* Bp = b_buffer.get<uint32_t>(round_up(std::min(ki.nc, n1 - n0), nr) * kp_max);
  for (int64_t ic = m0; ic < m1; ic += ki.mc) {
    const int64_t mc = std::min(ki.mc, m1 - ic);
    for (int64_t pc = 0; pc < p.K; pc += ki.kc) {
      const int64_t kc = std::min(ki.kc, p.K - pc), kp = (kc + 1) / 2;
      const float beta = pc == 0 ? p.beta : 1.0f;  // later K blocks accumulate
      const bool last_k_block = pc + kc == p.K;
      // A's pairs for rows [ic, ic + mc): packed once (prepack_constant_a) or now.
      const uint32_t* a_block = p.prepacked_a ? p.prepacked_a + pc / 2 * prepacked_rows + ic * kp : Ap;
      if (!p.prepacked_a) ki.pack_a(p.trans_a, p.A, p.lda, ic, mc, pc, kc, Ap);
      for (int64_t jc = n0; jc < n1; jc += ki.nc) {
        const int64_t nc = std::min(ki.nc, n1 - jc);
        ki.pack_b(p.trans_b, p.B, p.ldb, pc, kc, jc, nc, Bp);
        for (int64_t ir = 0; ir < mc; ir += mr) {
          const int64_t rows = std::min(mr, mc - ir);
          for (int64_t jr = 0; jr < nc; jr += nr) {
            const int64_t cols = std::min(nr, nc - jr);
            float* c = p.C + (ic + ir) * p.ldc + jc + jr;
            const gemm_detail::TileEpilogue tile_epilogue{p.epilogue, ic + ir, jc + jr};
            ki.kernels[rows - 1][(cols + 15) / 16 - 1](kp, a_block + ir * kp, mr, Bp + jr * kp, nr, c, p.ldc, p.alpha,
                                                       beta, cols,
                                                       last_k_block && !p.epilogue.empty() ? &tile_epilogue : nullptr);
          }
        }
      }
    }
  }
}

}  // namespace

bool bf16_gemm_supported() {
  const CpuFeatures& f = cpu_features();
  return f.avx512f && f.avx512bw && f.avx512_bf16;
}

void set_float32_matmul_precision(MatmulPrecision precision) {
  SCALPEL_CHECK(precision == MatmulPrecision::fp32 || bf16_gemm_supported(),
                "bf16 matmul precision: this CPU ({}) has no AVX512_BF16 (vdpbf16ps)", cpu_features().model_name);
  g_precision.store(precision, std::memory_order_relaxed);
}

MatmulPrecision float32_matmul_precision() { return g_precision.load(std::memory_order_relaxed); }

void gemm_bf16_reference(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                         const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                         int64_t ldc) {
  auto a = [&](int64_t i, int64_t k) { return bf16_to_float(float_to_bf16(trans_a ? A[k * lda + i] : A[i * lda + k])); };
  auto b = [&](int64_t k, int64_t j) { return bf16_to_float(float_to_bf16(trans_b ? B[j * ldb + k] : B[k * ldb + j])); };
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      float acc = 0;
      for (int64_t k = 0; k < K; k += 2) {
        if (k + 1 < K) acc += a(i, k + 1) * b(k + 1, j);
        acc += a(i, k) * b(k, j);
      }
      C[i * ldc + j] = alpha * acc + (beta == 0.0f ? 0.0f : beta * C[i * ldc + j]);
    }
}

void gemm_bf16(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
               int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc,
               const GemmEpilogue<float>& epilogue, int threads) {
  SCALPEL_CHECK(bf16_gemm_supported(), "gemm_bf16: this CPU ({}) has no AVX512_BF16", cpu_features().model_name);
  SCALPEL_CHECK(M >= 0 && N >= 0 && K >= 0, "gemm_bf16: negative size M={} N={} K={}", M, N, K);
  // Shapes without work share the float path's handling (checks, beta scaling, epilogue).
  if (M == 0 || N == 0 || K == 0 || alpha == 0.0f)
    return gemm_detail::gemm_with_kernel(gemm_detail::best_kernel(), threads, gemm_detail::Packing::automatic,
                                         trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, epilogue);
  const int64_t a_cols = trans_a ? M : K, b_cols = trans_b ? K : N;
  SCALPEL_CHECK(lda >= a_cols && ldb >= b_cols && ldc >= N, "gemm_bf16: lda={} ldb={} ldc={} for M={} N={} K={}",
                lda, ldb, ldc, M, N, K);
  const gemm_detail::Bf16KernelInfo& ki = bf16_kernel();
  const uint32_t* prepacked = trans_a ? nullptr : gemm_detail::prepacked_a_bf16(A, M, K, lda, ki);
  const Bf16Problem p{trans_a, trans_b, M, K, alpha, A, lda, B, ldb, beta, C, ldc, epilogue, prepacked};
  const gemm_detail::ThreadGrid grid = gemm_detail::thread_grid(M, N, K, ki.mr, 16, threads);
  auto run = [&](int t) {
    const int64_t m0 = (t / grid.tn) * grid.m_step, n0 = (t % grid.tn) * grid.n_step;
    if (m0 < M && n0 < N)
      gemm_bf16_block(ki, p, m0, std::min(M, m0 + grid.m_step), n0, std::min(N, n0 + grid.n_step));
  };
  if (grid.threads == 1) return run(0);
#pragma omp parallel num_threads(grid.threads)
  run(omp_get_thread_num());
}

}  // namespace scalpel
