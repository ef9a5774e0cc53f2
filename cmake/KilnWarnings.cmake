# Warnings of kiln's own code: -Wall -Wextra on every target this project defines (the library, the
# CUDA module's host and device code, tests, examples, benchmarks); KILN_WERROR=ON (CI, and the
# presets' "ci" settings) makes them errors, nvcc's own diagnostics included.
# Third-party headers are not ours to fix: Eigen, nlohmann-json, CLI11, GoogleTest and Google
# Benchmark come in through imported targets and CUDA and cuDNN through -isystem, so the compilers
# treat them as system headers and report nothing from inside them. The one warning that still
# surfaces from a system header (GCC 12's AVX-512 intrinsics) is handled in KilnCpuIsa.cmake.
option(KILN_WERROR "Treat warnings in kiln's own code as errors (host compiler and nvcc)" OFF)

add_compile_options("$<$<COMPILE_LANGUAGE:CXX>:-Wall;-Wextra>" "$<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Wextra>")
# GCC 12 reports false -Wrestrict overlaps inside libstdc++'s string concatenation ("[" +
# std::to_string(n), GCC bug 105651, fixed in GCC 13); not a fault of the code that concatenates.
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
  add_compile_options("$<$<COMPILE_LANGUAGE:CXX>:-Wno-restrict>")
endif()
if(KILN_WERROR)
  add_compile_options("$<$<COMPILE_LANGUAGE:CXX>:-Werror>"
                      "$<$<COMPILE_LANGUAGE:CUDA>:--Werror=all-warnings;-Xcompiler=-Werror>")
endif()
