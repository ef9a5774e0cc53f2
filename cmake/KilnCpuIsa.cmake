# The instruction set kiln's CPU code is compiled for (sets KILN_CPU_FLAGS, used by the library and
# by the benchmarks that must see its flags).
#
# A shared library is built once and run on whatever CPU its users have, so the default is not
# -march=native but a stated level: on x86-64, x86-64-v3 (AVX, AVX2, FMA, BMI1/2: Intel Haswell
# (2013) and AMD Zen (2017) or newer). Eigen picks its kernels at compile time, so the level is
# what its products run with: the seed CNN's CPU step is about 2x faster at x86-64-v3 than at
# x86-64-v2 (SSE4.2), and native (AVX-512) is another 1.5-2x (bench/README.md). On a CPU below the
# level, libkiln stops at load time with a sentence naming the missing instruction sets
# (src/config/cpu_features.cpp) instead of faulting later. KILN_CPU_ISA=x86-64-v2 or x86-64 builds
# for older CPUs; KILN_NATIVE=ON (-march=native) for a library built and run on the same machine.
# MinGW-w64 builds default to x86-64-v2: GCC cannot align the Win64 stack for AVX spills.
option(KILN_NATIVE "Compile for this machine's CPU (-march=native); the library then runs only on CPUs with its instruction sets" OFF)
if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64|x64)$")
  if(MINGW OR WIN32)
    set(_kiln_isa_default "x86-64-v2")
  else()
    set(_kiln_isa_default "x86-64-v3")
  endif()
else()
  set(_kiln_isa_default "")  # the compiler's default for the target
endif()
set(KILN_CPU_ISA "${_kiln_isa_default}" CACHE STRING
    "CPU instruction set level passed as -march= (x86-64, x86-64-v2, x86-64-v3, x86-64-v4; empty: the compiler's default); KILN_NATIVE=ON overrides it")

set(KILN_CPU_FLAGS "")
if(KILN_NATIVE)
  set(KILN_CPU_FLAGS -march=native)
elseif(KILN_CPU_ISA)
  set(KILN_CPU_FLAGS -march=${KILN_CPU_ISA})
endif()
if(KILN_CPU_FLAGS)
  include(CheckCXXCompilerFlag)
  check_cxx_compiler_flag("${KILN_CPU_FLAGS}" KILN_CPU_FLAGS_WORK_${KILN_CPU_ISA}_${KILN_NATIVE})
  if(NOT KILN_CPU_FLAGS_WORK_${KILN_CPU_ISA}_${KILN_NATIVE})
    message(FATAL_ERROR "kiln: the compiler does not accept ${KILN_CPU_FLAGS}; set KILN_CPU_ISA to a level it knows, or to empty for its default")
  endif()
  message(STATUS "kiln: CPU code compiled with ${KILN_CPU_FLAGS}")
else()
  message(STATUS "kiln: CPU code compiled for the compiler's default instruction set")
endif()

# GCC 12 reports false -Wmaybe-uninitialized inside its own AVX-512 intrinsics (avx512fintrin.h,
# inlined into Eigen's packet math; GCC bug 105593, fixed in GCC 13). Silence only that warning,
# only where AVX-512 can be in use, so that KILN_WERROR builds with KILN_NATIVE=ON still pass.
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13
   AND (KILN_NATIVE OR KILN_CPU_ISA STREQUAL "x86-64-v4"))
  list(APPEND KILN_CPU_FLAGS -Wno-maybe-uninitialized)
endif()

# The load-time check: which x86-64 level libkiln needs (0: none checked, e.g. native or another
# architecture). Its file is compiled for the baseline so that it runs on any x86-64 CPU.
set(KILN_CPU_LEVEL 0)
if(NOT KILN_NATIVE AND KILN_CPU_ISA MATCHES "^x86-64-v([234])$")
  set(KILN_CPU_LEVEL ${CMAKE_MATCH_1})
endif()
set_source_files_properties(${PROJECT_SOURCE_DIR}/src/config/cpu_features.cpp PROPERTIES
  COMPILE_DEFINITIONS "KILN_CPU_LEVEL=${KILN_CPU_LEVEL};KILN_CPU_ISA_NAME=\"${KILN_CPU_ISA}\""
  COMPILE_OPTIONS "$<$<BOOL:${KILN_CPU_LEVEL}>:-march=x86-64>")
