#pragma once
// General matrix multiply on raw row-major buffers, the core of matmul, linear and conv:
//   C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C
// op(X) = X or X^T (trans_a/trans_b). lda/ldb/ldc are row strides in elements.
// beta == 0 means C is write-only (its old contents, even NaN, are ignored).
// gemm_reference is the plain triple loop every fast path is tested against.
// Threads only split C into rectangles (the K blocks are fixed), so each element of C is the
// same bits whatever the thread count: training relies on it to be reproducible.
//
// The float GEMM can also apply an epilogue (GemmEpilogue) to each tile of C right after its
// last K block is stored, while the tile is still in L1: the bias + activation (+ residual)
// that follow a convolution at inference, without another pass over C.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <type_traits>

#include "tensor/vector_math.h"

namespace scalpel {

// Activations an epilogue can apply (the ones that follow convs in the model zoo), with the
// formulas of layers/ops/activations.cpp.
enum class EpilogueActivation { none, relu, relu6, silu, hardswish };

// C[i][j] = act(C[i][j] + row_bias[i] + residual[i * ldr + j]): bias per row of C (per output
// channel of a conv), residual a matrix shaped like C with row stride ldr. Null pointers are
// skipped; the default epilogue does nothing.
template <typename T>
struct GemmEpilogue {
  const T* row_bias = nullptr;
  EpilogueActivation activation = EpilogueActivation::none;
  const T* residual = nullptr;
  int64_t ldr = 0;
  bool empty() const { return !row_bias && !residual && activation == EpilogueActivation::none; }
};

// One pass over c[0, n): + bias, + residual, then act, as each flag says (no add of a zero
// that is not there: -0 keeps its sign).
template <bool kBias, bool kResidual, typename T, typename Act>
[[gnu::always_inline]] inline void epilogue_pass(T* c, int64_t n, T bias, const T* residual, Act act) {
  for (int64_t j = 0; j < n; ++j) {
    T v = c[j];
    if constexpr (kBias) v += bias;
    if constexpr (kResidual) v += residual[j];
    c[j] = act(v);
  }
}

// Applies `e` to the n elements c[0, n) = C[i][j0, j0 + n), in one pass over them (SiLU in a
// second, tensor/vector_math.h's vectorized exp). Plain loops the compiler vectorizes for
// whatever instruction set the caller is compiled for (tensor/gemm_internal.h: EpilogueTile);
// every fast path calls this same function, so it is also the reference. Always inlined: the
// depthwise and GEMM kernels compiled for AVX-512 then vectorize it for AVX-512 too (an
// out-of-line copy would be whichever build the linker kept, SSE2 here).
template <typename T>
[[gnu::always_inline]] inline void apply_epilogue(const GemmEpilogue<T>& e, int64_t i, int64_t j0, int64_t n, T* c) {
  const T bias = e.row_bias ? e.row_bias[i] : T(0);
  const T* r = e.residual ? e.residual + i * e.ldr + j0 : nullptr;
  auto pass = [&](auto act) {
    if (e.row_bias && r) epilogue_pass<true, true>(c, n, bias, r, act);
    else if (e.row_bias) epilogue_pass<true, false>(c, n, bias, r, act);
    else if (r) epilogue_pass<false, true>(c, n, bias, r, act);
    else epilogue_pass<false, false>(c, n, bias, r, act);
  };
  switch (e.activation) {
    case EpilogueActivation::none:
      if (e.row_bias || r) pass([](T v) { return v; });
      break;
    case EpilogueActivation::relu:
      pass([](T v) { return v > T(0) ? v : T(0); });
      break;
    case EpilogueActivation::relu6:
      pass([](T v) { return std::min(std::max(v, T(0)), T(6)); });
      break;
    case EpilogueActivation::hardswish:
      pass([](T v) { return v * std::min(std::max(v + T(3), T(0)), T(6)) / T(6); });
      break;
    case EpilogueActivation::silu:  // x * sigmoid(x), the overflow-free form of both signs
      if (e.row_bias || r) pass([](T v) { return v; });
      if constexpr (std::is_same_v<T, float>) {
        vecmath::silu(c, c, n);  // the same formula with a vectorized exp (libm's is scalar)
      } else {
        for (int64_t j = 0; j < n; ++j) {
          const T x = c[j];
          const T ex = std::exp(-std::abs(x));
          c[j] = x >= T(0) ? x * (T(1) / (T(1) + ex)) : x * (ex / (T(1) + ex));
        }
      }
      break;
  }
}

// B's rows as the product reads them: op(B)[k][j] becomes activation(B[k][j] * row_scale[k] +
// row_shift[k]) (null pointers: 1 and 0). A BatchNorm + ReLU that precedes a 1x1 conv at
// inference (DenseNet's pre-activation) is such a transform of the conv's input, applied here
// while B is packed instead of in a pass of its own over the whole input. With item_stride,
// item s of gemm_items reads its own row_scale/row_shift at + s * item_stride (per-sample
// values: a squeeze-excite's channel scales).
template <typename T>
struct GemmPrologue {
  const T* row_scale = nullptr;
  const T* row_shift = nullptr;
  EpilogueActivation activation = EpilogueActivation::none;
  int64_t item_stride = 0;
  bool empty() const { return !row_scale && !row_shift && activation == EpilogueActivation::none; }
  // The prologue of B's rows from row `rows` on (a conv group's input channels).
  GemmPrologue from_row(int64_t rows) const {
    GemmPrologue p = *this;
    if (p.row_scale) p.row_scale += rows;
    if (p.row_shift) p.row_shift += rows;
    return p;
  }
  // The prologue item s reads.
  GemmPrologue for_item(int64_t s) const { return from_row(s * item_stride); }
};

// dst[0, n) = prologue applied to row k's elements src[0, n); dst may be src. Every path that
// transforms B calls this one function, so it is also the reference.
template <typename T>
inline void apply_prologue(const GemmPrologue<T>& p, int64_t k, const T* src, int64_t n, T* dst) {
  const T scale = p.row_scale ? p.row_scale[k] : T(1), shift = p.row_shift ? p.row_shift[k] : T(0);
  for (int64_t j = 0; j < n; ++j) dst[j] = src[j] * scale + shift;
  apply_epilogue(GemmEpilogue<T>{nullptr, p.activation}, 0, 0, n, dst);
}

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
          const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
          int64_t ldc);
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha,
          const double* A, int64_t lda, const double* B, int64_t ldb, double beta, double* C,
          int64_t ldc);
// The same, then C = epilogue(C) as above (float: per tile while it is hot; double: per row
// afterwards).
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
          const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
          int64_t ldc, const GemmEpilogue<float>& epilogue);
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha,
          const double* A, int64_t lda, const double* B, int64_t ldb, double beta, double* C,
          int64_t ldc, const GemmEpilogue<double>& epilogue);

// Several products that share A, with B and C made of `count` matrices ("items") side by
// side, each `width` columns: item s of B at B + s * b_stride (K x width, row stride ldb), of C
// at C + s * c_stride (M x width, row stride ldc), and of the epilogue's residual at
// residual + s * c_stride (row stride ldr). A conv's samples are such items: its 1x1 weights
// times each sample's [C_in, H*W] plane.
struct ColumnItems {
  int64_t count = 1, width = 0, b_stride = 0, c_stride = 0;
};
// C_s = epilogue(alpha * op(A) * B_s + beta * C_s) for every item s, computed as one product of
// M x (count * width) whose tiles run across items: a 7x7 plane's 49 columns per sample would
// fill one 48-wide tile and 1/16 of another, and each thread would stream all of A once per
// sample. Every element is the same sum, bit for bit, as gemm() on its item alone (items of one
// column with A not transposed are gemm()'s matrix-vector products, run one by one). B is not
// transposed (convs store it so).
// With a prologue, B's rows are transformed (GemmPrologue) as B is packed; the products the
// packed loop nest does not run (matrix-vector, bf16 precision, double) read a transformed copy
// of B instead. Either way each element of B is transformed by apply_prologue.
void gemm_items(bool trans_a, int64_t M, int64_t K, const ColumnItems& items, float alpha, const float* A,
                int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc,
                const GemmEpilogue<float>& epilogue = {}, const GemmPrologue<float>& prologue = {});
// Double (gradient checks): one gemm() per item.
void gemm_items(bool trans_a, int64_t M, int64_t K, const ColumnItems& items, double alpha, const double* A,
                int64_t lda, const double* B, int64_t ldb, double beta, double* C, int64_t ldc,
                const GemmEpilogue<double>& epilogue = {}, const GemmPrologue<double>& prologue = {});

// Constant left operands packed once (inference weights; tensor/gemm_prepack.cpp).
// prepack_constant_a declares (tensor/constants.h) that A (M x K, row stride lda) keeps its
// values while `owner` lives: bf16 GEMMs (tensor/gemm_bf16.h) with trans_a = false on this A
// then read it from bf16 panels converted once per shape, on first use, instead of on every
// call. The float GEMM reads A in place, except on few columns that fill whole vectors
// poorly (N = 49, a 7x7 plane's pixels): there it runs C^T = B^T A^T from A^T packed once
// into panels (gemm.cpp: the transposed product; same bits), which adds those weights' size to
// the resident memory (resnet50 at batch 1: +76 MB, its 7x7 stage).
// The entry lapses when owner's last reference goes; writing to A while owner lives is the
// caller's bug (models::fuse_for_inference declares conv weights, which a fused model never
// changes). Declaring the same A again is a no-op.
void prepack_constant_a(const float* A, int64_t M, int64_t K, int64_t lda, std::weak_ptr<const void> owner);
int64_t prepacked_constant_count();  // live declared constants (tests, reports)
void forget_prepacked_constants();   // drops every declared constant (tests)

template <typename T>
void gemm_reference(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha,
                    const T* A, int64_t lda, const T* B, int64_t ldb, T beta, T* C,
                    int64_t ldc) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      T acc = 0;
      for (int64_t k = 0; k < K; ++k) {
        T a = trans_a ? A[k * lda + i] : A[i * lda + k];
        T b = trans_b ? B[j * ldb + k] : B[k * ldb + j];
        acc += a * b;
      }
      C[i * ldc + j] = alpha * acc + (beta == T(0) ? T(0) : beta * C[i * ldc + j]);
    }
}

}  // namespace scalpel
