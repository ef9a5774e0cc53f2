# MPI (Open MPI from Debian: libopenmpi-dev) behind kiln::distribute::MultiWorkerMirroredStrategy:
# it launches and bootstraps the processes (mpirun, srun) and carries the CPU all-reduce. Optional
# like the format libraries: when found, kiln links MPI's C library privately and is compiled with
# KILN_WITH_MPI=1; without it the API stays and the strategy's constructor throws "kiln was built
# without MPI" (the MinGW-w64 cross build, for one, has none). KILN_MPI_OFF builds without it
# although it is installed, to build and test that path.
option(KILN_MPI_OFF "build without MPI although it is installed" OFF)
set(KILN_MPI_FOUND OFF)
if(NOT KILN_MPI_OFF AND NOT CMAKE_CROSSCOMPILING)
  # FindMPI test-compiles a C program.
  enable_language(C)
  find_package(MPI QUIET COMPONENTS C)
  if(MPI_C_FOUND)
    set(KILN_MPI_FOUND ON)
  endif()
endif()
if(KILN_MPI_FOUND)
  message(STATUS "kiln: MPI found (${MPI_C_LIBRARIES}); launcher ${MPIEXEC_EXECUTABLE}")
else()
  message(STATUS "kiln: MPI not used; MultiWorkerMirroredStrategy will throw (install libopenmpi-dev)")
endif()

# Links MPI into `target` and defines KILN_WITH_MPI=1 there (nothing without MPI).
function(kiln_use_mpi target scope)
  if(KILN_MPI_FOUND)
    target_link_libraries(${target} ${scope} MPI::MPI_C)
    # MPI's C API only: mpi.h in C++ would otherwise pull in the deprecated C++ bindings, which
    # need a library kiln does not link.
    target_compile_definitions(${target} ${scope} KILN_WITH_MPI=1 OMPI_SKIP_MPICXX=1 MPICH_SKIP_MPICXX=1)
  endif()
endfunction()
# The library target is made after this file is included: link it once the directory is read.
cmake_language(DEFER CALL kiln_use_mpi kiln PRIVATE)
