# The libraries behind kiln's outside formats (DESIGN.md: formats by their libraries). Each one that
# is found turns its readers and writers on; a build without it keeps the same API, and a call
# raises "[op] kiln was built without <library>" (the MinGW-w64 cross build, for one, has none).
#   libzip       .keras archives and NumPy's .npz          KILN_WITH_LIBZIP
#   HDF5 (C)     .keras weights (model.weights.h5)         KILN_WITH_HDF5
#   ONNX+protobuf ONNX export                              KILN_WITH_ONNX
#   libjpeg, libpng  image_dataset_from_directory          KILN_WITH_JPEG, KILN_WITH_PNG
# kiln_use_formats(<target> <PUBLIC|PRIVATE>) links the found libraries and defines the switches.
# KILN_FORMATS_OFF (a list, e.g. "LIBZIP;ONNX") leaves those out although they are installed, to build
# and test the paths without them.
set(KILN_FORMATS_OFF "" CACHE STRING "formats to build without although their libraries are installed (LIBZIP;HDF5;ONNX;JPEG;PNG)")
# libzip's own CMake package names its command-line tools, which Debian ships apart (libzip-tools):
# find the library and header directly.
find_path(KILN_LIBZIP_INCLUDE_DIR zip.h)
find_library(KILN_LIBZIP_LIBRARY zip)
set(_kiln_libzip_found OFF)
if(KILN_LIBZIP_INCLUDE_DIR AND KILN_LIBZIP_LIBRARY)
  set(_kiln_libzip_found ON)
  add_library(kiln_libzip INTERFACE IMPORTED)
  set_target_properties(kiln_libzip PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${KILN_LIBZIP_INCLUDE_DIR}"
    INTERFACE_LINK_LIBRARIES "${KILN_LIBZIP_LIBRARY}")
endif()
# FindHDF5 test-compiles a C program.
enable_language(C)
find_package(HDF5 QUIET COMPONENTS C)
# FindHDF5 asks the host's h5cc wrapper, which can report HDF5 as found for a cross build whose
# sysroot lacks the library: count it only when every library it names exists.
set(_kiln_hdf5_found "${HDF5_FOUND}")
if(HDF5_FOUND AND (DEFINED HDF5_C_LIBRARY_hdf5 AND NOT EXISTS "${HDF5_C_LIBRARY_hdf5}"))
  set(_kiln_hdf5_found OFF)
endif()
find_package(ONNX CONFIG QUIET)
if(ONNX_FOUND)
  find_package(Protobuf QUIET)
endif()
find_package(JPEG QUIET)
find_package(PNG QUIET)

set(KILN_FORMAT_DEFINITIONS "")
set(KILN_FORMAT_LIBRARIES "")
set(KILN_FORMATS_FOUND "")
set(KILN_FORMATS_MISSING "")
macro(_kiln_format name found)
  if(${found} AND NOT "${name}" IN_LIST KILN_FORMATS_OFF)
    list(APPEND KILN_FORMAT_DEFINITIONS KILN_WITH_${name}=1)
    list(APPEND KILN_FORMAT_LIBRARIES ${ARGN})
    list(APPEND KILN_FORMATS_FOUND ${name})
  else()
    list(APPEND KILN_FORMATS_MISSING ${name})
  endif()
endmacro()
_kiln_format(LIBZIP _kiln_libzip_found kiln_libzip)
_kiln_format(HDF5 _kiln_hdf5_found hdf5::hdf5)
set(_kiln_onnx_found OFF)
if(ONNX_FOUND AND Protobuf_FOUND)
  set(_kiln_onnx_found ON)
endif()
_kiln_format(ONNX _kiln_onnx_found onnx_proto protobuf::libprotobuf)
_kiln_format(JPEG JPEG_FOUND JPEG::JPEG)
_kiln_format(PNG PNG_FOUND PNG::PNG)
message(STATUS "kiln formats: with ${KILN_FORMATS_FOUND}; without ${KILN_FORMATS_MISSING}")

function(kiln_use_formats target scope)
  target_compile_definitions(${target} ${scope} ${KILN_FORMAT_DEFINITIONS})
  target_link_libraries(${target} ${scope} ${KILN_FORMAT_LIBRARIES})
endfunction()
