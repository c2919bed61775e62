#include "tensor/cpu_isa.h"

#include <cpuid.h>

#include <cstdint>
#include <cstring>

namespace scalpel {
namespace {

struct Regs {
  unsigned a = 0, b = 0, c = 0, d = 0;
};

Regs cpuid(unsigned leaf, unsigned subleaf = 0) {
  Regs r;
  if (!__get_cpuid_count(leaf, subleaf, &r.a, &r.b, &r.c, &r.d)) r = {};
  return r;
}

bool bit(unsigned reg, int n) { return (reg >> n) & 1u; }

// XCR0: which register states the OS saves on a context switch.
uint64_t xcr0() {
  uint32_t lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (uint64_t(hi) << 32) | lo;
}

// Sizes of the level-1 data, level-2 and level-3 caches. The deterministic cache leaf lists one cache
// per subleaf (type 0 ends the list): size = ways * partitions * line size * sets.
void detect_caches(CpuFeatures& f) {
  const bool amd = f.vendor == "AuthenticAMD" || f.vendor == "HygonGenuine";
  const unsigned max_ext = cpuid(0x80000000).a;
  const bool amd_topology = amd && max_ext >= 0x80000001 && bit(cpuid(0x80000001).c, 22);
  unsigned leaf = 0;
  if (!amd && cpuid(0).a >= 4) leaf = 4;
  else if (amd_topology && max_ext >= 0x8000001D) leaf = 0x8000001D;
  for (unsigned sub = 0; leaf && sub < 16; ++sub) {
    const Regs r = cpuid(leaf, sub);
    const unsigned type = r.a & 0x1f, level = (r.a >> 5) & 0x7;
    if (type == 0) break;
    const int64_t bytes = int64_t((r.b >> 22) + 1) * (((r.b >> 12) & 0x3ff) + 1) * ((r.b & 0xfff) + 1) * (int64_t(r.c) + 1);
    if (level == 1 && type == 1) f.l1d_bytes = bytes;           // data
    if (level == 2 && (type == 3 || type == 1)) f.l2_bytes = bytes;  // unified (or data)
    if (level == 3 && type == 3) f.l3_bytes = bytes;
  }
  if (amd && f.l1d_bytes == 0 && max_ext >= 0x80000005) f.l1d_bytes = int64_t(cpuid(0x80000005).c >> 24) << 10;
  if (amd && f.l2_bytes == 0 && max_ext >= 0x80000006) f.l2_bytes = int64_t(cpuid(0x80000006).c >> 16) << 10;
  if (amd && f.l3_bytes == 0 && max_ext >= 0x80000006) f.l3_bytes = int64_t(cpuid(0x80000006).d >> 18) << 19;
}

CpuFeatures detect() {
  CpuFeatures f;
  const Regs leaf0 = cpuid(0);
  char vendor[13] = {};
  std::memcpy(vendor, &leaf0.b, 4);
  std::memcpy(vendor + 4, &leaf0.d, 4);
  std::memcpy(vendor + 8, &leaf0.c, 4);
  f.vendor = vendor;
  const Regs leaf1 = cpuid(1);
  const unsigned base_family = (leaf1.a >> 8) & 0xf, base_model = (leaf1.a >> 4) & 0xf;
  f.family = int(base_family == 0xf ? base_family + ((leaf1.a >> 20) & 0xff) : base_family);
  f.model = int(base_family == 0x6 || base_family == 0xf ? base_model + (((leaf1.a >> 16) & 0xf) << 4) : base_model);
  if (cpuid(0x80000000).a >= 0x80000004) {
    char brand[49] = {};
    for (unsigned i = 0; i < 3; ++i) {
      const Regs r = cpuid(0x80000002 + i);
      std::memcpy(brand + 16 * i, &r, 16);
    }
    f.model_name = brand;
    const size_t first = f.model_name.find_first_not_of(' '), last = f.model_name.find_last_not_of(' ');
    f.model_name = first == std::string::npos ? "" : f.model_name.substr(first, last - first + 1);
  }
  detect_caches(f);
  const bool osxsave = bit(leaf1.c, 27);
  const uint64_t xcr = osxsave ? xcr0() : 0;
  const bool ymm_state = (xcr & 0x6) == 0x6;             // SSE and AVX state
  const bool zmm_state = ymm_state && (xcr & 0xe0) == 0xe0;  // opmask, upper zmm0-15, zmm16-31
  const bool tile_state = (xcr & 0x60000) == 0x60000;    // XTILECFG, XTILEDATA
  if (leaf0.a < 7) return f;
  const Regs leaf7 = cpuid(7, 0), leaf7_1 = cpuid(7, 1);
  f.fma = ymm_state && bit(leaf1.c, 12);
  f.avx2 = ymm_state && bit(leaf7.b, 5);
  f.avx512f = zmm_state && bit(leaf7.b, 16);
  f.avx512dq = zmm_state && bit(leaf7.b, 17);
  f.avx512bw = zmm_state && bit(leaf7.b, 30);
  f.avx512vl = zmm_state && bit(leaf7.b, 31);
  f.avx512_bf16 = zmm_state && bit(leaf7_1.a, 5);
  f.amx_bf16 = tile_state && bit(leaf7.d, 22);
  f.amx_tile = tile_state && bit(leaf7.d, 24);
  return f;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = detect();
  return features;
}

bool cpu_supports(Isa level) {
  const CpuFeatures& f = cpu_features();
  switch (level) {
    case Isa::baseline: return true;
    case Isa::avx2: return f.avx2 && f.fma;
    case Isa::avx512: return f.avx512f && f.avx2 && f.fma;
  }
  return false;
}

Isa best_isa() {
  static const Isa best = cpu_supports(Isa::avx512) ? Isa::avx512 : cpu_supports(Isa::avx2) ? Isa::avx2 : Isa::baseline;
  return best;
}

std::string_view isa_name(Isa level) {
  switch (level) {
    case Isa::baseline: return "baseline";
    case Isa::avx2: return "avx2";
    case Isa::avx512: return "avx512";
  }
  return "?";
}

}  // namespace scalpel
