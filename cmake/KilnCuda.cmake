# Decides whether the CUDA backend module (kiln_cuda) is built: KILN_WITH_CUDA=ON requires it,
# AUTO builds it when nvcc, cuBLAS and cuDNN are all found, OFF never does. The module is loaded
# at run time, so libkiln itself never depends on CUDA libraries.
set(KILN_CUDA_ENABLED OFF)
if(NOT KILN_WITH_CUDA STREQUAL "OFF")
  # GPU code for the common data-centre and desktop generations, plus PTX of the newest for GPUs
  # to come; set CMAKE_CUDA_ARCHITECTURES (e.g. "90" or "native") to build for fewer.
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES AND NOT DEFINED ENV{CUDAARCHS})
    set(CMAKE_CUDA_ARCHITECTURES "75-real;80-real;86-real;89-real;90-real;100-real;120" CACHE STRING
        "GPU architectures to build code for")
  endif()
  include(CheckLanguage)
  check_language(CUDA)
  set(_kiln_cuda_missing "")
  if(CMAKE_CUDA_COMPILER)
    find_package(CUDAToolkit QUIET)
    if(NOT CUDAToolkit_FOUND)
      set(_kiln_cuda_missing "the CUDA toolkit libraries")
    endif()
  else()
    set(_kiln_cuda_missing "a CUDA compiler (nvcc)")
  endif()
  if(NOT _kiln_cuda_missing)
    find_path(CUDNN_INCLUDE_DIR cudnn.h
      HINTS ${CUDAToolkit_INCLUDE_DIRS} /usr/include/x86_64-linux-gnu /usr/include)
    # libcudnn.so.9 alone (runtime package, no -dev symlink) is enough to link against.
    find_library(CUDNN_LIBRARY NAMES cudnn libcudnn.so.9
      HINTS ${CUDAToolkit_LIBRARY_DIR} ${CUDAToolkit_LIBRARY_ROOT}/lib /usr/lib/x86_64-linux-gnu)
    if(NOT CUDNN_INCLUDE_DIR OR NOT CUDNN_LIBRARY)
      set(_kiln_cuda_missing "cuDNN (cudnn.h and libcudnn)")
    endif()
  endif()
  if(_kiln_cuda_missing)
    if(KILN_WITH_CUDA STREQUAL "ON")
      message(FATAL_ERROR "KILN_WITH_CUDA=ON but ${_kiln_cuda_missing} was not found")
    endif()
    message(STATUS "kiln: building without the CUDA backend (${_kiln_cuda_missing} not found)")
  else()
    set(KILN_CUDA_ENABLED ON)
    message(STATUS "kiln: building the CUDA backend (cuDNN: ${CUDNN_LIBRARY})")
  endif()
endif()
