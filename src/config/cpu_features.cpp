// Checks, when libkiln is loaded, that this CPU has the instruction sets the library was compiled
// for (KILN_CPU_ISA, x86-64-v3 by default), and otherwise stops with a sentence that names them and
// says how to rebuild, instead of an "illegal instruction" crash somewhere later. This file is
// compiled for the x86-64 baseline and runs before libkiln's other static initializers.
#if KILN_CPU_LEVEL > 0 && defined(__x86_64__) && defined(__GNUC__)
// Only C library calls and functions of this file: an inline C++ template used here could be
// merged at link time with a copy compiled for the higher level.
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

#if defined(__ELF__)
#define KILN_EARLY_CONSTRUCTOR __attribute__((constructor(101)))
#else
#define KILN_EARLY_CONSTRUCTOR __attribute__((constructor))
#endif

char missing[160];  // the names of the missing instruction sets, ", " between them

void add_missing(const char* feature) {
  if (missing[0] != '\0') std::strncat(missing, ", ", sizeof(missing) - std::strlen(missing) - 1);
  std::strncat(missing, feature, sizeof(missing) - std::strlen(missing) - 1);
}

// __builtin_cpu_supports takes string literals only, hence a macro.
#define KILN_NEED(feature) \
  if (!__builtin_cpu_supports(feature)) add_missing(feature);

KILN_EARLY_CONSTRUCTOR void check_cpu_features() {
  __builtin_cpu_init();
  KILN_NEED("popcnt")
  KILN_NEED("sse4.2")
#if KILN_CPU_LEVEL >= 3
  KILN_NEED("avx")
  KILN_NEED("avx2")
  KILN_NEED("fma")
  KILN_NEED("bmi")
  KILN_NEED("bmi2")
#endif
#if KILN_CPU_LEVEL >= 4
  KILN_NEED("avx512f")
  KILN_NEED("avx512bw")
  KILN_NEED("avx512dq")
  KILN_NEED("avx512vl")
#endif
  if (missing[0] == '\0') return;
  std::fprintf(stderr,
               "[kiln] this CPU lacks %s, which libkiln was compiled for (KILN_CPU_ISA=%s); rebuild kiln "
               "with -DKILN_CPU_ISA=x86-64-v2 (or x86-64) to run on it\n",
               missing, KILN_CPU_ISA_NAME);
  std::abort();
}

}  // namespace
#endif
