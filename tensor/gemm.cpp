// CPU GEMM. See tensor/gemm.h for the contract.
#include "tensor/gemm.h"

#include <Eigen/Core>

#include "tensor/error.h"

namespace scalpel {
namespace {

template <typename T>
using RowMajor = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename T>
using ConstMap = Eigen::Map<const RowMajor<T>, Eigen::Unaligned, Eigen::OuterStride<>>;
template <typename T>
using Map = Eigen::Map<RowMajor<T>, Eigen::Unaligned, Eigen::OuterStride<>>;

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

// Simple version through Eigen's GEMM.
template <typename T>
void gemm_eigen(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha,
                const T* A, int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  Map<T> c(C, M, N, Eigen::OuterStride<>(ldc));
  if (beta == T(0))
    c.setZero();
  else if (beta != T(1))
    c *= beta;
  if (K == 0 || alpha == T(0)) return;
  ConstMap<T> a(A, trans_a ? K : M, trans_a ? M : K, Eigen::OuterStride<>(lda));
  ConstMap<T> b(B, trans_b ? N : K, trans_b ? K : N, Eigen::OuterStride<>(ldb));
  if (trans_a && trans_b)
    c.noalias() += alpha * a.transpose() * b.transpose();
  else if (trans_a)
    c.noalias() += alpha * a.transpose() * b;
  else if (trans_b)
    c.noalias() += alpha * a * b.transpose();
  else
    c.noalias() += alpha * a * b;
}

}  // namespace

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
          const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
          int64_t ldc) {
  check_args(trans_a, trans_b, M, N, K, lda, ldb, ldc);
  if (M == 0 || N == 0) return;
  gemm_eigen(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha,
          const double* A, int64_t lda, const double* B, int64_t ldb, double beta, double* C,
          int64_t ldc) {
  check_args(trans_a, trans_b, M, N, K, lda, ldb, ldc);
  if (M == 0 || N == 0) return;
  gemm_eigen(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

}  // namespace scalpel
