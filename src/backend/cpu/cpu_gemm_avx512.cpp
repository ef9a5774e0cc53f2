// gemm_serial's Eigen product compiled for AVX-512, chosen at run time (cpu_gemm.cpp) on CPUs that
// have it: Eigen picks its kernels at compile time, and the library's default level (x86-64-v3)
// would leave AVX-512's wider registers unused where PyTorch's CPU kernels use them.
// How: GCC's target pragma lets this one file emit AVX-512 code, and the __AVX512*__ macros that
// Eigen reads are defined for its headers by hand (the pragma enables the instructions, not the
// macros). Eigen is included under another namespace name so that none of its inline functions,
// compiled here with AVX-512, can be merged with the portable ones of the other files; the
// standard headers Eigen includes come first, so their templates keep the library's level.
// Only with GCC on x86-64 builds of level x86-64-v3 (AVX2 and FMA, without AVX-512); elsewhere
// this file compiles to the "not available" answer.
#include <algorithm>
#include <array>
#include <cassert>
#include <cerrno>
#include <climits>
#include <cmath>
#include <complex>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <iosfwd>
#include <iostream>
#include <limits>
#include <new>
#include <sstream>
#include <string>
#include <type_traits>

#include "backend/cpu/cpu_backend.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__AVX2__) && defined(__FMA__) && \
    !defined(__AVX512F__) && !defined(EIGEN_CORE_H)
#define KILN_GEMM_AVX512 1
// GCC 12 reports the intrinsic headers' deliberately undefined vectors (`__m256d __Y = __Y;`) as
// maybe uninitialized once Eigen's AVX-512 transposes inline them: a false positive in GCC's own
// headers, silenced for this file's intrinsics only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC push_options
#pragma GCC target("avx512f,avx512cd,avx512vl,avx512dq,avx512bw")
#define Eigen kiln_eigen_avx512
#define __AVX512F__ 1
#define __AVX512CD__ 1
#define __AVX512VL__ 1
#define __AVX512DQ__ 1
#define __AVX512BW__ 1
#include "backend/cpu/cpu_gemm_eigen.h"

namespace kiln::backend {

namespace {
struct Avx512 {};  // the tag of this file's copy of eigen_gemm
}  // namespace

template <typename T>
void gemm_serial_avx512(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda, const T* b,
                        int64_t ldb, T beta, T* c, int64_t ldc) {
  eigen_gemm<Avx512, T>(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
template void gemm_serial_avx512<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t,
                                        const float*, int64_t, float, float*, int64_t);
template void gemm_serial_avx512<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t,
                                         const double*, int64_t, double, double*, int64_t);

}  // namespace kiln::backend

#undef __AVX512F__
#undef __AVX512CD__
#undef __AVX512VL__
#undef __AVX512DQ__
#undef __AVX512BW__
#undef Eigen
#pragma GCC pop_options
#pragma GCC diagnostic pop
#endif

namespace kiln::backend {

#ifndef KILN_GEMM_AVX512
template <typename T>
void gemm_serial_avx512(bool, bool, int64_t, int64_t, int64_t, T, const T*, int64_t, const T*, int64_t, T, T*,
                        int64_t) {
  throw Error("matmul",
              "kiln's AVX-512 product is not compiled into this build; expected a call only where it is available");
}
template void gemm_serial_avx512<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t,
                                        const float*, int64_t, float, float*, int64_t);
template void gemm_serial_avx512<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t,
                                         const double*, int64_t, double, double*, int64_t);
#endif

bool gemm_avx512_available() {
#ifdef KILN_GEMM_AVX512
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw");
#else
  return false;
#endif
}

}  // namespace kiln::backend
