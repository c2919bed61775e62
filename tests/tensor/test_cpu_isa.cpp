// tensor/cpu_isa.h: our CPUID detection against the compiler's own (libgcc's
// __builtin_cpu_supports, which also checks that the OS saves the registers), and the order of
// the levels every fast path relies on.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>

#include <unistd.h>

#include "tensor/cpu_isa.h"

namespace scalpel {
namespace {

TEST(CpuIsa, AgreesWithTheCompilersDetection) {
  const CpuFeatures& f = cpu_features();
  EXPECT_EQ(f.avx2, bool(__builtin_cpu_supports("avx2")));
  EXPECT_EQ(f.fma, bool(__builtin_cpu_supports("fma")));
  EXPECT_EQ(f.avx512f, bool(__builtin_cpu_supports("avx512f")));
  EXPECT_EQ(f.avx512bw, bool(__builtin_cpu_supports("avx512bw")));
  EXPECT_EQ(f.avx512vl, bool(__builtin_cpu_supports("avx512vl")));
  EXPECT_EQ(f.avx512dq, bool(__builtin_cpu_supports("avx512dq")));
  EXPECT_EQ(f.avx512_bf16, bool(__builtin_cpu_supports("avx512bf16")));
  // The avx2 level needs FMA too (the GEMM and vector-math kernels use it): one rule for all.
  EXPECT_EQ(cpu_supports(Isa::avx2), f.avx2 && f.fma);
  EXPECT_FALSE(f.vendor.empty());
  std::printf("CPU: %s (%s, family %d model %d), best level %s%s%s\n", f.model_name.c_str(), f.vendor.c_str(),
              f.family, f.model, std::string(isa_name(best_isa())).c_str(), f.avx512_bf16 ? ", avx512_bf16" : "",
              f.amx_tile ? ", amx" : "");
}

// The cache sizes from CPUID against glibc's (its own reading of the same leaves, or of
// sysfs) and the L3 against sysfs; a CPU that does not report them leaves them 0 and the GEMM
// keeps its tuned blocks.
TEST(CpuIsa, CacheSizesAgreeWithTheCLibrary) {
  const CpuFeatures& f = cpu_features();
  std::printf("caches: L1d %lld KiB, L2 %lld KiB, L3 %lld KiB\n", static_cast<long long>(f.l1d_bytes >> 10),
              static_cast<long long>(f.l2_bytes >> 10), static_cast<long long>(f.l3_bytes >> 10));
  // The L3 one core sees, as Linux describes it (glibc's figure on AMD EPYC is the whole
  // package's: ten times the 32 MiB a core shares on a Genoa).
  std::ifstream l3_file("/sys/devices/system/cpu/cpu0/cache/index3/size");
  int64_t l3_kib = 0;
  if (l3_file >> l3_kib) EXPECT_EQ(f.l3_bytes, l3_kib << 10);
  const long l1d = sysconf(_SC_LEVEL1_DCACHE_SIZE), l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
  if (l1d <= 0 || l2 <= 0) GTEST_SKIP() << "the C library does not report cache sizes here";
  EXPECT_EQ(f.l1d_bytes, l1d);
  EXPECT_EQ(f.l2_bytes, l2);
}

TEST(CpuIsa, LevelsAreOrderedAndTheBestIsSupported) {
  EXPECT_TRUE(cpu_supports(Isa::baseline));
  EXPECT_TRUE(cpu_supports(best_isa()));
  if (cpu_supports(Isa::avx512)) EXPECT_TRUE(cpu_supports(Isa::avx2));
  for (Isa level : kAllIsas)
    if (cpu_supports(level)) EXPECT_GE(static_cast<int>(best_isa()), static_cast<int>(level));
  EXPECT_EQ(isa_name(Isa::baseline), "baseline");
  EXPECT_EQ(isa_name(Isa::avx512), "avx512");
}

}  // namespace
}  // namespace scalpel
