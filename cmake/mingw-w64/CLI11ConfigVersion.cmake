# The version of the host's CLI11 (header-only) headers, read from CLI/Version.hpp.
include(${CMAKE_CURRENT_LIST_DIR}/host_headers.cmake)
kiln_header_version(_kiln_version "${KILN_HOST_INCLUDE_DIR}/CLI/Version.hpp" CLI11_VERSION_MAJOR CLI11_VERSION_MINOR CLI11_VERSION_PATCH)
kiln_same_major_version("${_kiln_version}")
