# The version of the host's Eigen (header-only) headers, read from eigen3/Eigen/src/Core/util/Macros.h.
include(${CMAKE_CURRENT_LIST_DIR}/host_headers.cmake)
kiln_header_version(_kiln_version "${KILN_HOST_INCLUDE_DIR}/eigen3/Eigen/src/Core/util/Macros.h" EIGEN_WORLD_VERSION EIGEN_MAJOR_VERSION EIGEN_MINOR_VERSION)
kiln_same_major_version("${_kiln_version}")
