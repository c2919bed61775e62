// GEMM, from naive to fast. Each variant computes C = alpha * op(A) op(B) + beta * C for
// row-major operands; docs/kernels.md explains the steps and cuda/lab times them.
//   1 naive            one thread per C element; every operand read comes from global memory
//   2 shared-tiled     a block stages TxT tiles of A and B in shared memory: each global load
//                      is reused T times
//   3 register-blocked a block computes a BxB tile of C, each thread a 4x4 (or 2x2, 8x8)
//                      micro-tile held in registers: fewer shared-memory loads per FMA
//   4 vectorized       variant 3 with 128-bit (float4) global loads
// Batched products use blockIdx.z.
#include "cuda/compat.cuh"

namespace scalpel::cuda::SCALPEL_CUDA_IMPL {

namespace {

struct GemmArgs {
  bool trans_a, trans_b;
  int64_t M, N, K;
  float alpha, beta;
  const float* A;
  int64_t lda;
  const float* B;
  int64_t ldb;
  float* C;
  int64_t ldc;
  int64_t stride_a, stride_b, stride_c;
};

__device__ __forceinline__ float load_a(const GemmArgs& g, const float* A, int64_t i, int64_t k) {
  return g.trans_a ? A[k * g.lda + i] : A[i * g.lda + k];
}
__device__ __forceinline__ float load_b(const GemmArgs& g, const float* B, int64_t k, int64_t j) {
  return g.trans_b ? B[j * g.ldb + k] : B[k * g.ldb + j];
}
__device__ __forceinline__ void store_c(const GemmArgs& g, float* C, int64_t i, int64_t j, float acc) {
  float* c = C + i * g.ldc + j;
  *c = g.beta == 0.0f ? g.alpha * acc : g.alpha * acc + g.beta * *c;
}

// ---- 1: naive ----
__global__ void gemm_kernel1(GemmArgs g) {
  const int64_t z = blockIdx.z;
  const float* A = g.A + z * g.stride_a;
  const float* B = g.B + z * g.stride_b;
  const int64_t i = blockIdx.y * int64_t{blockDim.y} + threadIdx.y;
  const int64_t j = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;  // x along N: coalesced B, C
  if (i >= g.M || j >= g.N) return;
  float acc = 0.0f;
  for (int64_t k = 0; k < g.K; ++k) acc += load_a(g, A, i, k) * load_b(g, B, k, j);
  store_c(g, g.C + z * g.stride_c, i, j, acc);
}

// ---- 2: shared-memory tiles ----
template <int T>
__global__ void gemm_kernel2(GemmArgs g) {
  __shared__ float As[T][T];
  __shared__ float Bs[T][T + 1];  // +1: no bank conflicts when a column is read
  const int64_t z = blockIdx.z;
  const float* A = g.A + z * g.stride_a;
  const float* B = g.B + z * g.stride_b;
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t i = blockIdx.y * int64_t{T} + ty, j = blockIdx.x * int64_t{T} + tx;
  float acc = 0.0f;
  for (int64_t k0 = 0; k0 < g.K; k0 += T) {
    As[ty][tx] = (i < g.M && k0 + tx < g.K) ? load_a(g, A, i, k0 + tx) : 0.0f;
    Bs[ty][tx] = (k0 + ty < g.K && j < g.N) ? load_b(g, B, k0 + ty, j) : 0.0f;
    __syncthreads();  // the tile is complete
    for (int k = 0; k < T; ++k) acc += As[ty][k] * Bs[k][tx];
    __syncthreads();  // everyone is done with the tile before it is overwritten
  }
  if (i < g.M && j < g.N) store_c(g, g.C + z * g.stride_c, i, j, acc);
}

// ---- 3 and 4: register blocking (4 adds float4 loads) ----
// A block of (BM/TM) x (BN/TN) threads computes a BM x BN tile of C; each thread owns a
// TM x TN micro-tile. Per BK-slice of K, the block stages As (BK x BM, stored k-major so a
// thread reads TM consecutive values) and Bs (BK x BN), then every thread does TM*TN FMAs
// per TM+TN shared loads.
template <int BM, int BN, int BK, int TM, int TN, bool kVec>
__global__ void gemm_register_blocked(GemmArgs g) {
  constexpr int kThreads = (BM / TM) * (BN / TN);
  __shared__ float As[BK][BM];
  __shared__ float Bs[BK][BN];
  const int64_t z = blockIdx.z;
  const float* A = g.A + z * g.stride_a;
  const float* B = g.B + z * g.stride_b;
  const int tid = threadIdx.x;
  const int row0 = (tid / (BN / TN)) * TM, col0 = (tid % (BN / TN)) * TN;
  const int64_t bi = blockIdx.y * int64_t{BM}, bj = blockIdx.x * int64_t{BN};
  float acc[TM][TN] = {};
  float a[TM], b[TN];
  for (int64_t k0 = 0; k0 < g.K; k0 += BK) {
    if constexpr (kVec) {
      // No transposes, K % 4 == 0, N % 4 == 0: a float4 is wholly inside or outside.
      for (int e = tid; e < BM * BK / 4; e += kThreads) {
        const int m = e / (BK / 4), k = (e % (BK / 4)) * 4;
        float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        if (bi + m < g.M && k0 + k < g.K)
          v = *reinterpret_cast<const float4*>(A + (bi + m) * g.lda + k0 + k);
        As[k][m] = v.x; As[k + 1][m] = v.y; As[k + 2][m] = v.z; As[k + 3][m] = v.w;
      }
      for (int e = tid; e < BK * BN / 4; e += kThreads) {
        const int k = e / (BN / 4), n = (e % (BN / 4)) * 4;
        float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        if (k0 + k < g.K && bj + n < g.N)
          v = *reinterpret_cast<const float4*>(B + (k0 + k) * g.ldb + bj + n);
        *reinterpret_cast<float4*>(&Bs[k][n]) = v;
      }
    } else {
      for (int e = tid; e < BM * BK; e += kThreads) {
        const int m = e / BK, k = e % BK;
        As[k][m] = (bi + m < g.M && k0 + k < g.K) ? load_a(g, A, bi + m, k0 + k) : 0.0f;
      }
      for (int e = tid; e < BK * BN; e += kThreads) {
        const int k = e / BN, n = e % BN;
        Bs[k][n] = (k0 + k < g.K && bj + n < g.N) ? load_b(g, B, k0 + k, bj + n) : 0.0f;
      }
    }
    __syncthreads();
    for (int k = 0; k < BK; ++k) {
      for (int r = 0; r < TM; ++r) a[r] = As[k][row0 + r];
      for (int c = 0; c < TN; ++c) b[c] = Bs[k][col0 + c];
      for (int r = 0; r < TM; ++r)
        for (int c = 0; c < TN; ++c) acc[r][c] = fmaf(a[r], b[c], acc[r][c]);
    }
    __syncthreads();
  }
  float* C = g.C + z * g.stride_c;
  for (int r = 0; r < TM; ++r)
    for (int c = 0; c < TN; ++c)
      if (bi + row0 + r < g.M && bj + col0 + c < g.N) store_c(g, C, bi + row0 + r, bj + col0 + c, acc[r][c]);
}

template <int BM, int BN, int BK, int TM, int TN, bool kVec>
void launch_register_blocked(const Stream& s, const GemmArgs& g, unsigned batch) {
  const dim3 grid(ceil_div(g.N, BN), ceil_div(g.M, BM), batch);
  SCALPEL_LAUNCH((gemm_register_blocked<BM, BN, BK, TM, TN, kVec>), grid, (BM / TM) * (BN / TN), 0,
                 s, g);
}

template <bool kVec>
void launch_blocked(const Stream& s, const GemmArgs& g, unsigned batch, int tile) {
  switch (tile) {
    case 32: launch_register_blocked<32, 32, 16, 2, 2, kVec>(s, g, batch); break;
    case 0:
    case 64: launch_register_blocked<64, 64, 8, 4, 4, kVec>(s, g, batch); break;
    case 128: launch_register_blocked<128, 128, 8, 8, 8, kVec>(s, g, batch); break;
    default: fail_argument("gemm", "variants 3 and 4 take tile 32, 64 or 128", tile);
  }
}

void launch_gemm(const Stream& s, GemmVariant v, int tile, const GemmArgs& g, unsigned batch) {
  switch (v) {
    case GemmVariant::Naive: {
      const int t = tile == 0 ? 16 : tile;
      if (t != 8 && t != 16 && t != 32) fail_argument("gemm", "variant 1 takes tile 8, 16 or 32", tile);
      SCALPEL_LAUNCH(gemm_kernel1, dim3(ceil_div(g.N, t), ceil_div(g.M, t), batch), dim3(t, t), 0, s, g);
      break;
    }
    case GemmVariant::SharedTiled:
      switch (tile) {
        case 8: SCALPEL_LAUNCH((gemm_kernel2<8>), dim3(ceil_div(g.N, 8), ceil_div(g.M, 8), batch), dim3(8, 8), 0, s, g); break;
        case 16: SCALPEL_LAUNCH((gemm_kernel2<16>), dim3(ceil_div(g.N, 16), ceil_div(g.M, 16), batch), dim3(16, 16), 0, s, g); break;
        case 0:
        case 32: SCALPEL_LAUNCH((gemm_kernel2<32>), dim3(ceil_div(g.N, 32), ceil_div(g.M, 32), batch), dim3(32, 32), 0, s, g); break;
        default: fail_argument("gemm", "variant 2 takes tile 8, 16 or 32", tile);
      }
      break;
    case GemmVariant::RegisterBlocked: launch_blocked<false>(s, g, batch, tile); break;
    case GemmVariant::Vectorized: launch_blocked<true>(s, g, batch, tile); break;
    case GemmVariant::Auto: fail_argument("gemm", "Auto must be resolved first", 0);
  }
}

}  // namespace

void gemm(const Stream& s, GemmConfig config, bool trans_a, bool trans_b, int64_t M, int64_t N,
          int64_t K, float alpha, const float* A, int64_t lda, const float* B, int64_t ldb,
          float beta, float* C, int64_t ldc, int64_t batch, int64_t stride_a, int64_t stride_b,
          int64_t stride_c) {
  if (M <= 0 || N <= 0 || batch <= 0) return;
  GemmVariant v = gemm_resolve(config.variant, trans_a, trans_b, N, K, A, lda, B, ldb);
  if (v == GemmVariant::Vectorized && batch > 1 && (stride_a % 4 != 0 || stride_b % 4 != 0))
    v = GemmVariant::RegisterBlocked;  // later batch members would be misaligned
  constexpr int64_t kMaxGridZ = 65535;
  for (int64_t b0 = 0; b0 < batch; b0 += kMaxGridZ) {
    const GemmArgs g{trans_a, trans_b, M, N, K, alpha, beta,
                     A + b0 * stride_a, lda, B + b0 * stride_b, ldb, C + b0 * stride_c, ldc,
                     stride_a, stride_b, stride_c};
    launch_gemm(s, v, config.tile, g, static_cast<unsigned>(std::min(kMaxGridZ, batch - b0)));
  }
}

}  // namespace scalpel::cuda::SCALPEL_CUDA_IMPL

#if SCALPEL_CUDA_ENTRY_POINTS
// No op of its own in the dispatch table: its launchers serve linear.cu, the convolutions and the kernel lab.
SCALPEL_REGISTER_KERNELS(gemm) {}
#endif
