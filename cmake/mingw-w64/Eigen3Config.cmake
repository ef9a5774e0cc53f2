# Eigen (header-only) for a cross build, from the host's headers (see host_headers.cmake).
include(${CMAKE_CURRENT_LIST_DIR}/host_headers.cmake)
kiln_host_headers(Eigen3::Eigen eigen3/Eigen eigen3/unsupported)
