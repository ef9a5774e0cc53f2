# The version of the host's nlohmann-json (header-only) headers, read from nlohmann/detail/abi_macros.hpp.
include(${CMAKE_CURRENT_LIST_DIR}/host_headers.cmake)
kiln_header_version(_kiln_version "${KILN_HOST_INCLUDE_DIR}/nlohmann/detail/abi_macros.hpp" NLOHMANN_JSON_VERSION_MAJOR NLOHMANN_JSON_VERSION_MINOR NLOHMANN_JSON_VERSION_PATCH)
kiln_same_major_version("${_kiln_version}")
