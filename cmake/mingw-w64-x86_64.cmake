# Toolchain: kiln for 64-bit Windows, cross-built on Debian or Ubuntu with MinGW-w64's posix thread
# model (g++-mingw-w64-x86-64-posix; std::thread, std::mutex and libgomp need it). .ci/windows_check
# builds with it and runs the tests under Wine:
#   cmake -S . -B build-mingw -G Ninja -DCMAKE_TOOLCHAIN_FILE=cmake/mingw-w64-x86_64.cmake -DKILN_WITH_CUDA=OFF
# Eigen, nlohmann-json and CLI11 are header-only: the host's copies serve the target through the
# package files in cmake/mingw-w64/, which expose only their own header folders (the host's
# /usr/include on the path would shadow the target's C library). GoogleTest is built for the target
# from its source (tests/CMakeLists.txt, KILN_GTEST_SOURCE_DIR).
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR x86_64)

set(KILN_MINGW_TRIPLE x86_64-w64-mingw32)
find_program(CMAKE_C_COMPILER NAMES ${KILN_MINGW_TRIPLE}-gcc-posix REQUIRED)
find_program(CMAKE_CXX_COMPILER NAMES ${KILN_MINGW_TRIPLE}-g++-posix REQUIRED)
find_program(CMAKE_RC_COMPILER NAMES ${KILN_MINGW_TRIPLE}-windres)

set(CMAKE_FIND_ROOT_PATH /usr/${KILN_MINGW_TRIPLE})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# The header-only packages (their <Pkg>_DIR is searched before the re-rooted prefixes).
foreach(_kiln_pkg Eigen3 nlohmann_json CLI11)
  set(${_kiln_pkg}_DIR "${CMAKE_CURRENT_LIST_DIR}/mingw-w64" CACHE PATH "${_kiln_pkg} for the MinGW-w64 build")
endforeach()

# No AVX for MinGW-w64: GCC cannot align the Win64 stack beyond 16 bytes (GCC bug 54412), so the
# 32-byte spills of Eigen's AVX vectors can fault. Hence no -march=native, and KILN_CPU_ISA no
# higher than x86-64-v2 (SSE4.2).
set(KILN_NATIVE OFF CACHE BOOL "Compile for this machine's CPU (-march=native)")
